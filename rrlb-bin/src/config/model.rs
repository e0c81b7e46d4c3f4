//! The configuration: one model, read from the file with serde and written back with the same derive.
//!
//! Each key is a field here and nowhere else: its default is written beside it (`= value`), its rule is the
//! `#[serde(with = ...)]` adapter of [`super::value`] above it, its documentation on it. Cross-field rules
//! (a timeout within its interval, unique backends) are in [`super::load`].

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::uri::PathAndQuery;
use serde::{Deserialize, Deserializer, Serialize};

use super::backend::BackendConfig;
use super::value::{self, duration, named};
use crate::admin_token::{AdminToken, InvalidToken};
use crate::logging::{LogConfig, LogFormat};

/// Declares a section of the file: its struct, with serde's `default` and `deny_unknown_fields`, and a
/// `Default` made of each field's `= value` (as the unstable `default_field_values` would write it), so that
/// a key's type, rule, default and documentation are on consecutive lines.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty = $default:expr,)*
        }
    ) => {
        $(#[$meta])*
        #[serde(default, deny_unknown_fields, expecting = "a table")]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
    };
}

section! {
    /// The validated configuration rrlb runs with. Build it with [`Config::load`].
    ///
    /// `Debug`, `Serialize` and [`Config::to_toml_string`] never show the admin token.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        /// The TOML file it was read from (`--config`/`RRLB_CONFIG`), if any.
        #[serde(skip)]
        pub source: Option<PathBuf> = None,
        /// Proxy listener (`listen`, `--listen`, `RRLB_LISTEN`). Default `0.0.0.0:8080`.
        #[serde(deserialize_with = "value::socket_addr")]
        pub listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 8080)),
        /// Admin listener (`admin_listen`, `--admin-listen`, `RRLB_ADMIN_LISTEN`). Default `127.0.0.1:9901`.
        #[serde(deserialize_with = "value::socket_addr")]
        pub admin_listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9901)),
        /// Balancing algorithm. Default round robin.
        #[serde(with = "named")]
        pub algorithm: Algorithm = Algorithm::default(),
        /// Panic threshold in percent (`0..=100`, 0 = off): when fewer than this share of the backends
        /// is eligible, balance over all of them, ignoring health and breakers.
        #[serde(deserialize_with = "value::percent")]
        pub panic_threshold: u8 = 0,
        /// Backends, in order; names and URLs are unique. May be empty (every request then gets `503`
        /// until backends are added through the admin API).
        pub backends: Vec<BackendConfig> = Vec::new(),
        /// Active health checks.
        pub health: HealthConfig = HealthConfig::default(),
        /// Passive, per-backend circuit breaker.
        #[serde(with = "Breaker")]
        pub circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig::default(),
        /// Timeouts.
        pub timeouts: TimeoutsConfig = TimeoutsConfig::default(),
        /// Retries on another backend.
        pub retries: RetriesConfig = RetriesConfig::default(),
        /// Request limits.
        pub limits: LimitsConfig = LimitsConfig::default(),
        /// Admin API.
        pub admin: AdminConfig = AdminConfig::default(),
        /// The access log.
        pub access_log: AccessLogConfig = AccessLogConfig::default(),
        /// Tracing: sampling of new traces and span export.
        pub tracing: TracingConfig = TracingConfig::default(),
        /// Settings of the balancing algorithms (`[balancer]`).
        pub balancer: BalancerConfig = BalancerConfig::default(),
        /// Slow start of backends that become eligible (`[slow_start]`).
        pub slow_start: SlowStartConfig = SlowStartConfig::default(),
        /// Service discovery settings (`[discovery]`), for `[[backends]]` entries with a `discovery` key.
        pub discovery: DiscoveryConfig = DiscoveryConfig::default(),
        /// TLS on the proxy listener (`[tls]`); without `cert` and `key` the listener is plaintext.
        pub tls: TlsConfig = TlsConfig::default(),
        /// TLS to `https://` backends (`[upstream_tls]`); a backend's own `[backends.tls]` keys win over these.
        pub upstream_tls: UpstreamTlsConfig = UpstreamTlsConfig::default(),
        /// Where runtime changes made through the admin API are kept (`[state]`).
        pub state: StateConfig = StateConfig::default(),
        /// Logging (flags and environment only).
        #[serde(skip)]
        pub log: LogConfig = LogConfig::default(),
    }
}

/// The balancing algorithm: the engine's own type, so its names ([`Algorithm::ALL`]), parsing and errors are the
/// configuration's.
pub use rrlb_core::Algorithm;

section! {
    /// TLS on the proxy listener (`[tls]`): TLS 1.2 and 1.3, ALPN `h2`, `http/1.1` and `http/1.0`. Files are
    /// PEM, read at start and on every reload; a key is never printed.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TlsConfig {
        /// The default certificate chain: for clients without SNI or with a name no other pair has.
        pub cert: Option<PathBuf> = None,
        /// The default certificate's private key.
        pub key: Option<PathBuf> = None,
        /// More pairs (`[[tls.certificates]]`), each chosen by SNI from its certificate's names.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub certificates: Vec<CertPair> = Vec::new(),
        /// CA certificates that client certificates must chain to.
        pub client_ca: Option<PathBuf> = None,
        /// Client certificates: `none` (default), `optional` or `required`.
        pub client_auth: ClientAuth = ClientAuth::None,
        /// The header that carries a verified client certificate's subject to backends (unset: none is sent;
        /// a client's own header of that name never passes).
        pub client_subject_header: Option<String> = None,
    }
}

impl Config {
    /// Every certificate, key and CA file the configuration names (`[tls]`, `[upstream_tls]`,
    /// `[backends.tls]`): what a reload reads again, and what the file watcher watches besides the file.
    pub fn tls_files(&self) -> Vec<PathBuf> {
        let t = &self.tls;
        let listener = [&t.cert, &t.key, &t.client_ca].into_iter().flatten();
        let pairs = t.certificates.iter().flat_map(|p| [&p.cert, &p.key]);
        let upstream = std::iter::once(&self.upstream_tls)
            .chain(self.backends.iter().filter_map(|b| b.tls.as_ref()))
            .flat_map(|u| [&u.ca, &u.cert, &u.key].into_iter().flatten());
        let mut files: Vec<PathBuf> = listener.chain(pairs).chain(upstream).cloned().collect();
        files.sort();
        files.dedup();
        files
    }
}

impl TlsConfig {
    /// Whether the proxy listener serves TLS.
    pub fn is_on(&self) -> bool {
        self.cert.is_some()
    }
}

/// A certificate chain and its key (`[[tls.certificates]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with cert and key")]
pub struct CertPair {
    /// The certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Whether the proxy listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Never.
    #[default]
    None,
    /// Asked for; a client without one is served, one with an invalid one is refused.
    Optional,
    /// Required: a client without a valid certificate fails the handshake.
    Required,
}

impl ClientAuth {
    /// The configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

section! {
    /// TLS to `https://` backends (`[upstream_tls]`, and per backend `[backends.tls]` with the same keys).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UpstreamTlsConfig {
        /// CA certificates added to the web roots (a private CA).
        pub ca: Option<PathBuf> = None,
        /// A client certificate chain for backends that require one (mTLS), with `key`.
        pub cert: Option<PathBuf> = None,
        /// The client certificate's private key.
        pub key: Option<PathBuf> = None,
        /// The name sent as SNI and verified in the backend's certificate, instead of the URL's host.
        pub server_name: Option<String> = None,
        /// Accept any backend certificate (no verification). Logged as a warning at every start and reload.
        pub insecure_skip_verify: bool = false,
    }
}

impl UpstreamTlsConfig {
    /// These settings with `own`'s keys (a backend's `[backends.tls]`) winning where it sets them.
    pub fn overridden_by(&self, own: Option<&Self>) -> Self {
        let Some(own) = own else {
            return self.clone();
        };
        Self {
            ca: own.ca.clone().or_else(|| self.ca.clone()),
            cert: own.cert.clone().or_else(|| self.cert.clone()),
            key: own.key.clone().or_else(|| self.key.clone()),
            server_name: own.server_name.clone().or_else(|| self.server_name.clone()),
            insecure_skip_verify: own.insecure_skip_verify || self.insecure_skip_verify,
        }
    }
}

section! {
    /// Active health checking.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HealthConfig {
        /// Whether active checks run (extension; default `true`). Without them every backend counts
        /// as healthy and only the circuit breaker takes backends out.
        pub enabled: bool = true,
        /// Path (and optional query) probed with `GET`. Default `/health`.
        #[serde(serialize_with = "named::serialize", deserialize_with = "probe_path")]
        pub path: PathAndQuery = PathAndQuery::from_static("/health"),
        /// Time between probes of one backend. Default 2s.
        #[serde(with = "duration")]
        pub interval: Duration = Duration::from_secs(2),
        /// Probe timeout, at most `interval`. Default 1s.
        #[serde(with = "duration")]
        pub timeout: Duration = Duration::from_secs(1),
        /// Consecutive passes for an unhealthy backend to become healthy (rise). Default 2.
        #[serde(deserialize_with = "value::int::<_, _, 1, 1_000>")]
        pub healthy_threshold: u32 = 2,
        /// Consecutive failures for a healthy backend to become unhealthy (fall). Default 3.
        #[serde(deserialize_with = "value::int::<_, _, 1, 1_000>")]
        pub unhealthy_threshold: u32 = 3,
        /// The health a new backend starts with (extension; default healthy).
        pub initial: InitialHealth = InitialHealth::Healthy,
    }
}

/// `health.path`: an absolute path, with an optional query, and no fragment.
fn probe_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathAndQuery, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(d)?;
    if !text.starts_with('/') || text.contains('#') {
        return Err(D::Error::custom(
            "must start with / (and have no #fragment)",
        ));
    }
    PathAndQuery::from_str(&text).map_err(|e| D::Error::custom(format!("invalid path: {e}")))
}

/// The health a backend starts with, before its first check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialHealth {
    /// `"healthy"`: serve traffic at once; the checks take it out if it fails.
    #[default]
    Healthy,
    /// `"unhealthy"`: wait for `healthy_threshold` passing checks first.
    Unhealthy,
}

/// The passive circuit breaker, one per backend: the `[circuit_breaker]` section is exactly the engine's
/// [`BreakerParams`](rrlb_core::BreakerParams) (same keys, same defaults: 5 consecutive failures, failure rate 0.5
/// over a window of 20 after 10 calls, slow calls over 1s at a rate of 0.8, open 5s doubling up to 2m, 3
/// half-open probes).
pub type CircuitBreakerConfig = rrlb_core::BreakerParams;

/// The schema of the engine's breaker parameters (serde's remote derive: the fields are the engine's).
#[derive(Serialize, Deserialize)]
#[serde(
    remote = "rrlb_core::BreakerParams",
    default = "rrlb_core::BreakerParams::default",
    deny_unknown_fields,
    expecting = "a table"
)]
struct Breaker {
    #[serde(deserialize_with = "value::int::<_, _, 1, 1_000>")]
    consecutive_failures: u32,
    #[serde(deserialize_with = "value::trip_rate")]
    failure_rate: f64,
    #[serde(deserialize_with = "value::int::<_, _, 1, 10_000>")]
    window: u32,
    #[serde(deserialize_with = "value::int::<_, _, 1, 10_000>")]
    min_calls: u32,
    #[serde(with = "duration")]
    slow_call_duration: Duration,
    #[serde(deserialize_with = "value::trip_rate")]
    slow_call_rate: f64,
    #[serde(with = "duration")]
    open_duration: Duration,
    #[serde(with = "duration")]
    max_open_duration: Duration,
    #[serde(deserialize_with = "value::int::<_, _, 1, 1_000>")]
    half_open_max_calls: u32,
    #[serde(deserialize_with = "value::percent")]
    max_ejection_percent: u8,
}

section! {
    /// Settings of the balancing algorithms.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BalancerConfig {
        /// The time constant of the peak-EWMA latency estimate that `peak-ewma` balances on: how fast a
        /// backend's estimate forgets a slow answer. Default 10s.
        #[serde(with = "duration")]
        pub ewma_decay: Duration = rrlb_core::backend::DEFAULT_DECAY,
    }
}

section! {
    /// Slow start: a backend that becomes eligible (added, discovered, healthy again, breaker closed) while
    /// others are ramps from 10 % to its full share over `window`, with every algorithm.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SlowStartConfig {
        /// The ramp's length, `0s` (off, the default) up to 1 day.
        #[serde(with = "value::duration_or_zero")]
        pub window: Duration = Duration::ZERO,
    }
}

section! {
    /// Timeouts.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TimeoutsConfig {
        /// Per upstream attempt (`--timeout`, `RRLB_TIMEOUT`). Default 2s.
        #[serde(with = "duration")]
        pub request: Duration = Duration::from_secs(2),
        /// Connecting to a backend. Default 500ms.
        #[serde(with = "duration")]
        pub connect: Duration = Duration::from_millis(500),
        /// A client must send its request headers within this. Default 10s.
        #[serde(with = "duration")]
        pub header_read: Duration = Duration::from_secs(10),
        /// A client must send each part of its request body within this of the previous one (a body that stalls
        /// is answered `408` and the connection closed). Default 30s.
        #[serde(with = "duration")]
        pub body_read: Duration = Duration::from_secs(30),
        /// Graceful shutdown waits at most this long for in-flight requests (extension). Default 30s.
        #[serde(with = "duration")]
        pub drain: Duration = Duration::from_secs(30),
    }
}

/// A kind of failed attempt that `retries.on` may list, to have it retried on another backend. The list as a
/// whole is rrlb-tower's [`RetryOn`](rrlb_tower::RetryOn) set: [`RetriesConfig::retry_on`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryCondition {
    /// `"connect-failure"`: the connection could not be made (nothing reached the backend).
    ConnectFailure,
    /// `"timeout"`: the attempt exceeded `timeouts.request`.
    Timeout,
    /// `"reset"`: the connection was reset before a response arrived.
    Reset,
    /// `"5xx"`: the backend answered with a 5xx status.
    #[serde(rename = "5xx")]
    Status5xx,
}

section! {
    /// Retries on another backend.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct RetriesConfig {
        /// Extra attempts, each on a different backend, `0..=10`. Default 2.
        #[serde(deserialize_with = "value::int::<_, _, 0, { value::MAX_RETRY_ATTEMPTS as i64 }>")]
        pub attempts: u32 = 2,
        /// Which failures are retried. Default connect failures only.
        pub on: BTreeSet<RetryCondition> = BTreeSet::from([RetryCondition::ConnectFailure]),
        /// Retries are at most this share of requests, in `[0, 1]` (extension). Default 0.2.
        #[serde(deserialize_with = "value::ratio")]
        pub budget_ratio: f64 = 0.2,
        /// … but this many retries per second are always allowed (extension). Default 10.
        #[serde(deserialize_with = "value::int::<_, _, 0, 1_000_000>")]
        pub budget_min_per_second: u32 = 10,
    }
}

impl RetriesConfig {
    /// The conditions of `on` as the set rrlb-tower's balancing service takes.
    pub fn retry_on(&self) -> rrlb_tower::RetryOn {
        use rrlb_tower::RetryOn;
        let bit = |c: &RetryCondition| match c {
            RetryCondition::ConnectFailure => RetryOn::CONNECT_FAILURE,
            RetryCondition::Timeout => RetryOn::TIMEOUT,
            RetryCondition::Reset => RetryOn::RESET,
            RetryCondition::Status5xx => RetryOn::STATUS_5XX,
        };
        self.on.iter().map(bit).fold(RetryOn::NONE, RetryOn::union)
    }
}

section! {
    /// Request limits.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LimitsConfig {
        /// Largest request body accepted (`413` above), `1..=1 GiB`. Default 1 MiB.
        #[serde(deserialize_with = "value::body_bytes")]
        pub max_body_bytes: u64 = 1 << 20,
        /// Requests per second per client IP; 0 = off. Default 0.
        #[serde(deserialize_with = "value::rate_limit")]
        pub rate_per_client: u32 = 0,
        /// Burst allowed above the rate, at least 1 when the rate is on. Default 50.
        #[serde(deserialize_with = "value::int::<_, _, 0, 1_000_000>")]
        pub burst: u32 = 50,
    }
}

section! {
    /// The admin API.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AdminConfig {
        /// Bearer token required by mutating admin calls; `None` = no authentication
        /// (only allowed when the admin listener is on a loopback address). In the file, `""` is none.
        #[serde(serialize_with = "value::display_or_empty", deserialize_with = "token")]
        pub token: Option<AdminToken> = None,
    }
}

section! {
    /// The access log: one line per request, written off the request path (`[access_log]`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AccessLogConfig {
        /// Whether lines are written. Default `true`.
        pub enabled: bool = true,
        /// `"text"` (logfmt) or `"json"`; default: the log format (`--log-format`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub format: Option<LogFormat> = None,
        /// `"stdout"`, or a file appended to (and reopened on `SIGUSR1`, for log rotation). Default `"stdout"`.
        pub path: String = "stdout".to_owned(),
    }
}

section! {
    /// Tracing (`[tracing]`). W3C trace context is always propagated; spans are exported only when
    /// `otlp_endpoint` is set.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct TracingConfig {
        /// OTLP/HTTP (protobuf) base URL, e.g. `http://127.0.0.1:4318`: spans go to `<url>/v1/traces`. Default:
        /// none (no export).
        #[serde(
            deserialize_with = "value::otlp_endpoint",
            skip_serializing_if = "Option::is_none"
        )]
        pub otlp_endpoint: Option<String> = None,
        /// The share of new traces (requests without a valid `traceparent`) that are sampled, in `[0, 1]`; a
        /// continued trace keeps its caller's decision. Default 0.01.
        #[serde(deserialize_with = "value::ratio")]
        pub sample_ratio: f64 = 0.01,
        /// The `service.name` of exported spans. Default `"rrlb"`.
        #[serde(deserialize_with = "value::non_empty")]
        pub service_name: String = "rrlb".to_owned(),
    }
}

section! {
    /// Where the admin API's runtime changes are kept (`[state]`): an overlay on the file's backends, re-applied
    /// on every reload.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct StateConfig {
        /// `"memory"` (the default: the changes last until the process exits), `"file"` (kept in `path`,
        /// across restarts) or `"etcd"` (shared by a fleet through `[state.etcd]`).
        pub store: StoreKind = StoreKind::Memory,
        /// The state file of `store = "file"`; its directory must exist and be writable. Default
        /// `/var/lib/rrlb/state.json`.
        pub path: PathBuf = PathBuf::from("/var/lib/rrlb/state.json"),
        /// The etcd cluster of `store = "etcd"` (`[state.etcd]`).
        pub etcd: EtcdConfig = EtcdConfig::default(),
    }
}

section! {
    /// The etcd cluster that a fleet of replicas shares its runtime state through (`[state.etcd]`, with
    /// `store = "etcd"`). The password is never printed.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EtcdConfig {
        /// The cluster's client URLs (`http://host:port`). Default `["http://127.0.0.1:2379"]`.
        pub endpoints: Vec<String> = vec!["http://127.0.0.1:2379".to_owned()],
        /// The key prefix of this fleet's state: runtime changes under `<prefix>/backends/`, live replicas
        /// under `<prefix>/members/`. Starts with `/`, does not end with one. Default `/rrlb/default`.
        pub prefix: String = "/rrlb/default".to_owned(),
        /// The etcd user, if the cluster has authentication on; `""`: none. Default `""`.
        pub username: String = String::new(),
        /// The etcd user's password; printed as `<redacted>`. Default `""`.
        #[serde(serialize_with = "redacted")]
        pub password: String = String::new(),
        /// How long a connection attempt may take. Default 2s.
        #[serde(with = "duration")]
        pub dial_timeout: Duration = Duration::from_secs(2),
        /// With `https://` endpoints: the CA certificates (PEM) the cluster's certificates chain to. Required
        /// for `https://`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ca: Option<PathBuf> = None,
        /// With `https://` endpoints: a client certificate (PEM) for a cluster that requires one
        /// (`--client-cert-auth`); with `key`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cert: Option<PathBuf> = None,
        /// The client certificate's key (PEM); with `cert`. Never printed.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key: Option<PathBuf> = None,
    }
}

/// A secret, printed as `<redacted>` (or `""` when empty).
fn redacted<S: serde::Serializer>(secret: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.is_empty() { "" } else { "<redacted>" })
}

/// `state.store`: where runtime changes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In memory, until the process exits.
    Memory,
    /// In `state.path`, durably.
    File,
    /// In the etcd cluster of `[state.etcd]`, shared by every replica that names it.
    Etcd,
}

section! {
    /// Service discovery (`[discovery]`): how the names of `dns` and `dns-srv` entries are resolved.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct DiscoveryConfig {
        /// The nameserver asked, `IP:PORT` (UDP and TCP); `None` (`""` in the file, the default): the system's
        /// `/etc/resolv.conf`.
        #[serde(serialize_with = "value::display_or_empty", deserialize_with = "resolver")]
        pub resolver: Option<SocketAddr> = None,
        /// How often names are re-resolved (a record's TTL never makes it slower). Default 5s.
        #[serde(with = "duration")]
        pub refresh: Duration = Duration::from_secs(5),
        /// The Kubernetes API's base URL for `kubernetes` entries (e.g. `kubectl proxy`'s
        /// `http://127.0.0.1:8001`); `None` (`""`, the default): the in-cluster configuration.
        #[serde(serialize_with = "value::display_or_empty", deserialize_with = "api_url")]
        pub kubernetes_api: Option<String> = None,
    }
}

/// `discovery.kubernetes_api`: an `http` or `https` URL with a host, or `""` for in-cluster.
fn api_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let checked = |text: &str| value::http_url(text.trim()).map(|_| text.trim().to_owned());
    value::or_none(d, true, checked)
}

/// `discovery.resolver`: `IP:PORT`, or `""` for the system's resolver.
fn resolver<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    value::or_none(d, true, value::parse_socket_addr)
}

/// `admin.token`: printed as `"<redacted>"` (its `Display`), or `""` when there is none.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AdminToken>, D::Error> {
    let parse = |text: &str| text.parse().map_err(|e: InvalidToken| e.to_string());
    value::or_none(d, false, parse)
}

impl Config {
    /// Listener settings that a reload cannot change (they need a restart): the names of the keys
    /// whose values differ between `self` and `new`.
    pub fn changes_needing_restart(&self, new: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.listen != new.listen {
            changed.push("listen");
        }
        if self.admin_listen != new.admin_listen {
            changed.push("admin_listen");
        }
        if self.state != new.state {
            changed.push("state");
        }
        changed
    }

    /// The effective configuration as a TOML document in the file's schema, for `--check` and
    /// `POST /admin/reload`. The admin token is printed as `<redacted>`; logging and the source
    /// file, which are not file keys, are leading comments.
    pub fn to_toml_string(&self) -> String {
        let file = match &self.source {
            Some(path) => format!("file: {}", path.display()),
            None => "no file".to_owned(),
        };
        let body = toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        format!(
            "# rrlb effective configuration ({file})\n\
             # log format: {}, log level: {} (flags and environment only)\n{body}",
            self.log.format.as_str(),
            self.log.level.as_str()
        )
    }
}

impl fmt::Display for Config {
    /// Same as [`Config::to_toml_string`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
        }
        for (r, name) in [
            (RetryCondition::ConnectFailure, "\"connect-failure\""),
            (RetryCondition::Timeout, "\"timeout\""),
            (RetryCondition::Reset, "\"reset\""),
            (RetryCondition::Status5xx, "\"5xx\""),
        ] {
            assert_eq!(serde_json::to_string(&r).unwrap(), name);
            assert_eq!(serde_json::from_str::<RetryCondition>(name).unwrap(), r);
        }
        assert!("fastest".parse::<Algorithm>().is_err());
    }

    #[test]
    fn retry_conditions_become_the_engines_set() {
        use rrlb_tower::RetryOn;
        let retries = RetriesConfig::default();
        assert_eq!(retries.retry_on(), RetryOn::CONNECT_FAILURE);
        let on = BTreeSet::from([RetryCondition::Timeout, RetryCondition::Status5xx]);
        let retries = RetriesConfig { on, ..retries };
        assert_eq!(retries.retry_on(), RetryOn::TIMEOUT | RetryOn::STATUS_5XX);
        let none = RetriesConfig {
            on: BTreeSet::new(),
            ..retries
        };
        assert_eq!(none.retry_on(), RetryOn::NONE);
    }
}
