//! Layering (flag > environment > file > default) and the rules that span several keys.

use std::collections::HashMap;
use std::path::Path;

use rrlb_tower::http::BackendUrl;

use super::backend::BackendConfig;
use super::cli::Cli;
use super::error::ConfigErrorKind::{Duplicate, Insecure, InvalidValue};
use super::error::{ConfigError, ConfigErrorKind, Origin};
use super::model::{ClientAuth, Config, InitialHealth};
use super::source::Source;
use super::value::check_positive;
use crate::logging::LogConfig;

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
            let reason =
                "no configuration file to reload (start rrlb with --config FILE or RRLB_CONFIG)";
            return Err(ConfigError::new(
                ConfigErrorKind::NoFile,
                Origin::Default,
                reason,
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
        let (path, text) = (path.as_ref().to_path_buf(), text.to_owned());
        resolve(cli, Some(&Source { path, text }))
    }
}

/// Where the value of a key came from, to blame it in an error.
struct Layers<'a> {
    cli: &'a Cli,
    src: Option<&'a Source>,
}

impl Layers<'_> {
    /// An error about `key`, whose value is `shown`: blamed on the flag or variable that set it,
    /// else on the file's value, else on the default.
    fn blame(&self, kind: ConfigErrorKind, key: &str, shown: &str, reason: String) -> ConfigError {
        let error = match self.cli.overrides(key) {
            Some(origin) => ConfigError::new(kind, origin, reason),
            None => match self.file(kind, key, &reason) {
                Some(error) => return error,
                None => ConfigError::new(kind, Origin::Default, reason),
            },
        };
        error.with_key(key).with_value(shown)
    }

    /// An error about the file's value of `key`, if the file sets it.
    fn file(&self, kind: ConfigErrorKind, key: &str, reason: &str) -> Option<ConfigError> {
        self.src?.error_at(kind, key, reason)
    }

    /// A rule between `keys` is broken: blames the first of them that the file sets (else names the first).
    fn blame_any(&self, kind: ConfigErrorKind, keys: &[&str], reason: String) -> ConfigError {
        let first = keys.first().copied().unwrap_or_default();
        let error = keys.iter().find_map(|key| self.file(kind, key, &reason));
        error.unwrap_or_else(|| ConfigError::new(kind, Origin::Default, reason).with_key(first))
    }
}

/// Applies the layers and validates. `src` is the file, if any.
fn resolve(cli: &Cli, src: Option<&Source>) -> Result<Config, ConfigError> {
    let mut c = src.map_or_else(|| Ok(Config::default()), Source::parse)?;
    let layers = Layers { cli, src };
    // The file's backends are checked even when flags or the environment replace them.
    file_backends(&layers, &c.backends)?;
    c.source = src.map(|s| s.path.clone());
    c.listen = cli.listen.unwrap_or(c.listen);
    c.admin_listen = cli.admin_listen.unwrap_or(c.admin_listen);
    c.algorithm = cli.algorithm.unwrap_or(c.algorithm);
    if let Some(t) = cli.timeout {
        let shown = humantime::format_duration(t).to_string();
        let blame = |reason| layers.blame(InvalidValue, "timeouts.request", &shown, reason);
        c.timeouts.request = check_positive(t).map_err(blame)?;
    }
    if cli.admin_token.is_some() {
        c.admin.token.clone_from(&cli.admin_token);
    }
    if !cli.backends.is_empty() {
        cli_backends(&layers)?;
        c.backends.clone_from(&cli.backends);
    }
    c.log = LogConfig {
        format: cli.log_format.unwrap_or_default(),
        level: cli.log_level.clone().unwrap_or_default(),
    };
    check_listeners(&layers, &c)?;
    check_sections(&layers, &c)?;
    check_discovery(&layers, &c)?;
    check_tls(&layers, &c)?;
    Ok(c)
}

/// The listeners must not collide, and an admin API reachable from other hosts needs a token.
fn check_listeners(layers: &Layers<'_>, c: &Config) -> Result<(), ConfigError> {
    let (listen, admin) = (c.listen, c.admin_listen);
    let unspecified = listen.ip().is_unspecified() || admin.ip().is_unspecified();
    if listen.port() == admin.port()
        && listen.port() != 0
        && (listen.ip() == admin.ip() || unspecified)
    {
        // Blame the one that was set (both defaults cannot clash).
        let admin_set = layers.cli.overrides("admin_listen").is_some()
            || layers.src.and_then(|s| s.span_of("admin_listen")).is_some();
        let (key, mine, other, theirs) = match admin_set {
            true => ("admin_listen", admin, "proxy", listen),
            false => ("listen", listen, "admin", admin),
        };
        let reason = format!("same port as the {other} listener ({theirs})");
        return Err(layers.blame(InvalidValue, key, &mine.to_string(), reason));
    }
    if !admin.ip().to_canonical().is_loopback() && c.admin.token.is_none() {
        let reason = "the admin API would be reachable from other hosts without authentication: \
             set a token ([admin] token, --admin-token or RRLB_ADMIN_TOKEN) or listen on a loopback address such as 127.0.0.1";
        return Err(layers.blame(
            Insecure,
            "admin_listen",
            &admin.to_string(),
            reason.to_owned(),
        ));
    }
    Ok(())
}

/// Rules between keys: each is (broken, the keys to blame in order, why).
fn check_sections(layers: &Layers<'_>, c: &Config) -> Result<(), ConfigError> {
    let d = |d| humantime::format_duration(d);
    let (h, b, l) = (&c.health, &c.circuit_breaker, &c.limits);
    let rules: [(bool, &[&str], String); 13] = [
        (
            h.timeout > h.interval,
            &["health.timeout", "health.interval"],
            format!(
                "health.timeout ({}) must not exceed health.interval ({}): probes would overlap",
                d(h.timeout),
                d(h.interval)
            ),
        ),
        (
            !h.enabled && h.initial == InitialHealth::Unhealthy,
            &["health.initial", "health.enabled"],
            "with health checks disabled no backend would ever become healthy".to_owned(),
        ),
        (
            b.min_calls > b.window,
            &["circuit_breaker.min_calls", "circuit_breaker.window"],
            format!(
                "circuit_breaker.min_calls ({}) must not exceed circuit_breaker.window ({}): \
                 the rates would never be evaluated",
                b.min_calls, b.window
            ),
        ),
        (
            b.open_duration > b.max_open_duration,
            &[
                "circuit_breaker.open_duration",
                "circuit_breaker.max_open_duration",
            ],
            format!(
                "circuit_breaker.open_duration ({}) must not exceed circuit_breaker.max_open_duration ({})",
                d(b.open_duration),
                d(b.max_open_duration)
            ),
        ),
        (
            l.rate_per_client > 0 && l.burst == 0,
            &["limits.burst"],
            "must be at least 1 while limits.rate_per_client is on (0 would refuse every request)"
                .to_owned(),
        ),
        (
            c.discovery.refresh < MIN_REFRESH,
            &["discovery.refresh"],
            format!(
                "must be at least {} (names are looked up that often)",
                d(MIN_REFRESH)
            ),
        ),
        (
            !cfg!(feature = "etcd") && c.state.store == super::StoreKind::Etcd,
            &["state.store"],
            "this rrlb was built without the `etcd` feature: it cannot keep its state in etcd"
                .to_owned(),
        ),
        (
            c.state.etcd.endpoints.is_empty()
                || c.state
                    .etcd
                    .endpoints
                    .iter()
                    .any(|e| super::value::http_url(e).is_err()),
            &["state.etcd.endpoints"],
            "must be one or more http:// or https:// URLs of the etcd cluster's clients".to_owned(),
        ),
        (
            {
                let e = &c.state.etcd.endpoints;
                let https = e.iter().filter(|u| u.starts_with("https://")).count();
                https != 0 && https != e.len()
            },
            &["state.etcd.endpoints"],
            "must be all http:// or all https://".to_owned(),
        ),
        (
            c.state
                .etcd
                .endpoints
                .iter()
                .any(|u| u.starts_with("https://"))
                && c.state.etcd.ca.is_none(),
            &["state.etcd.ca"],
            "is required with https:// endpoints (the CA the cluster's certificates chain to)"
                .to_owned(),
        ),
        (
            c.state.etcd.cert.is_some() != c.state.etcd.key.is_some(),
            &["state.etcd.cert", "state.etcd.key"],
            "must be set together (a client certificate and its key)".to_owned(),
        ),
        (
            !c.state.etcd.prefix.starts_with('/')
                || c.state.etcd.prefix.ends_with('/')
                || c.state.etcd.prefix.contains(char::is_whitespace),
            &["state.etcd.prefix"],
            "must start with `/`, not end with one, and hold no whitespace (e.g. \"/rrlb/prod\")"
                .to_owned(),
        ),
        (
            !cfg!(feature = "otel") && c.tracing.otlp_endpoint.is_some(),
            &["tracing.otlp_endpoint"],
            "this rrlb was built without the `otel` feature: it cannot export spans".to_owned(),
        ),
    ];
    match rules.into_iter().find(|(broken, _, _)| *broken) {
        Some((_, keys, reason)) => Err(layers.blame_any(InvalidValue, keys, reason)),
        None => Ok(()),
    }
}

/// The TLS sections: pairs are whole, client authentication has its CA, the subject header is a field name
/// rrlb does not set itself, and `[backends.tls]` is for `https://` backends. The files themselves are read
/// and checked when the configuration is applied (and by `rrlb --check`).
fn check_tls(layers: &Layers<'_>, c: &Config) -> Result<(), ConfigError> {
    let t = &c.tls;
    let header = t.client_subject_header.as_deref();
    let bad_header = header.is_some_and(|h| {
        http::HeaderName::from_bytes(h.as_bytes()).is_err()
            || [
                "host",
                "x-request-id",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
            ]
            .iter()
            .any(|own| own.eq_ignore_ascii_case(h))
    });
    let pair = |cert: &Option<_>, key: &Option<_>| cert.is_some() != key.is_some();
    let u = &c.upstream_tls;
    let rules: [(bool, &[&str], &str); 6] = [
        (
            pair(&t.cert, &t.key),
            &["tls.cert", "tls.key"],
            "tls.cert and tls.key go together",
        ),
        (
            !t.is_on() && !t.certificates.is_empty(),
            &["tls.certificates"],
            "[[tls.certificates]] needs the default pair (tls.cert and tls.key)",
        ),
        (
            t.client_auth != ClientAuth::None && t.client_ca.is_none(),
            &["tls.client_auth", "tls.client_ca"],
            "client certificates need tls.client_ca to verify them",
        ),
        (
            !t.is_on() && (t.client_ca.is_some() || header.is_some()),
            &["tls.client_ca", "tls.client_subject_header"],
            "client certificates need TLS on the listener (tls.cert and tls.key)",
        ),
        (
            bad_header,
            &["tls.client_subject_header"],
            "must be a header field name that rrlb does not set itself",
        ),
        (
            pair(&u.cert, &u.key),
            &["upstream_tls.cert", "upstream_tls.key"],
            "upstream_tls.cert and upstream_tls.key go together",
        ),
    ];
    if let Some((_, keys, reason)) = rules.into_iter().find(|(broken, _, _)| *broken) {
        return Err(layers.blame_any(InvalidValue, keys, reason.to_owned()));
    }
    for (i, b) in c.backends.iter().enumerate() {
        let Some(own) = &b.tls else { continue };
        let reason = if !b.url.is_https() {
            "[backends.tls] is only for https:// backends"
        } else if pair(&own.cert, &own.key) {
            "cert and key go together"
        } else {
            continue;
        };
        return Err(layers.blame_any(
            InvalidValue,
            &[&format!("backends[{i}].tls")],
            reason.to_owned(),
        ));
    }
    Ok(())
}

/// The shortest `discovery.refresh`: a lookup every few milliseconds would only load the nameserver.
const MIN_REFRESH: std::time::Duration = std::time::Duration::from_millis(50);

/// A `discovery` other than `static` needs the feature that implements it; `port_name` is for `kubernetes`;
/// a `kubernetes` URL's host is `<service>` or `<service>.<namespace>`.
fn check_discovery(layers: &Layers<'_>, c: &Config) -> Result<(), ConfigError> {
    use super::backend::Discovery::{Dns, DnsSrv, Kubernetes};
    for (i, b) in c.backends.iter().enumerate() {
        let blame = |field: &str, reason| {
            Err(layers.blame_any(InvalidValue, &[&format!("backends[{i}].{field}")], reason))
        };
        let missing = match b.discovery {
            Dns | DnsSrv if !cfg!(feature = "dns") => Some("dns"),
            Kubernetes if !cfg!(feature = "kubernetes") => Some("kubernetes"),
            _ => None,
        };
        if let Some(feature) = missing {
            let name = b.discovery.as_str();
            let why = format!(
                "this rrlb was built without the `{feature}` feature: {name:?} is not available"
            );
            return blame("discovery", why);
        }
        if b.port_name.is_some() && b.discovery != Kubernetes {
            return blame(
                "port_name",
                "port_name is only for discovery = \"kubernetes\"".to_owned(),
            );
        }
        if b.discovery == Kubernetes && !service_host(b.url.host()) {
            let why = format!(
                "with discovery = \"kubernetes\" the url's host is <service> or <service>.<namespace>, \
                 each a DNS label (a-z, 0-9, '-'); {:?} is not",
                b.url.host()
            );
            return blame("url", why);
        }
    }
    Ok(())
}

/// `<service>` or `<service>.<namespace>`, each an RFC 1123 label (what Kubernetes names Services and
/// namespaces with).
fn service_host(host: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    match host.split_once('.') {
        Some((service, namespace)) => label(service) && label(namespace),
        None => label(host),
    }
}

/// The backends seen so far, by place and by name.
#[derive(Default)]
struct Seen {
    places: HashMap<BackendUrl, usize>,
    names: HashMap<String, usize>,
}

impl Seen {
    /// The index of an earlier backend with the same place or name as `b`, and whether it is the name.
    fn repeat(&mut self, i: usize, b: &BackendConfig) -> Option<(usize, bool)> {
        let place = self.places.get(&b.url).map(|&first| (first, false));
        let found = place.or_else(|| self.names.get(&b.name).map(|&first| (first, true)));
        self.places.insert(b.url.clone(), i);
        self.names.insert(b.name.clone(), i);
        found
    }
}

/// Checks the file's list: default names valid, no URL or name twice.
fn file_backends(layers: &Layers<'_>, backends: &[BackendConfig]) -> Result<(), ConfigError> {
    let mut seen = Seen::default();
    for (i, b) in backends.iter().enumerate() {
        let key = |field: &str| format!("backends[{i}].{field}");
        let blame = |kind, field: &str, reason| Err(layers.blame_any(kind, &[&key(field)], reason));
        if let Err(e) = super::backend::check_backend_name(&b.name) {
            return blame(
                InvalidValue,
                "url",
                format!("{e} (the default name is host:port: set `name`)"),
            );
        }
        if let Some((first, is_name)) = seen.repeat(i, b) {
            let has_name = layers.src.and_then(|s| s.span_of(&key("name"))).is_some();
            let (field, what) = match (has_name, is_name) {
                (true, true) => ("name", "name"),
                (false, true) => ("url", "default name (host:port; set `name`)"),
                _ => ("url", "URL"),
            };
            let reason = format!("duplicate backend {what}: backends[{first}] has the same");
            return blame(Duplicate, field, reason);
        }
    }
    Ok(())
}

/// Checks the list given by `--backend` or `RRLB_BACKENDS`: no URL or name twice.
fn cli_backends(layers: &Layers<'_>) -> Result<(), ConfigError> {
    let args = &layers.cli.backends;
    let mut seen = Seen::default();
    for (i, arg) in args.iter().enumerate() {
        if let Some((first, is_name)) = seen.repeat(i, arg) {
            let first = args.get(first).map(ToString::to_string).unwrap_or_default();
            let what = match is_name {
                true => "default name (host:port)",
                false => "URL",
            };
            let reason = format!("duplicate backend {what}: {first} was given before");
            return Err(layers.blame(Duplicate, "backends", &arg.to_string(), reason));
        }
    }
    Ok(())
}
