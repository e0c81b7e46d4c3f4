//! Backends: the `URL[=WEIGHT]` syntax of `--backend` and `RRLB_BACKENDS`, URL rules, names.
//!
//! One parser serves the command line, the environment, the TOML file (for its `url` values) and
//! the admin API, so a URL that one of them accepts, all of them accept.
//!
//! # Rules
//! - Only `http` and `https`; a host is required; the port defaults to 80 or 443.
//! - No credentials (`user@host`), no query string, no fragment.
//! - A path is a prefix the proxy prepends to every forwarded path; a trailing `/` is dropped.
//! - `=` and `,` may not appear in the URL (write `%3D`, `%2C`): in `URL=WEIGHT` everything after
//!   the **last** `=` is the weight, and `RRLB_BACKENDS` is split on commas.
//! - Scheme and host are lowercased, so `HTTP://Echo:80` and `http://echo:80` are the same backend.

use std::fmt;
use std::str::FromStr;

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use rrlb_core::backend::{MAX_WEIGHT, MIN_WEIGHT};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest backend name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a backend URL, weight or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBackend {
    /// Nothing was given.
    #[error("empty backend URL")]
    Empty,
    /// `echo:8081` instead of `http://echo:8081`.
    #[error("missing scheme (write http://{0} or https://{0})")]
    MissingScheme(String),
    /// A scheme other than `http` or `https`.
    #[error("unsupported scheme {0:?} (only http and https)")]
    UnsupportedScheme(String),
    /// Not a URL at all.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// `http://:8080`.
    #[error("the URL has no host")]
    MissingHost,
    /// `http://user:pass@host`.
    #[error("credentials in the URL (user@host) are not supported")]
    UserInfo,
    /// `http://host/?q=1`.
    #[error("a backend URL takes no query string")]
    Query,
    /// `http://host/#x`.
    #[error("a backend URL takes no fragment")]
    Fragment,
    /// A character reserved by the `URL=WEIGHT` and comma-separated syntaxes.
    #[error("{0:?} is not allowed in a backend URL (percent-encode it as {1})")]
    ReservedChar(char, &'static str),
    /// Port 0, or above 65535, or empty.
    #[error("invalid port {0:?} (1..=65535)")]
    InvalidPort(String),
    /// What follows the last `=` is not a whole number.
    #[error("invalid weight {0:?}: expected a whole number in {MIN_WEIGHT}..={MAX_WEIGHT}")]
    InvalidWeight(String),
    /// The weight is 0 or above the engine's `MAX_WEIGHT`.
    #[error(
        "weight {0} out of range {MIN_WEIGHT}..={MAX_WEIGHT} (0 is refused: drain the backend instead)"
    )]
    WeightOutOfRange(String),
    /// The name is empty, too long, or has a character that would break the admin API's paths.
    #[error("invalid backend name {0:?}: {1}")]
    InvalidName(String, &'static str),
}

/// A parsed `URL[=WEIGHT]` argument, as given to `--backend` or `RRLB_BACKENDS`.
///
/// Everything after the **last** `=` is the weight; `=` inside the URL must be written `%3D`.
///
/// ```
/// use rrlb::config::BackendArg;
///
/// let spec: BackendArg = "http://echo-go:8081=3".parse()?;
/// assert_eq!(spec.url.to_string(), "http://echo-go:8081/");
/// assert_eq!(spec.weight, Some(3));
/// assert!("ftp://x".parse::<BackendArg>().is_err());
/// # Ok::<(), rrlb::config::InvalidBackend>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendArg {
    /// The normalized URL (see [`parse_backend_url`]).
    pub url: Uri,
    /// The weight, if one was given (already checked to be in range).
    pub weight: Option<u32>,
}

impl FromStr for BackendArg {
    type Err = InvalidBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = trim_ascii(s);
        let (url, weight) = match s.rsplit_once('=') {
            Some((url, weight)) => (url, Some(parse_weight(trim_ascii(weight))?)),
            None => (s, None),
        };
        Ok(Self {
            url: parse_backend_url(url)?,
            weight,
        })
    }
}

impl fmt::Display for BackendArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_url(&self.url))?;
        match self.weight {
            Some(weight) => write!(f, "={weight}"),
            None => Ok(()),
        }
    }
}

/// Parses the `WEIGHT` of `URL=WEIGHT`: a whole number in `1..=10000`.
fn parse_weight(text: &str) -> Result<u32, InvalidBackend> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidBackend::InvalidWeight(text.to_owned()));
    }
    let weight = text
        .parse::<u32>()
        .map_err(|_| InvalidBackend::WeightOutOfRange(text.to_owned()))?;
    check_weight(weight)
}

/// Trims ASCII whitespace only: other Unicode spaces are not separators (and are refused in URLs).
fn trim_ascii(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Checks that a weight is in `1..=10000`.
pub fn check_weight(weight: u32) -> Result<u32, InvalidBackend> {
    if (1..=MAX_WEIGHT).contains(&weight) {
        Ok(weight)
    } else {
        Err(InvalidBackend::WeightOutOfRange(weight.to_string()))
    }
}

/// Parses and normalizes a backend URL.
///
/// Rules: only `http` and `https`; a host is required; the port defaults to 80 or 443; no
/// credentials (`user@host`), query string or fragment; a path is a prefix the proxy prepends
/// (its trailing `/` is dropped); `=` and `,` must be percent-encoded (`%3D`, `%2C`) because they
/// separate the weight and the entries of `RRLB_BACKENDS`.
///
/// The result has a lowercased scheme and host, the port as written (absent means 80 or 443),
/// and the path without its trailing `/` (`/` when there is none).
pub fn parse_backend_url(text: &str) -> Result<Uri, InvalidBackend> {
    let text = trim_ascii(text);
    if text.is_empty() {
        return Err(InvalidBackend::Empty);
    }
    if let Some(c) = text.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Err(InvalidBackend::InvalidUrl(format!(
            "{c:?} must be percent-encoded"
        )));
    }
    if text.contains('#') {
        return Err(InvalidBackend::Fragment);
    }
    if text.contains('=') {
        return Err(InvalidBackend::ReservedChar('=', "%3D"));
    }
    if text.contains(',') {
        return Err(InvalidBackend::ReservedChar(',', "%2C"));
    }
    let uri: Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| InvalidBackend::InvalidUrl(e.to_string()))?;
    let Some(scheme) = uri.scheme_str() else {
        return Err(if uri.authority().is_some() {
            InvalidBackend::MissingScheme(text.to_owned())
        } else {
            InvalidBackend::InvalidUrl("expected http://HOST[:PORT][/PREFIX]".to_owned())
        });
    };
    let scheme = scheme.to_ascii_lowercase();
    let scheme = match scheme.as_str() {
        "http" => Scheme::HTTP,
        "https" => Scheme::HTTPS,
        _ => return Err(InvalidBackend::UnsupportedScheme(scheme)),
    };
    let Some(authority) = uri.authority() else {
        return Err(InvalidBackend::MissingHost);
    };
    if authority.as_str().contains('@') {
        return Err(InvalidBackend::UserInfo);
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(InvalidBackend::MissingHost);
    }
    // What follows the host is either nothing or `:PORT`.
    let rest = authority.as_str().get(host.len()..).unwrap_or_default();
    if let Some(port) = rest.strip_prefix(':') {
        match port.parse::<u16>() {
            Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(InvalidBackend::InvalidPort(port.to_owned())),
        }
    } else if !rest.is_empty() {
        return Err(InvalidBackend::InvalidUrl(format!(
            "unexpected {rest:?} after the host"
        )));
    }
    if uri.query().is_some() || text.contains('?') {
        return Err(InvalidBackend::Query);
    }
    let authority: Authority = authority
        .as_str()
        .to_ascii_lowercase()
        .parse()
        .map_err(|e: http::uri::InvalidUri| InvalidBackend::InvalidUrl(e.to_string()))?;
    let path = uri.path().trim_end_matches('/');
    let path: PathAndQuery = if path.is_empty() { "/" } else { path }
        .parse()
        .map_err(|e: http::uri::InvalidUri| InvalidBackend::InvalidUrl(e.to_string()))?;
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| InvalidBackend::InvalidUrl(e.to_string()))
}

/// Checks a backend name: 1 to 128 visible ASCII characters, none of `/ ? # % \`
/// (names appear in admin API paths, metrics labels and logs).
pub fn check_backend_name(name: &str) -> Result<(), InvalidBackend> {
    let invalid = |why| Err(InvalidBackend::InvalidName(name.to_owned(), why));
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("longer than 128 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid("only visible ASCII characters, no spaces");
    }
    if name.bytes().any(|b| b"/?#%\\".contains(&b)) {
        return invalid("none of / ? # % \\");
    }
    Ok(())
}

/// `http://host:port` without the trailing `/` that [`Uri`]'s `Display` adds for an empty path.
fn display_url(uri: &Uri) -> String {
    let text = uri.to_string();
    match text.strip_suffix('/') {
        Some(trimmed) if uri.path() == "/" => trimmed.to_owned(),
        _ => text,
    }
}

/// One backend of the effective configuration: a `[[backends]]` entry, an admin API `POST`, or a
/// `URL[=WEIGHT]` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Entry")]
pub struct BackendConfig {
    /// The normalized URL (see [`parse_backend_url`]); its path, if any, is a prefix.
    #[serde(serialize_with = "serialize_url")]
    pub url: Uri,
    /// Weight in `1..=10000`, used by `weighted-round-robin`.
    pub weight: u32,
    /// Unique name (default `host:port`), used in logs, metrics, `x-rrlb-backend` and the admin API.
    pub name: String,
}

/// A `[[backends]]` entry as written; the name defaults to `host:port` (checked with the others in
/// [`super::load`], where a bad default can be blamed on the URL).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct Entry {
    #[serde(deserialize_with = "deserialize_url")]
    url: Uri,
    #[serde(default = "default_weight", deserialize_with = "super::value::weight")]
    weight: u32,
    #[serde(default, deserialize_with = "deserialize_name")]
    name: Option<String>,
}

fn default_weight() -> u32 {
    MIN_WEIGHT
}

impl From<Entry> for BackendConfig {
    fn from(e: Entry) -> Self {
        let name = e.name.unwrap_or_else(|| default_name(&e.url));
        Self {
            url: e.url,
            weight: e.weight,
            name,
        }
    }
}

fn serialize_url<S: Serializer>(url: &Uri, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&display_url(url))
}

fn deserialize_url<'de, D: Deserializer<'de>>(d: D) -> Result<Uri, D::Error> {
    parse_backend_url(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn deserialize_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(d)?;
    check_backend_name(&name).map_err(serde::de::Error::custom)?;
    Ok(Some(name))
}

impl BackendConfig {
    /// Validates a backend as the TOML file and the admin API describe it:
    /// a URL, an optional weight (default 1) and an optional name (default `host:port`).
    ///
    /// ```
    /// use rrlb::config::BackendConfig;
    ///
    /// let b = BackendConfig::new("http://Echo-Go:8081/", None, None)?;
    /// assert_eq!((b.name.as_str(), b.weight, b.url_string().as_str()),
    ///            ("echo-go:8081", 1, "http://echo-go:8081"));
    /// # Ok::<(), rrlb::config::InvalidBackend>(())
    /// ```
    pub fn new(url: &str, weight: Option<u32>, name: Option<&str>) -> Result<Self, InvalidBackend> {
        let arg = BackendArg {
            url: parse_backend_url(url)?,
            weight: weight.map(check_weight).transpose()?,
        };
        Self::from_arg(arg, name)
    }

    /// Builds a backend from a parsed `URL[=WEIGHT]` and an optional name.
    pub fn from_arg(arg: BackendArg, name: Option<&str>) -> Result<Self, InvalidBackend> {
        let name = name.map_or_else(|| default_name(&arg.url), str::to_owned);
        check_backend_name(&name)?;
        Ok(Self {
            weight: check_weight(arg.weight.unwrap_or(MIN_WEIGHT))?,
            url: arg.url,
            name,
        })
    }

    /// The host, lowercased (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        self.url.host().unwrap_or_default()
    }

    /// The port: as written, else 443 for `https` and 80 for `http`.
    pub fn port(&self) -> u16 {
        port_of(&self.url)
    }

    /// Whether the backend is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == Some(&Scheme::HTTPS)
    }

    /// The path prefixed to every forwarded request: `""` when there is none, else e.g. `"/api"`.
    pub fn path_prefix(&self) -> &str {
        self.url.path().trim_end_matches('/')
    }

    /// The URL as users write it: no trailing `/` when there is no prefix.
    pub fn url_string(&self) -> String {
        display_url(&self.url)
    }

    /// Whether both point at the same place (scheme, host, effective port and prefix);
    /// `http://a` and `http://a:80` are the same.
    pub fn same_url(&self, other: &Self) -> bool {
        self.place() == other.place()
    }

    /// What makes two backends the same place: scheme, host, effective port and prefix.
    pub(crate) fn place(&self) -> String {
        let scheme = self.url.scheme_str().unwrap_or_default();
        let host = self.host().to_ascii_lowercase();
        format!("{scheme}://{host}:{}{}", self.port(), self.path_prefix())
    }
}

/// The port of a normalized backend URL: as written, else 443 for `https` and 80 for `http`.
fn port_of(url: &Uri) -> u16 {
    let default = if url.scheme() == Some(&Scheme::HTTPS) {
        443
    } else {
        80
    };
    url.port_u16().unwrap_or(default)
}

/// `host:port`, the port explicit even when it is the scheme's default.
fn default_name(url: &Uri) -> String {
    format!("{}:{}", url.host().unwrap_or_default(), port_of(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<BackendArg, InvalidBackend> {
        s.parse()
    }

    #[test]
    fn url_and_weight() {
        let s = spec("http://echo-go:8081=3").unwrap();
        assert_eq!(s.weight, Some(3));
        assert_eq!(s.to_string(), "http://echo-go:8081=3");
        let s = spec(" https://API.example.com/v1/ ").unwrap();
        assert_eq!(s.weight, None);
        assert_eq!(s.to_string(), "https://api.example.com/v1");
    }

    #[test]
    fn refusals() {
        use InvalidBackend as E;
        assert_eq!(spec("ftp://x"), Err(E::UnsupportedScheme("ftp".into())));
        assert_eq!(
            spec("ftp://x").unwrap_err().to_string(),
            "unsupported scheme \"ftp\" (only http and https)"
        );
        assert_eq!(spec(""), Err(E::Empty));
        assert_eq!(spec("=3"), Err(E::Empty));
        assert!(matches!(spec("echo:8081"), Err(E::MissingScheme(_))));
        assert_eq!(spec("http://:80"), Err(E::MissingHost));
        assert_eq!(spec("http://u:p@h:80"), Err(E::UserInfo));
        assert_eq!(spec("http://h/p?x"), Err(E::Query));
        assert_eq!(spec("http://h/p#x"), Err(E::Fragment));
        assert_eq!(spec("http://h:0"), Err(E::InvalidPort("0".into())));
        assert_eq!(spec("http://h:99999"), Err(E::InvalidPort("99999".into())));
        assert_eq!(spec("http://h:"), Err(E::InvalidPort(String::new())));
        assert_eq!(spec("http://h=0"), Err(E::WeightOutOfRange("0".into())));
        assert_eq!(
            spec("http://h=10001"),
            Err(E::WeightOutOfRange("10001".into()))
        );
        assert_eq!(
            spec("http://h=99999999999999999999"),
            Err(E::WeightOutOfRange("99999999999999999999".into()))
        );
        assert_eq!(spec("http://h=x"), Err(E::InvalidWeight("x".into())));
        assert_eq!(spec("http://h="), Err(E::InvalidWeight(String::new())));
        assert_eq!(spec("http://h=-1"), Err(E::InvalidWeight("-1".into())));
        assert_eq!(spec("http://h/a=b=2"), Err(E::ReservedChar('=', "%3D")));
        assert_eq!(spec("http://h/a,b"), Err(E::ReservedChar(',', "%2C")));
        assert!(matches!(spec("/just/a/path"), Err(E::InvalidUrl(_))));
        assert!(matches!(spec("http://h h"), Err(E::InvalidUrl(_))));
        assert!(matches!(spec("http://h/caf\u{e9}"), Err(E::InvalidUrl(_))));
        assert!(matches!(spec("http://h/a\tb"), Err(E::InvalidUrl(_))));
    }

    /// Fuzz finding: a path ending in U+3000 (a Unicode space) lost it when displayed and
    /// re-parsed, because `str::trim` trims Unicode spaces. Non-ASCII is now refused outright.
    #[test]
    fn regression_unicode_space_in_path() {
        let input = "https://.///////S\u{3000}\u{3000}\u{3000}///////";
        assert!(matches!(spec(input), Err(InvalidBackend::InvalidUrl(_))));
        // Only ASCII whitespace around the spec is trimmed.
        assert!(spec("\u{3000}http://h").is_err());
        assert_eq!(spec(" \thttp://h=2 ").map(|s| s.weight), Ok(Some(2)));
    }

    #[test]
    fn backend_defaults_and_equality() {
        let a = BackendConfig::new("http://A", None, None).unwrap();
        assert_eq!(a.name, "a:80");
        assert_eq!(a.port(), 80);
        assert_eq!(a.path_prefix(), "");
        let b = BackendConfig::new("http://a:80/", Some(2), Some("b")).unwrap();
        assert!(a.same_url(&b));
        let c = BackendConfig::new("https://a/api/", None, None).unwrap();
        assert_eq!(
            (c.port(), c.path_prefix(), c.name.as_str()),
            (443, "/api", "a:443")
        );
        assert!(!a.same_url(&c));
        let v6 = BackendConfig::new("http://[::1]:8081", None, None).unwrap();
        assert_eq!(v6.name, "[::1]:8081");
        assert_eq!(v6.url_string(), "http://[::1]:8081");
        assert!(BackendConfig::new("http://a", Some(0), None).is_err());
        assert!(BackendConfig::new("http://a", None, Some("a/b")).is_err());
        assert!(BackendConfig::new("http://a", None, Some("")).is_err());
        assert!(BackendConfig::new("http://a", None, Some("with space")).is_err());
    }
}
