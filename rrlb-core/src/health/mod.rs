//! Health state: rise and fall over consecutive active-check results.
//!
//! # Why
//! One failed probe is noise, three in a row are a signal. Like HAProxy's `rise`/`fall`, a healthy backend
//! becomes unhealthy after `unhealthy_threshold` consecutive failed checks, and an unhealthy one healthy again
//! after `healthy_threshold` consecutive passes. [`HealthState::observe`] is the pure transition;
//! [`Health`] wraps it for sharing between the checker and the pickers, who only read one atomic flag.
//!
//! ```
//! use rrlb_core::health::{HealthParams, HealthState};
//!
//! let params = HealthParams { healthy_threshold: 2, unhealthy_threshold: 2 };
//! let mut state = HealthState::new(true);
//! assert!(!state.observe(false, params)); // one failure: still healthy
//! assert!(state.observe(false, params)); // two: flipped
//! assert!(!state.is_healthy());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Rise and fall thresholds; the defaults are those of rrlb's `[health]` section.
///
/// ```
/// use rrlb_core::HealthParams;
/// use rrlb_core::health::HealthState;
///
/// let params = HealthParams { healthy_threshold: 1, unhealthy_threshold: 2 };
/// let mut state = HealthState::new(true);
/// assert!(!state.observe(false, params)); // one failure: not yet
/// assert!(state.observe(false, params)); // the second flips it
/// assert!(!state.is_healthy());
/// assert!(state.observe(true, params)); // one pass is enough to rise
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthParams {
    /// Consecutive passing checks that make an unhealthy backend healthy (rise), at least 1.
    pub healthy_threshold: u32,
    /// Consecutive failing checks that make a healthy backend unhealthy (fall), at least 1.
    pub unhealthy_threshold: u32,
}

impl Default for HealthParams {
    fn default() -> Self {
        Self {
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// The pure rise/fall state machine.
///
/// ```
/// use rrlb_core::HealthParams;
/// use rrlb_core::health::HealthState;
///
/// // The defaults: rise after 2 passes, fall after 3 failures.
/// let params = HealthParams::default();
/// let mut state = HealthState::new(false);
/// assert!(!state.observe(true, params));
/// assert!(state.observe(true, params));
/// assert!(state.is_healthy());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    /// Consecutive results that disagree with `healthy`.
    streak: u32,
}

impl HealthState {
    /// A state that starts healthy or not.
    pub const fn new(healthy: bool) -> Self {
        Self { healthy, streak: 0 }
    }

    /// Whether the backend is currently healthy.
    pub const fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Feeds one check result; returns `true` when the health flipped.
    pub fn observe(&mut self, passed: bool, params: HealthParams) -> bool {
        if passed == self.healthy {
            self.streak = 0;
            return false;
        }
        self.streak = self.streak.saturating_add(1);
        let threshold = if self.healthy {
            params.unhealthy_threshold
        } else {
            params.healthy_threshold
        };
        if self.streak >= threshold.max(1) {
            self.healthy = passed;
            self.streak = 0;
            true
        } else {
            false
        }
    }
}

/// Shared health of one backend: an atomic flag for readers, the state machine behind a mutex for the checker.
///
/// ```
/// use rrlb_core::HealthParams;
/// use rrlb_core::health::Health;
///
/// let health = Health::new(true, HealthParams::default());
/// assert!(!health.observe(false));
/// assert!(!health.observe(false));
/// assert!(health.observe(false)); // the third failure in a row flips it
/// assert!(!health.is_healthy());
/// assert!(health.set(true)); // an operator's override
/// ```
#[derive(Debug)]
pub struct Health {
    healthy: AtomicBool,
    machine: Mutex<(HealthState, HealthParams)>,
}

impl Health {
    /// Health that starts healthy or not, with the given thresholds.
    pub fn new(healthy: bool, params: HealthParams) -> Self {
        Self {
            healthy: AtomicBool::new(healthy),
            machine: Mutex::new((HealthState::new(healthy), params)),
        }
    }

    /// Whether the backend is healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Feeds one check result; returns `true` when the health flipped.
    pub fn observe(&self, passed: bool) -> bool {
        let mut guard = self.machine.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, params) = &mut *guard;
        let flipped = state.observe(passed, *params);
        self.healthy.store(state.is_healthy(), Ordering::Release);
        flipped
    }

    /// Forces the health (for operators and tests); returns `true` when it changed.
    pub fn set(&self, healthy: bool) -> bool {
        let mut guard = self.machine.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = guard.0.is_healthy() != healthy;
        guard.0 = HealthState::new(healthy);
        self.healthy.store(healthy, Ordering::Release);
        changed
    }

    /// The thresholds in force.
    pub fn params(&self) -> HealthParams {
        self.machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }

    /// Replaces the thresholds; the current health and streak are kept.
    pub fn set_params(&self, params: HealthParams) {
        self.machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1 = params;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_and_rises_on_consecutive_results() {
        let p = HealthParams {
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        };
        let mut s = HealthState::new(true);
        assert!(!s.observe(false, p));
        assert!(!s.observe(false, p));
        assert!(!s.observe(true, p), "a pass resets the streak");
        assert!(!s.observe(false, p));
        assert!(!s.observe(false, p));
        assert!(s.observe(false, p));
        assert!(!s.is_healthy());
        assert!(!s.observe(true, p));
        assert!(s.observe(true, p));
        assert!(s.is_healthy());
    }

    #[test]
    fn shared_health_mirrors_the_machine() {
        let h = Health::new(false, HealthParams::default());
        assert!(!h.is_healthy());
        assert!(!h.observe(true));
        assert!(h.observe(true));
        assert!(h.is_healthy());
        assert!(h.set(false));
        assert!(!h.set(false));
    }
}
