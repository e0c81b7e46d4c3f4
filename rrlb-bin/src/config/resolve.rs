//! Layering (flag > environment > file > default) and validation into a [`Config`].

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use http::uri::PathAndQuery;
use toml::Spanned;

use super::backend::{
    BackendConfig, BackendSpec, DEFAULT_WEIGHT, MAX_WEIGHT, check_backend_name, parse_backend_url,
};
use super::cli::Cli;
use super::error::{ConfigError, ConfigErrorKind, Location, Origin};
use super::file::{RawDuration, RawFile, Source, Val};
use super::model::{
    AdminConfig, AdminToken, Algorithm, CircuitBreakerConfig, Config, HealthConfig, InitialHealth,
    LimitsConfig, LogConfig, RetriesConfig, RetryOn, TimeoutsConfig,
};

/// The longest duration accepted anywhere: one day. Longer values are surely mistakes, and the
/// cap keeps `Instant + Duration` arithmetic downstream far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The most extra attempts `retries.attempts` allows.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// The largest `limits.max_body_bytes`: 1 GiB (bodies are buffered in memory for retries).
pub const MAX_BODY_BYTES: u64 = 1 << 30;

const MAX_COUNT: i64 = 1_000;
const MAX_WINDOW: i64 = 10_000;
const MAX_RATE: i64 = 1_000_000;

impl Config {
    /// Builds the effective configuration: reads the file named by `--config`/`RRLB_CONFIG`
    /// (if any), then applies flags and environment over it, then defaults, and validates.
    ///
    /// Backends given by `--backend`/`RRLB_BACKENDS` replace the file's list.
    ///
    /// ```
    /// use rrlb::config::{Cli, Config};
    ///
    /// let cli = Cli::try_parse_from_env(["rrlb", "-b", "http://127.0.0.1:8081=3"], [("RRLB_TIMEOUT", "5s")])?;
    /// let config = Config::load(&cli)?;
    /// assert_eq!(config.backends[0].weight, 3);
    /// assert_eq!(config.timeouts.request, std::time::Duration::from_secs(5));
    /// assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let source = cli.config.as_deref().map(Source::read).transpose()?;
        resolve(cli, source.as_ref())
    }

    /// What `SIGHUP`, a change to the file and `POST /admin/reload` call: re-reads the file and
    /// re-applies the same flags and environment as at start-up (so they keep winning), then
    /// validates. The backend list comes from the file again, unless flags or environment gave
    /// it. On error the caller keeps its running configuration.
    ///
    /// Without a file (no `--config`/`RRLB_CONFIG`) there is nothing to re-read: that is an
    /// error for which [`ConfigError::is_no_file`] holds.
    pub fn reload(cli: &Cli) -> Result<Self, ConfigError> {
        if cli.config.is_none() {
            return Err(ConfigError::new(
                ConfigErrorKind::NoFile,
                Origin::Default,
                None,
                None,
                "no configuration file to reload (start rrlb with --config FILE or RRLB_CONFIG)"
                    .to_owned(),
                None,
            ));
        }
        Self::load(cli)
    }

    /// Like [`Config::load`], with the file's text given (`path` is used in messages and as
    /// [`Config::source`]). `cli.config` is ignored.
    pub fn from_toml_str(
        path: impl AsRef<Path>,
        text: &str,
        cli: &Cli,
    ) -> Result<Self, ConfigError> {
        let source = Source {
            path: path.as_ref().to_path_buf(),
            text: text.to_owned(),
        };
        resolve(cli, Some(&source))
    }
}

/// Where a value came from, to blame it in an error.
enum Prov {
    File {
        key: String,
        span: Range<usize>,
    },
    Cli {
        origin: Origin,
        key: &'static str,
        value: String,
    },
    Default {
        key: &'static str,
        value: String,
    },
}

struct Resolver<'a> {
    src: Option<&'a Source>,
}

impl Resolver<'_> {
    /// An invalid value at `span` of the file.
    fn at(&self, key: &str, span: Range<usize>, reason: impl Into<String>) -> ConfigError {
        self.at_kind(ConfigErrorKind::InvalidValue, key, span, reason)
    }

    fn at_kind(
        &self,
        kind: ConfigErrorKind,
        key: &str,
        span: Range<usize>,
        reason: impl Into<String>,
    ) -> ConfigError {
        match self.src {
            Some(src) => src.error(kind, key, span, reason),
            None => ConfigError::new(
                kind,
                Origin::Default,
                Some(key.to_owned()),
                None,
                reason.into(),
                None,
            ),
        }
    }

    fn blame(&self, prov: &Prov, kind: ConfigErrorKind, reason: impl Into<String>) -> ConfigError {
        match prov {
            Prov::File { key, span } => self.at_kind(kind, key, span.clone(), reason),
            Prov::Cli { origin, key, value } => ConfigError::new(
                kind,
                origin.clone(),
                Some((*key).to_owned()),
                Some(value.clone()),
                reason.into(),
                None,
            ),
            Prov::Default { key, value } => ConfigError::new(
                kind,
                Origin::Default,
                Some((*key).to_owned()),
                Some(value.clone()),
                reason.into(),
                None,
            ),
        }
    }

    /// Blames the first of `candidates` that the file set (cross-field checks).
    fn blame_first(
        &self,
        candidates: &[(&str, Option<Range<usize>>)],
        reason: String,
    ) -> ConfigError {
        match candidates.iter().find_map(|(k, s)| Some((*k, s.clone()?))) {
            Some((key, span)) => self.at(key, span, reason),
            None => ConfigError::new(
                ConfigErrorKind::InvalidValue,
                Origin::Default,
                candidates.first().map(|(k, _)| (*k).to_owned()),
                None,
                reason,
                None,
            ),
        }
    }

    fn int<T: TryFrom<i64>>(
        &self,
        key: &str,
        v: &Val<i64>,
        range: (i64, i64),
        default: T,
        note: &str,
    ) -> Result<T, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let (min, max) = range;
        let n = *v.get_ref();
        let out_of_range = || self.at(key, v.span(), format!("out of range {min}..={max}{note}"));
        if !(min..=max).contains(&n) {
            return Err(out_of_range());
        }
        T::try_from(n).map_err(|_| out_of_range())
    }

    /// A share in `[0, 1]`, or `(0, 1]` when `zero_means` explains why 0 is refused.
    fn rate(
        &self,
        key: &str,
        v: &Val<f64>,
        default: f64,
        zero_means: Option<&str>,
    ) -> Result<f64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let x = *v.get_ref();
        let ok = match zero_means {
            Some(_) => x > 0.0 && x <= 1.0,
            None => (0.0..=1.0).contains(&x),
        };
        if ok {
            return Ok(x);
        }
        Err(self.at(
            key,
            v.span(),
            match zero_means {
                Some(why) => format!("out of range (0, 1]: 0 {why}"),
                None => "out of range 0..=1".to_owned(),
            },
        ))
    }

    fn duration(
        &self,
        key: &str,
        v: &Val<RawDuration>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        check_duration(&v.get_ref().0).map_err(|reason| self.at(key, v.span(), reason))
    }

    fn socket_addr(&self, key: &str, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        let text = v.get_ref().trim();
        text.parse()
            .map_err(|_| self.at(key, v.span(), bad_addr_reason(text)))
    }

    fn named<T: FromStr>(&self, key: &str, v: &Spanned<String>) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        v.get_ref()
            .parse()
            .map_err(|e: T::Err| self.at(key, v.span(), e.to_string()))
    }
}

fn check_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("invalid duration: {e}"))?;
    if d.is_zero() {
        Err("must be greater than 0".to_owned())
    } else if d > MAX_DURATION {
        Err("at most 1 day".to_owned())
    } else {
        Ok(d)
    }
}

pub(crate) fn bad_addr_reason(text: &str) -> String {
    let hint = if text.parse::<std::net::IpAddr>().is_ok() {
        "add a port"
    } else {
        "host names are not resolved: write e.g. 0.0.0.0:8080, 127.0.0.1:9901 or [::1]:9901"
    };
    format!("not an IP:PORT socket address ({hint})")
}

/// `(value, where it came from)` for a setting with a flag: flag/env > file > default.
/// `id` is both the flag's argument id and the file's key.
fn layered<T: Copy + ToString>(
    cli: &Cli,
    id: &'static str,
    flag: Option<T>,
    file: &Val<String>,
    parse: impl Fn(&Spanned<String>) -> Result<T, ConfigError>,
    default: T,
) -> Result<(T, Prov), ConfigError> {
    // A file value that a flag overrides must still be valid: a bad file is an error whatever overrides it.
    if let (Some(_), Some(f)) = (flag, file) {
        parse(f)?;
    }
    Ok(match (flag, file) {
        (Some(v), _) => (
            v,
            Prov::Cli {
                origin: cli.origin(id),
                key: id,
                value: v.to_string(),
            },
        ),
        (None, Some(f)) => (
            parse(f)?,
            Prov::File {
                key: id.to_owned(),
                span: f.span(),
            },
        ),
        (None, None) => (
            default,
            Prov::Default {
                key: id,
                value: default.to_string(),
            },
        ),
    })
}

/// Applies the layers and validates. `src` is the file, if any.
pub(crate) fn resolve(cli: &Cli, src: Option<&Source>) -> Result<Config, ConfigError> {
    let raw = match src {
        Some(src) => src.parse()?,
        None => RawFile::default(),
    };
    let r = Resolver { src };
    let d = Config::default();

    let (listen, listen_prov) = layered(
        cli,
        "listen",
        cli.listen,
        &raw.listen,
        |v| r.socket_addr("listen", v),
        d.listen,
    )?;
    let (admin_listen, admin_prov) = layered(
        cli,
        "admin_listen",
        cli.admin_listen,
        &raw.admin_listen,
        |v| r.socket_addr("admin_listen", v),
        d.admin_listen,
    )?;
    let (algorithm, _) = layered(
        cli,
        "algorithm",
        cli.algorithm,
        &raw.algorithm,
        |v| r.named::<Algorithm>("algorithm", v),
        d.algorithm,
    )?;
    let panic_threshold = r.int(
        "panic_threshold",
        &raw.panic_threshold,
        (0, 100),
        d.panic_threshold,
        " (percent)",
    )?;

    // The file's backends are validated even when flags or the environment replace them.
    let file_list = file_backends(&r, &raw)?;
    let backends = if cli.backends.is_empty() {
        file_list
    } else {
        cli_backends(&r, cli)?
    };

    let health = health(&r, &raw)?;
    let circuit_breaker = breaker(&r, &raw)?;
    let timeouts = timeouts(&r, cli, &raw)?;
    let retries = retries(&r, &raw)?;
    let limits = limits(&r, &raw)?;
    let admin = admin(&r, cli, &raw)?;
    let log = LogConfig {
        format: cli.log_format.unwrap_or_default(),
        level: cli.log_level.clone().unwrap_or_default(),
    };

    // The listeners must not collide.
    let clash = listen.port() == admin_listen.port()
        && listen.port() != 0
        && (listen.ip() == admin_listen.ip()
            || listen.ip().is_unspecified()
            || admin_listen.ip().is_unspecified());
    if clash {
        // Blame the one that was set (both defaults cannot clash).
        return Err(if matches!(admin_prov, Prov::Default { .. }) {
            r.blame(
                &listen_prov,
                ConfigErrorKind::InvalidValue,
                format!("same port as the admin listener ({admin_listen})"),
            )
        } else {
            r.blame(
                &admin_prov,
                ConfigErrorKind::InvalidValue,
                format!("same port as the proxy listener ({listen})"),
            )
        });
    }
    // The security rule: an admin API reachable from other hosts needs a token.
    if !admin_listen.ip().to_canonical().is_loopback() && admin.token.is_none() {
        return Err(r.blame(
            &admin_prov,
            ConfigErrorKind::Insecure,
            "the admin API would be reachable from other hosts without authentication: \
             set a token ([admin] token, --admin-token or RRLB_ADMIN_TOKEN) or listen on a loopback address such as 127.0.0.1",
        ));
    }

    Ok(Config {
        source: src.map(|s| s.path.clone()),
        listen,
        admin_listen,
        algorithm,
        backends,
        panic_threshold,
        health,
        circuit_breaker,
        timeouts,
        retries,
        limits,
        admin,
        log,
    })
}

/// Rejects a second backend with the same URL or name; `blame(i)` builds the error for entry `i`.
struct Uniques {
    urls: HashMap<String, usize>,
    names: HashMap<String, usize>,
}

impl Uniques {
    fn new() -> Self {
        Self {
            urls: HashMap::new(),
            names: HashMap::new(),
        }
    }

    /// `Err((is_name, index of the first))` if `b` repeats an earlier URL or name.
    fn check(&mut self, i: usize, b: &BackendConfig) -> Result<(), (bool, usize)> {
        let url_key = format!(
            "{}://{}:{}{}",
            b.url.scheme_str().unwrap_or_default(),
            b.host().to_ascii_lowercase(),
            b.port(),
            b.path_prefix()
        );
        if let Some(&first) = self.urls.get(&url_key) {
            return Err((false, first));
        }
        if let Some(&first) = self.names.get(&b.name) {
            return Err((true, first));
        }
        self.urls.insert(url_key, i);
        self.names.insert(b.name.clone(), i);
        Ok(())
    }
}

fn file_backends(r: &Resolver<'_>, raw: &RawFile) -> Result<Vec<BackendConfig>, ConfigError> {
    let mut out = Vec::with_capacity(raw.backends.len());
    let mut uniques = Uniques::new();
    for (i, entry) in raw.backends.iter().enumerate() {
        let b = entry.get_ref();
        let key = |field: &str| format!("backends[{i}].{field}");
        let url = parse_backend_url(b.url.get_ref())
            .map_err(|e| r.at(&key("url"), b.url.span(), e.to_string()))?;
        let weight: u32 = r.int(
            &key("weight"),
            &b.weight,
            (1, i64::from(MAX_WEIGHT)),
            DEFAULT_WEIGHT,
            " (0 is refused: drain the backend instead)",
        )?;
        if let Some(name) = &b.name {
            check_backend_name(name.get_ref())
                .map_err(|e| r.at(&key("name"), name.span(), e.to_string()))?;
        }
        let spec = BackendSpec {
            url,
            weight: Some(weight),
        };
        let backend = BackendConfig::from_spec(spec, b.name.as_ref().map(|n| n.get_ref().as_str()))
            .map_err(|e| {
                r.at(
                    &key("url"),
                    b.url.span(),
                    format!("{e} (the default name is host:port: set `name`)"),
                )
            })?;
        if let Err((is_name, first)) = uniques.check(i, &backend) {
            let (field, span, what) = match (&b.name, is_name) {
                (Some(name), true) => ("name", name.span(), "name"),
                (None, true) => ("url", b.url.span(), "default name (host:port; set `name`)"),
                _ => ("url", b.url.span(), "URL"),
            };
            return Err(r.at_kind(
                ConfigErrorKind::Duplicate,
                &key(field),
                span,
                format!("duplicate backend {what}: backends[{first}] has the same"),
            ));
        }
        out.push(backend);
    }
    Ok(out)
}

fn cli_backends(r: &Resolver<'_>, cli: &Cli) -> Result<Vec<BackendConfig>, ConfigError> {
    let mut out = Vec::with_capacity(cli.backends.len());
    let mut uniques = Uniques::new();
    for (i, spec) in cli.backends.iter().enumerate() {
        let prov = Prov::Cli {
            origin: cli.origin("backends"),
            key: "backends",
            value: spec.to_string(),
        };
        let backend = BackendConfig::from_spec(spec.clone(), None)
            .map_err(|e| r.blame(&prov, ConfigErrorKind::InvalidValue, e.to_string()))?;
        if let Err((is_name, first)) = uniques.check(i, &backend) {
            let first = cli
                .backends
                .get(first)
                .map(ToString::to_string)
                .unwrap_or_default();
            let what = if is_name {
                "default name (host:port)"
            } else {
                "URL"
            };
            return Err(r.blame(
                &prov,
                ConfigErrorKind::Duplicate,
                format!("duplicate backend {what}: {first} was given before"),
            ));
        }
        out.push(backend);
    }
    Ok(out)
}

fn span_of<T>(v: &Val<T>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

fn health(r: &Resolver<'_>, raw: &RawFile) -> Result<HealthConfig, ConfigError> {
    let h = &raw.health;
    let d = HealthConfig::default();
    let path = match &h.path {
        None => d.path,
        Some(p) => {
            let text = p.get_ref();
            if !text.starts_with('/') || text.contains('#') {
                return Err(r.at(
                    "health.path",
                    p.span(),
                    "must start with / (and have no #fragment)",
                ));
            }
            PathAndQuery::from_str(text)
                .map_err(|e| r.at("health.path", p.span(), format!("invalid path: {e}")))?
        }
    };
    let out = HealthConfig {
        enabled: h.enabled.as_ref().map_or(d.enabled, |v| *v.get_ref()),
        path,
        interval: r.duration("health.interval", &h.interval, d.interval)?,
        timeout: r.duration("health.timeout", &h.timeout, d.timeout)?,
        healthy_threshold: r.int(
            "health.healthy_threshold",
            &h.healthy_threshold,
            (1, MAX_COUNT),
            d.healthy_threshold,
            "",
        )?,
        unhealthy_threshold: r.int(
            "health.unhealthy_threshold",
            &h.unhealthy_threshold,
            (1, MAX_COUNT),
            d.unhealthy_threshold,
            "",
        )?,
        initial: match &h.initial {
            None => d.initial,
            Some(v) => r.named::<InitialHealth>("health.initial", v)?,
        },
    };
    if out.timeout > out.interval {
        return Err(r.blame_first(
            &[
                ("health.timeout", span_of(&h.timeout)),
                ("health.interval", span_of(&h.interval)),
            ],
            format!(
                "health.timeout ({}) must not exceed health.interval ({}): probes would overlap",
                humantime::format_duration(out.timeout),
                humantime::format_duration(out.interval)
            ),
        ));
    }
    if !out.enabled && out.initial == InitialHealth::Unhealthy {
        return Err(r.blame_first(
            &[
                ("health.initial", span_of(&h.initial)),
                ("health.enabled", span_of(&h.enabled)),
            ],
            "with health checks disabled no backend would ever become healthy".to_owned(),
        ));
    }
    Ok(out)
}

fn breaker(r: &Resolver<'_>, raw: &RawFile) -> Result<CircuitBreakerConfig, ConfigError> {
    let b = &raw.circuit_breaker;
    let d = CircuitBreakerConfig::default();
    let out = CircuitBreakerConfig {
        consecutive_failures: r.int(
            "circuit_breaker.consecutive_failures",
            &b.consecutive_failures,
            (1, MAX_COUNT),
            d.consecutive_failures,
            "",
        )?,
        failure_rate: r.rate(
            "circuit_breaker.failure_rate",
            &b.failure_rate,
            d.failure_rate,
            Some("would open the breaker on every window"),
        )?,
        window: r.int(
            "circuit_breaker.window",
            &b.window,
            (1, MAX_WINDOW),
            d.window,
            "",
        )?,
        min_calls: r.int(
            "circuit_breaker.min_calls",
            &b.min_calls,
            (1, MAX_WINDOW),
            d.min_calls,
            "",
        )?,
        slow_call_duration: r.duration(
            "circuit_breaker.slow_call_duration",
            &b.slow_call_duration,
            d.slow_call_duration,
        )?,
        slow_call_rate: r.rate(
            "circuit_breaker.slow_call_rate",
            &b.slow_call_rate,
            d.slow_call_rate,
            Some("would open the breaker on every window"),
        )?,
        open_duration: r.duration(
            "circuit_breaker.open_duration",
            &b.open_duration,
            d.open_duration,
        )?,
        max_open_duration: r.duration(
            "circuit_breaker.max_open_duration",
            &b.max_open_duration,
            d.max_open_duration,
        )?,
        half_open_max_calls: r.int(
            "circuit_breaker.half_open_max_calls",
            &b.half_open_max_calls,
            (1, MAX_COUNT),
            d.half_open_max_calls,
            "",
        )?,
    };
    if out.min_calls > out.window {
        return Err(r.blame_first(
            &[("circuit_breaker.min_calls", span_of(&b.min_calls)), ("circuit_breaker.window", span_of(&b.window))],
            format!(
                "circuit_breaker.min_calls ({}) must not exceed circuit_breaker.window ({}): the rates would never be evaluated",
                out.min_calls, out.window
            ),
        ));
    }
    if out.open_duration > out.max_open_duration {
        return Err(r.blame_first(
            &[
                ("circuit_breaker.open_duration", span_of(&b.open_duration)),
                ("circuit_breaker.max_open_duration", span_of(&b.max_open_duration)),
            ],
            format!(
                "circuit_breaker.open_duration ({}) must not exceed circuit_breaker.max_open_duration ({})",
                humantime::format_duration(out.open_duration),
                humantime::format_duration(out.max_open_duration)
            ),
        ));
    }
    Ok(out)
}

fn timeouts(r: &Resolver<'_>, cli: &Cli, raw: &RawFile) -> Result<TimeoutsConfig, ConfigError> {
    let t = &raw.timeouts;
    let d = TimeoutsConfig::default();
    // Validated even when `--timeout` overrides it.
    let file_request = r.duration("timeouts.request", &t.request, d.request)?;
    let request = match cli.timeout {
        Some(v) => {
            if v.is_zero() || v > MAX_DURATION {
                let prov = Prov::Cli {
                    origin: cli.origin("timeout"),
                    key: "timeouts.request",
                    value: humantime::format_duration(v).to_string(),
                };
                let reason = if v.is_zero() {
                    "must be greater than 0"
                } else {
                    "at most 1 day"
                };
                return Err(r.blame(&prov, ConfigErrorKind::InvalidValue, reason));
            }
            v
        }
        None => file_request,
    };
    Ok(TimeoutsConfig {
        request,
        connect: r.duration("timeouts.connect", &t.connect, d.connect)?,
        header_read: r.duration("timeouts.header_read", &t.header_read, d.header_read)?,
        body_read: r.duration("timeouts.body_read", &t.body_read, d.body_read)?,
        drain: r.duration("timeouts.drain", &t.drain, d.drain)?,
    })
}

fn retries(r: &Resolver<'_>, raw: &RawFile) -> Result<RetriesConfig, ConfigError> {
    let t = &raw.retries;
    let d = RetriesConfig::default();
    let on = match &t.on {
        None => d.on,
        Some(list) => {
            let mut on = BTreeSet::new();
            for (i, v) in list.iter().enumerate() {
                on.insert(r.named::<RetryOn>(&format!("retries.on[{i}]"), v)?);
            }
            on
        }
    };
    Ok(RetriesConfig {
        attempts: r.int(
            "retries.attempts",
            &t.attempts,
            (0, i64::from(MAX_RETRY_ATTEMPTS)),
            d.attempts,
            "",
        )?,
        on,
        budget_ratio: r.rate(
            "retries.budget_ratio",
            &t.budget_ratio,
            d.budget_ratio,
            None,
        )?,
        budget_min_per_second: r.int(
            "retries.budget_min_per_second",
            &t.budget_min_per_second,
            (0, MAX_RATE),
            d.budget_min_per_second,
            "",
        )?,
    })
}

fn limits(r: &Resolver<'_>, raw: &RawFile) -> Result<LimitsConfig, ConfigError> {
    let l = &raw.limits;
    let d = LimitsConfig::default();
    let max_body = i64::try_from(MAX_BODY_BYTES).unwrap_or(i64::MAX);
    let out = LimitsConfig {
        max_body_bytes: r.int(
            "limits.max_body_bytes",
            &l.max_body_bytes,
            (1, max_body),
            d.max_body_bytes,
            " (1 GiB)",
        )?,
        rate_per_client: r.int(
            "limits.rate_per_client",
            &l.rate_per_client,
            (0, MAX_RATE),
            d.rate_per_client,
            " (0 = off)",
        )?,
        burst: r.int("limits.burst", &l.burst, (0, MAX_RATE), d.burst, "")?,
    };
    if out.rate_per_client > 0 && out.burst == 0 {
        return Err(r.blame_first(
            &[("limits.burst", span_of(&l.burst))],
            "must be at least 1 while limits.rate_per_client is on (0 would refuse every request)"
                .to_owned(),
        ));
    }
    Ok(out)
}

fn admin(r: &Resolver<'_>, cli: &Cli, raw: &RawFile) -> Result<AdminConfig, ConfigError> {
    let file_token = match &raw.admin.token {
        Some(v) if !v.get_ref().is_empty() => {
            Some(v.get_ref().parse::<AdminToken>().map_err(|e| {
                // Never quote the token itself.
                ConfigError::new(
                    ConfigErrorKind::InvalidValue,
                    r.src.map_or(Origin::Default, Source::origin),
                    Some("admin.token".to_owned()),
                    Some("<redacted>".to_owned()),
                    e.to_string(),
                    r.src.map(|s| Location::of(&s.text, v.span().start)),
                )
            })?)
        }
        _ => None,
    };
    // The flag or variable wins, but a bad token in the file is an error all the same.
    let token = cli.admin_token.clone().or(file_token);
    Ok(AdminConfig { token })
}
