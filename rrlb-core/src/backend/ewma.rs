//! The peak-EWMA latency estimate of one backend, kept in atomics.
//!
//! # Why peak and why decaying
//! An average hides a backend that has just become slow; the estimate therefore jumps to any observation above
//! it (the "peak") and relaxes, with time constant `decay`, towards the observations below it and towards zero
//! while nothing is observed. The pull towards zero is what lets a backend that was slow once be tried again
//! later instead of being shunned for ever. This is the behaviour of Finagle's and linkerd2's (tower's) peak
//! EWMA; the estimate is read without writing: the decay since the last observation is applied by the reader.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The default time constant of the decay.
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// Exponents beyond this are clamped, so `exp` stays finite and products of costs never turn into `NaN`.
const MAX_EXPONENT: f64 = 600.0;

/// A point in time as nanoseconds since a process-wide epoch, so that it fits in one atomic.
///
/// The epoch is read once from both clocks the crate uses (the TSC-based `quanta` clock of the hot path and
/// `std::time::Instant`, which tests and simulations pass in), so stamps from either agree.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rrlb_core::backend::Timestamp;
///
/// let a = Timestamp::from_instant(Instant::now());
/// let b = Timestamp::from_instant(Instant::now() + Duration::from_millis(3));
/// assert!(a < b);
/// assert!(b.as_nanos() - a.as_nanos() >= 3_000_000);
/// // Instants before the epoch (the first stamp the process made) all read as the epoch.
/// if let Some(earlier) = Instant::now().checked_sub(Duration::from_secs(1)) {
///     assert_eq!(Timestamp::from_instant(earlier).as_nanos(), 0);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

fn epoch() -> &'static (Instant, quanta::Instant) {
    static EPOCH: OnceLock<(Instant, quanta::Instant)> = OnceLock::new();
    EPOCH.get_or_init(|| (Instant::now(), quanta::Instant::now()))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Timestamp {
    /// The time `at`, as a stamp (instants before the epoch map to the epoch).
    pub fn from_instant(at: Instant) -> Self {
        Self(nanos(at.saturating_duration_since(epoch().0)))
    }

    pub(crate) fn from_quanta(at: quanta::Instant) -> Self {
        Self(nanos(at.saturating_duration_since(epoch().1)))
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }
}

/// A backend's peak-EWMA latency estimate.
///
/// An observation above the estimate replaces it (the peak); below it, the estimate relaxes towards it with time
/// constant `decay`, and while nothing is observed it relaxes towards zero, so a backend that was slow once is
/// tried again later. Readers apply the decay since the last observation; nothing is written on a read.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rrlb_core::backend::{LatencyEwma, Timestamp};
///
/// let ewma = LatencyEwma::new(Duration::from_secs(10));
/// let t0 = Instant::now();
/// assert_eq!(ewma.estimate(Timestamp::from_instant(t0)), None); // nothing observed yet
/// ewma.observe(Duration::from_millis(5), Timestamp::from_instant(t0));
/// // A slower answer replaces the estimate at once (the peak) ...
/// ewma.observe(Duration::from_millis(50), Timestamp::from_instant(t0));
/// assert_eq!(ewma.estimate(Timestamp::from_instant(t0)), Some(Duration::from_millis(50)));
/// // ... and the estimate relaxes with time: after one time constant, to about 1/e of it.
/// let later = ewma.estimate(Timestamp::from_instant(t0 + Duration::from_secs(10))).unwrap_or_default();
/// assert!(later > Duration::from_millis(17) && later < Duration::from_millis(20), "{later:?}");
/// ```
#[derive(Debug)]
pub struct LatencyEwma {
    /// The estimate in nanoseconds as `f64` bits, as of `stamp`.
    estimate: AtomicU64,
    /// `Timestamp` of the last observation, plus one; 0 = nothing observed yet.
    stamp: AtomicU64,
    /// The decay's time constant in nanoseconds (at least 1).
    decay_ns: AtomicU64,
}

impl LatencyEwma {
    /// No observation yet, decaying with time constant `decay`.
    pub fn new(decay: Duration) -> Self {
        Self {
            estimate: AtomicU64::new(0f64.to_bits()),
            stamp: AtomicU64::new(0),
            decay_ns: AtomicU64::new(nanos(decay).max(1)),
        }
    }

    /// The decay's time constant.
    pub fn decay(&self) -> Duration {
        Duration::from_nanos(self.decay_ns.load(Relaxed))
    }

    /// Changes the decay's time constant (the estimate is kept).
    pub fn set_decay(&self, decay: Duration) {
        self.decay_ns.store(nanos(decay).max(1), Relaxed);
    }

    /// Records a call that took `latency` and ended at `at`.
    ///
    /// Two observations that end at the same instant on two threads may race; the later store wins. That loses
    /// at most one sample of an estimate, never the estimate itself.
    pub fn observe(&self, latency: Duration, at: Timestamp) {
        let rtt = nanos(latency) as f64;
        let prev_stamp = self.stamp.load(Relaxed);
        let next = if prev_stamp == 0 {
            rtt
        } else {
            let prev = f64::from_bits(self.estimate.load(Relaxed));
            let elapsed = at.0.saturating_sub(prev_stamp - 1) as f64;
            let w = (-elapsed / self.decay_ns.load(Relaxed) as f64).exp();
            let current = prev * w;
            if rtt > current {
                rtt
            } else {
                current * w + rtt * (1.0 - w)
            }
        };
        self.estimate.store(next.to_bits(), Relaxed);
        self.stamp
            .store(at.0.saturating_add(1).max(prev_stamp), Relaxed);
    }

    /// The estimate as of `at`, or `None` before the first observation.
    pub fn estimate(&self, at: Timestamp) -> Option<Duration> {
        let (value, stamp) = self.raw()?;
        let elapsed = at.0.saturating_sub(stamp) as f64;
        let w = (-elapsed / self.decay_ns.load(Relaxed) as f64).exp();
        Some(Duration::from_nanos((value * w) as u64))
    }

    /// The stored estimate (ns) and the stamp it is valid at, if anything was observed.
    #[inline]
    pub(crate) fn raw(&self) -> Option<(f64, u64)> {
        let stamp = self.stamp.load(Relaxed);
        (stamp != 0).then(|| (f64::from_bits(self.estimate.load(Relaxed)), stamp - 1))
    }

    /// The decay constant in nanoseconds, as `f64`.
    #[inline]
    pub(crate) fn decay_ns(&self) -> f64 {
        self.decay_ns.load(Relaxed) as f64
    }
}

/// The factor `exp((a - b) / decay)`: how much larger a value stamped `a` is than the same value stamped `b`
/// once both are decayed to a common instant. Lets a picker compare two decayed estimates without a clock.
#[inline]
pub(crate) fn relative_decay(a: u64, b: u64, decay_ns: f64) -> f64 {
    let diff = if a >= b {
        (a - b) as f64
    } else {
        -((b - a) as f64)
    };
    (diff / decay_ns).clamp(-MAX_EXPONENT, MAX_EXPONENT).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(ms: u64) -> Timestamp {
        Timestamp(ms * 1_000_000)
    }

    #[test]
    fn the_first_observation_is_the_estimate() {
        let e = LatencyEwma::new(Duration::from_secs(10));
        assert_eq!(e.estimate(at(0)), None);
        e.observe(20 * MS, at(5));
        assert_eq!(e.estimate(at(5)), Some(20 * MS));
    }

    #[test]
    fn a_peak_replaces_and_lower_values_pull_down_slowly() {
        let e = LatencyEwma::new(Duration::from_secs(1));
        e.observe(MS, at(0));
        e.observe(100 * MS, at(1));
        assert_eq!(e.estimate(at(1)), Some(100 * MS), "peak taken at once");
        e.observe(MS, at(2));
        let after_one = e.estimate(at(2)).unwrap();
        assert!(
            after_one > 99 * MS,
            "one fast call barely moves it: {after_one:?}"
        );
        for t in 3..3_000 {
            e.observe(MS, at(t));
        }
        let settled = e.estimate(at(3_000)).unwrap();
        assert!(settled < 2 * MS, "{settled:?}");
    }

    #[test]
    fn the_estimate_decays_towards_zero_while_idle() {
        let e = LatencyEwma::new(Duration::from_secs(10));
        e.observe(100 * MS, at(0));
        let later = e.estimate(at(10_000)).unwrap().as_secs_f64();
        assert!((later - 0.1 / std::f64::consts::E).abs() < 1e-6, "{later}");
    }

    #[test]
    fn relative_decay_matches_decaying_both() {
        let decay = 1e9;
        let f = relative_decay(3_000_000_000, 1_000_000_000, decay);
        assert!((f - 2f64.exp()).abs() < 1e-9);
        assert!((relative_decay(1, 1, decay) - 1.0).abs() < 1e-12);
        assert!(relative_decay(0, u64::MAX, 1.0).is_finite());
        assert!(relative_decay(u64::MAX, 0, 1.0).is_finite());
    }
}
