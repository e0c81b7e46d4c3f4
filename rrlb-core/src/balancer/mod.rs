//! The [`Balancer`] trait and the five built-in algorithms.
//!
//! # Why "plan, then pick"
//! Work that depends only on the set of eligible backends (the smooth weighted schedule, for one) is done once,
//! when a snapshot is built, and stored in that snapshot as the balancer's [`Plan`](Balancer::Plan). Picking then
//! reads the plan and touches one atomic: a rotating counter for the round robins, a random-number state for
//! [`LeastRequest`], [`PeakEwma`] and [`Random`]. Nothing on the pick path locks, allocates or walks the backend list.
//!
//! # Writing your own
//! Implement [`Balancer`]: build whatever you need in [`plan`](Balancer::plan) from the eligible members and
//! return an index into that same slice from [`pick`](Balancer::pick).
//!
//! ```
//! use rrlb_core::{Balancer, BackendSet, BackendSpec, Member, SetOptions};
//!
//! /// Always the first eligible backend: active/passive failover.
//! struct FirstEligible;
//!
//! impl Balancer for FirstEligible {
//!     type Plan = ();
//!     fn plan(&self, _eligible: &[Member]) {}
//!     fn pick(&self, _plan: &(), eligible: &[Member]) -> Option<usize> {
//!         (!eligible.is_empty()).then_some(0)
//!     }
//! }
//!
//! let set = BackendSet::new(FirstEligible, SetOptions::default());
//! set.add(BackendSpec::new("primary", "http://10.0.0.1:80"))?;
//! set.add(BackendSpec::new("standby", "http://10.0.0.2:80"))?;
//! assert_eq!(set.pick()?.backend().name(), "primary");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod least_request;
mod peak_ewma;
mod random;
pub(crate) mod rng;
mod round_robin;
mod weighted;

use std::fmt;
use std::str::FromStr;

pub use self::least_request::LeastRequest;
pub use self::peak_ewma::PeakEwma;
pub use self::random::Random;
pub use self::round_robin::RoundRobin;
pub use self::weighted::{MAX_SCHEDULE, WeightedPlan, WeightedRoundRobin};
use crate::backend::Member;

/// A load-balancing algorithm.
///
/// A balancer instance belongs to one [`BackendSet`](crate::BackendSet): its counters carry on from one snapshot
/// to the next, so a reconfiguration does not restart a rotation from the first backend.
///
/// ```
/// use rrlb_core::{Balancer, BackendSet, BackendSpec, Member, SetOptions};
///
/// /// Always the first eligible backend: a fixed preference order.
/// struct First;
///
/// impl Balancer for First {
///     type Plan = ();
///
///     fn plan(&self, _eligible: &[Member]) {}
///
///     fn pick(&self, _plan: &(), eligible: &[Member]) -> Option<usize> {
///         (!eligible.is_empty()).then_some(0)
///     }
/// }
///
/// let set = BackendSet::with_backends(
///     First,
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// assert_eq!(set.pick()?.backend().name(), "a");
/// set.drain("a", true, false)?;
/// assert_eq!(set.pick()?.backend().name(), "b");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Balancer: Send + Sync + 'static {
    /// What the balancer precomputes from the eligible backends when a snapshot is built.
    type Plan: Send + Sync + 'static;

    /// Builds the plan for a new snapshot. `eligible` is never empty when [`pick`](Balancer::pick) is called
    /// with it, but may be empty here.
    fn plan(&self, eligible: &[Member]) -> Self::Plan;

    /// Picks one of `eligible` (an index into it). Must not block or allocate; called on every request.
    fn pick(&self, plan: &Self::Plan, eligible: &[Member]) -> Option<usize>;
}

/// Pads a value to its own cache line pair, so counters hammered by every picker do not false-share.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

/// The built-in algorithms, by name.
///
/// ```
/// use rrlb_core::Algorithm;
///
/// let algorithm: Algorithm = "least-request".parse()?;
/// assert_eq!(algorithm, Algorithm::LeastRequest);
/// assert_eq!(algorithm.to_string(), "least-request");
/// assert_eq!(Algorithm::default(), Algorithm::RoundRobin);
/// # Ok::<(), rrlb_core::UnknownAlgorithm>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// [`RoundRobin`]: `round-robin`.
    #[default]
    RoundRobin,
    /// [`WeightedRoundRobin`]: `weighted-round-robin`.
    WeightedRoundRobin,
    /// [`LeastRequest`]: `least-request`.
    LeastRequest,
    /// [`Random`]: `random`.
    Random,
    /// [`PeakEwma`]: `peak-ewma`.
    PeakEwma,
}

impl Algorithm {
    /// Every algorithm, in documentation order: the one list of them. Configuration parsing, `rrlb --algorithm`
    /// and its `--help`, and [`UnknownAlgorithm`]'s message take their names from it, and a test of `rrlb` holds
    /// `docs/configuration.md` and `docs/api-spec.yml` to it.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastRequest,
        Algorithm::Random,
        Algorithm::PeakEwma,
    ];

    /// The configuration name, e.g. `round-robin` (parsed back by `FromStr`; [`Algorithm::ALL`] has them all).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::LeastRequest => "least-request",
            Algorithm::Random => "random",
            Algorithm::PeakEwma => "peak-ewma",
        }
    }

    /// One line on what the algorithm does (for help texts).
    pub const fn summary(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "Each eligible backend in turn",
            Algorithm::WeightedRoundRobin => "Smooth weighted round robin over the weights",
            Algorithm::LeastRequest => "The backend with the fewest requests in flight",
            Algorithm::Random => "Uniformly at random",
            Algorithm::PeakEwma => {
                "Of two random backends, the lower peak-EWMA latency x (in flight + 1)"
            }
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an unknown algorithm name.
///
/// ```
/// use rrlb_core::{Algorithm, UnknownAlgorithm};
///
/// let error = "fastest".parse::<Algorithm>().unwrap_err();
/// assert_eq!(error, UnknownAlgorithm("fastest".to_owned()));
/// assert!(error.to_string().contains("fastest"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown algorithm {:?} (expected ", self.0)?;
        let last = Algorithm::ALL.len() - 1;
        for (i, a) in Algorithm::ALL.into_iter().enumerate() {
            let sep = match i {
                0 => "",
                _ if i == last => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{a}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// Any of the built-in algorithms, chosen at run time (for instance from a configuration file).
///
/// ```
/// use rrlb_core::{Algorithm, AnyBalancer, BackendSet, BackendSpec, SetOptions};
///
/// let set = BackendSet::with_backends(
///     AnyBalancer::new(Algorithm::RoundRobin),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// // The algorithm is chosen at run time, and can change without losing the backends' state.
/// set.set_balancer(AnyBalancer::new("least-request".parse()?));
/// assert_eq!(set.load().balancer().algorithm(), Algorithm::LeastRequest);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum AnyBalancer {
    /// See [`RoundRobin`].
    RoundRobin(RoundRobin),
    /// See [`WeightedRoundRobin`].
    WeightedRoundRobin(WeightedRoundRobin),
    /// See [`LeastRequest`].
    LeastRequest(LeastRequest),
    /// See [`Random`].
    Random(Random),
    /// See [`PeakEwma`].
    PeakEwma(PeakEwma),
}

/// The plan of an [`AnyBalancer`].
///
/// ```
/// use rrlb_core::{Algorithm, AnyBalancer, AnyPlan, BackendSet, BackendSpec, SetOptions};
///
/// let set = BackendSet::with_backends(
///     AnyBalancer::new(Algorithm::WeightedRoundRobin),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081").with_weight(2), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// let snapshot = set.load();
/// match snapshot.plan() {
///     AnyPlan::Weighted(plan) => assert_eq!(plan.schedule().len(), 3),
///     AnyPlan::None => unreachable!("weighted round robin precomputes its schedule"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum AnyPlan {
    /// The algorithm needs no plan.
    None,
    /// The smooth weighted schedule.
    Weighted(WeightedPlan),
}

impl AnyBalancer {
    /// A fresh balancer of the given algorithm (random ones seeded from the OS-provided hasher keys).
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::RoundRobin => AnyBalancer::RoundRobin(RoundRobin::new()),
            Algorithm::WeightedRoundRobin => {
                AnyBalancer::WeightedRoundRobin(WeightedRoundRobin::new())
            }
            Algorithm::LeastRequest => AnyBalancer::LeastRequest(LeastRequest::new()),
            Algorithm::Random => AnyBalancer::Random(Random::new()),
            Algorithm::PeakEwma => AnyBalancer::PeakEwma(PeakEwma::new()),
        }
    }

    /// A fresh balancer of the given algorithm whose random draws (if it makes any) come from `seed`, for
    /// reproducible runs such as simulations.
    pub fn with_seed(algorithm: Algorithm, seed: u64) -> Self {
        match algorithm {
            Algorithm::LeastRequest => AnyBalancer::LeastRequest(LeastRequest::with_seed(seed)),
            Algorithm::Random => AnyBalancer::Random(Random::with_seed(seed)),
            Algorithm::PeakEwma => AnyBalancer::PeakEwma(PeakEwma::with_seed(seed)),
            Algorithm::RoundRobin | Algorithm::WeightedRoundRobin => AnyBalancer::new(algorithm),
        }
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            AnyBalancer::RoundRobin(_) => Algorithm::RoundRobin,
            AnyBalancer::WeightedRoundRobin(_) => Algorithm::WeightedRoundRobin,
            AnyBalancer::LeastRequest(_) => Algorithm::LeastRequest,
            AnyBalancer::Random(_) => Algorithm::Random,
            AnyBalancer::PeakEwma(_) => Algorithm::PeakEwma,
        }
    }
}

impl From<Algorithm> for AnyBalancer {
    fn from(a: Algorithm) -> Self {
        AnyBalancer::new(a)
    }
}

impl Balancer for AnyBalancer {
    type Plan = AnyPlan;

    fn plan(&self, eligible: &[Member]) -> AnyPlan {
        match self {
            AnyBalancer::WeightedRoundRobin(w) => AnyPlan::Weighted(w.plan(eligible)),
            _ => AnyPlan::None,
        }
    }

    #[inline]
    fn pick(&self, plan: &AnyPlan, eligible: &[Member]) -> Option<usize> {
        match (self, plan) {
            (AnyBalancer::RoundRobin(b), _) => b.pick(&(), eligible),
            (AnyBalancer::WeightedRoundRobin(b), AnyPlan::Weighted(p)) => b.pick(p, eligible),
            (AnyBalancer::LeastRequest(b), _) => b.pick(&(), eligible),
            (AnyBalancer::Random(b), _) => b.pick(&(), eligible),
            (AnyBalancer::PeakEwma(b), _) => b.pick(&(), eligible),
            // A plan built by another algorithm cannot reach here (plan and balancer live in one snapshot);
            // answer something sane rather than nothing.
            (AnyBalancer::WeightedRoundRobin(_), AnyPlan::None) => {
                (!eligible.is_empty()).then_some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
            assert_eq!(AnyBalancer::new(a).algorithm(), a);
            assert_eq!(AnyBalancer::with_seed(a, 7).algorithm(), a);
        }
        let err = "fastest".parse::<Algorithm>().unwrap_err();
        // Every name, from the one list: `(expected a, b, ... or z)`.
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
        let (last, rest) = names.split_last().unwrap();
        let expected = format!("(expected {} or {last})", rest.join(", "));
        assert_eq!(
            err.to_string(),
            format!("unknown algorithm \"fastest\" {expected}")
        );
        assert!(
            expected
                .starts_with("(expected round-robin, weighted-round-robin, least-request, random")
        );
    }
}
