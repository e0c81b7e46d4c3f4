//! The per-backend circuit breaker: passive ejection of a failing or slow backend.
//!
//! # Why
//! Active health checks see a backend from the outside every few seconds; the breaker sees every real call.
//! It opens (ejects the backend) on any of three triggers, each of which can be turned off with `0`:
//!
//! * `consecutive_failures` failures in a row;
//! * a failure rate of at least `failure_rate` over the last `window` calls, once `min_calls` were seen;
//! * a slow-call rate of at least `slow_call_rate` (calls slower than `slow_call_duration`) over the same
//!   window. This is how a backend that still answers, only slowly, is ejected.
//!
//! An open breaker stays open for `open_duration`, doubled on every consecutive re-open and capped at
//! `max_open_duration`. Then it is half-open: at most `half_open_max_calls` probe calls are let through; when
//! they have all succeeded the breaker closes, and any failed (or slow) probe re-opens it.
//!
//! # The ejection limit
//! Breakers of one set share an [`EjectionLimit`] (Envoy's `max_ejection_percent`): at most that share of the
//! set's backends may have a breaker that is not closed at once. A breaker that would pass the limit stays
//! closed and the skip is counted, so a fleet-wide problem (a bad deploy of a shared dependency) cannot eject
//! every backend and turn slow answers into no answers.
//!
//! # Design
//! The success path of a closed breaker is lock-free: a relaxed counter reset and one slot of a count-based
//! ring of atomics. Transitions (rare) take a small mutex. Time is always passed in, so every transition can be
//! stepped through in tests without sleeping; [`Breaker::refresh`] moves an expired open breaker to half-open.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rrlb_core::breaker::{Breaker, BreakerParams, CircuitState};
//!
//! let params = BreakerParams { consecutive_failures: 2, ..BreakerParams::default() };
//! let breaker = Breaker::new(params);
//! let t0 = Instant::now();
//! let ms = Duration::from_millis(1);
//! breaker.record(false, ms, false, t0);
//! breaker.record(false, ms, false, t0);
//! assert_eq!(breaker.state(), CircuitState::Open);
//! breaker.refresh(t0 + params.open_duration);
//! assert_eq!(breaker.state(), CircuitState::HalfOpen);
//! ```

mod window;

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use self::window::Window;

/// Breaker configuration; the defaults are those of the `[circuit_breaker]` section of rrlb's configuration.
///
/// ```
/// use std::time::Duration;
/// use rrlb_core::BreakerParams;
///
/// let params = BreakerParams {
///     consecutive_failures: 3,
///     open_duration: Duration::from_secs(5),
///     max_open_duration: Duration::from_secs(60),
///     ..BreakerParams::default()
/// };
/// // Each consecutive re-opening doubles the open period, up to the cap.
/// assert_eq!(params.open_duration_for(1), Duration::from_secs(5));
/// assert_eq!(params.open_duration_for(3), Duration::from_secs(20));
/// assert_eq!(params.open_duration_for(10), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerParams {
    /// Open after this many failures in a row (0 = off).
    pub consecutive_failures: u32,
    /// Open when at least this share of the window failed (0 = off).
    pub failure_rate: f64,
    /// Number of most recent calls the rates are computed over (at least 1).
    pub window: u32,
    /// Calls the window must hold before the rates are considered.
    pub min_calls: u32,
    /// A call slower than this counts as slow.
    pub slow_call_duration: Duration,
    /// Open when at least this share of the window was slow (0 = off).
    pub slow_call_rate: f64,
    /// How long the first opening lasts.
    pub open_duration: Duration,
    /// The cap for the doubled open durations of consecutive re-openings.
    pub max_open_duration: Duration,
    /// Probe calls admitted while half-open; all must succeed to close (at least 1).
    pub half_open_max_calls: u32,
    /// At most this percentage (`0..=100`) of a set's backends may have a breaker open or half-open at once; a
    /// breaker that would pass it stays closed (default 100: no limit). A set-wide rule, applied by the
    /// [`BackendSet`](crate::BackendSet) through an [`EjectionLimit`]; a lone breaker ignores it.
    pub max_ejection_percent: u8,
}

impl Default for BreakerParams {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: 20,
            min_calls: 10,
            slow_call_duration: Duration::from_secs(1),
            slow_call_rate: 0.8,
            open_duration: Duration::from_secs(5),
            max_open_duration: Duration::from_secs(120),
            half_open_max_calls: 3,
            max_ejection_percent: 100,
        }
    }
}

impl BreakerParams {
    /// The open duration for the `opens`-th consecutive opening (1-based): doubled each time, capped.
    pub fn open_duration_for(&self, opens: u32) -> Duration {
        let shift = opens.saturating_sub(1).min(31);
        self.open_duration
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max_open_duration)
            .min(self.max_open_duration.max(self.open_duration))
    }
}

/// The three states of a circuit breaker.
///
/// ```
/// use rrlb_core::CircuitState;
///
/// assert_eq!(CircuitState::HalfOpen.as_str(), "half-open");
/// assert_eq!(CircuitState::Open.to_string(), "open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// The backend is ejected until the open period ends.
    Open,
    /// A limited number of probe calls decide between closing and re-opening.
    HalfOpen,
}

impl CircuitState {
    /// The lower-case name used in rrlb's admin API: `closed`, `open` or `half-open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }

    /// The numeric encoding of the `rrlb_circuit_state` metric: 0 closed, 1 half-open, 2 open.
    pub const fn as_metric(self) -> u8 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    const fn to_u8(self) -> u8 {
        self.as_metric()
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            0 => CircuitState::Closed,
            1 => CircuitState::HalfOpen,
            _ => CircuitState::Open,
        }
    }
}

impl std::fmt::Display for CircuitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change reported by the breaker.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rrlb_core::BreakerParams;
/// use rrlb_core::breaker::{Breaker, Transition};
///
/// let breaker = Breaker::new(BreakerParams { consecutive_failures: 1, ..BreakerParams::default() });
/// let now = Instant::now();
/// let transition = breaker.record(false, Duration::from_millis(3), false, now);
/// assert_eq!(transition, Some(Transition::Opened { until: now + Duration::from_secs(5) }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The breaker opened (from closed or half-open) until the given instant.
    Opened {
        /// When the open period ends.
        until: Instant,
    },
    /// The open period ended (or a health check passed); probes may go through.
    HalfOpened,
    /// All probes succeeded.
    Closed,
}

#[derive(Debug)]
struct Control {
    /// Consecutive openings since the breaker last closed.
    opens: u32,
    /// End of the current open period.
    until: Option<Instant>,
    /// Probes handed out in the current half-open period.
    probes_admitted: u32,
    /// Probes that succeeded in the current half-open period.
    probe_successes: u32,
    /// The set-wide limit this breaker counts against while it is not closed.
    limit: Option<Arc<EjectionLimit>>,
}

/// How many of a set's breakers may be open (or half-open) at once. See the [module docs](self#the-ejection-limit).
///
/// ```
/// use rrlb_core::breaker::EjectionLimit;
///
/// let limit = EjectionLimit::new(50);
/// assert_eq!((limit.ejected(), limit.skipped()), (0, 0));
/// ```
#[derive(Debug)]
pub struct EjectionLimit {
    max_percent: AtomicU8,
    members: AtomicUsize,
    ejected: AtomicUsize,
    skipped: AtomicU64,
}

impl EjectionLimit {
    /// A limit of `max_percent` (capped at 100) of the set's members.
    pub fn new(max_percent: u8) -> Self {
        Self {
            max_percent: AtomicU8::new(max_percent.min(100)),
            members: AtomicUsize::new(0),
            ejected: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// The limit in percent.
    pub fn max_percent(&self) -> u8 {
        self.max_percent.load(Ordering::Relaxed)
    }

    /// Changes the limit; breakers already open stay open (a lower limit only stops new ejections).
    pub fn set_max_percent(&self, max_percent: u8) {
        self.max_percent
            .store(max_percent.min(100), Ordering::Relaxed);
    }

    /// Sets the number of backends the percentage is taken of.
    pub(crate) fn set_members(&self, members: usize) {
        self.members.store(members, Ordering::Relaxed);
    }

    /// Breakers counted as ejecting their backend now (open or half-open).
    pub fn ejected(&self) -> usize {
        self.ejected.load(Ordering::Acquire)
    }

    /// Ejections refused because they would have passed the limit, since the set was made.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The number of ejections the limit allows now: `max_percent` of the members, rounded down.
    pub fn allowed(&self) -> usize {
        usize::from(self.max_percent()) * self.members.load(Ordering::Relaxed) / 100
    }

    /// Takes one ejection if the limit allows it; counts a skip if not.
    fn try_eject(&self) -> bool {
        let allowed = self.allowed();
        let taken = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                (e < allowed).then_some(e + 1)
            })
            .is_ok();
        if !taken {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Takes one ejection whatever the limit (a breaker that is already open joins the set).
    fn force_eject(&self) {
        self.ejected.fetch_add(1, Ordering::AcqRel);
    }

    fn release(&self) {
        let _ = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| e.checked_sub(1));
    }
}

/// A circuit breaker for one backend. See the [module docs](self).
///
/// ```
/// use std::time::{Duration, Instant};
/// use rrlb_core::{BreakerParams, CircuitState};
/// use rrlb_core::breaker::Breaker;
///
/// let params = BreakerParams { consecutive_failures: 2, half_open_max_calls: 1, ..BreakerParams::default() };
/// let breaker = Breaker::new(params);
/// let start = Instant::now();
/// let ms = Duration::from_millis(1);
/// breaker.record(false, ms, false, start);
/// breaker.record(false, ms, false, start);
/// assert_eq!(breaker.state(), CircuitState::Open);
///
/// // After the open period, one probe is let through; its success closes the breaker.
/// breaker.refresh(start + params.open_duration);
/// assert_eq!(breaker.state(), CircuitState::HalfOpen);
/// assert!(breaker.try_acquire_probe());
/// assert!(!breaker.try_acquire_probe());
/// breaker.record(true, ms, true, start + params.open_duration);
/// assert_eq!(breaker.state(), CircuitState::Closed);
/// ```
#[derive(Debug)]
pub struct Breaker {
    state: AtomicU8,
    consecutive: AtomicU32,
    window: ArcSwap<Window>,
    control: Mutex<Control>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(params: BreakerParams) -> Self {
        Self {
            state: AtomicU8::new(CircuitState::Closed.to_u8()),
            consecutive: AtomicU32::new(0),
            window: ArcSwap::from_pointee(Window::new(params)),
            control: Mutex::new(Control {
                opens: 0,
                until: None,
                probes_admitted: 0,
                probe_successes: 0,
                limit: None,
            }),
        }
    }

    /// Makes this breaker count against `limit` (or against none): a breaker that is not closed moves its
    /// ejection from the old limit to the new one.
    pub(crate) fn set_ejection_limit(&self, limit: Option<Arc<EjectionLimit>>) {
        let mut control = self.lock();
        let ejecting = self.state() != CircuitState::Closed;
        if ejecting && let Some(old) = &control.limit {
            old.release();
        }
        if ejecting && let Some(new) = &limit {
            new.force_eject();
        }
        control.limit = limit;
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        CircuitState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The parameters in force.
    pub fn params(&self) -> BreakerParams {
        self.window.load().params
    }

    /// Replaces the parameters. The state and the count of consecutive openings are kept; the sliding window
    /// restarts empty (its size may have changed).
    pub fn set_params(&self, params: BreakerParams) {
        self.window.store(Arc::new(Window::new(params)));
    }

    /// When the current open period ends, if the breaker is open.
    pub fn open_until(&self) -> Option<Instant> {
        if self.state() != CircuitState::Open {
            return None;
        }
        self.lock().until
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_state(&self, s: CircuitState) {
        self.state.store(s.to_u8(), Ordering::Release);
    }

    /// Records the outcome of a call that took `latency`, at `now`.
    ///
    /// `probe` says whether the call was admitted as a half-open probe ([`Breaker::try_acquire_probe`]).
    /// Outcomes of ordinary calls that finish while the breaker is open or half-open (they were started before
    /// it opened) change nothing.
    pub fn record(
        &self,
        success: bool,
        latency: Duration,
        probe: bool,
        now: Instant,
    ) -> Option<Transition> {
        self.record_with(success, latency, probe, || now)
    }

    /// Like [`record`](Self::record), with the time read only if a transition needs it (the usual outcome
    /// changes nothing, so the hot path reads no clock here).
    pub fn record_with(
        &self,
        success: bool,
        latency: Duration,
        probe: bool,
        now: impl FnOnce() -> Instant,
    ) -> Option<Transition> {
        if probe {
            return self.record_probe(success, latency, now());
        }
        if self.state() != CircuitState::Closed {
            return None;
        }
        let window = self.window.load();
        let params = window.params;
        let slow = latency > params.slow_call_duration;
        let consecutive = if success {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            0
        } else {
            self.consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1)
        };
        let counts = window.push(!success, slow);
        let trip = (!success
            && params.consecutive_failures > 0
            && consecutive >= params.consecutive_failures)
            || (counts.calls >= params.min_calls.max(1)
                && ((params.failure_rate > 0.0 && counts.failure_rate() >= params.failure_rate)
                    || (params.slow_call_rate > 0.0
                        && counts.slow_rate() >= params.slow_call_rate)));
        if trip {
            self.open_from(CircuitState::Closed, now())
        } else {
            None
        }
    }

    fn record_probe(&self, success: bool, latency: Duration, now: Instant) -> Option<Transition> {
        let params = self.params();
        let mut control = self.lock();
        if self.state() != CircuitState::HalfOpen {
            return None;
        }
        if !success || latency > params.slow_call_duration {
            return Some(self.open_locked(&mut control, params, now));
        }
        control.probe_successes += 1;
        if control.probe_successes >= params.half_open_max_calls.max(1) {
            control.opens = 0;
            control.until = None;
            if let Some(limit) = &control.limit {
                limit.release();
            }
            self.consecutive.store(0, Ordering::Relaxed);
            self.window.store(Arc::new(Window::new(params)));
            self.set_state(CircuitState::Closed);
            return Some(Transition::Closed);
        }
        None
    }

    fn open_from(&self, from: CircuitState, now: Instant) -> Option<Transition> {
        let params = self.params();
        let mut control = self.lock();
        if self.state() != from {
            return None; // another thread got here first
        }
        if from == CircuitState::Closed
            && let Some(limit) = &control.limit
            && !limit.try_eject()
        {
            return None; // over the set's ejection limit: stay closed (counted as a skip)
        }
        Some(self.open_locked(&mut control, params, now))
    }

    fn open_locked(
        &self,
        control: &mut Control,
        params: BreakerParams,
        now: Instant,
    ) -> Transition {
        control.opens = control.opens.saturating_add(1);
        let until = now + params.open_duration_for(control.opens);
        control.until = Some(until);
        control.probes_admitted = 0;
        control.probe_successes = 0;
        self.set_state(CircuitState::Open);
        Transition::Opened { until }
    }

    /// Moves an open breaker whose open period has ended to half-open.
    pub fn refresh(&self, now: Instant) -> Option<Transition> {
        if self.state() != CircuitState::Open {
            return None;
        }
        let mut control = self.lock();
        match control.until {
            Some(until) if now >= until && self.state() == CircuitState::Open => {
                Some(self.half_open_locked(&mut control))
            }
            _ => None,
        }
    }

    /// A passing active health check: an open breaker does not wait for the end of its open period and goes
    /// half-open at once, so real calls can confirm the recovery.
    pub fn on_health_check_passed(&self) -> Option<Transition> {
        if self.state() != CircuitState::Open {
            return None;
        }
        let mut control = self.lock();
        if self.state() != CircuitState::Open {
            return None;
        }
        Some(self.half_open_locked(&mut control))
    }

    fn half_open_locked(&self, control: &mut Control) -> Transition {
        control.until = None;
        control.probes_admitted = 0;
        control.probe_successes = 0;
        self.set_state(CircuitState::HalfOpen);
        Transition::HalfOpened
    }

    /// Admits one probe call if the breaker is half-open and fewer than `half_open_max_calls` are out.
    pub fn try_acquire_probe(&self) -> bool {
        if self.state() != CircuitState::HalfOpen {
            return false;
        }
        let max = self.params().half_open_max_calls.max(1);
        let mut control = self.lock();
        if self.state() != CircuitState::HalfOpen || control.probes_admitted >= max {
            return false;
        }
        control.probes_admitted += 1;
        true
    }

    /// Gives back a probe permit whose call was abandoned without an outcome.
    pub fn release_probe(&self) {
        let mut control = self.lock();
        if self.state() == CircuitState::HalfOpen {
            control.probes_admitted = control.probes_admitted.saturating_sub(1);
        }
    }

    /// Consecutive openings since the breaker last closed.
    pub fn opens(&self) -> u32 {
        self.lock().opens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn params() -> BreakerParams {
        BreakerParams {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: 10,
            min_calls: 4,
            slow_call_duration: Duration::from_millis(100),
            slow_call_rate: 0.5,
            open_duration: Duration::from_secs(1),
            max_open_duration: Duration::from_secs(5),
            half_open_max_calls: 2,
            max_ejection_percent: 100,
        }
    }

    #[test]
    fn opens_on_consecutive_failures() {
        let b = Breaker::new(BreakerParams {
            failure_rate: 0.0,
            ..params()
        });
        let t = Instant::now();
        assert_eq!(b.record(false, MS, false, t), None);
        assert_eq!(b.record(false, MS, false, t), None);
        assert_eq!(
            b.record(false, MS, false, t),
            Some(Transition::Opened {
                until: t + Duration::from_secs(1)
            })
        );
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let b = Breaker::new(BreakerParams {
            failure_rate: 0.0,
            ..params()
        });
        let t = Instant::now();
        for _ in 0..10 {
            b.record(false, MS, false, t);
            b.record(false, MS, false, t);
            b.record(true, MS, false, t);
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn opens_on_failure_rate_only_after_min_calls() {
        let b = Breaker::new(BreakerParams {
            consecutive_failures: 0,
            ..params()
        });
        let t = Instant::now();
        b.record(false, MS, false, t);
        b.record(true, MS, false, t);
        b.record(false, MS, false, t);
        assert_eq!(b.state(), CircuitState::Closed, "3 calls < min_calls");
        assert!(
            b.record(true, MS, false, t).is_some(),
            "2 of 4 failed = 0.5"
        );
    }

    #[test]
    fn opens_on_slow_call_rate() {
        let b = Breaker::new(params());
        let t = Instant::now();
        let slow = Duration::from_millis(150);
        b.record(true, slow, false, t);
        b.record(true, MS, false, t);
        b.record(true, slow, false, t);
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.record(true, MS, false, t).is_some());
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn half_open_closes_after_all_probes_succeed() {
        let b = Breaker::new(params());
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, MS, false, t);
        }
        assert!(!b.try_acquire_probe());
        assert_eq!(b.refresh(t + Duration::from_millis(999)), None);
        assert_eq!(
            b.refresh(t + Duration::from_secs(1)),
            Some(Transition::HalfOpened)
        );
        assert!(b.try_acquire_probe());
        assert!(b.try_acquire_probe());
        assert!(!b.try_acquire_probe(), "only half_open_max_calls probes");
        assert_eq!(
            b.record(true, MS, false, t),
            None,
            "a non-probe outcome is ignored"
        );
        assert_eq!(b.record(true, MS, true, t), None);
        assert_eq!(b.record(true, MS, true, t), Some(Transition::Closed));
        assert_eq!(b.opens(), 0);
    }

    #[test]
    fn reopening_doubles_up_to_the_cap() {
        let p = params();
        let b = Breaker::new(p);
        let mut t = Instant::now();
        for _ in 0..3 {
            b.record(false, MS, false, t);
        }
        let mut expected = Duration::from_secs(1);
        for _ in 0..5 {
            let until = b.open_until().unwrap();
            assert_eq!(until - t, expected);
            t = until;
            b.refresh(t);
            assert!(b.try_acquire_probe());
            assert!(matches!(
                b.record(false, MS, true, t),
                Some(Transition::Opened { .. })
            ));
            expected = (expected * 2).min(p.max_open_duration);
        }
    }

    #[test]
    fn a_slow_probe_reopens() {
        let b = Breaker::new(params());
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, MS, false, t);
        }
        assert_eq!(b.on_health_check_passed(), Some(Transition::HalfOpened));
        assert!(b.try_acquire_probe());
        let r = b.record(true, Duration::from_millis(500), true, t);
        assert!(matches!(r, Some(Transition::Opened { .. })));
    }

    #[test]
    fn the_ejection_limit_keeps_a_breaker_closed_and_counts_the_skip() {
        let limit = Arc::new(EjectionLimit::new(50));
        limit.set_members(3);
        let p = params();
        let breakers: Vec<Breaker> = (0..3).map(|_| Breaker::new(p)).collect();
        for b in &breakers {
            b.set_ejection_limit(Some(Arc::clone(&limit)));
        }
        let t = Instant::now();
        for b in &breakers {
            for _ in 0..3 {
                b.record(false, MS, false, t);
            }
        }
        let states: Vec<CircuitState> = breakers.iter().map(Breaker::state).collect();
        assert_eq!(
            states,
            [
                CircuitState::Open,
                CircuitState::Closed,
                CircuitState::Closed
            ],
            "50 % of 3 allows one"
        );
        assert_eq!((limit.ejected(), limit.skipped()), (1, 2));
        // The first recovers (half-open, probes pass, closes): its ejection is handed back.
        breakers[0].on_health_check_passed();
        for _ in 0..2 {
            assert!(breakers[0].try_acquire_probe());
            breakers[0].record(true, MS, true, t);
        }
        assert_eq!(breakers[0].state(), CircuitState::Closed);
        assert_eq!(limit.ejected(), 0);
        assert!(breakers[1].record(false, MS, false, t).is_some());
        assert_eq!(limit.ejected(), 1);
        // Leaving the set hands the ejection back too.
        breakers[1].set_ejection_limit(None);
        assert_eq!(limit.ejected(), 0);
    }

    #[test]
    fn released_probes_can_be_reissued() {
        let b = Breaker::new(params());
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, MS, false, t);
        }
        b.on_health_check_passed();
        assert!(b.try_acquire_probe());
        assert!(b.try_acquire_probe());
        b.release_probe();
        assert!(b.try_acquire_probe());
    }
}
