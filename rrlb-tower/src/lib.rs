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
//! ## Balance a hyper client
//!
//! With the `http` feature (on by default), [`http::HttpUpstream`] is the inner service: a pooled hyper client
//! that sends each request to the backend it was routed to.
//!
//! ```
//! # use bytes::Bytes; use http_body_util::Full; use echo_rs::{Config, EchoServer};
//! use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
//! use rrlb_tower::http::{HttpPolicy, HttpUpstream, UpstreamConfig};
//! use rrlb_tower::{BalanceConfig, BalanceLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let (one, two) = (EchoServer::start("127.0.0.1:0", Config::new("one")).await?, EchoServer::start("127.0.0.1:0", Config::new("two")).await?);
//!
//! let backends = [BackendSpec::new("one", one.url()), BackendSpec::new("two", two.url())];
//! let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), backends)?;
//! let client = ServiceBuilder::new()
//!     .layer(BalanceLayer::new(set, HttpPolicy, BalanceConfig::default()))
//!     .service(HttpUpstream::new(UpstreamConfig::default()));
//!
//! let request = http::Request::post("/echo").body(Full::new(Bytes::from_static(b"{}")))?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.headers()["x-echo-service"], "one");
//! # Ok(())
//! # }
//! ```
//!
//! ## Write your own Balancer
//!
//! An algorithm is an [`rrlb_core::Balancer`]: `plan` runs once per change of the eligible backends, `pick` on
//! every request (it must not block or allocate). [`Balance`] works with any of them.
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
//! For HTTP, [`http::HttpUpstream`] is a pooled hyper client that sends each request to its backend,
//! [`http::HttpPolicy`] classifies 5xx and transport errors as failures and [`http::HttpProbe`] checks a health
//! path; [`HealthChecker`] and [`Maintenance`] are the background tasks that keep a set current.
//! [`discovery`] keeps groups of backends in step with a source of addresses: DNS A/AAAA and SRV (feature
//! `dns`), Kubernetes EndpointSlices (feature `kubernetes`) or one of your own.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod balance;
mod budget;
pub mod discovery;
mod error;
mod health;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod policy;
pub mod trace;

pub use crate::balance::{Balance, BalanceConfig, BalanceLayer, ResponseFuture, Routed};
pub use crate::budget::RetryBudget;
pub use crate::discovery::changes::apply_changes;
pub use crate::error::{BoxError, Error, FailureKind};
pub use crate::health::{HealthCheckConfig, HealthChecker, Maintenance, Probe};
pub use crate::policy::{BasicPolicy, Policy, RetryOn, Served};

/// The README's examples, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
