//! Least request by the power of two choices.

use super::Balancer;
use super::rng::{SharedRng, two_of};
use crate::backend::Member;

/// Draws two distinct eligible backends at random and picks the one with fewer calls in flight (the first drawn
/// on a tie).
///
/// Comparing two random choices instead of scanning for the global minimum keeps the pick O(1) and avoids the
/// herd effect of every client sending to the same least-loaded backend, while still steering most traffic away
/// from a backend that is slow to answer (Mitzenmacher, "The Power of Two Choices in Randomized Load
/// Balancing"). Both draws come from one 64-bit random number: one atomic add per pick.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, LeastRequest, SetOptions};
///
/// let set = BackendSet::with_backends(
///     LeastRequest::with_seed(7),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// // With two backends both are always sampled: the one with fewer calls in flight wins.
/// let held = set.pick()?;
/// let next = set.pick()?;
/// assert_ne!(held.backend().name(), next.backend().name());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LeastRequest {
    rng: SharedRng,
}

impl Default for LeastRequest {
    fn default() -> Self {
        Self::new()
    }
}

impl LeastRequest {
    /// Seeded from per-process randomness.
    pub fn new() -> Self {
        Self {
            rng: SharedRng::from_entropy(),
        }
    }

    /// Seeded explicitly: the same seed gives the same draws (on one thread).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: SharedRng::with_seed(seed),
        }
    }
}

impl Balancer for LeastRequest {
    type Plan = ();

    fn plan(&self, _eligible: &[Member]) {}

    #[inline]
    fn pick(&self, _plan: &(), eligible: &[Member]) -> Option<usize> {
        let n = eligible.len();
        if n < 2 {
            return (n == 1).then_some(0);
        }
        let (a, b) = two_of(self.rng.next_u64(), n);
        let load = |i: usize| {
            eligible
                .get(i)
                .map_or(u64::MAX, |m| m.backend.stats().in_flight())
        };
        Some(if load(b) < load(a) { b } else { a })
    }
}
