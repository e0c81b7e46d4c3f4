//! [`ConfigError`]: what went wrong, and where the offending value came from.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The TOML file at this path (as it was given, not canonicalized).
    File(PathBuf),
    /// A command-line flag, e.g. `--backend`.
    Flag(&'static str),
    /// An environment variable, e.g. `RRLB_BACKENDS`.
    Env(&'static str),
    /// A built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Flag(flag) => f.write_str(flag),
            Self::Env(var) => f.write_str(var),
            Self::Default => f.write_str("default"),
        }
    }
}

/// The class of a [`ConfigError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The configuration file could not be read.
    Read,
    /// A reload was asked for, but rrlb was started without a configuration file.
    NoFile,
    /// The file is not valid TOML (or repeats a key).
    Syntax,
    /// The file has a key that the schema does not know.
    UnknownKey,
    /// A value has the wrong type, is out of range, or is otherwise invalid.
    InvalidValue,
    /// Two backends share a URL or a name.
    Duplicate,
    /// The configuration would expose the admin API without authentication.
    Insecure,
}

/// Line and column (both counted from 1) of a value in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte offset `offset` in `text` (clamped to its end).
    pub(crate) fn of(text: &str, offset: usize) -> Self {
        let bytes = text.as_bytes();
        let prefix = bytes.get(..offset.min(bytes.len())).unwrap_or_default();
        let line_start = prefix
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |nl| nl + 1);
        let line = 1 + prefix.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + prefix
            .get(line_start..)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        Self { line, column }
    }
}

/// An invalid configuration: names the source (file, flag or environment variable), the key and
/// the value, and says why.
///
/// `Display` renders one line, e.g.
/// `rrlb.toml: backends[1].weight = 0: out of range 1..=10000 (0 is refused: drain the backend instead) (line 9, column 10)`
/// or `--backend ftp://x: unsupported scheme "ftp" (only http and https)`.
#[derive(Debug, Clone)]
pub struct ConfigError {
    inner: Box<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    kind: ConfigErrorKind,
    origin: Origin,
    key: Option<String>,
    value: Option<String>,
    reason: String,
    location: Option<Location>,
}

impl std::error::Error for ConfigError {}

/// `is_read()` and the like: one predicate per kind.
macro_rules! kind_predicates {
    ($($(#[$doc:meta])* $name:ident => $kind:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> bool {
            self.inner.kind == ConfigErrorKind::$kind
        }
    )*};
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind, origin: Origin, reason: impl Into<String>) -> Self {
        let (key, value, location, reason) = (None, None, None, reason.into());
        let inner = Box::new(Inner {
            kind,
            origin,
            key,
            value,
            reason,
            location,
        });
        Self { inner }
    }

    /// The same error, about `key`.
    pub(crate) fn with_key(mut self, key: impl Into<String>) -> Self {
        self.inner.key = Some(key.into());
        self
    }

    /// The same error, quoting `value`.
    pub(crate) fn with_value(mut self, value: impl Into<String>) -> Self {
        self.inner.value = Some(value.into());
        self
    }

    /// The same error, at `location` of the file.
    pub(crate) fn at(mut self, location: Option<Location>) -> Self {
        self.inner.location = location;
        self
    }

    pub(crate) fn read(path: &Path, err: &std::io::Error) -> Self {
        let (origin, reason) = (
            Origin::File(path.to_path_buf()),
            "cannot read the configuration file",
        );
        Self::new(ConfigErrorKind::Read, origin, format!("{reason}: {err}"))
    }

    /// The class of the error.
    pub fn kind(&self) -> ConfigErrorKind {
        self.inner.kind
    }

    /// Where the offending value came from.
    pub fn origin(&self) -> &Origin {
        &self.inner.origin
    }

    /// The key path in the TOML schema, e.g. `backends[1].weight` or `health.intervall`
    /// (also set for flag and environment values, to the key they stand for).
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// The offending value as written (TOML source text for file values).
    pub fn value(&self) -> Option<&str> {
        self.inner.value.as_deref()
    }

    /// Why the value was refused, without the origin, key and value.
    pub fn reason(&self) -> &str {
        &self.inner.reason
    }

    /// Where in the file the error is, when it comes from the file.
    pub fn location(&self) -> Option<Location> {
        self.inner.location
    }

    kind_predicates! {
        /// The configuration file could not be read.
        is_read => Read;
        /// A reload was asked for, but there is no configuration file to re-read.
        is_no_file => NoFile;
        /// The file is not valid TOML.
        is_syntax => Syntax;
        /// The file has a key that the schema does not know.
        is_unknown_key => UnknownKey;
        /// A value has the wrong type, is out of range, or is otherwise invalid.
        is_invalid_value => InvalidValue;
        /// Two backends share a URL or a name.
        is_duplicate => Duplicate;
        /// The admin API would be reachable from other hosts without a token.
        is_insecure => Insecure;
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let (kind, origin, reason) = (inner.kind, &inner.origin, &inner.reason);
        match (origin, &inner.key, &inner.value) {
            (Origin::File(_), Some(key), Some(value)) => {
                write!(f, "{origin}: {key} = {value}: {reason}")
            }
            (Origin::File(_), Some(key), None) if kind == ConfigErrorKind::UnknownKey => {
                let sep = if reason.is_empty() { "" } else { ": " };
                write!(f, "{origin}: unknown key `{key}`{sep}{reason}")
            }
            (Origin::File(_), Some(key), None) => write!(f, "{origin}: {key}: {reason}"),
            (Origin::Flag(_), _, Some(value)) => write!(f, "{origin} {value}: {reason}"),
            (Origin::Env(_), _, Some(value)) => write!(f, "{origin}={value}: {reason}"),
            (Origin::Default, Some(key), Some(value)) => {
                write!(f, "{key} = {value} (default): {reason}")
            }
            (Origin::Default, None, None) => f.write_str(reason),
            _ => write!(f, "{origin}: {reason}"),
        }?;
        match inner.location {
            Some(Location { line, column }) => write!(f, " (line {line}, column {column})"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        let pos = text.find('"').unwrap_or_default();
        assert_eq!(Location::of(text, pos), Location { line: 2, column: 6 });
        // Offsets past the end are clamped, never panic.
        assert_eq!(Location::of(text, 1000).line, 3);
        assert_eq!(Location::of("", 5), Location { line: 1, column: 1 });
    }

    #[test]
    fn renders_each_origin() {
        let e = ConfigError::new(
            ConfigErrorKind::InvalidValue,
            Origin::File("rrlb.toml".into()),
            "out of range",
        )
        .with_key("backends[1].weight")
        .with_value("0");
        assert_eq!(
            e.to_string(),
            "rrlb.toml: backends[1].weight = 0: out of range"
        );
        let e = ConfigError::new(
            ConfigErrorKind::InvalidValue,
            Origin::Flag("--backend"),
            "bad",
        )
        .with_key("backends")
        .with_value("ftp://x");
        assert_eq!(e.to_string(), "--backend ftp://x: bad");
        let e = ConfigError::new(
            ConfigErrorKind::UnknownKey,
            Origin::File("rrlb.toml".into()),
            "",
        )
        .with_key("health.intervall")
        .at(Some(Location { line: 2, column: 1 }));
        assert_eq!(
            e.to_string(),
            "rrlb.toml: unknown key `health.intervall` (line 2, column 1)"
        );
        assert!(e.is_unknown_key());
    }
}
