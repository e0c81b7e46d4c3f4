//! Applying a configuration to the running [`App`]: the mapping from [`Config`] to the engine's settings (set
//! options, balance and retry settings, health checks, the TLS settings of `https://` backends, the rate
//! limiter), building the state
//! at start, and re-applying it on a reload (SIGHUP, a file change, `POST /admin/reload`). A configuration is
//! checked whole before anything changes; on any error the running one stays.
//!
//! [`Control`] owns what only a reload touches (the health checker, discovery tasks, the retry budget, the
//! upstream TLS settings), the runtime state (the admin API's changes, an overlay on the file's backends that
//! every reload re-applies; [`Changing`] is how the admin API changes it) and hands out the [`App`] that
//! requests read.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::{Quota, RateLimiter};
use rrlb_core::{AnyBalancer, BackendSet, BackendSpec, HealthParams, SetError, SetOptions};
use rrlb_tower::{
    BalanceConfig, HealthCheckConfig, HealthChecker, Maintenance, RetryBudget, RetryOn,
};
use tokio::sync::{Mutex, MutexGuard};

use crate::access_log::AccessLog;
use crate::app::{App, ClientLimiter};
use crate::config::UpstreamTlsConfig;
use crate::config::{self, BackendConfig, Config, ConfigError};
use crate::discovery::{self, DiscoveryStartError, Groups};
use crate::logging::ErrorChain;
use crate::metrics::Metrics;
use crate::state::{IfMatch, Note, Overlay, Resolved, State, StateError};
use crate::telemetry::Telemetry;
use crate::tls::{self, ListenerSpec, PairSpec, TlsListener};
use crate::upstream::{
    BackendProbe, BackendTls, ProxyService, UpstreamTlsError, UpstreamTlsSpec, client_config,
};

/// Re-reads the configuration (SIGHUP, a file change, `POST /admin/reload`).
pub type Reloader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// The running [`App`] and what applying a configuration to it needs: the one writer of its swaps.
pub(crate) struct Control {
    app: Arc<App>,
    /// The TLS settings of `https://` backends; kept across reloads (pooled TLS connections stay usable).
    /// The settings of `https://` backends and what they were built from.
    upstream_tls: std::sync::Mutex<(UpstreamTlsInputs, Arc<BackendTls>)>,
    /// The retry budget both paths draw on; kept across reloads that do not change it.
    budget: std::sync::Mutex<(BudgetParams, RetryBudget)>,
    health: std::sync::Mutex<Option<HealthChecker>>,
    /// The discovery tasks of the `[[backends]]` entries with a `discovery` key.
    discovery: std::sync::Mutex<Groups>,
    _maintenance: Maintenance,
    /// The admin API's changes and their store.
    state: State,
    reloader: Option<Reloader>,
    /// Serialises reloads and changes of the runtime state.
    reload_lock: Mutex<()>,
}

impl std::ops::Deref for Control {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

fn set_options(c: &Config) -> SetOptions {
    SetOptions {
        breaker: c.circuit_breaker,
        health: HealthParams {
            healthy_threshold: c.health.healthy_threshold,
            unhealthy_threshold: c.health.unhealthy_threshold,
        },
        start_healthy: !c.health.enabled || c.health.initial == config::InitialHealth::Healthy,
        panic_threshold: c.panic_threshold,
        ewma_decay: c.balancer.ewma_decay,
        slow_start: c.slow_start.window,
    }
}

/// The configured backends (discovered groups' members are added by their tasks).
fn specs(c: &Config) -> Vec<BackendSpec> {
    c.backends
        .iter()
        .filter(|b| b.discovery.is_static())
        .map(BackendConfig::spec)
        .collect()
}

/// The configured backends with the runtime overlay on them. A runtime backend the set cannot take (its URL is
/// a file backend's now) is left out, logged and counted.
fn resolve(c: &Config, overlay: &Overlay, metrics: &Metrics) -> Resolved {
    let make = |name: &str, url: &str, weight: u32| {
        BackendConfig::new(url, Some(weight), Some(name))
            .ok()
            .map(|b| b.spec())
    };
    let resolved = overlay.resolve(&specs(c), make);
    for name in &resolved.left_out {
        tracing::warn!(
            backend = name.as_str(),
            "a backend added through the admin API is left out: its URL is another backend's now; \
             remove it (DELETE /admin/backends/{{name}}) or drop the runtime changes (DELETE /admin/runtime)"
        );
        metrics.state.error("left_out");
    }
    metrics.state.applied(overlay.revision);
    resolved
}

/// Publishes `resolved` (with `discovered` members kept) as the set's list, its drains in the same step.
fn publish(
    set: &BackendSet<AnyBalancer>,
    resolved: Resolved,
    discovered: Vec<BackendSpec>,
) -> Result<(), SetError> {
    let Resolved {
        mut specs,
        draining,
        ..
    } = resolved;
    specs.extend(discovered);
    set.update_draining(specs, |name| draining.iter().any(|d| d == name))
        .map(|_| ())
}
fn balance_config(c: &Config) -> BalanceConfig {
    let retry_on: RetryOn = c.retries.retry_on();
    BalanceConfig {
        timeout: Some(c.timeouts.request),
        retries: c.retries.attempts,
        retry_on,
    }
}

fn health_config(c: &Config) -> HealthCheckConfig {
    HealthCheckConfig {
        interval: c.health.interval,
        timeout: c.health.timeout,
        jitter: 0.1,
    }
}

/// The health checker for a configuration, counting its checks into `metrics`.
fn health_checker(
    set: &BackendSet<AnyBalancer>,
    (c, tls): (&Config, &BackendTls),
    metrics: &Arc<Metrics>,
) -> HealthChecker {
    let metrics = Arc::clone(metrics);
    HealthChecker::spawn_observed(
        set.clone(),
        BackendProbe::new(c.health.path.as_str(), c.timeouts.connect, tls),
        health_config(c),
        move |backend: &rrlb_core::Backend, passed| metrics.health_check(backend.name(), passed),
    )
}

fn limiter(c: &Config) -> Option<ClientLimiter> {
    let rate = NonZeroU32::new(c.limits.rate_per_client)?;
    let burst = NonZeroU32::new(c.limits.burst).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// What the TLS settings of `https://` backends are built from: the sections, each backend's own table, and
/// the contents of every file they name (a rotated CA or client certificate is a change; a reload that changes
/// nothing keeps the settings, and with them the pooled TLS connections).
#[derive(PartialEq)]
struct UpstreamTlsInputs {
    global: UpstreamTlsConfig,
    own: Vec<(String, UpstreamTlsConfig)>,
    files: Vec<Option<Vec<u8>>>,
}

impl UpstreamTlsInputs {
    fn of(c: &Config) -> Self {
        let own: Vec<(String, UpstreamTlsConfig)> = c
            .backends
            .iter()
            .filter_map(|b| Some((b.name.clone(), b.tls.clone()?)))
            .collect();
        let files = std::iter::once(&c.upstream_tls)
            .chain(own.iter().map(|(_, t)| t))
            .flat_map(|t| [&t.ca, &t.cert, &t.key])
            .map(|f| f.as_ref().and_then(|f| std::fs::read(f).ok()))
            .collect();
        Self {
            global: c.upstream_tls.clone(),
            own,
            files,
        }
    }
}

/// The TLS settings of `https://` backends: `[upstream_tls]` for all, and for a backend (or discovery group)
/// with its own `[backends.tls]`, those keys over `[upstream_tls]`'s. Every file is read and checked here,
/// before anything changes.
fn upstream_tls(c: &Config) -> Result<BackendTls, ApplyError> {
    let spec = |t: &UpstreamTlsConfig| UpstreamTlsSpec {
        ca: t.ca.clone(),
        cert: t.cert.clone(),
        key: t.key.clone(),
        server_name: t.server_name.clone(),
        insecure_skip_verify: t.insecure_skip_verify,
    };
    let build = |t: &UpstreamTlsConfig| client_config(&spec(t)).map_err(ApplyError::UpstreamTls);
    let mut tls = BackendTls::new(build(&c.upstream_tls)?);
    for b in &c.backends {
        if let Some(own) = &b.tls {
            tls = tls.with_backend(&b.name, build(&c.upstream_tls.overridden_by(Some(own)))?);
        }
    }
    Ok(tls)
}

/// What the proxy listener's TLS is made of (`None`: plaintext).
fn listener_spec(c: &Config) -> Option<ListenerSpec> {
    let t = &c.tls;
    let pair = |cert: &std::path::PathBuf, key: &std::path::PathBuf| PairSpec {
        cert: cert.clone(),
        key: key.clone(),
    };
    Some(ListenerSpec {
        default: pair(t.cert.as_ref()?, t.key.as_ref()?),
        sni: t
            .certificates
            .iter()
            .map(|p| pair(&p.cert, &p.key))
            .collect(),
        client_ca: t.client_ca.clone(),
        client_auth: t.client_auth,
    })
}

/// Loads the listener's certificates for `c` (every file read and checked; warnings logged), or `None` when
/// the listener is plaintext.
fn load_listener_tls(c: &Config) -> Result<Option<(ListenerSpec, tls::Loaded)>, ApplyError> {
    let Some(spec) = listener_spec(c) else {
        return Ok(None);
    };
    let loaded = tls::load(&spec).map_err(ApplyError::Tls)?;
    loaded.log_warnings();
    Ok(Some((spec, loaded)))
}

/// What `rrlb --check` says of the TLS files after the effective configuration: every certificate and key file
/// is read and checked as a start would (an error names the file), then each listener certificate's subject,
/// SANs and validity, the warnings a start would log, and the https-backend settings that were checked. Never a
/// key.
pub fn check_tls(c: &Config) -> Result<String, ApplyError> {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some((_, loaded)) = load_listener_tls(c)? {
        for i in loaded.infos() {
            let _ = writeln!(
                out,
                "# tls certificate {:?} ({}): subject {:?}, SANs [{}], valid {} .. {}",
                i.name,
                i.source,
                i.subject,
                i.sans.join(", "),
                i.not_before,
                i.not_after
            );
        }
        for w in loaded.warnings() {
            let _ = writeln!(out, "# warning: {w}");
        }
    }
    upstream_tls(c)?;
    let own = c.backends.iter().filter(|b| b.tls.is_some()).count();
    if c.upstream_tls != UpstreamTlsConfig::default() || own > 0 {
        let _ = writeln!(
            out,
            "# upstream tls: [upstream_tls] and {own} [backends.tls] table(s) load"
        );
    }
    Ok(out)
}

/// Acts on what the runtime state tells: a change made elsewhere republishes the set (serialised with reloads
/// and admin changes); errors and the fleet's size go to the metrics. Ends with the [`Control`].
async fn follow_notes(
    control: std::sync::Weak<Control>,
    mut notes: tokio::sync::mpsc::UnboundedReceiver<Note>,
) {
    while let Some(note) = notes.recv().await {
        let Some(control) = control.upgrade() else {
            return;
        };
        match note {
            Note::Applied(revision) => {
                let changing = control.changing().await;
                if let Err(e) = changing.republish() {
                    tracing::error!(error = %ErrorChain(&e), revision, "the runtime state could not be applied");
                }
            }
            Note::Invalid(..) => control.metrics.state.error("invalid_value"),
            Note::Members(n) => control.metrics.state.set_members(n),
            Note::Unavailable => control.metrics.state.error("unavailable"),
        }
    }
}

/// What `rrlb --check` says of `[state]`: with `store = "file"`, the state file is read and checked as a start
/// would (an error names it); a directory that cannot be written is a warning (a start here would fail, but
/// `--check` often runs on another machine than rrlb).
pub fn check_state(c: &Config) -> Result<String, ApplyError> {
    use crate::state::Store;
    match Store::open(&c.state) {
        Ok((Store::Memory, _)) if c.state.store == config::StoreKind::Etcd => Ok(format!(
            "# state: etcd {} {} (read when rrlb starts)\n",
            c.state.etcd.endpoints.join(","),
            c.state.etcd.prefix
        )),
        Ok((Store::Memory, _)) => Ok(String::new()),
        Ok((Store::File(path), overlay)) => Ok(format!(
            "# state: {}: {} runtime change(s) at revision {}\n",
            path.display(),
            overlay.backends.len(),
            overlay.revision
        )),
        Err(e @ StateError::Write { .. }) => Ok(format!(
            "# warning: {} (a start here would fail)\n",
            crate::logging::ErrorChain(&e)
        )),
        Err(e) => Err(ApplyError::State(e)),
    }
}

/// The certificates served now, into `rrlb_tls_certificate_expiry_timestamp_seconds`.
fn export_certificates(metrics: &Metrics, listener: Option<&TlsListener>) {
    let infos = listener.map(TlsListener::infos).unwrap_or_default();
    metrics
        .tls
        .set_certificates(infos.iter().map(|i| (i.name.as_str(), i.not_after_unix)));
}

/// The balancing service for a configuration. Its retry budget is passed in, kept across reloads that do not
/// change it.
fn service(
    c: &Config,
    set: &BackendSet<AnyBalancer>,
    tls: &Arc<BackendTls>,
    budget: &RetryBudget,
    (metrics, telemetry): (&Arc<Metrics>, Option<Telemetry>),
) -> ProxyService {
    crate::upstream::service(
        set,
        c.timeouts.connect,
        (Arc::clone(tls), telemetry),
        balance_config(c),
        budget.clone(),
        metrics,
    )
}

/// What a retry budget is made of: `retries.budget_ratio` and `retries.budget_min_per_second`.
type BudgetParams = (u64, u32);

fn budget_params(c: &Config) -> BudgetParams {
    (
        c.retries.budget_ratio.to_bits(),
        c.retries.budget_min_per_second,
    )
}

fn retry_budget(c: &Config) -> RetryBudget {
    RetryBudget::new(
        c.retries.budget_ratio as f32,
        c.retries.budget_min_per_second,
    )
}

/// Why a configuration could not be applied.
///
/// The wrapped errors are transparent: their own messages already say what was refused and where (file, key,
/// line), and they are what the admin API answers with, so `Display` and
/// [`source`](std::error::Error::source) are theirs (each cause printed once in a chain).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The configuration did not load or validate.
    #[error("the new configuration is invalid")]
    Config(#[source] ConfigError),
    /// The backend set refused the backend list.
    #[error("the backend set refused the backend list")]
    Backends(#[source] SetError),
    /// The access log's file cannot be opened.
    #[error("cannot open the access log")]
    AccessLog(#[source] std::io::Error),
    /// Span export cannot be set up.
    #[error("cannot set up span export")]
    Telemetry(#[source] crate::telemetry::TelemetryError),
    /// The proxy listener's certificates cannot be loaded (the error names the file).
    #[error("cannot set up TLS on the proxy listener")]
    Tls(#[source] tls::TlsError),
    /// The TLS settings of `https://` backends cannot be built (a CA, certificate or key file).
    #[error("cannot set up TLS to https:// backends")]
    UpstreamTls(#[source] UpstreamTlsError),
    /// The runtime state cannot be read (the error names the file).
    #[error("cannot read the runtime state")]
    State(#[source] StateError),
    /// Service discovery cannot start (no usable DNS resolver or Kubernetes API client).
    #[error("service discovery cannot start")]
    Discovery(#[source] DiscoveryStartError),
    /// There is no way to re-read the configuration (no file).
    #[error("no configuration file to reload (start rrlb with --config FILE)")]
    NoReloader,
}

impl Control {
    /// Builds the state for `config` and starts its background tasks (health checks, breaker housekeeping).
    /// Must be called inside a tokio runtime.
    pub(crate) fn start(
        config: Config,
        reloader: Option<Reloader>,
    ) -> Result<Arc<Self>, ApplyError> {
        let (notes, noted) = tokio::sync::mpsc::unbounded_channel();
        let state = State::open(&config.state, notes).map_err(ApplyError::State)?;
        let metrics = Arc::new(Metrics::new());
        metrics.state.set_members(1);
        let set = BackendSet::new(AnyBalancer::new(config.algorithm), set_options(&config));
        publish(
            &set,
            resolve(&config, &state.overlay(), &metrics),
            Vec::new(),
        )
        .map_err(ApplyError::Backends)?;
        metrics.config_applied();
        let tls = Arc::new(upstream_tls(&config)?);
        let tls_inputs = UpstreamTlsInputs::of(&config);
        let listener = match load_listener_tls(&config)? {
            Some((spec, loaded)) => Some(Arc::new(
                TlsListener::new(loaded, &spec).map_err(ApplyError::Tls)?,
            )),
            None => None,
        };
        export_certificates(&metrics, listener.as_deref());
        let budget = retry_budget(&config);
        let telemetry = Telemetry::new(&config.tracing, config.timeouts.connect)
            .map_err(ApplyError::Telemetry)?;
        let svc = service(&config, &set, &tls, &budget, (&metrics, telemetry.clone()));
        let budget = (budget_params(&config), budget);
        let health = config
            .health
            .enabled
            .then(|| health_checker(&set, (&config, &tls), &metrics));
        let maintenance = Maintenance::spawn(set.clone(), Duration::from_millis(250));
        let mut groups = Groups::default();
        groups.apply(&config, &set).map_err(ApplyError::Discovery)?;
        metrics.set_discovery_groups(groups.stats());
        let access_log = AccessLog::new(
            &config.access_log,
            config.log.format,
            metrics.access_log_dropped.clone(),
        )
        .map_err(ApplyError::AccessLog)?;
        let app = Arc::new(App {
            limiter: ArcSwap::from_pointee(limiter(&config)),
            service: ArcSwap::from_pointee(svc),
            telemetry: ArcSwap::from_pointee(telemetry),
            tls: ArcSwap::from_pointee(listener),
            config: ArcSwap::from_pointee(config),
            set,
            metrics,
            access_log,
        });
        let control = Arc::new(Self {
            app,
            upstream_tls: std::sync::Mutex::new((tls_inputs, tls)),
            budget: std::sync::Mutex::new(budget),
            health: std::sync::Mutex::new(health),
            discovery: std::sync::Mutex::new(groups),
            _maintenance: maintenance,
            state,
            reloader,
            reload_lock: Mutex::new(()),
        });
        tokio::spawn(follow_notes(Arc::downgrade(&control), noted));
        Ok(control)
    }

    /// Re-reads the configuration and applies it; on any error the running configuration stays.
    pub(crate) async fn reload(&self) -> Result<Arc<Config>, ApplyError> {
        let _serial = self.reload_lock.lock().await;
        let reloader = self.reloader.as_ref().ok_or(ApplyError::NoReloader)?;
        let applied = reloader()
            .map_err(ApplyError::Config)
            .and_then(|new| self.apply(new));
        self.metrics.reloaded(applied.is_ok());
        applied
    }

    /// Applies a validated configuration. Backends that survive keep their state; listeners cannot change
    /// (a warning says so).
    pub(crate) fn apply(&self, new: Config) -> Result<Arc<Config>, ApplyError> {
        let old = self.config.load_full();
        for key in old.changes_needing_restart(&new) {
            tracing::warn!(
                key,
                "changing this setting needs a restart; the running listener stays"
            );
        }
        // A new access log file must open before anything changes.
        if new.access_log.path != old.access_log.path {
            AccessLog::check(&new.access_log).map_err(ApplyError::AccessLog)?;
        }
        // And the listener's certificates, and the TLS settings of https:// backends when anything they are
        // made of changed.
        let listener_tls = load_listener_tls(&new)?;
        let tls_inputs = UpstreamTlsInputs::of(&new);
        let new_upstream_tls = {
            let current = self
                .upstream_tls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.0 == tls_inputs {
                None
            } else {
                Some(Arc::new(upstream_tls(&new)?))
            }
        };
        let listener = match (listener_tls, self.tls.load_full().as_ref()) {
            (None, _) => None,
            (Some((spec, loaded)), Some(running)) => {
                running.apply(loaded, &spec).map_err(ApplyError::Tls)?;
                Some(Arc::clone(running))
            }
            (Some((spec, loaded)), None) => Some(Arc::new(
                TlsListener::new(loaded, &spec).map_err(ApplyError::Tls)?,
            )),
        };
        // So must new span export.
        let telemetry = match &**self.telemetry.load() {
            Some(t) if t.is_for(&new.tracing) => None,
            None if new.tracing.otlp_endpoint.is_none() => None,
            _ => Some(
                Telemetry::new(&new.tracing, new.timeouts.connect)
                    .map_err(ApplyError::Telemetry)?,
            ),
        };
        let mut groups = self
            .discovery
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        groups.prepare(&new).map_err(ApplyError::Discovery)?;
        // Config validation already checked names, URLs and weights. Discovered members of groups that stay
        // are carried over (their state kept); the groups' tasks change after the list is in place.
        let resolved = resolve(&new, &self.state.overlay(), &self.metrics);
        let kept = discovery::kept_members(&self.set, &old, &new);
        publish(&self.set, resolved, kept).map_err(ApplyError::Backends)?;
        groups
            .apply(&new, &self.set)
            .map_err(ApplyError::Discovery)?;
        self.metrics.set_discovery_groups(groups.stats());
        drop(groups);
        if let Some(telemetry) = telemetry {
            let old = self.telemetry.swap(Arc::new(telemetry));
            shut_down(old);
        }
        self.access_log.apply(&new.access_log, new.log.format);
        if new.algorithm != old.algorithm {
            self.set.set_balancer(AnyBalancer::new(new.algorithm));
        }
        let options = set_options(&new);
        if options != self.set.options() {
            self.set.set_options(options);
        }
        let tls_changed = new_upstream_tls.is_some();
        let tls = {
            let mut current = self
                .upstream_tls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(built) = new_upstream_tls {
                *current = (tls_inputs, built);
            }
            Arc::clone(&current.1)
        };
        export_certificates(&self.metrics, listener.as_deref());
        self.tls.store(Arc::new(listener));
        let budget = {
            let mut b = self
                .budget
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if b.0 != budget_params(&new) {
                *b = (budget_params(&new), retry_budget(&new));
            }
            b.1.clone()
        };
        self.service.store(Arc::new(service(
            &new,
            &self.set,
            &tls,
            &budget,
            (&self.metrics, (*self.telemetry.load_full()).clone()),
        )));
        if new.limits.rate_per_client != old.limits.rate_per_client
            || new.limits.burst != old.limits.burst
        {
            self.limiter.store(Arc::new(limiter(&new)));
        }
        {
            let mut health = self
                .health
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A new probe when what it sends or how it connects changed (the TLS settings included).
            let probe_changed = new.health.path != old.health.path
                || new.timeouts.connect != old.timeouts.connect
                || tls_changed;
            match (&*health, new.health.enabled) {
                (Some(h), true) if !probe_changed => h.set_config(health_config(&new)),
                (_, true) => {
                    *health = Some(health_checker(&self.set, (&new, &tls), &self.metrics));
                }
                (_, false) => *health = None,
            }
        }
        let new = Arc::new(new);
        self.config.store(Arc::clone(&new));
        tracing::info!(
            backends = new.backends.len(),
            algorithm = new.algorithm.as_str(),
            "configuration applied"
        );
        Ok(new)
    }

    /// The state requests read.
    pub(crate) fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The runtime state (read-only: [`changing`](Self::changing) changes it).
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// A change of the runtime state: no reload and no other change runs until it is dropped.
    pub(crate) async fn changing(&self) -> Changing<'_> {
        Changing {
            control: self,
            _serial: self.reload_lock.lock().await,
        }
    }
}

/// The admin API's hold on the runtime state: the overlay in force, a durable save of the next one, and the
/// set re-published from the file's backends and the overlay. Reloads wait while it is held.
pub(crate) struct Changing<'a> {
    control: &'a Control,
    _serial: MutexGuard<'a, ()>,
}

impl Changing<'_> {
    /// The overlay in force.
    pub(crate) fn overlay(&self) -> Arc<Overlay> {
        self.control.state.overlay()
    }

    /// Keeps `next` in the store, then puts it in force, if the state is at a revision `expect` accepts; on
    /// error (counted) nothing changed. The caller changes the set to match, or (a fleet's state, which the
    /// store's watch puts in force) [`republish`](Self::republish)es it.
    pub(crate) async fn save(
        &self,
        next: Overlay,
        expect: &IfMatch,
    ) -> Result<Arc<Overlay>, StateError> {
        let saved = self.control.state.save(next, expect).await;
        match &saved {
            Ok(o) => self.control.metrics.state.applied(o.revision),
            Err(StateError::Stale { .. }) => {}
            Err(StateError::Unavailable(_)) => self.control.metrics.state.error("unavailable"),
            Err(_) => self.control.metrics.state.error("write"),
        }
        saved
    }

    /// Whether the state is a fleet's (the set follows the store: republish instead of changing it directly).
    pub(crate) fn is_shared(&self) -> bool {
        self.control.state.is_shared()
    }

    /// Publishes the set anew from the configuration in force and the overlay (discovered members kept).
    pub(crate) fn republish(&self) -> Result<(), SetError> {
        let c = self.control.config.load_full();
        let resolved = resolve(&c, &self.control.state.overlay(), &self.control.metrics);
        let kept = discovery::kept_members(&self.control.set, &c, &c);
        publish(&self.control.set, resolved, kept)
    }
}

/// Stops span export that a reload (or the end) replaced, off the runtime's threads: the last batch is sent
/// within the exporter's timeout, and nothing waits for it.
pub(crate) fn shut_down(telemetry: Arc<Option<Telemetry>>) {
    if let Some(t) = (*telemetry).clone() {
        tokio::task::spawn_blocking(move || t.shutdown());
    }
}
