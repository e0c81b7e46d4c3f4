//! The TOML file: its text, parsed into the [`Config`] model, and the places of its values, so that
//! an error names the file, the key and the value, quotes it and gives its line.
//!
//! Serde checks the shape (unknown keys, wrong TOML types) and each value (the model's adapters); this
//! module turns their errors, which carry a byte span, into [`ConfigError`]s by finding the key path
//! at that span. Cross-field checks find a key's span the other way, from its path.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigErrorKind, Location, Origin};
use super::model::Config;

/// The file's path and text.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// The longest value quoted in an error message, in characters.
const MAX_QUOTED: usize = 60;
/// The one key whose value is never quoted.
const SECRET_KEY: &str = "admin.token";

impl Source {
    /// Reads the file.
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(path, &e))?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Parses and checks the text: every key known, every value valid.
    pub(crate) fn parse(&self) -> Result<Config, ConfigError> {
        toml::from_str::<Config>(&self.text).map_err(|e| self.toml_error(&e))
    }

    fn origin(&self) -> Origin {
        Origin::File(self.path.clone())
    }

    /// An error about the value of `key` (a path such as `backends[1].url`), or `None` when the file
    /// does not set it.
    pub(crate) fn error_at(
        &self,
        kind: ConfigErrorKind,
        key: &str,
        reason: impl Into<String>,
    ) -> Option<ConfigError> {
        let span = self.span_of(key)?;
        let location = Location::of(&self.text, span.start);
        let error = ConfigError::new(kind, self.origin(), reason).with_key(key);
        Some(error.with_value(self.quote(key, span)).at(Some(location)))
    }

    /// Where the value of `key` is, if the file sets it.
    pub(crate) fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let doc = DeTable::parse(&self.text).ok()?;
        let mut found = None;
        walk_table(doc.get_ref(), "", 0, &mut |path, span, is_value| {
            if is_value && path == key {
                found = Some(span);
            }
        });
        found
    }

    /// The source text at `span`, on one line and shortened (never the token).
    fn quote(&self, key: &str, span: Range<usize>) -> String {
        if key == SECRET_KEY {
            return "<redacted>".to_owned();
        }
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
        let message = err.message().trim_end();
        let at = |span: Option<Range<usize>>| span.map(|s| Location::of(&self.text, s.start));
        let doc = match DeTable::parse(&self.text) {
            Ok(doc) => doc,
            Err(syntax) => {
                let reason = format!("TOML syntax error: {}", syntax.message().trim_end());
                let error = ConfigError::new(ConfigErrorKind::Syntax, self.origin(), reason);
                return error.at(at(syntax.span()));
            }
        };
        let Some(span) = err.span() else {
            return ConfigError::new(ConfigErrorKind::InvalidValue, self.origin(), message);
        };
        let key = locate(doc.get_ref(), span.start);
        let error = |kind, reason: &str| {
            let error = ConfigError::new(kind, self.origin(), reason).at(at(Some(span.clone())));
            match &key {
                Some(key) => error.with_key(key),
                None => error,
            }
        };
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let expected = rest.split_once("`, ").map_or("", |(_, r)| r);
            let reason = expected.replace("there are no fields", "this table has no keys");
            return error(ConfigErrorKind::UnknownKey, &reason);
        }
        let error = error(ConfigErrorKind::InvalidValue, message);
        match message.starts_with("missing field") {
            true => error,
            false => error.with_value(self.quote(key.as_deref().unwrap_or_default(), span)),
        }
    }
}

/// The path (`health.interval`, `backends[1].weight`) of the innermost key or value whose span
/// holds byte `pos`.
fn locate(doc: &DeTable<'_>, pos: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk_table(doc, "", 0, &mut |path, span, _| {
        let hit = span.contains(&pos) || (span.is_empty() && span.start == pos);
        let len = span.end.saturating_sub(span.start);
        if hit && best.as_ref().is_none_or(|(best_len, _)| len <= *best_len) {
            best = Some((len, path.to_owned()));
        }
    });
    best.map(|(_, path)| path)
}

/// Nesting deeper than this is not searched (the schema is three levels deep).
const MAX_DEPTH: usize = 16;

/// Calls `f(path, span, is_value)` for every key and value of `table`, depth first.
fn walk_table(
    table: &DeTable<'_>,
    prefix: &str,
    depth: usize,
    f: &mut impl FnMut(&str, Range<usize>, bool),
) {
    for (key, value) in table.iter().filter(|_| depth <= MAX_DEPTH) {
        let path = join_key(prefix, key.get_ref());
        f(&path, key.span(), false);
        walk_value(value, path, depth + 1, f);
    }
}

/// Calls `f` for `value` at `path`, then for what it holds.
fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: String,
    depth: usize,
    f: &mut impl FnMut(&str, Range<usize>, bool),
) {
    f(&path, value.span(), true);
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, &path, depth, f),
        DeValue::Array(items) if depth <= MAX_DEPTH => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item, format!("{path}[{i}]"), depth + 1, f);
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

    fn parse(text: &str) -> Result<Config, ConfigError> {
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
        let q = src.quote("a", 4..src.text.len());
        assert!(q.ends_with('…'));
        assert_eq!(q.chars().count(), MAX_QUOTED + 1);
        assert_eq!(src.quote("b", 500..600), "");
        assert_eq!(src.quote(SECRET_KEY, 0..3), "<redacted>");
    }
}
