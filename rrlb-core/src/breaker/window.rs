//! A lock-free, count-based sliding window of call outcomes.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use super::BreakerParams;

const FAILED: u8 = 1;
const SLOW: u8 = 2;

/// The last `params.window` outcomes, one atomic byte each, with running totals.
///
/// Each slot is written (or found already holding the outcome) exactly once per recorded call and the totals are adjusted by the difference between
/// the new and the old slot, so once writers are quiet the totals are exact; while they race, a reader may see
/// a total that is one or two calls stale, which is harmless for a threshold check.
#[derive(Debug)]
pub(super) struct Window {
    pub(super) params: BreakerParams,
    slots: Box<[AtomicU8]>,
    recorded: AtomicU64,
    failures: AtomicU32,
    slow: AtomicU32,
}

/// Totals over the window after one push.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub(super) calls: u32,
    pub(super) failures: u32,
    pub(super) slow: u32,
}

impl Counts {
    pub(super) fn failure_rate(self) -> f64 {
        f64::from(self.failures) / f64::from(self.calls.max(1))
    }

    pub(super) fn slow_rate(self) -> f64 {
        f64::from(self.slow) / f64::from(self.calls.max(1))
    }
}

impl Window {
    pub(super) fn new(params: BreakerParams) -> Self {
        let len = params.window.max(1) as usize;
        Self {
            params,
            slots: (0..len).map(|_| AtomicU8::new(0)).collect(),
            recorded: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    pub(super) fn push(&self, failed: bool, slow: bool) -> Counts {
        let flags = if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let len = self.slots.len() as u64;
        let pos = self.recorded.fetch_add(1, Relaxed);
        // Most calls succeed fast where an earlier one did too: the slot already holds this outcome, and a
        // load leaves the cache line shared where a swap would take it exclusive.
        let old = match self.slots.get((pos % len) as usize) {
            Some(slot) => match slot.load(Relaxed) {
                same if same == flags => same,
                _ => slot.swap(flags, Relaxed),
            },
            None => 0,
        };
        let failures = adjust(&self.failures, old & FAILED != 0, failed);
        let slow = adjust(&self.slow, old & SLOW != 0, slow);
        Counts {
            calls: u32::try_from((pos + 1).min(len)).unwrap_or(u32::MAX),
            failures,
            slow,
        }
    }
}

/// Applies the change of one slot's flag to a total and returns the new total.
fn adjust(total: &AtomicU32, was: bool, is: bool) -> u32 {
    match (was, is) {
        (false, true) => total.fetch_add(1, Relaxed).saturating_add(1),
        (true, false) => total.fetch_sub(1, Relaxed).saturating_sub(1),
        _ => total.load(Relaxed),
    }
}
