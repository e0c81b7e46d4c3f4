//! Backends: identity plus live state (statistics, circuit breaker, health).
//!
//! # Why
//! A backend's live state must outlive reconfiguration. The [`BackendSet`](crate::BackendSet) hands out
//! `Arc<Backend>`s and keeps the same `Arc` for a backend that survives an update, so counters, latency
//! histograms, breakers and health are never reset by a weight change, a drain or a reload. What can change
//! with the configuration (the weight, draining) lives in the snapshot's [`Member`] instead.

mod ewma;
mod stats;

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

pub(crate) use self::ewma::relative_decay;
pub use self::ewma::{DEFAULT_DECAY, LatencyEwma, Timestamp};
pub use self::stats::{LatencyHistogram, Stats, StatsSnapshot};
use crate::breaker::{Breaker, BreakerParams, CircuitState, Transition};
use crate::health::{Health, HealthParams};

/// The smallest weight a backend may have.
pub const MIN_WEIGHT: u32 = 1;
/// The largest weight a backend may have.
pub const MAX_WEIGHT: u32 = 10_000;

/// Something that rebuilds its routable view when a backend's eligibility changes.
pub(crate) trait Owner: Send + Sync {
    fn eligibility_changed(&self);
}

/// A value of any type that whoever adds a backend attaches to it, typically its parsed address, so that the
/// request path reads it instead of parsing [`Backend::url`] again (pingora's `Backend::ext`). The engine never
/// looks inside; cloning shares the value.
///
/// ```
/// use rrlb_core::backend::Extension;
///
/// let ext = Extension::new(8081_u16);
/// assert_eq!(ext.get::<u16>(), Some(&8081));
/// assert_eq!(ext.get::<String>(), None);
/// assert_eq!(Extension::default().get::<u16>(), None);
/// ```
#[derive(Clone, Default)]
pub struct Extension(Option<Arc<dyn Any + Send + Sync>>);

impl Extension {
    /// Wraps `value`.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self(Some(Arc::new(value)))
    }

    /// The value, if there is one and it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref()?.downcast_ref()
    }
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Extension(..)"
        } else {
            "Extension(None)"
        })
    }
}

impl PartialEq for Extension {
    /// The same shared value, or both empty.
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

impl Eq for Extension {}

/// One upstream: a name, an address, and its live state.
///
/// ```
/// use rrlb_core::{Backend, BreakerParams, CircuitState, HealthParams};
///
/// let backend = Backend::new("a", "http://127.0.0.1:8081", true, BreakerParams::default(), HealthParams::default());
/// assert!(backend.is_eligible());
/// // Three failed active checks in a row (the default fall threshold) make it unhealthy.
/// for _ in 0..3 {
///     backend.record_health_check(false);
/// }
/// assert!(!backend.is_healthy());
/// assert_eq!(backend.circuit(), CircuitState::Closed);
/// assert!(!backend.is_eligible());
/// ```
pub struct Backend {
    name: Box<str>,
    url: Box<str>,
    ext: Extension,
    stats: Stats,
    breaker: Breaker,
    health: Health,
    owner: Mutex<Option<Weak<dyn Owner>>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("healthy", &self.is_healthy())
            .field("circuit", &self.circuit())
            .field("in_flight", &self.stats.in_flight())
            .finish()
    }
}

impl Backend {
    /// A backend that is not part of any set yet (sets create their own; this is for custom uses and tests).
    pub fn new(
        name: impl Into<Box<str>>,
        url: impl Into<Box<str>>,
        healthy: bool,
        breaker: BreakerParams,
        health: HealthParams,
    ) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            ext: Extension::default(),
            stats: Stats::new(),
            breaker: Breaker::new(breaker),
            health: Health::new(healthy, health),
            owner: Mutex::new(None),
        }
    }

    /// The backend's unique name in its set.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend's address as configured (rrlb uses an `http`/`https` URL; the core does not interpret it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same backend, carrying `ext` (see [`Extension`]).
    pub fn with_ext(mut self, ext: Extension) -> Self {
        self.ext = ext;
        self
    }

    /// The value attached when the backend was added, if it is a `T` (see [`Extension`]).
    pub fn ext<T: Any>(&self) -> Option<&T> {
        self.ext.get()
    }

    /// Request counters and latency histogram.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The health state.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether the last active checks found the backend healthy.
    pub fn is_healthy(&self) -> bool {
        self.health.is_healthy()
    }

    /// The breaker's state.
    pub fn circuit(&self) -> CircuitState {
        self.breaker.state()
    }

    /// Whether the backend may get ordinary calls: healthy, and its breaker closed. (A half-open backend gets
    /// only probes; a draining one nothing: that is a property of its [`Member`].)
    pub fn is_eligible(&self) -> bool {
        self.is_healthy() && self.circuit() == CircuitState::Closed
    }

    /// Feeds the result of one active health check at `now`.
    ///
    /// A passing check also moves an open breaker to half-open. When the backend's eligibility changes, its
    /// set rebuilds its routable snapshot before this returns. Returns `true` when the health flipped.
    pub fn record_health_check(&self, passed: bool) -> bool {
        let flipped = self.health.observe(passed);
        let half_opened = passed && self.breaker.on_health_check_passed().is_some();
        if flipped || half_opened {
            self.notify_owner();
        }
        flipped
    }

    /// Forces the health state (an operator's override); the set is told when it changes.
    pub fn set_healthy(&self, healthy: bool) {
        if self.health.set(healthy) {
            self.notify_owner();
        }
    }

    /// Moves an expired open breaker to half-open, telling the set.
    pub fn refresh_breaker(&self, now: Instant) -> Option<Transition> {
        let t = self.breaker.refresh(now);
        if t.is_some() {
            self.notify_owner();
        }
        t
    }

    /// Leaves the set: no more eligibility notifications, and an open breaker stops counting against the set's
    /// ejection limit.
    pub(crate) fn detach(&self) {
        self.set_owner(None);
        self.breaker.set_ejection_limit(None);
    }

    pub(crate) fn set_owner(&self, owner: Option<Weak<dyn Owner>>) {
        *self.owner.lock().unwrap_or_else(PoisonError::into_inner) = owner;
    }

    pub(crate) fn notify_owner(&self) {
        let owner = self
            .owner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Weak::upgrade);
        if let Some(owner) = owner {
            owner.eligibility_changed();
        }
    }
}

/// A backend as a member of one snapshot: the shared live state plus this configuration's weight and drain flag.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081").with_weight(3)],
/// )?;
/// set.drain("a", true, false)?;
/// let a = set.get("a").ok_or("a is in the set")?;
/// assert_eq!(a.weight(), 3);
/// assert!(a.is_draining());
/// assert_eq!(a.backend().url(), "http://127.0.0.1:8081");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Member {
    pub(crate) backend: Arc<Backend>,
    pub(crate) weight: u32,
    pub(crate) draining: bool,
    pub(crate) remove_when_idle: bool,
    /// Whether it was eligible when the snapshot it belongs to was built.
    pub(crate) was_eligible: bool,
    /// When it became eligible, while it is still ramping up under slow start.
    pub(crate) ramp_from: Option<Instant>,
}

impl Member {
    /// The backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Its weight (1..=10000).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether it is draining (no new calls).
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Whether it will be removed from the set once it has no call in flight.
    pub fn removes_when_idle(&self) -> bool {
        self.remove_when_idle
    }

    /// When it became eligible, if it is still in its slow-start window (see
    /// [`SetOptions::slow_start`](crate::SetOptions::slow_start)).
    pub fn slow_start_since(&self) -> Option<Instant> {
        self.ramp_from
    }

    pub(crate) fn new(backend: Arc<Backend>, weight: u32) -> Self {
        Self {
            backend,
            weight,
            draining: false,
            remove_when_idle: false,
            was_eligible: false,
            ramp_from: None,
        }
    }
}

impl std::ops::Deref for Member {
    type Target = Backend;

    fn deref(&self) -> &Backend {
        &self.backend
    }
}
