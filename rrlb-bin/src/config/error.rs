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
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .inner.message)]
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
    message: String,
}

impl ConfigError {
    pub(crate) fn new(
        kind: ConfigErrorKind,
        origin: Origin,
        key: Option<String>,
        value: Option<String>,
        reason: String,
        location: Option<Location>,
    ) -> Self {
        let message = render(
            kind,
            &origin,
            key.as_deref(),
            value.as_deref(),
            &reason,
            location,
        );
        Self {
            inner: Box::new(Inner {
                kind,
                origin,
                key,
                value,
                reason,
                location,
                message,
            }),
        }
    }

    pub(crate) fn read(path: &Path, err: &std::io::Error) -> Self {
        Self::new(
            ConfigErrorKind::Read,
            Origin::File(path.to_path_buf()),
            None,
            None,
            format!("cannot read the configuration file: {err}"),
            None,
        )
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

    /// The configuration file could not be read.
    pub fn is_read(&self) -> bool {
        self.inner.kind == ConfigErrorKind::Read
    }

    /// A reload was asked for, but there is no configuration file to re-read.
    pub fn is_no_file(&self) -> bool {
        self.inner.kind == ConfigErrorKind::NoFile
    }

    /// The file is not valid TOML.
    pub fn is_syntax(&self) -> bool {
        self.inner.kind == ConfigErrorKind::Syntax
    }

    /// The file has a key that the schema does not know.
    pub fn is_unknown_key(&self) -> bool {
        self.inner.kind == ConfigErrorKind::UnknownKey
    }

    /// A value has the wrong type, is out of range, or is otherwise invalid.
    pub fn is_invalid_value(&self) -> bool {
        self.inner.kind == ConfigErrorKind::InvalidValue
    }

    /// Two backends share a URL or a name.
    pub fn is_duplicate(&self) -> bool {
        self.inner.kind == ConfigErrorKind::Duplicate
    }

    /// The admin API would be reachable from other hosts without a token.
    pub fn is_insecure(&self) -> bool {
        self.inner.kind == ConfigErrorKind::Insecure
    }
}

fn render(
    kind: ConfigErrorKind,
    origin: &Origin,
    key: Option<&str>,
    value: Option<&str>,
    reason: &str,
    location: Option<Location>,
) -> String {
    let mut out = match (origin, key, value) {
        (Origin::File(_), Some(key), Some(value)) => format!("{origin}: {key} = {value}: {reason}"),
        (Origin::File(_), Some(key), None) if kind == ConfigErrorKind::UnknownKey => {
            format!("{origin}: unknown key `{key}`{}", with_sep(reason))
        }
        (Origin::File(_), Some(key), None) => format!("{origin}: {key}: {reason}"),
        (Origin::Flag(_), _, Some(value)) => format!("{origin} {value}: {reason}"),
        (Origin::Env(_), _, Some(value)) => format!("{origin}={value}: {reason}"),
        (Origin::Default, Some(key), Some(value)) => {
            format!("{key} = {value} (default): {reason}")
        }
        (Origin::Default, None, None) => reason.to_owned(),
        _ => format!("{origin}: {reason}"),
    };
    if let Some(Location { line, column }) = location {
        out.push_str(&format!(" (line {line}, column {column})"));
    }
    out
}

fn with_sep(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
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
            Some("backends[1].weight".into()),
            Some("0".into()),
            "out of range".into(),
            None,
        );
        assert_eq!(
            e.to_string(),
            "rrlb.toml: backends[1].weight = 0: out of range"
        );
        let e = ConfigError::new(
            ConfigErrorKind::InvalidValue,
            Origin::Flag("--backend"),
            Some("backends".into()),
            Some("ftp://x".into()),
            "bad".into(),
            None,
        );
        assert_eq!(e.to_string(), "--backend ftp://x: bad");
        let e = ConfigError::new(
            ConfigErrorKind::UnknownKey,
            Origin::File("rrlb.toml".into()),
            Some("health.intervall".into()),
            None,
            String::new(),
            Some(Location { line: 2, column: 1 }),
        );
        assert_eq!(
            e.to_string(),
            "rrlb.toml: unknown key `health.intervall` (line 2, column 1)"
        );
        assert!(e.is_unknown_key());
    }
}
