//! What a set is configured with: each backend's [`BackendSpec`] and the set-wide [`SetOptions`].

use std::time::Duration;

#[cfg(doc)]
use crate::backend::Backend;
use crate::backend::Extension;
use crate::breaker::BreakerParams;
use crate::health::HealthParams;

/// What a backend is configured as: name, address, weight.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// /// Whatever the embedder wants to keep with a backend, e.g. a parsed address.
/// struct Port(u16);
///
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// set.add(BackendSpec::new("a", "http://127.0.0.1:8081").with_weight(2).with_ext(Port(8081)))?;
/// let call = set.pick()?;
/// assert_eq!(call.backend().ext::<Port>().map(|p| p.0), Some(8081));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// Unique name in the set.
    pub name: String,
    /// Address (unique in the set).
    pub url: String,
    /// Weight, 1..=10000.
    pub weight: u32,
    /// A value the backend carries for its user, e.g. its parsed address (see [`Extension`]).
    pub ext: Extension,
}

impl BackendSpec {
    /// A spec with weight 1.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            weight: 1,
            ext: Extension::default(),
        }
    }

    /// The same spec with another weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same spec, its backend carrying `value` (read back with [`Backend::ext`]).
    pub fn with_ext<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.ext = Extension::new(value);
        self
    }
}

/// Set-wide settings.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// // New backends wait for their first passing health checks before they get traffic.
/// let options = SetOptions { start_healthy: false, ..SetOptions::default() };
/// let set = BackendSet::with_backends(RoundRobin::new(), options, [BackendSpec::new("a", "http://127.0.0.1:8081")])?;
/// assert!(set.pick().is_err());
/// let a = set.get("a").ok_or("a is in the set")?;
/// a.backend().record_health_check(true);
/// a.backend().record_health_check(true);
/// assert!(set.pick().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetOptions {
    /// Circuit-breaker parameters for every backend.
    pub breaker: BreakerParams,
    /// Health rise/fall thresholds for every backend.
    pub health: HealthParams,
    /// Whether a newly added backend starts healthy (`true`, the default) or waits for its first passing checks.
    pub start_healthy: bool,
    /// Panic threshold in percent (0 = off, the default): when fewer than this share of the non-draining
    /// backends is eligible, balance over all of them, as Envoy does, rather than overload the few.
    pub panic_threshold: u8,
    /// The time constant of every backend's [peak-EWMA latency estimate](crate::backend::LatencyEwma), which
    /// [`PeakEwma`](crate::PeakEwma) balances on (default 10 s).
    pub ewma_decay: Duration,
    /// Slow start (zero = off, the default): how long a backend that becomes eligible takes to ramp from 10 % of
    /// its share to all of it. It applies to a backend that becomes eligible (added, healthy again, breaker
    /// closed, undrained) while others already are, with every algorithm; the initial backends do not ramp.
    pub slow_start: Duration,
}

impl Default for SetOptions {
    fn default() -> Self {
        Self {
            breaker: BreakerParams::default(),
            health: HealthParams::default(),
            start_healthy: true,
            panic_threshold: 0,
            ewma_decay: crate::backend::DEFAULT_DECAY,
            slow_start: Duration::ZERO,
        }
    }
}
