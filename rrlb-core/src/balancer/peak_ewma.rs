//! Power of two choices over peak-EWMA latency × load (Finagle, linkerd2).

use super::Balancer;
use super::rng::{SharedRng, two_of};
use crate::backend::{Member, relative_decay};

/// Draws two distinct eligible backends at random and picks the cheaper, where a backend's cost is its
/// [peak-EWMA latency estimate](crate::backend::LatencyEwma) times its calls in flight plus one (the first drawn
/// on a tie).
///
/// # Why
/// [`LeastRequest`](crate::LeastRequest) only notices a slow backend once calls pile up on it. Weighing the load
/// by observed latency steers traffic away from a slow backend from its first slow answer, and the peak (an
/// observation above the estimate replaces it) makes that reaction immediate while the decay lets the backend
/// earn its traffic back. This is Finagle's and linkerd2's `PeakEwma` balancer; tower's is the behavioural
/// reference.
///
/// # Cost
/// One atomic add for the two draws, then for each candidate its in-flight count and its estimate (plain
/// loads) and one `exp`. The estimates are compared decayed to a common instant, which needs only the
/// difference of their stamps, so a pick reads no clock and writes nothing but the random state.
///
/// # A backend with no observation yet
/// It is costed at the latency of the backend it is compared with (so the two are compared by load alone, as
/// [`LeastRequest`](crate::LeastRequest) does): neither flooded as if free nor shunned as if slow, until its
/// first answer gives it an estimate of its own.
///
/// # Failures
/// A failed call raises the estimate to twice what it was (at least the call's latency), so a backend that
/// answers errors quickly is not mistaken for a fast one while its breaker has not opened yet.
///
/// ```
/// use std::time::Duration;
/// use rrlb_core::{BackendSet, BackendSpec, PeakEwma, SetOptions};
///
/// let set = BackendSet::with_backends(
///     PeakEwma::with_seed(7),
///     SetOptions::default(),
///     [BackendSpec::new("fast", "http://127.0.0.1:8081"), BackendSpec::new("slow", "http://127.0.0.1:8082")],
/// )?;
/// // Each answers once: "slow" takes 100 ms, "fast" 1 ms.
/// for name in ["fast", "slow"] {
///     let latency = if name == "slow" { 100 } else { 1 };
///     loop {
///         let call = set.pick()?;
///         if call.backend().name() == name {
///             call.finish_with_latency(rrlb_core::Outcome::Success, Duration::from_millis(latency), std::time::Instant::now());
///             break;
///         }
///         drop(call); // cancelled: not an observation
///     }
/// }
/// // With two backends both are always drawn: the cheaper one wins every time.
/// assert!((0..10).all(|_| set.pick().map(|c| c.backend().name() == "fast").unwrap_or(false)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PeakEwma {
    rng: SharedRng,
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self::new()
    }
}

impl PeakEwma {
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

/// Whether `b` is strictly cheaper than `a` (the decision of [`PeakEwma`], exposed for tests).
#[inline]
pub(crate) fn cheaper(a: &Member, b: &Member) -> bool {
    let (sa, sb) = (a.backend.stats(), b.backend.stats());
    let load_a = (sa.in_flight() + 1) as f64;
    let load_b = (sb.in_flight() + 1) as f64;
    match (sa.ewma().raw(), sb.ewma().raw()) {
        (Some((ea, ta)), Some((eb, tb))) => {
            // cost_a(now) = ea·e^{-(now-ta)/τ}·load_a; dividing both sides by e^{-(now-tb)/τ} removes `now`.
            let decay = relative_decay(ta, tb, sa.ewma().decay_ns());
            eb * load_b < ea * decay * load_a
        }
        // At most one estimate: both are costed at it (or at nothing), so the load decides.
        _ => load_b < load_a,
    }
}

impl Balancer for PeakEwma {
    type Plan = ();

    fn plan(&self, _eligible: &[Member]) {}

    #[inline]
    fn pick(&self, _plan: &(), eligible: &[Member]) -> Option<usize> {
        let n = eligible.len();
        if n < 2 {
            return (n == 1).then_some(0);
        }
        let (a, b) = two_of(self.rng.next_u64(), n);
        match (eligible.get(a), eligible.get(b)) {
            (Some(ma), Some(mb)) => Some(if cheaper(ma, mb) { b } else { a }),
            _ => Some(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{BackendSet, BackendSpec, Outcome, SetOptions};

    fn set(n: usize) -> BackendSet<PeakEwma> {
        BackendSet::with_backends(
            PeakEwma::with_seed(3),
            SetOptions::default(),
            (0..n).map(|i| BackendSpec::new(format!("b{i}"), format!("http://b{i}:80"))),
        )
        .unwrap()
    }

    /// Feeds each backend one answered call of the given latency at `now`.
    fn observe(set: &BackendSet<PeakEwma>, latencies: &[u64], now: Instant) {
        let snap = set.snapshot();
        for (m, &ms) in snap.members().iter().zip(latencies) {
            m.backend().stats().ewma().observe(
                Duration::from_millis(ms),
                crate::backend::Timestamp::from_instant(now),
            );
        }
    }

    #[test]
    fn a_slow_backend_gets_almost_nothing() {
        let s = set(4);
        let now = Instant::now();
        observe(&s, &[2, 2, 2, 200], now);
        let mut counts = [0usize; 4];
        for _ in 0..4_000 {
            let call = s.pick().unwrap();
            let i: usize = call.backend().name()[1..].parse().unwrap();
            counts[i] += 1;
            call.finish_with_latency(
                Outcome::Success,
                Duration::from_millis(if i == 3 { 200 } else { 2 }),
                now,
            );
        }
        assert_eq!(counts[3], 0, "{counts:?}");
        for c in &counts[..3] {
            assert!(*c > 1_000, "{counts:?}");
        }
    }

    #[test]
    fn load_outweighs_a_small_latency_edge() {
        let s = set(2);
        let now = Instant::now();
        observe(&s, &[10, 12], now);
        let snap = s.snapshot();
        let (a, b) = (&snap.members()[0], &snap.members()[1]);
        assert!(!cheaper(a, b), "b is slower and idle like a");
        let _calls: Vec<_> = (0..3)
            .map(|_| crate::set::Call::start(a.backend().clone(), false))
            .collect();
        assert!(cheaper(a, b), "a: 10 ms x 4 in flight > b: 12 ms x 1");
    }

    #[test]
    fn an_estimate_decays_so_an_idle_backend_is_tried_again() {
        let s = set(2);
        let t0 = Instant::now();
        let snap = s.snapshot();
        let (a, b) = (&snap.members()[0], &snap.members()[1]);
        let ts = crate::backend::Timestamp::from_instant;
        a.backend()
            .stats()
            .ewma()
            .observe(Duration::from_millis(100), ts(t0));
        b.backend()
            .stats()
            .ewma()
            .observe(Duration::from_millis(5), ts(t0));
        assert!(cheaper(a, b));
        // b keeps answering in 5 ms for a minute; a, idle, decays (τ = 10 s) below it.
        b.backend()
            .stats()
            .ewma()
            .observe(Duration::from_millis(5), ts(t0 + Duration::from_secs(60)));
        assert!(!cheaper(a, b), "100 ms · e^-6 = 0.25 ms < 5 ms");
    }

    #[test]
    fn a_backend_without_observations_is_compared_by_load() {
        let s = set(2);
        let snap = s.snapshot();
        let (a, b) = (&snap.members()[0], &snap.members()[1]);
        a.backend().stats().ewma().observe(
            Duration::from_millis(50),
            crate::backend::Timestamp::from_instant(Instant::now()),
        );
        assert!(!cheaper(a, b), "equal loads: the first drawn stays");
        let _call = crate::set::Call::start(a.backend().clone(), false);
        assert!(cheaper(a, b));
        assert!(!cheaper(b, a));
    }
}
