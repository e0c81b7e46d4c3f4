//! Uniform random choice.

use super::Balancer;
use super::rng::{SharedRng, below};
use crate::backend::Member;

/// Picks an eligible backend uniformly at random. Seed it with [`Random::with_seed`] for reproducible tests.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, Random, SetOptions};
///
/// let set = BackendSet::with_backends(
///     Random::with_seed(42),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// let mut a = 0;
/// for _ in 0..1000 {
///     let call = set.pick()?;
///     a += usize::from(call.backend().name() == "a");
///     call.success();
/// }
/// assert!((400..=600).contains(&a), "{a}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Random {
    rng: SharedRng,
}

impl Default for Random {
    fn default() -> Self {
        Self::new()
    }
}

impl Random {
    /// Seeded from per-process randomness.
    pub fn new() -> Self {
        Self {
            rng: SharedRng::from_entropy(),
        }
    }

    /// Seeded explicitly: the same seed gives the same picks (on one thread).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: SharedRng::with_seed(seed),
        }
    }
}

impl Balancer for Random {
    type Plan = ();

    fn plan(&self, _eligible: &[Member]) {}

    #[inline]
    fn pick(&self, _plan: &(), eligible: &[Member]) -> Option<usize> {
        match eligible.len() {
            0 => None,
            n => Some(below((self.rng.next_u64() >> 32) as u32, n)),
        }
    }
}
