//! Examples of embedding rrlb; see the `[[example]]` targets and `README.md`:
//! `cargo run --example pick`, `tower_client`, `custom_algorithm` and `health_checked`.
//!
//! The smallest embedding, picking and recording with `rrlb-core` alone:
//!
//! ```
//! use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
//!
//! let set = BackendSet::with_backends(
//!     RoundRobin::new(),
//!     SetOptions::default(),
//!     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
//! )?;
//! let call = set.pick()?;
//! assert_eq!(call.backend().name(), "a");
//! call.success();
//! assert_eq!(set.get("a").map(|m| m.stats().snapshot().successes), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
