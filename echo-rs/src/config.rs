//! Configuration: what the service is called, how slow it is, whether chaos routes exist.
//!
//! The binary reads it from the environment ([`Config::from_env`]); embedders build it in code
//! ([`Config::new`] and the `with_*` methods). Parsing is separated from the process environment
//! ([`Config::from_lookup`]) so it can be tested without touching global state.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::HeaderValue;

/// The service name used when `SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "echo-rs";

/// The port used when `PORT` is not set.
pub const DEFAULT_PORT: u16 = 8084;

/// The largest delay accepted from `ECHO_DELAY_MS` or `POST /_chaos` (10 minutes), in milliseconds.
pub const MAX_DELAY_MS: u64 = 600_000;

/// How long a graceful shutdown waits for in-flight requests by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How an echo service behaves.
///
/// Build one with [`Config::new`] (or [`Config::default`]) and adjust it with the `with_*`
/// methods, or read it from the environment with [`Config::from_env`].
///
/// ```
/// use std::time::Duration;
/// use echo_rs::Config;
///
/// let config = Config::new("backend-a")
///     .with_delay(Duration::from_millis(5))
///     .with_chaos_routes(true);
/// assert_eq!(config.service_name, "backend-a");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Sent in `x-echo-service` on every response and in `/health` (`SERVICE_NAME`).
    pub service_name: String,
    /// Where the `echo-rs` binary listens (`HOST`, `PORT`). [`serve`](crate::serve) and
    /// [`EchoServer`](crate::EchoServer) are given their listener or address explicitly and
    /// ignore this field.
    pub listen: SocketAddr,
    /// Latency added to every echo before answering (`ECHO_DELAY_MS`). It is also the delay
    /// that `DELETE /_chaos` and [`Chaos::reset`](crate::Chaos::reset) return to.
    pub delay: Duration,
    /// Whether the `/_chaos` routes exist (`ECHO_CHAOS=1`). When off, `/_chaos` is an
    /// ordinary echo path. The [`Chaos`](crate::Chaos) handle works either way.
    pub chaos_routes: bool,
    /// How long a graceful shutdown waits for in-flight requests before it aborts them.
    pub drain_timeout: Duration,
}

impl Default for Config {
    /// The binary's defaults: `echo-rs` on `0.0.0.0:8084`, no delay, no chaos routes.
    fn default() -> Self {
        Self::new(DEFAULT_SERVICE_NAME)
    }
}

impl Config {
    /// A configuration with the given service name and every other setting at its default.
    ///
    /// The name must be a valid HTTP header value (visible ASCII); servers refuse to start with
    /// an invalid one, see [`Config::validate`].
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT),
            delay: Duration::ZERO,
            chaos_routes: false,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// Sets the latency added to every echo.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Enables or disables the `/_chaos` routes.
    #[must_use]
    pub fn with_chaos_routes(mut self, enabled: bool) -> Self {
        self.chaos_routes = enabled;
        self
    }

    /// Sets where the binary listens.
    #[must_use]
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Sets how long a graceful shutdown waits for in-flight requests.
    #[must_use]
    pub fn with_drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.drain_timeout = drain_timeout;
        self
    }

    /// Checks the settings that the environment parser also checks.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the service name is empty or not a valid header value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name(&self.service_name)
    }

    /// Reads `SERVICE_NAME`, `HOST`, `PORT`, `ECHO_DELAY_MS` and `ECHO_CHAOS` from the process
    /// environment. Unset or empty variables take their defaults.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the variable and its value when a value is malformed, e.g.
    /// `PORT=abc` or `ECHO_DELAY_MS=-1`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Like [`Config::from_env`], reading variables through `lookup` instead of the process
    /// environment.
    ///
    /// ```
    /// use echo_rs::Config;
    ///
    /// let config = Config::from_lookup(|key| (key == "PORT").then(|| "0".to_owned())).unwrap();
    /// assert_eq!(config.listen.port(), 0);
    /// assert!(Config::from_lookup(|key| (key == "PORT").then(|| "abc".to_owned())).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Config::from_env`].
    pub fn from_lookup<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |key: &str| lookup(key).filter(|value| !value.is_empty());
        let mut config = Self::default();

        if let Some(name) = get("SERVICE_NAME") {
            validate_name(&name)?;
            config.service_name = name;
        }
        if let Some(host) = get("HOST") {
            let ip = if host == "localhost" {
                Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))
            } else {
                host.parse::<IpAddr>()
            };
            let ip = ip.map_err(|_| ConfigError::invalid("HOST", &host, "an IP address"))?;
            config.listen.set_ip(ip);
        }
        if let Some(port) = get("PORT") {
            let port = port
                .parse::<u16>()
                .map_err(|_| ConfigError::invalid("PORT", &port, "a port number 0..=65535"))?;
            config.listen.set_port(port);
        }
        if let Some(delay) = get("ECHO_DELAY_MS") {
            let millis = delay
                .parse::<u64>()
                .ok()
                .filter(|millis| *millis <= MAX_DELAY_MS)
                .ok_or_else(|| {
                    ConfigError::invalid("ECHO_DELAY_MS", &delay, "an integer 0..=600000")
                })?;
            config.delay = Duration::from_millis(millis);
        }
        config.chaos_routes = get("ECHO_CHAOS").is_some_and(|value| value == "1");
        Ok(config)
    }
}

fn validate_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || HeaderValue::from_str(name).is_err() {
        return Err(ConfigError::invalid(
            "SERVICE_NAME",
            name,
            "a non-empty name of visible ASCII characters",
        ));
    }
    Ok(())
}

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: expected {expected}")]
pub struct ConfigError {
    variable: &'static str,
    value: String,
    expected: &'static str,
}

impl ConfigError {
    fn invalid(variable: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            variable,
            value: value.to_owned(),
            expected,
        }
    }

    /// The environment variable whose value was refused, e.g. `"PORT"`.
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// The refused value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|key| {
            vars.iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.service_name, "echo-rs");
        assert_eq!(config.listen, "0.0.0.0:8084".parse().unwrap());
        assert_eq!(config.delay, Duration::ZERO);
        assert!(!config.chaos_routes);
        assert_eq!(config.drain_timeout, Duration::from_secs(30));
    }

    #[test]
    fn reads_every_variable() {
        let config = parse(&[
            ("SERVICE_NAME", "blue"),
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("ECHO_DELAY_MS", "600000"),
            ("ECHO_CHAOS", "1"),
        ])
        .unwrap();
        assert_eq!(config.service_name, "blue");
        assert_eq!(config.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.delay, Duration::from_secs(600));
        assert!(config.chaos_routes);
    }

    #[test]
    fn empty_values_are_defaults() {
        let config = parse(&[("PORT", ""), ("SERVICE_NAME", ""), ("HOST", "")]).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn ipv6_and_localhost_hosts() {
        assert_eq!(
            parse(&[("HOST", "::1")]).unwrap().listen.ip(),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse(&[("HOST", "localhost")]).unwrap().listen.ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn chaos_only_with_exactly_one() {
        for value in ["0", "true", "yes", "on", " 1", "11"] {
            assert!(
                !parse(&[("ECHO_CHAOS", value)]).unwrap().chaos_routes,
                "{value}"
            );
        }
    }

    #[test]
    fn refuses_bad_values() {
        for (variable, value) in [
            ("PORT", "abc"),
            ("PORT", "-1"),
            ("PORT", "65536"),
            ("PORT", " 80"),
            ("ECHO_DELAY_MS", "-1"),
            ("ECHO_DELAY_MS", "1.5"),
            ("ECHO_DELAY_MS", "600001"),
            ("HOST", "example.com"),
            ("SERVICE_NAME", "bad\nname"),
        ] {
            let err = parse(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable(), variable);
            assert_eq!(err.value(), value);
            assert!(err.to_string().contains(variable), "{err}");
        }
    }

    #[test]
    fn validate_checks_the_name() {
        assert!(Config::new("ok-name").validate().is_ok());
        assert!(Config::new("").validate().is_err());
        assert!(Config::new("tab\u{7f}").validate().is_err());
    }
}
