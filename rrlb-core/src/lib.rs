//! # rrlb-core
//!
//! The engine of rrlb: backends with live state, a lock-free backend set, balancing algorithms, a circuit
//! breaker and health state. It has no runtime, no I/O and no networking, so it embeds anywhere (a tower
//! service, a hyper proxy, a game server's matchmaker) and its tests step through time without sleeping.
//!
//! ```
//! use rrlb_core::{Algorithm, AnyBalancer, BackendSet, BackendSpec, SetOptions};
//!
//! // Three backends, smooth weighted round robin.
//! let set = BackendSet::with_backends(
//!     AnyBalancer::new(Algorithm::WeightedRoundRobin),
//!     SetOptions::default(),
//!     [
//!         BackendSpec::new("a", "http://127.0.0.1:8081").with_weight(5),
//!         BackendSpec::new("b", "http://127.0.0.1:8082"),
//!         BackendSpec::new("c", "http://127.0.0.1:8083"),
//!     ],
//! )?;
//!
//! let mut order = String::new();
//! for _ in 0..7 {
//!     let call = set.pick()?; // counts the call in flight
//!     order.push_str(call.backend().name());
//!     call.success(); // records latency, feeds the breaker
//! }
//! assert_eq!(order, "aabacaa"); // NGINX's smooth sequence, not "aaaaabc"
//!
//! // Eject "a": the others now share the traffic exactly.
//! set.get("a").unwrap().backend().set_healthy(false);
//! let picks: Vec<String> = (0..4).map(|_| set.pick().map(|c| c.backend().name().to_owned())).collect::<Result<_, _>>()?;
//! assert_eq!(picks.iter().filter(|n| *n == "b").count(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Write your own Balancer
//!
//! An algorithm implements [`Balancer`]: `plan` runs once per change of the eligible backends (precompute
//! here), `pick` on every request and must not block or allocate.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use rrlb_core::{BackendSet, BackendSpec, Balancer, Member, SetOptions};
//!
//! /// Round robin over the backends with the highest weight only (the rest are spares).
//! #[derive(Default)]
//! struct Heaviest(AtomicUsize);
//!
//! impl Balancer for Heaviest {
//!     type Plan = Vec<usize>; // indices of the heaviest eligible backends
//!
//!     fn plan(&self, eligible: &[Member]) -> Vec<usize> {
//!         let top = eligible.iter().map(Member::weight).max().unwrap_or(0);
//!         (0..eligible.len()).filter(|&i| eligible[i].weight() == top).collect()
//!     }
//!
//!     fn pick(&self, plan: &Vec<usize>, _eligible: &[Member]) -> Option<usize> {
//!         let turn = self.0.fetch_add(1, Ordering::Relaxed);
//!         plan.get(turn % plan.len().max(1)).copied()
//!     }
//! }
//!
//! let set = BackendSet::with_backends(
//!     Heaviest::default(),
//!     SetOptions::default(),
//!     [BackendSpec::new("big", "http://10.0.0.1").with_weight(10), BackendSpec::new("spare", "http://10.0.0.2")],
//! )?;
//! assert_eq!(set.pick()?.backend().name(), "big");
//! set.drain("big", true, false)?;
//! assert_eq!(set.pick()?.backend().name(), "spare");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Balance a hyper client
//!
//! The engine has no I/O; [`rrlb-tower`](https://docs.rs/rrlb-tower) puts it in front of any `tower::Service`,
//! and its `http` feature brings a pooled hyper client. This is its crate example (run there as a doc test):
//!
//! ```ignore
//! use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
//! use rrlb_tower::http::{HttpPolicy, HttpUpstream, UpstreamConfig};
//! use rrlb_tower::{BalanceConfig, BalanceLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let backends = [BackendSpec::new("one", "http://10.0.0.1:8080"), BackendSpec::new("two", "http://10.0.0.2:8080")];
//! let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), backends)?;
//! let client = ServiceBuilder::new()
//!     .layer(BalanceLayer::new(set, HttpPolicy, BalanceConfig::default()))
//!     .service(HttpUpstream::new(UpstreamConfig::default()));
//! let response = client.oneshot(http::Request::post("/echo").body(body)?).await?;
//! ```
//!
//! ## The parts
//! * [`BackendSet`]: the whole routable state in one immutable [`Snapshot`] behind one `ArcSwap`; a pick is
//!   one snapshot load and one atomic add, with no lock and no allocation.
//! * [`Balancer`]: the algorithm trait, with [`RoundRobin`], [`WeightedRoundRobin`] (smooth, NGINX-exact),
//!   [`LeastRequest`] (power of two choices), [`PeakEwma`] (power of two choices over latency × load) and
//!   [`Random`], and [`AnyBalancer`] to choose one at run time.
//! * [`Call`]: the guard a pick returns; it counts the call in flight and records its outcome and latency.
//! * [`breaker`]: closed → open → half-open, on consecutive failures, failure rate and slow-call rate; a set
//!   never holds more than [`max_ejection_percent`](BreakerParams::max_ejection_percent) of its backends open.
//! * Slow start ([`SetOptions::slow_start`]): a backend that becomes eligible ramps from 10 % to its full share.
//! * [`health`]: rise/fall over active-check results.
//! * [`backend`]: a backend's identity and live [`Stats`](backend::Stats) (counters and latency histogram).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod balancer;
pub mod breaker;
pub mod hash;
pub mod health;
mod set;

pub use crate::backend::{Backend, Member};
pub use crate::balancer::{
    Algorithm, AnyBalancer, AnyPlan, Balancer, LeastRequest, PeakEwma, Random, RoundRobin,
    UnknownAlgorithm, WeightedPlan, WeightedRoundRobin,
};
pub use crate::breaker::{BreakerParams, CircuitState};
pub use crate::hash::{KetamaRing, LoadBound, MaglevTable};
pub use crate::health::HealthParams;
pub use crate::set::{
    BackendSet, BackendSpec, Call, Diff, NoEligibleBackend, Outcome, Picker, SetError, SetOptions,
    Snapshot,
};

/// The README's examples, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
