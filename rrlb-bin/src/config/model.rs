//! The effective configuration: validated, fully defaulted, strongly typed.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::uri::PathAndQuery;
use serde::Serialize;

use super::backend::BackendConfig;

/// The validated configuration rrlb runs with. Build it with [`Config::load`].
///
/// `Debug` and [`Config::to_toml_string`] never show the admin token.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The TOML file it was read from (`--config`/`RRLB_CONFIG`), if any.
    pub source: Option<PathBuf>,
    /// Proxy listener (`listen`, `--listen`, `RRLB_LISTEN`). Default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Admin listener (`admin_listen`, `--admin-listen`, `RRLB_ADMIN_LISTEN`). Default `127.0.0.1:9901`.
    pub admin_listen: SocketAddr,
    /// Balancing algorithm. Default round robin.
    pub algorithm: Algorithm,
    /// Backends, in order; names and URLs are unique. May be empty (every request then gets `503`
    /// until backends are added through the admin API).
    pub backends: Vec<BackendConfig>,
    /// Panic threshold in percent (`0..=100`, 0 = off): when fewer than this share of the backends
    /// is eligible, balance over all of them, ignoring health and breakers.
    pub panic_threshold: u8,
    /// Active health checks.
    pub health: HealthConfig,
    /// Passive, per-backend circuit breaker.
    pub circuit_breaker: CircuitBreakerConfig,
    /// Timeouts.
    pub timeouts: TimeoutsConfig,
    /// Retries on another backend.
    pub retries: RetriesConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Admin API.
    pub admin: AdminConfig,
    /// Logging (flags and environment only).
    pub log: LogConfig,
}

impl Default for Config {
    /// SPEC's defaults, with no backends and no file.
    fn default() -> Self {
        Self {
            source: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            algorithm: Algorithm::default(),
            backends: Vec::new(),
            panic_threshold: 0,
            health: HealthConfig::default(),
            circuit_breaker: CircuitBreakerConfig::default(),
            timeouts: TimeoutsConfig::default(),
            retries: RetriesConfig::default(),
            limits: LimitsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// The balancing algorithm: `round-robin`, `weighted-round-robin`, `least-request` or `random` (the engine's own
/// type: its names, parsing and errors are the configuration's).
pub use rrlb_core::Algorithm;

/// An unknown name for an enum-valued setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} (expected one of {expected})")]
pub struct UnknownName {
    what: &'static str,
    expected: &'static str,
}

/// Active health checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Whether active checks run (extension; default `true`). Without them every backend counts
    /// as healthy and only the circuit breaker takes backends out.
    pub enabled: bool,
    /// Path (and optional query) probed with `GET`. Default `/health`.
    pub path: PathAndQuery,
    /// Time between probes of one backend. Default 2s.
    pub interval: Duration,
    /// Probe timeout, at most `interval`. Default 1s.
    pub timeout: Duration,
    /// Consecutive passes for an unhealthy backend to become healthy (rise). Default 2.
    pub healthy_threshold: u32,
    /// Consecutive failures for a healthy backend to become unhealthy (fall). Default 3.
    pub unhealthy_threshold: u32,
    /// The health a new backend starts with (extension; default healthy).
    pub initial: InitialHealth,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: PathAndQuery::from_static("/health"),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            initial: InitialHealth::Healthy,
        }
    }
}

/// The health a backend starts with, before its first check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InitialHealth {
    /// `"healthy"`: serve traffic at once; the checks take it out if it fails.
    #[default]
    Healthy,
    /// `"unhealthy"`: wait for `healthy_threshold` passing checks first.
    Unhealthy,
}

impl InitialHealth {
    /// The name used in the file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl FromStr for InitialHealth {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "healthy" => Ok(Self::Healthy),
            "unhealthy" => Ok(Self::Unhealthy),
            _ => Err(UnknownName {
                what: "initial health",
                expected: "healthy, unhealthy",
            }),
        }
    }
}

/// The passive circuit breaker, one per backend: the `[circuit_breaker]` section is exactly the engine's
/// [`BreakerParams`](rrlb_core::BreakerParams) (same keys, same defaults: 5 consecutive failures, failure rate 0.5
/// over a window of 20 after 10 calls, slow calls over 1s at a rate of 0.8, open 5s doubling up to 2m, 3
/// half-open probes).
pub type CircuitBreakerConfig = rrlb_core::BreakerParams;

/// Timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutsConfig {
    /// Per upstream attempt (`--timeout`, `RRLB_TIMEOUT`). Default 2s.
    pub request: Duration,
    /// Connecting to a backend. Default 500ms.
    pub connect: Duration,
    /// A client must send its request headers within this. Default 10s.
    pub header_read: Duration,
    /// A client must send each part of its request body within this of the previous one (a body that stalls
    /// is answered `408` and the connection closed). Default 30s.
    pub body_read: Duration,
    /// Graceful shutdown waits at most this long for in-flight requests (extension). Default 30s.
    pub drain: Duration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(2),
            connect: Duration::from_millis(500),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            drain: Duration::from_secs(30),
        }
    }
}

/// When a failed attempt is retried on another backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RetryOn {
    /// `"connect-failure"`: the connection could not be made (nothing reached the backend).
    ConnectFailure,
    /// `"timeout"`: the attempt exceeded `timeouts.request`.
    Timeout,
    /// `"reset"`: the connection was reset before a response arrived.
    Reset,
    /// `"5xx"`: the backend answered with a 5xx status.
    Status5xx,
}

impl RetryOn {
    /// Every condition, in documentation order.
    pub const ALL: [Self; 4] = [
        Self::ConnectFailure,
        Self::Timeout,
        Self::Reset,
        Self::Status5xx,
    ];

    /// The name used in the file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConnectFailure => "connect-failure",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::Status5xx => "5xx",
        }
    }
}

impl FromStr for RetryOn {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownName {
                what: "retry condition",
                expected: "connect-failure, timeout, reset, 5xx",
            })
    }
}

/// Retries on another backend.
#[derive(Debug, Clone, PartialEq)]
pub struct RetriesConfig {
    /// Extra attempts, each on a different backend, `0..=10`. Default 2.
    pub attempts: u32,
    /// Which failures are retried. Default connect failures only.
    pub on: BTreeSet<RetryOn>,
    /// Retries are at most this share of requests, in `[0, 1]` (extension). Default 0.2.
    pub budget_ratio: f64,
    /// … but this many retries per second are always allowed (extension). Default 10.
    pub budget_min_per_second: u32,
}

impl Default for RetriesConfig {
    fn default() -> Self {
        Self {
            attempts: 2,
            on: BTreeSet::from([RetryOn::ConnectFailure]),
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest request body accepted (`413` above), `1..=1 GiB`. Default 1 MiB.
    pub max_body_bytes: u64,
    /// Requests per second per client IP; 0 = off. Default 0.
    pub rate_per_client: u32,
    /// Burst allowed above the rate, at least 1 when the rate is on. Default 50.
    pub burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            rate_per_client: 0,
            burst: 50,
        }
    }
}

/// The admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// Bearer token required by mutating admin calls; `None` = no authentication
    /// (only allowed when the admin listener is on a loopback address).
    pub token: Option<AdminToken>,
}

/// A bearer token. `Debug` and `Display` print `<redacted>`; read it with [`AdminToken::expose`]
/// and compare with [`AdminToken::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidToken(&'static str);

impl AdminToken {
    /// The longest token accepted, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// The token itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares `presented` with the token in time independent of where they differ.
    pub fn verify(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        std::hint::black_box(diff) == 0
    }
}

impl FromStr for AdminToken {
    type Err = InvalidToken;

    /// Accepts 1 to 1024 visible ASCII characters (what fits in `authorization: Bearer TOKEN`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            Err(InvalidToken("empty token"))
        } else if s.len() > Self::MAX_LEN {
            Err(InvalidToken("token longer than 1024 characters"))
        } else if !s.bytes().all(|b| b.is_ascii_graphic()) {
            Err(InvalidToken(
                "a token is visible ASCII characters only (no spaces or control characters)",
            ))
        } else {
            Ok(Self(s.to_owned()))
        }
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// Output format (`--log-format`, `RRLB_LOG_FORMAT`). Default text.
    pub format: LogFormat,
    /// Level filter (`--log-level`, `RRLB_LOG`). Default `info`.
    pub level: LogLevel,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in flags and the environment.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// A log level filter: comma-separated directives, each `LEVEL` or `TARGET=LEVEL`, where LEVEL
/// is one of `trace`, `debug`, `info`, `warn`, `error`, `off` (e.g. `info,rrlb=debug`). This is
/// the subset of `tracing_subscriber::EnvFilter` syntax without span filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

/// Why a log level filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid log directive {0:?}: expected LEVEL or TARGET=LEVEL, LEVEL one of trace, debug, info, warn, error, off"
)]
pub struct InvalidLogLevel(String);

impl LogLevel {
    /// The filter as given, for `EnvFilter::try_new`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LogLevel {
    fn default() -> Self {
        Self("info".to_owned())
    }
}

impl FromStr for LogLevel {
    type Err = InvalidLogLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l));
        let is_target = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b))
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidLogLevel(String::new()));
        }
        for directive in s.split(',') {
            let d = directive.trim();
            let ok = match d.split_once('=') {
                Some((target, level)) => is_target(target) && is_level(level),
                None => is_level(d),
            };
            if !ok {
                return Err(InvalidLogLevel(d.to_owned()));
            }
        }
        Ok(Self(s.to_owned()))
    }
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
        changed
    }

    /// The effective configuration as a TOML document in the file's schema, for `--check` and
    /// `POST /admin/reload`. The admin token is printed as `<redacted>`; logging and the source
    /// file, which are not file keys, are leading comments.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::from("# rrlb effective configuration");
        match &self.source {
            Some(path) => out.push_str(&format!(" (file: {})\n", path.display())),
            None => out.push_str(" (no file)\n"),
        }
        out.push_str(&format!(
            "# log format: {}, log level: {} (flags and environment only)\n",
            self.log.format.as_str(),
            self.log.level.as_str()
        ));
        match toml::to_string(&Document::from(self)) {
            Ok(body) => out.push_str(&body),
            Err(e) => out.push_str(&format!("# cannot render: {e}\n")),
        }
        out
    }
}

impl fmt::Display for Config {
    /// Same as [`Config::to_toml_string`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml_string())
    }
}

impl Serialize for Config {
    /// Serializes in the file's schema (durations as `"2s"`, the token as `"<redacted>"`), so
    /// the admin API can answer with it as JSON.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Document::from(self).serialize(serializer)
    }
}

/// The file schema, for output. Plain values come before tables, as TOML requires.
#[derive(Serialize)]
struct Document {
    listen: String,
    admin_listen: String,
    algorithm: &'static str,
    panic_threshold: u8,
    backends: Vec<BackendDoc>,
    health: HealthDoc,
    circuit_breaker: BreakerDoc,
    timeouts: TimeoutsDoc,
    retries: RetriesDoc,
    limits: LimitsDoc,
    admin: AdminDoc,
}

#[derive(Serialize)]
struct BackendDoc {
    url: String,
    weight: u32,
    name: String,
}

#[derive(Serialize)]
struct HealthDoc {
    enabled: bool,
    path: String,
    interval: String,
    timeout: String,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    initial: &'static str,
}

#[derive(Serialize)]
struct BreakerDoc {
    consecutive_failures: u32,
    failure_rate: f64,
    window: u32,
    min_calls: u32,
    slow_call_duration: String,
    slow_call_rate: f64,
    open_duration: String,
    max_open_duration: String,
    half_open_max_calls: u32,
}

#[derive(Serialize)]
struct TimeoutsDoc {
    request: String,
    connect: String,
    header_read: String,
    body_read: String,
    drain: String,
}

#[derive(Serialize)]
struct RetriesDoc {
    attempts: u32,
    on: Vec<&'static str>,
    budget_ratio: f64,
    budget_min_per_second: u32,
}

#[derive(Serialize)]
struct LimitsDoc {
    max_body_bytes: u64,
    rate_per_client: u32,
    burst: u32,
}

#[derive(Serialize)]
struct AdminDoc {
    token: &'static str,
}

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl From<&Config> for Document {
    fn from(c: &Config) -> Self {
        let h = &c.health;
        let b = &c.circuit_breaker;
        let t = &c.timeouts;
        Self {
            listen: c.listen.to_string(),
            admin_listen: c.admin_listen.to_string(),
            algorithm: c.algorithm.as_str(),
            panic_threshold: c.panic_threshold,
            backends: c
                .backends
                .iter()
                .map(|b| BackendDoc {
                    url: b.url_string(),
                    weight: b.weight,
                    name: b.name.clone(),
                })
                .collect(),
            health: HealthDoc {
                enabled: h.enabled,
                path: h.path.to_string(),
                interval: duration(h.interval),
                timeout: duration(h.timeout),
                healthy_threshold: h.healthy_threshold,
                unhealthy_threshold: h.unhealthy_threshold,
                initial: h.initial.as_str(),
            },
            circuit_breaker: BreakerDoc {
                consecutive_failures: b.consecutive_failures,
                failure_rate: b.failure_rate,
                window: b.window,
                min_calls: b.min_calls,
                slow_call_duration: duration(b.slow_call_duration),
                slow_call_rate: b.slow_call_rate,
                open_duration: duration(b.open_duration),
                max_open_duration: duration(b.max_open_duration),
                half_open_max_calls: b.half_open_max_calls,
            },
            timeouts: TimeoutsDoc {
                request: duration(t.request),
                connect: duration(t.connect),
                header_read: duration(t.header_read),
                body_read: duration(t.body_read),
                drain: duration(t.drain),
            },
            retries: RetriesDoc {
                attempts: c.retries.attempts,
                on: c.retries.on.iter().map(|r| r.as_str()).collect(),
                budget_ratio: c.retries.budget_ratio,
                budget_min_per_second: c.retries.budget_min_per_second,
            },
            limits: LimitsDoc {
                max_body_bytes: c.limits.max_body_bytes,
                rate_per_client: c.limits.rate_per_client,
                burst: c.limits.burst,
            },
            admin: AdminDoc {
                token: if c.admin.token.is_some() {
                    "<redacted>"
                } else {
                    ""
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_and_verified() {
        let t: AdminToken = "s3cret".parse().unwrap();
        assert_eq!(format!("{t:?} {t}"), "<redacted> <redacted>");
        assert!(t.verify("s3cret"));
        assert!(!t.verify("s3cre"));
        assert!(!t.verify("s3cret!"));
        assert!(!t.verify(""));
        assert!("".parse::<AdminToken>().is_err());
        assert!("a b".parse::<AdminToken>().is_err());
    }

    #[test]
    fn log_levels() {
        for ok in [
            "info",
            "DEBUG",
            "info,rrlb=debug",
            "hyper::proto=warn, rrlb_core=trace",
        ] {
            assert!(ok.parse::<LogLevel>().is_ok(), "{ok}");
        }
        for bad in ["", "loud", "rrlb=", "=info", "info,,debug", "a b=info"] {
            assert!(bad.parse::<LogLevel>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
        }
        for r in RetryOn::ALL {
            assert_eq!(r.as_str().parse::<RetryOn>(), Ok(r));
        }
        assert!("fastest".parse::<Algorithm>().is_err());
    }
}
