//! Structured logging: `text` or `json`, with an `RUST_LOG`-style level filter (`--log-format`,
//! `--log-level`; flags and environment only).

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_new(config.level.as_str()).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Displays an error followed by each of its [`source`](std::error::Error::source)s, joined by `: `
/// (`cannot start serving: Address in use`). rrlb's errors, like hyper's, say only their own level in
/// `Display` and keep the cause as the source, so logs and messages print the whole chain with this.
///
/// ```
/// let e = std::io::Error::other("refused");
/// assert_eq!(rrlb::logging::ErrorChain(&e).to_string(), "refused");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
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
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
