//! Active health checking and set housekeeping, as tokio tasks.
//!
//! # Why a task per set, not per backend
//! Each round enumerates the set's *current* members, so probes start for added backends and stop for removed
//! ones without any bookkeeping, and a new interval (sent through [`HealthChecker::set_config`]) applies from
//! the next round. Within a round every backend is probed concurrently, each after a random share of the
//! jitter, so that a fleet of balancers does not probe a backend in lock-step.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, select};
use rrlb_core::{Backend, BackendSet, Balancer};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Probes one backend: `true` if it is healthy. The checker applies the timeout.
///
/// ```
/// use std::sync::Arc;
/// use rrlb_core::{Backend, BackendSet, BackendSpec, RoundRobin, SetOptions};
/// use rrlb_tower::{HealthCheckConfig, HealthChecker, Probe};
///
/// /// Any `Fn(Arc<Backend>) -> impl Future<Output = bool>` is a probe; here, a TCP connect to the backend's port.
/// async fn tcp_probe(backend: Arc<Backend>) -> bool {
///     let address = backend.url().trim_start_matches("http://");
///     tokio::net::TcpStream::connect(address).await.is_ok()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("a", "http://127.0.0.1:9")])?;
/// let backend = set.pick()?.backend().clone();
/// assert!(!tcp_probe(backend).await);
/// let checker = HealthChecker::spawn(set, tcp_probe, HealthCheckConfig::default());
/// # drop(checker);
/// # Ok(())
/// # }
/// ```
pub trait Probe: Send + Sync + 'static {
    /// Checks `backend` once.
    fn probe(&self, backend: Arc<Backend>) -> Pin<Box<dyn Future<Output = bool> + Send>>;
}

impl<F, Fut> Probe for F
where
    F: Fn(Arc<Backend>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn probe(&self, backend: Arc<Backend>) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        Box::pin(self(backend))
    }
}

/// How often and how patiently to probe.
///
/// ```
/// use std::time::Duration;
/// use rrlb_tower::HealthCheckConfig;
///
/// let config = HealthCheckConfig { interval: Duration::from_millis(500), jitter: 0.0, ..HealthCheckConfig::default() };
/// assert_eq!(config.timeout, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthCheckConfig {
    /// Time between rounds. Default 2 s.
    pub interval: Duration,
    /// A probe that takes longer fails. Default 1 s.
    pub timeout: Duration,
    /// Each probe starts after a random delay of up to this share of the interval (0.0..=1.0). Default 0.1.
    pub jitter: f64,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            jitter: 0.1,
        }
    }
}

/// A running health checker; dropping it stops the task.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rrlb_core::{Backend, BackendSet, BackendSpec, HealthParams, RoundRobin, SetOptions};
/// use rrlb_tower::{HealthCheckConfig, HealthChecker};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let options = SetOptions { health: HealthParams { healthy_threshold: 1, unhealthy_threshold: 1 }, ..SetOptions::default() };
/// let set = BackendSet::with_backends(RoundRobin::new(), options, [BackendSpec::new("a", "http://127.0.0.1:9")])?;
/// // A probe that always fails: after one round, "a" is out of the rotation.
/// let config = HealthCheckConfig { interval: Duration::from_secs(1), jitter: 0.0, ..HealthCheckConfig::default() };
/// let checker = HealthChecker::spawn(set.clone(), |_: Arc<Backend>| async { false }, config);
/// while set.pick().is_ok() {
///     tokio::time::sleep(Duration::from_millis(100)).await; // virtual time: the runtime is paused
/// }
/// assert!(!set.get("a").ok_or("a is in the set")?.is_healthy());
/// drop(checker); // stops probing
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct HealthChecker {
    config: watch::Sender<HealthCheckConfig>,
    task: JoinHandle<()>,
}

impl HealthChecker {
    /// Starts probing the members of `set` with `probe`. Must be called inside a tokio runtime.
    pub fn spawn<B: Balancer, P: Probe>(
        set: BackendSet<B>,
        probe: P,
        config: HealthCheckConfig,
    ) -> Self {
        Self::spawn_observed(set, probe, config, |_: &Backend, _: bool| {})
    }

    /// Like [`spawn`](HealthChecker::spawn), and `observer` is told the result of every check (`true`: passed),
    /// a timed-out probe included, after it is recorded on the backend: e.g. to count checks per backend.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use rrlb_core::{Backend, BackendSet, BackendSpec, RoundRobin, SetOptions};
    /// use rrlb_tower::{HealthCheckConfig, HealthChecker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("a", "http://127.0.0.1:9")])?;
    /// let failed = Arc::new(AtomicU64::new(0));
    /// let count = Arc::clone(&failed);
    /// let config = HealthCheckConfig { interval: Duration::from_secs(1), jitter: 0.0, ..HealthCheckConfig::default() };
    /// let checker = HealthChecker::spawn_observed(set, |_: Arc<Backend>| async { false }, config, move |_: &Backend, passed: bool| {
    ///     if !passed {
    ///         count.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// while failed.load(Ordering::Relaxed) < 3 {
    ///     tokio::time::sleep(Duration::from_millis(100)).await; // virtual time: the runtime is paused
    /// }
    /// drop(checker);
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn_observed<B: Balancer, P: Probe>(
        set: BackendSet<B>,
        probe: P,
        config: HealthCheckConfig,
        observer: impl Fn(&Backend, bool) + Send + Sync + 'static,
    ) -> Self {
        let (tx, rx) = watch::channel(config);
        let task = tokio::spawn(run(set, Arc::new(probe), Arc::new(observer), rx));
        Self { config: tx, task }
    }

    /// Replaces the configuration; it applies from the next round (which starts at once).
    pub fn set_config(&self, config: HealthCheckConfig) {
        self.config.send_replace(config);
    }

    /// The configuration in force.
    pub fn config(&self) -> HealthCheckConfig {
        *self.config.borrow()
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What [`HealthChecker::spawn_observed`] tells of each check.
type Observer = Arc<dyn Fn(&Backend, bool) + Send + Sync>;

async fn run<B: Balancer>(
    set: BackendSet<B>,
    probe: Arc<dyn Probe>,
    observer: Observer,
    mut rx: watch::Receiver<HealthCheckConfig>,
) {
    let mut seed = jitter_seed();
    loop {
        let config = *rx.borrow_and_update();
        let round_end = Instant::now() + config.interval;
        let mut probes = JoinSet::new();
        for member in set.load().members() {
            let backend = Arc::clone(member.backend());
            let probe = Arc::clone(&probe);
            let observer = Arc::clone(&observer);
            seed = next(seed);
            let delay = config
                .interval
                .mul_f64(config.jitter.clamp(0.0, 1.0) * unit(seed));
            probes.spawn(async move {
                tokio::time::sleep(delay).await;
                let passed =
                    tokio::time::timeout(config.timeout, probe.probe(Arc::clone(&backend)))
                        .await
                        .unwrap_or(false);
                let flipped = backend.record_health_check(passed);
                observer(&backend, passed);
                if flipped {
                    tracing::info!(backend = backend.name(), healthy = passed, "health changed");
                }
            });
        }
        // Wait for the round's probes (each bounded by jitter + timeout), then for the end of the interval;
        // a configuration change starts the next round at once.
        let round = async {
            while probes.join_next().await.is_some() {}
            tokio::time::sleep_until(round_end).await;
        };
        let changed = rx.changed();
        if let Either::Right((Err(_), _)) = select(pin!(round), pin!(changed)).await {
            return; // the checker handle is gone
        }
    }
}

fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

fn next(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs [`BackendSet::refresh`] when an open breaker's period ends (and at least every `tick`), so ejected
/// backends go half-open on time and idle drained backends leave. Dropping it stops the task.
///
/// ```
/// use std::time::Duration;
/// use rrlb_core::{BackendSet, BackendSpec, BreakerParams, CircuitState, RoundRobin, SetOptions};
/// use rrlb_tower::Maintenance;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = BreakerParams { consecutive_failures: 1, open_duration: Duration::from_secs(5), ..BreakerParams::default() };
/// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions { breaker, ..SetOptions::default() }, [BackendSpec::new("a", "http://10.0.0.1")])?;
/// let _maintenance = Maintenance::spawn(set.clone(), Duration::from_secs(1));
/// set.pick()?.failure(); // opens the breaker for 5 s
/// assert_eq!(set.get("a").ok_or("a is in the set")?.circuit(), CircuitState::Open);
/// tokio::time::sleep(Duration::from_secs(6)).await; // virtual time
/// assert_eq!(set.get("a").ok_or("a is in the set")?.circuit(), CircuitState::HalfOpen);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Maintenance {
    task: JoinHandle<()>,
}

impl Maintenance {
    /// Starts the housekeeping task for `set`. Must be called inside a tokio runtime.
    pub fn spawn<B: Balancer>(set: BackendSet<B>, tick: Duration) -> Self {
        let task = tokio::spawn(async move {
            loop {
                let now = Instant::now();
                let mut wake = now + tick;
                if let Some(deadline) = set.load().next_deadline() {
                    let deadline = Instant::from_std(deadline);
                    if deadline < wake {
                        wake = deadline.max(now);
                    }
                }
                tokio::time::sleep_until(wake).await;
                set.refresh(Instant::now().into_std());
            }
        });
        Self { task }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.task.abort();
    }
}
