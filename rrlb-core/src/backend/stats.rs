//! Per-backend statistics: counters and a fixed-bucket latency histogram.
//!
//! Everything here is a plain atomic: recording a call is a handful of relaxed `fetch_add`s, never a lock and
//! never an allocation. Readers take a [`StatsSnapshot`], which is consistent per counter (not across counters;
//! a call finishing while the snapshot is taken may be counted in one and not yet in another).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::ewma::{DEFAULT_DECAY, LatencyEwma, Timestamp};

/// Sub-buckets per power of two; 4 gives a worst-case relative error of about 19 % per bucket.
const SUB_BITS: u32 = 2;
const SUBS: usize = 1 << SUB_BITS;
/// Octaves covered: 1 µs up to 2^40 µs (about 12.7 days); longer calls land in the last bucket.
const OCTAVES: usize = 40;
/// Number of histogram buckets.
pub(crate) const BUCKETS: usize = OCTAVES * SUBS;
/// The most a failed call's penalty raises the peak-EWMA estimate to (unless the call itself took longer).
const FAILURE_PENALTY_CAP: Duration = Duration::from_secs(10);

/// The live counters of one backend.
///
/// A call changes two counters besides the latency figures: `requests` when it starts and one of `successes`,
/// `failures` or `cancelled` when it ends. Calls in flight are not a counter of their own (that would cost two
/// more atomic writes per call) but the difference of those, which [`LeastRequest`](crate::LeastRequest) reads
/// with four loads from one cache line, kept apart from the latency figures.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081")],
/// )?;
/// let call = set.pick()?;
/// let a = set.get("a").ok_or("a is in the set")?;
/// assert_eq!(a.stats().in_flight(), 1);
/// call.failure();
/// let stats = a.stats().snapshot();
/// assert_eq!((stats.requests, stats.failures, a.stats().in_flight()), (1, 1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Stats {
    counts: Padded<Counts>,
    latency_sum_us: AtomicU64,
    histogram: LatencyHistogram,
}

/// What a picker reads, on one cache line: the in-flight arithmetic and the latency estimate (56 bytes).
#[derive(Debug)]
struct Counts {
    requests: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    cancelled: AtomicU64,
    ewma: LatencyEwma,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Zeroed statistics.
    pub fn new() -> Self {
        Self {
            counts: Padded(Counts {
                requests: AtomicU64::new(0),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                cancelled: AtomicU64::new(0),
                ewma: LatencyEwma::new(DEFAULT_DECAY),
            }),
            latency_sum_us: AtomicU64::new(0),
            histogram: LatencyHistogram::new(),
        }
    }

    /// Calls currently in flight: started and not yet ended.
    ///
    /// The ends are read before the starts, so a call that races with this read makes the answer at most one too
    /// high for an instant; the subtraction saturates, so it can never wrap below zero.
    #[inline]
    pub fn in_flight(&self) -> u64 {
        let c = &self.counts.0;
        let ended =
            c.successes.load(Relaxed) + c.failures.load(Relaxed) + c.cancelled.load(Relaxed);
        c.requests.load(Relaxed).saturating_sub(ended)
    }

    /// Counts a call that starts now.
    #[inline]
    pub(crate) fn start(&self) {
        self.counts.0.requests.fetch_add(1, Relaxed);
    }

    /// Records a call that finished with an answer (success or failure) after `latency`, ending at `at`.
    ///
    /// A failure feeds the peak-EWMA estimate twice its current value (at least the call's own latency, at most
    /// 10 s unless the call took longer), not its latency: a backend that fails fast, say with an immediate 503
    /// or a refused connection, must not look like the fastest one. Consecutive failures double its cost; the
    /// decay earns it back.
    #[inline]
    pub(crate) fn finish(&self, success: bool, latency: Duration, at: Timestamp) {
        let observed = if success {
            latency
        } else {
            self.counts.0.ewma.estimate(at).map_or(latency, |e| {
                latency.max(e.saturating_mul(2).min(FAILURE_PENALTY_CAP))
            })
        };
        self.counts.0.ewma.observe(observed, at);
        let c = &self.counts.0;
        if success {
            c.successes.fetch_add(1, Relaxed);
        } else {
            c.failures.fetch_add(1, Relaxed);
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Relaxed);
        self.histogram.record_us(us);
    }

    /// Records a call that was abandoned before it had an outcome.
    pub(crate) fn cancel(&self) {
        self.counts.0.cancelled.fetch_add(1, Relaxed);
    }

    /// The peak-EWMA latency estimate that [`PeakEwma`](crate::PeakEwma) balances on (fed by every answered call,
    /// whatever the algorithm, so a switch to it starts warm).
    pub fn ewma(&self) -> &LatencyEwma {
        &self.counts.0.ewma
    }

    /// The latency histogram.
    pub fn histogram(&self) -> &LatencyHistogram {
        &self.histogram
    }

    /// A point-in-time copy of every counter, with latency average and percentiles.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.counts.0;
        let sum = self.latency_sum_us.load(Relaxed);
        let successes = c.successes.load(Relaxed);
        let failures = c.failures.load(Relaxed);
        let cancelled = c.cancelled.load(Relaxed);
        let requests = c.requests.load(Relaxed);
        let answered = successes + failures;
        StatsSnapshot {
            requests,
            successes,
            failures,
            cancelled,
            in_flight: requests.saturating_sub(answered + cancelled),
            error_rate: if answered == 0 {
                0.0
            } else {
                failures as f64 / answered as f64
            },
            latency_avg: Duration::from_micros(sum.checked_div(answered).unwrap_or(0)),
            latency_p50: self.histogram.quantile(0.50),
            latency_p90: self.histogram.quantile(0.90),
            latency_p99: self.histogram.quantile(0.99),
        }
    }
}

/// A copy of a backend's counters at one moment.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rrlb_core::{BackendSet, BackendSpec, Outcome, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081")],
/// )?;
/// for ms in [10, 20, 30] {
///     set.pick()?.finish_with_latency(Outcome::Success, Duration::from_millis(ms), Instant::now());
/// }
/// set.pick()?.failure();
/// let s = set.get("a").ok_or("a is in the set")?.stats().snapshot();
/// assert_eq!((s.requests, s.successes, s.failures), (4, 3, 1));
/// assert_eq!(s.error_rate, 0.25);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsSnapshot {
    /// Calls started (picks).
    pub requests: u64,
    /// Calls recorded as successes.
    pub successes: u64,
    /// Calls recorded as failures.
    pub failures: u64,
    /// Calls dropped without an outcome.
    pub cancelled: u64,
    /// Calls in flight.
    pub in_flight: u64,
    /// `failures / (successes + failures)`, 0 when nothing was answered yet.
    pub error_rate: f64,
    /// Mean latency of answered calls.
    pub latency_avg: Duration,
    /// Median latency (histogram estimate).
    pub latency_p50: Duration,
    /// 90th percentile latency (histogram estimate).
    pub latency_p90: Duration,
    /// 99th percentile latency (histogram estimate).
    pub latency_p99: Duration,
}

/// A fixed-size, lock-free latency histogram with log-linear buckets (four per power of two, from 1 µs).
///
/// Recording is one relaxed `fetch_add`; quantiles interpolate linearly inside the bucket, so estimates are
/// within the bucket's width (at most about 19 % of the value).
///
/// ```
/// use std::time::Duration;
/// use rrlb_core::backend::LatencyHistogram;
///
/// let histogram = LatencyHistogram::new();
/// for ms in 1..=100 {
///     histogram.record(Duration::from_millis(ms));
/// }
/// assert_eq!(histogram.count(), 100);
/// let p50 = histogram.quantile(0.5);
/// // Within the bucket's width (about 19 %) of the true median.
/// assert!(p50 > Duration::from_millis(40) && p50 < Duration::from_millis(60), "{p50:?}");
/// ```
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one observation.
    pub fn record(&self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    fn record_us(&self, us: u64) {
        if let Some(bucket) = self.buckets.get(bucket_index(us)) {
            bucket.fetch_add(1, Relaxed);
        }
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The estimated `q`-quantile (`q` in `0.0..=1.0`), or zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: [u64; BUCKETS] = std::array::from_fn(|i| self.buckets[i].load(Relaxed));
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let q = q.clamp(0.0, 1.0);
        // Rank of the wanted observation, 1-based.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if seen + c >= rank {
                let (lo, hi) = bucket_bounds(i);
                let within = (rank - seen) as f64 / c as f64;
                let us = lo as f64 + (hi - lo) as f64 * within;
                return Duration::from_micros(us as u64);
            }
            seen += c;
        }
        Duration::ZERO
    }
}

/// Bucket for a value in microseconds: values below 4 µs get one bucket each; above, four per power of two.
fn bucket_index(us: u64) -> usize {
    if us < SUBS as u64 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros(); // >= SUB_BITS
    let sub = (us >> (octave - SUB_BITS)) as usize & (SUBS - 1);
    let index = (octave - SUB_BITS + 1) as usize * SUBS + sub;
    index.min(BUCKETS - 1)
}

/// The `[lo, hi)` range in microseconds that bucket `i` covers.
fn bucket_bounds(i: usize) -> (u64, u64) {
    if i < SUBS {
        return (i as u64, i as u64 + 1);
    }
    let octave = (i / SUBS) as u32 - 1 + SUB_BITS;
    let sub = (i % SUBS) as u64;
    let step = 1u64 << (octave - SUB_BITS);
    let lo = (1u64 << octave) + sub * step;
    (lo, lo + step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for us in [0u64, 1, 3, 4, 5, 7, 8, 15, 16, 1000, 1_000_000, 60_000_000] {
            let i = bucket_index(us);
            assert!(i >= last, "bucket index must not decrease");
            let (lo, hi) = bucket_bounds(i);
            assert!(lo <= us && us < hi, "{us} not in bucket {i} = [{lo}, {hi})");
            last = i;
        }
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let h = LatencyHistogram::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.2, "p50 = {p50}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.2, "p99 = {p99}");
        assert_eq!(LatencyHistogram::new().quantile(0.5), Duration::ZERO);
    }

    #[test]
    fn counters_track_outcomes() {
        let s = Stats::new();
        s.start();
        s.start();
        s.start();
        assert_eq!(s.in_flight(), 3);
        let t = Timestamp::from_instant(std::time::Instant::now());
        s.finish(true, Duration::from_millis(10), t);
        s.finish(false, Duration::from_millis(30), t);
        s.cancel();
        let snap = s.snapshot();
        assert_eq!(snap.requests, 3);
        assert_eq!((snap.successes, snap.failures, snap.cancelled), (1, 1, 1));
        assert_eq!(snap.in_flight, 0);
        assert_eq!(snap.error_rate, 0.5);
        assert_eq!(snap.latency_avg, Duration::from_millis(20));
    }

    #[test]
    fn a_failure_raises_the_latency_estimate_however_fast_it_was() {
        let s = Stats::new();
        let t = Timestamp::from_instant(std::time::Instant::now());
        s.finish(true, Duration::from_millis(5), t);
        assert_eq!(s.ewma().estimate(t), Some(Duration::from_millis(5)));
        // Fast failures double the estimate each time: 5 -> 10 -> 20 ms.
        s.finish(false, Duration::from_micros(100), t);
        assert_eq!(s.ewma().estimate(t), Some(Duration::from_millis(10)));
        s.finish(false, Duration::from_micros(100), t);
        assert_eq!(s.ewma().estimate(t), Some(Duration::from_millis(20)));
        // A slow failure counts at least its own latency; the penalty is capped at 10 s.
        s.finish(false, Duration::from_secs(30), t);
        assert_eq!(s.ewma().estimate(t), Some(Duration::from_secs(30)));
        for _ in 0..3 {
            s.finish(false, Duration::from_micros(100), t);
        }
        assert_eq!(s.ewma().estimate(t), Some(Duration::from_secs(30)));
        // The latency figures (histogram, average) still record what the calls took.
        assert_eq!(s.snapshot().failures, 6);
    }
}
