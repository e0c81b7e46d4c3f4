//! The TOML file as written: every key optional, every value kept with its place in the file,
//! so that errors can name the key, quote the value and give its line.
//!
//! Serde checks the shape (unknown keys, wrong TOML types); [`super::resolve`] checks the values.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigErrorKind, Location, Origin};

/// A value and where it is in the file.
pub(crate) type Val<T> = Option<Spanned<T>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawFile {
    pub(crate) listen: Val<String>,
    pub(crate) admin_listen: Val<String>,
    pub(crate) algorithm: Val<String>,
    pub(crate) panic_threshold: Val<i64>,
    #[serde(default)]
    pub(crate) backends: Vec<Spanned<RawBackend>>,
    #[serde(default)]
    pub(crate) health: RawHealth,
    #[serde(default)]
    pub(crate) circuit_breaker: RawBreaker,
    #[serde(default)]
    pub(crate) timeouts: RawTimeouts,
    #[serde(default)]
    pub(crate) retries: RawRetries,
    #[serde(default)]
    pub(crate) limits: RawLimits,
    #[serde(default)]
    pub(crate) admin: RawAdmin,
}

/// One `[[backends]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawBackend {
    pub(crate) url: Spanned<String>,
    pub(crate) weight: Val<i64>,
    pub(crate) name: Val<String>,
}

/// `[health]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawHealth {
    pub(crate) enabled: Val<bool>,
    pub(crate) path: Val<String>,
    pub(crate) interval: Val<RawDuration>,
    pub(crate) timeout: Val<RawDuration>,
    pub(crate) healthy_threshold: Val<i64>,
    pub(crate) unhealthy_threshold: Val<i64>,
    pub(crate) initial: Val<String>,
}

/// `[circuit_breaker]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawBreaker {
    pub(crate) consecutive_failures: Val<i64>,
    pub(crate) failure_rate: Val<f64>,
    pub(crate) window: Val<i64>,
    pub(crate) min_calls: Val<i64>,
    pub(crate) slow_call_duration: Val<RawDuration>,
    pub(crate) slow_call_rate: Val<f64>,
    pub(crate) open_duration: Val<RawDuration>,
    pub(crate) max_open_duration: Val<RawDuration>,
    pub(crate) half_open_max_calls: Val<i64>,
}

/// `[timeouts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawTimeouts {
    pub(crate) request: Val<RawDuration>,
    pub(crate) connect: Val<RawDuration>,
    pub(crate) header_read: Val<RawDuration>,
    pub(crate) body_read: Val<RawDuration>,
    pub(crate) drain: Val<RawDuration>,
}

/// `[retries]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawRetries {
    pub(crate) attempts: Val<i64>,
    pub(crate) on: Option<Vec<Spanned<String>>>,
    pub(crate) budget_ratio: Val<f64>,
    pub(crate) budget_min_per_second: Val<i64>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawLimits {
    pub(crate) max_body_bytes: Val<i64>,
    pub(crate) rate_per_client: Val<i64>,
    pub(crate) burst: Val<i64>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawAdmin {
    pub(crate) token: Val<String>,
}

/// A duration as written (`"2s"`); a non-string is refused with a hint.
#[derive(Debug)]
pub(crate) struct RawDuration(pub(crate) String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration string with a unit, such as "250ms", "2s" or "5m""#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_owned()))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// The file's path and text: turns spans into errors that name the file, key, value and line.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// The longest value quoted in an error message, in characters.
const MAX_QUOTED: usize = 60;

impl Source {
    /// Reads the file.
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(path, &e))?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Parses the text into the raw schema.
    pub(crate) fn parse(&self) -> Result<RawFile, ConfigError> {
        toml::from_str::<RawFile>(&self.text).map_err(|e| self.toml_error(&e))
    }

    pub(crate) fn origin(&self) -> Origin {
        Origin::File(self.path.clone())
    }

    /// An error about the value at `span`, quoting its source text.
    pub(crate) fn error(
        &self,
        kind: ConfigErrorKind,
        key: impl Into<String>,
        span: Range<usize>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(
            kind,
            self.origin(),
            Some(key.into()),
            Some(self.quote(span.clone())),
            reason.into(),
            Some(Location::of(&self.text, span.start)),
        )
    }

    /// The source text at `span`, on one line and shortened.
    fn quote(&self, span: Range<usize>) -> String {
        let bytes = self.text.as_bytes();
        let end = span.end.min(bytes.len());
        let start = span.start.min(end);
        let raw = String::from_utf8_lossy(bytes.get(start..end).unwrap_or_default());
        let line = raw.lines().next().unwrap_or_default();
        let mut quoted: String = line.chars().take(MAX_QUOTED).collect();
        if quoted.len() < raw.len() {
            quoted.push('…');
        }
        quoted
    }

    /// Maps toml's error to ours: the key path is found by locating the error's span in the
    /// parsed document.
    fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let origin = self.origin();
        let message = err.message().trim_end().to_owned();
        let location = err.span().map(|s| Location::of(&self.text, s.start));
        let doc = match DeTable::parse(&self.text) {
            Ok(doc) => doc,
            Err(syntax) => {
                let location = syntax.span().map(|s| Location::of(&self.text, s.start));
                let reason = format!("TOML syntax error: {}", syntax.message().trim_end());
                return ConfigError::new(
                    ConfigErrorKind::Syntax,
                    origin,
                    None,
                    None,
                    reason,
                    location,
                );
            }
        };
        let Some(span) = err.span() else {
            return ConfigError::new(
                ConfigErrorKind::InvalidValue,
                origin,
                None,
                None,
                message,
                None,
            );
        };
        let key = locate(doc.get_ref(), span.start);
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let expected = rest.split_once("`, ").map_or("", |(_, r)| r);
            let reason = if expected.starts_with("there are no fields") {
                "this table has no keys".to_owned()
            } else {
                expected.to_owned()
            };
            return ConfigError::new(
                ConfigErrorKind::UnknownKey,
                origin,
                key,
                None,
                reason,
                location,
            );
        }
        let value = if message.starts_with("missing field") {
            None
        } else {
            Some(self.quote(span))
        };
        ConfigError::new(
            ConfigErrorKind::InvalidValue,
            origin,
            key,
            value,
            message,
            location,
        )
    }
}

/// The path (`health.interval`, `backends[1].weight`) of the innermost key or value whose span
/// holds byte `pos`.
fn locate(doc: &DeTable<'_>, pos: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk_table(doc, "", pos, 0, &mut best);
    best.map(|(_, path)| path)
}

/// Nesting deeper than this is not searched (the schema is three levels deep).
const MAX_DEPTH: usize = 16;

fn consider(span: Range<usize>, path: &str, pos: usize, best: &mut Option<(usize, String)>) {
    let hit = span.contains(&pos) || (span.is_empty() && span.start == pos);
    let len = span.end.saturating_sub(span.start);
    if hit && best.as_ref().is_none_or(|(best_len, _)| len <= *best_len) {
        *best = Some((len, path.to_owned()));
    }
}

fn walk_table(
    table: &DeTable<'_>,
    prefix: &str,
    pos: usize,
    depth: usize,
    best: &mut Option<(usize, String)>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for (key, value) in table {
        let path = join_key(prefix, key.get_ref());
        consider(key.span(), &path, pos, best);
        consider(value.span(), &path, pos, best);
        walk_value(value.get_ref(), &path, pos, depth + 1, best);
    }
}

fn walk_value(
    value: &DeValue<'_>,
    path: &str,
    pos: usize,
    depth: usize,
    best: &mut Option<(usize, String)>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        DeValue::Table(table) => walk_table(table, path, pos, depth, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                consider(item.span(), &path, pos, best);
                walk_value(item.get_ref(), &path, pos, depth + 1, best);
            }
        }
        _ => {}
    }
}

/// `prefix.key`, quoting the key unless it is a bare TOML key.
fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RawFile, ConfigError> {
        Source {
            path: "rrlb.toml".into(),
            text: text.to_owned(),
        }
        .parse()
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let e = parse("[health]\nintervall = \"2s\"\n").unwrap_err();
        assert!(e.is_unknown_key());
        assert_eq!(e.key(), Some("health.intervall"));
        assert!(
            e.to_string()
                .starts_with("rrlb.toml: unknown key `health.intervall`: expected one of"),
            "{e}"
        );
        assert!(e.to_string().ends_with("(line 2, column 1)"), "{e}");

        let e = parse(
            "[[backends]]\nurl = \"http://a\"\n[[backends]]\nurl = \"http://b\"\nwieght = 2\n",
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("backends[1].wieght"));

        let e =
            parse("backends = [{url = \"http://a\"}, {url = \"http://b\", x = 1}]").unwrap_err();
        assert_eq!(e.key(), Some("backends[1].x"));

        let e = parse("health.\"a b\" = 1").unwrap_err();
        assert_eq!(e.key(), Some("health.\"a b\""));

        let e = parse("[bogus]\nx = 1").unwrap_err();
        assert_eq!(e.key(), Some("bogus"));
    }

    #[test]
    fn type_errors_quote_the_value() {
        let e = parse("[health]\ninterval = 2\n").unwrap_err();
        assert!(e.is_invalid_value());
        assert_eq!(e.key(), Some("health.interval"));
        assert_eq!(e.value(), Some("2"));
        assert!(
            e.to_string().contains("a duration string with a unit"),
            "{e}"
        );

        let e = parse("listen = 8080").unwrap_err();
        assert_eq!(
            e.to_string(),
            "rrlb.toml: listen = 8080: invalid type: integer `8080`, expected a string (line 1, column 10)"
        );

        let e = parse("[[backends]]\nweight = 2\n").unwrap_err();
        assert_eq!(e.key(), Some("backends[0]"));
        assert!(e.to_string().contains("missing field `url`"), "{e}");
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e = parse("listen = \"a\"\n[health\n").unwrap_err();
        assert!(e.is_syntax());
        assert_eq!(e.location().map(|l| l.line), Some(2));
        assert!(
            e.to_string().starts_with("rrlb.toml: TOML syntax error: "),
            "{e}"
        );
        let e = parse("listen = \"a\"\nlisten = \"b\"\n").unwrap_err();
        assert!(e.is_syntax(), "{e}");
    }

    #[test]
    fn quotes_are_short_and_single_line() {
        let src = Source {
            path: "f".into(),
            text: format!("a = \"{}\"\nb = 1", "x".repeat(100)),
        };
        let q = src.quote(4..src.text.len());
        assert!(q.ends_with('…'));
        assert_eq!(q.chars().count(), MAX_QUOTED + 1);
        assert_eq!(src.quote(500..600), "");
    }
}
