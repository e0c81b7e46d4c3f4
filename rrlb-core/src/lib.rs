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
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod balancer;
pub mod breaker;
pub mod health;
mod set;

pub use crate::backend::{Backend, Member};
pub use crate::balancer::{
    Algorithm, AnyBalancer, AnyPlan, Balancer, LeastRequest, PeakEwma, Random, RoundRobin,
    UnknownAlgorithm, WeightedPlan, WeightedRoundRobin,
};
pub use crate::breaker::{BreakerParams, CircuitState};
pub use crate::health::HealthParams;
pub use crate::set::{
    BackendSet, BackendSpec, Call, Diff, NoEligibleBackend, Outcome, Picker, SetError, SetOptions,
    Snapshot,
};
