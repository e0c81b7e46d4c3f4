//! # rrlb-tower
//!
//! rrlb's balancing engine ([`rrlb_core`]) as a [`tower::Service`]: pick a backend, call it under a per-attempt
//! timeout, record the outcome (statistics, latency, circuit breaker), retry on another backend when the
//! policy and the retry budget allow, and keep the backends' health current with active checks.
//!
//! ```
//! use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
//! use rrlb_tower::{BalanceConfig, BalanceLayer, BasicPolicy, Routed};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let set = BackendSet::with_backends(
//!     RoundRobin::new(),
//!     SetOptions::default(),
//!     [BackendSpec::new("a", "http://10.0.0.1"), BackendSpec::new("b", "http://10.0.0.2")],
//! )?;
//!
//! // The inner service gets each request with the backend picked for it.
//! let upstream = service_fn(|routed: Routed<&'static str>| async move {
//!     Ok::<_, std::convert::Infallible>(format!("{} answered {}", routed.backend.name(), routed.request))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(BalanceLayer::new(set.clone(), BasicPolicy, BalanceConfig::default()))
//!     .service(upstream);
//!
//! assert_eq!(svc.clone().oneshot("hello").await?, "a answered hello");
//! assert_eq!(svc.clone().oneshot("hello").await?, "b answered hello");
//! assert_eq!(set.get("a").unwrap().stats().snapshot().successes, 1);
//! # Ok(())
//! # }
//! ```
//!
//! For HTTP, [`http::HttpUpstream`] is a pooled hyper client that sends each request to its backend,
//! [`http::HttpPolicy`] classifies 5xx and transport errors as failures and [`http::HttpProbe`] checks a health
//! path; [`HealthChecker`] and [`Maintenance`] are the background tasks that keep a set current.
//! [`discovery`] keeps groups of backends in step with a source of addresses: DNS A/AAAA and SRV (feature
//! `dns`), Kubernetes EndpointSlices (feature `kubernetes`) or one of your own.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod budget;
mod discover;
pub mod discovery;
mod error;
mod future;
mod health;
#[cfg(feature = "http")]
pub mod http;
mod layer;
mod policy;
mod service;

pub use crate::budget::RetryBudget;
pub use crate::discover::apply_changes;
pub use crate::error::{BoxError, Error, FailureKind};
pub use crate::future::ResponseFuture;
pub use crate::health::{HealthCheckConfig, HealthChecker, Maintenance, Probe};
pub use crate::layer::BalanceLayer;
pub use crate::policy::{BasicPolicy, Policy, RetryOn, Served};
pub use crate::service::{Balance, BalanceConfig, Routed};
