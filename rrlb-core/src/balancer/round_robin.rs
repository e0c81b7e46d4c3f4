//! Plain round robin.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{Balancer, CachePadded};
use crate::backend::Member;

/// Hands calls to the eligible backends in turn: over any `k·n` consecutive picks from an unchanged snapshot of
/// `n` eligible backends, each gets exactly `k`.
///
/// The cost of a pick is one relaxed `fetch_add` on a counter that sits on its own cache line.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// let order: Vec<String> = (0..4)
///     .map(|_| set.pick().map(|call| call.backend().name().to_owned()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(order, ["a", "b", "a", "b"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: CachePadded<AtomicUsize>,
}

impl RoundRobin {
    /// A round robin starting at the first backend.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for RoundRobin {
    type Plan = ();

    fn plan(&self, _eligible: &[Member]) {}

    #[inline]
    fn pick(&self, _plan: &(), eligible: &[Member]) -> Option<usize> {
        match eligible.len() {
            0 => None,
            n => Some(self.next.0.fetch_add(1, Relaxed) % n),
        }
    }
}
