//! Slow start: which members ramp up after becoming eligible, how large a share a ramping backend gets, and the
//! admission a pick runs while one ramps (see the module docs' "Slow start").

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::snapshot::Snapshot;
use crate::backend::Member;
use crate::balancer::Balancer;
use crate::balancer::rng::SharedRng;

/// What a pick needs while some eligible backend ramps up.
pub(super) struct SlowStart {
    pub(super) window: Duration,
    /// The earliest end of a ramp.
    pub(super) deadline: Instant,
    pub(super) clock: Clock,
    pub(super) rng: Arc<SharedRng>,
}

impl std::fmt::Debug for SlowStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowStart")
            .field("window", &self.window)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The set's source of time (writers and ramping picks only): `Instant::now`, or a virtual clock.
pub(super) type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Draws before a pick gives up refusing ramping backends and takes the last one drawn.
const RAMP_DRAWS: usize = 16;
/// The share a backend starts its ramp with.
const RAMP_FLOOR: f64 = 0.1;

/// The share of its full traffic that a backend ramping since `elapsed` gets: 10 % rising linearly to 100 %.
fn ramp_share(elapsed: Duration, window: Duration) -> f64 {
    if elapsed >= window || window.is_zero() {
        return 1.0;
    }
    RAMP_FLOOR + (1.0 - RAMP_FLOOR) * (elapsed.as_secs_f64() / window.as_secs_f64())
}

/// A uniform draw in `[0, 1)` from 53 random bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl<B: Balancer> Snapshot<B> {
    /// Slow start's admission: a pick of a ramping backend stands with the probability of its ramp share.
    pub(super) fn admit(&self, ramp: &SlowStart, first: usize) -> Option<&Member> {
        let now = (ramp.clock)();
        let mut i = first;
        for _ in 0..RAMP_DRAWS {
            let m = self.eligible.get(i)?;
            let share = m.ramp_from.map_or(1.0, |from| {
                ramp_share(now.saturating_duration_since(from), ramp.window)
            });
            if share >= 1.0 || unit(ramp.rng.next_u64()) < share {
                return Some(m);
            }
            i = self.balancer.pick(&self.plan, &self.eligible)?;
        }
        self.eligible.get(i)
    }
}

/// Starts, carries on or ends each member's slow-start ramp; returns the earliest end of a ramp in progress.
pub(super) fn ramp(members: &mut [Member], window: Duration, now: Instant) -> Option<Instant> {
    // Slow start protects a backend from a share the others built up; with none eligible before there is none.
    let others_were_eligible = members.iter().any(|m| m.was_eligible);
    let mut deadline: Option<Instant> = None;
    for m in members.iter_mut() {
        let eligible = !m.draining && m.backend.is_eligible();
        if !eligible || window.is_zero() {
            m.ramp_from = None;
        } else if !m.was_eligible && others_were_eligible {
            m.ramp_from = Some(now);
        }
        if let Some(from) = m.ramp_from {
            let end = from + window;
            if now >= end {
                m.ramp_from = None;
            } else {
                deadline = Some(deadline.map_or(end, |d| d.min(end)));
            }
        }
        m.was_eligible = eligible;
    }
    deadline
}
