//! The retry budget: retries at most a share of requests, plus a small floor per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Seconds a request or a retry counts for.
const WINDOW_SECS: u64 = 10;

/// Caps retries to a share of requests, so retries cannot multiply the load on an already failing fleet.
///
/// A retry is allowed while the retries of the last 10 s are fewer than `ratio` times the requests of the
/// last 10 s plus `min_per_second` × 10 (the floor that lets low traffic retry at all). Shared by all clones
/// of a [`Balance`](crate::Balance).
///
/// The same policy as tower's `TpsBudget` (and Finagle's), kept lock-free because every request pays for
/// it: counting a request is one clock read (the TSC, via `quanta`) and one relaxed atomic add on the
/// current second's slot of a ten-slot ring; `TpsBudget` takes a mutex and reads the system clock.
///
/// ```
/// use rrlb_tower::RetryBudget;
///
/// let budget = RetryBudget::new(0.25, 0);
/// let allowed = (0..20).filter(|_| budget.request_then_retry()).count();
/// assert_eq!(allowed, 5);
/// ```
#[derive(Debug, Clone)]
pub struct RetryBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    epoch: quanta::Instant,
    /// `ratio` in thousandths.
    ratio_milli: u64,
    /// `min_per_second` × the window.
    floor: u64,
    requests: [AtomicU64; WINDOW_SECS as usize],
    retries: [AtomicU64; WINDOW_SECS as usize],
}

impl RetryBudget {
    /// Retries at most `ratio` (0.0..=1000.0) of requests plus `min_per_second` per second.
    pub fn new(ratio: f32, min_per_second: u32) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        Self(Arc::new(Inner {
            epoch: quanta::Instant::now(),
            ratio_milli: (f64::from(ratio) * 1000.0).round() as u64,
            floor: u64::from(min_per_second) * WINDOW_SECS,
            requests: Default::default(),
            retries: Default::default(),
        }))
    }

    /// Counts a request that may be retried.
    pub(crate) fn deposit(&self) {
        let stamp = self.0.stamp();
        bump(&self.0.requests, stamp);
    }

    /// Takes a retry if the budget allows one.
    pub(crate) fn withdraw(&self) -> bool {
        let inner = &*self.0;
        let stamp = inner.stamp();
        let requests = sum(&inner.requests, stamp);
        let retries = sum(&inner.retries, stamp);
        let allowed = retries.saturating_mul(1000)
            < requests
                .saturating_mul(inner.ratio_milli)
                .saturating_add(inner.floor.saturating_mul(1000));
        if allowed {
            bump(&inner.retries, stamp);
        }
        allowed
    }

    /// Counts a request, then asks for a retry of it: what a [`Balance`](crate::Balance) does for a request
    /// whose first attempt failed (for examples and tests).
    pub fn request_then_retry(&self) -> bool {
        self.deposit();
        self.withdraw()
    }
}

impl Default for RetryBudget {
    /// 20 % of requests plus 10 retries per second.
    fn default() -> Self {
        Self::new(0.2, 10)
    }
}

impl Inner {
    /// The current second since the budget was made, plus one (so that a zeroed slot is from no second).
    fn stamp(&self) -> u64 {
        quanta::Instant::now()
            .duration_since(self.epoch)
            .as_secs()
            .saturating_add(1)
            & 0xFFFF_FFFF
    }
}

/// A slot: the second it counts (high 32 bits) and its count (low 32 bits).
fn bump(ring: &[AtomicU64; WINDOW_SECS as usize], stamp: u64) {
    let Some(slot) = ring.get((stamp % WINDOW_SECS) as usize) else {
        return;
    };
    let cur = slot.load(Relaxed);
    if cur >> 32 == stamp {
        slot.fetch_add(1, Relaxed);
        return;
    }
    // The slot still counts a second that left the window: start it over at one. If another thread got there
    // first (it restarted the slot or already counted in it), count on top of that.
    if let Err(now) = slot.compare_exchange(cur, (stamp << 32) | 1, Relaxed, Relaxed)
        && now >> 32 == stamp
    {
        slot.fetch_add(1, Relaxed);
    }
}

/// The counts of the slots whose second is in the window ending at `stamp`.
fn sum(ring: &[AtomicU64; WINDOW_SECS as usize], stamp: u64) -> u64 {
    ring.iter()
        .map(|slot| slot.load(Relaxed))
        .filter(|v| {
            let second = v >> 32;
            second != 0 && second <= stamp && stamp - second < WINDOW_SECS
        })
        .map(|v| v & 0xFFFF_FFFF)
        .sum()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn allowed_of(budget: &RetryBudget, requests: usize) -> usize {
        (0..requests)
            .filter(|_| budget.request_then_retry())
            .count()
    }

    #[test]
    fn ratio_and_floor() {
        assert_eq!(allowed_of(&RetryBudget::new(0.0, 0), 100), 0);
        assert_eq!(allowed_of(&RetryBudget::new(0.25, 0), 20), 5);
        assert_eq!(allowed_of(&RetryBudget::new(1.0, 0), 20), 20);
        // The floor alone: 2 per second over the 10 s window.
        assert_eq!(allowed_of(&RetryBudget::new(0.0, 2), 30), 20);
        // Nonsense ratios are clamped: NaN is none, a huge one is 1000 retries per request.
        assert_eq!(allowed_of(&RetryBudget::new(f32::NAN, 0), 10), 0);
        assert_eq!(allowed_of(&RetryBudget::new(f32::INFINITY, 0), 10), 0);
        assert_eq!(allowed_of(&RetryBudget::new(5000.0, 0), 10), 10);
    }

    #[test]
    fn counts_leave_the_window_after_ten_seconds() {
        let (clock, mock) = quanta::Clock::mock();
        quanta::with_clock(&clock, || {
            let budget = RetryBudget::new(0.0, 1);
            assert_eq!(
                allowed_of(&budget, 15),
                10,
                "the floor: 1 per second over 10 s"
            );
            mock.increment(Duration::from_secs(5));
            assert_eq!(
                allowed_of(&budget, 5),
                0,
                "the retries of 5 s ago still count"
            );
            mock.increment(Duration::from_secs(5));
            assert_eq!(allowed_of(&budget, 15), 10, "10 s later they are gone");
            let ratio = RetryBudget::new(0.5, 0);
            for _ in 0..10 {
                ratio.deposit();
            }
            mock.increment(Duration::from_secs(11));
            assert!(
                !ratio.withdraw(),
                "the requests of 11 s ago no longer pay for a retry"
            );
        });
    }

    #[test]
    fn concurrent_counting_loses_nothing_within_a_second() {
        let (clock, _mock) = quanta::Clock::mock();
        let budget = RetryBudget::new(1.0, 0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let budget = budget.clone();
                let clock = clock.clone();
                s.spawn(move || {
                    quanta::with_clock(&clock, || {
                        for _ in 0..10_000 {
                            budget.deposit();
                        }
                    })
                });
            }
        });
        quanta::with_clock(&clock, || {
            assert_eq!(sum(&budget.0.requests, budget.0.stamp()), 40_000);
        });
    }
}
