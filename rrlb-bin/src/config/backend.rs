//! Backends: a `[[backends]]` entry, an admin API `POST`, or a `URL[=WEIGHT]` argument of `--backend` and
//! `RRLB_BACKENDS`, all checked by the same rules.
//!
//! # Rules
//! - The URL is an [`BackendUrl`]: only `http` and `https`, a host, the port defaulting to 80 or 443, no
//!   credentials, query string or fragment; a path is a prefix the proxy prepends to every forwarded path.
//! - `=` and `,` may not appear in the URL (write `%3D`, `%2C`): in `URL=WEIGHT` everything after the
//!   **last** `=` is the weight, and `RRLB_BACKENDS` is split on commas.
//! - A weight is in the engine's range, `1..=10000`; a name is 1 to 128 visible ASCII characters.
//! - `discovery` (file only): `static` (the default: one backend), `dns` (every A/AAAA address of the URL's
//!   host is a backend) or `dns-srv` (the URL's host is an SRV name). A discovered entry's name is its group's
//!   (default: the URL's host); its backends are named `<group>/<ip>:<port>`. `kubernetes`: the URL's host
//!   is `<service>[.<namespace>]`, its EndpointSlices' ready addresses are the backends, at the URL's port or
//!   at the slices' port named `port_name`.

use std::fmt;
use std::str::FromStr;

use rrlb_core::BackendSpec;
use rrlb_core::backend::{MAX_WEIGHT, MIN_WEIGHT};
use rrlb_tower::http::{BackendUrl, InvalidBackendUrl};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest backend name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a backend URL, weight or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBackend {
    /// The URL breaks a rule of [`BackendUrl`].
    #[error(transparent)]
    Url(#[from] InvalidBackendUrl),
    /// A character reserved by the `URL=WEIGHT` and comma-separated syntaxes.
    #[error("{0:?} is not allowed in a backend URL (percent-encode it as {1})")]
    ReservedChar(char, &'static str),
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

/// Parses a backend URL by the rules of [`BackendUrl`], refusing `=` and `,` (the separators of the
/// `URL=WEIGHT` and `RRLB_BACKENDS` syntaxes).
pub fn parse_backend_url(text: &str) -> Result<BackendUrl, InvalidBackend> {
    for (c, encoded) in [('=', "%3D"), (',', "%2C")] {
        if text.contains(c) {
            return Err(InvalidBackend::ReservedChar(c, encoded));
        }
    }
    Ok(text.parse()?)
}

/// Checks that a weight is in the engine's range, `1..=10000`.
pub fn check_weight(weight: u32) -> Result<u32, InvalidBackend> {
    if (MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
        Ok(weight)
    } else {
        Err(InvalidBackend::WeightOutOfRange(weight.to_string()))
    }
}

/// Checks a backend name: 1 to 128 visible ASCII characters, none of `/ ? # % \`
/// (names appear in admin API paths, metrics labels and logs).
pub fn check_backend_name(name: &str) -> Result<(), InvalidBackend> {
    let invalid = |why| Err(InvalidBackend::InvalidName(name.to_owned(), why));
    if name.is_empty() {
        invalid("empty")
    } else if name.len() > MAX_NAME_LEN {
        invalid("longer than 128 characters")
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        invalid("only visible ASCII characters, no spaces")
    } else if name.bytes().any(|b| b"/?#%\\".contains(&b)) {
        invalid("none of / ? # % \\")
    } else {
        Ok(())
    }
}

/// How the backends of a `[[backends]]` entry are found (`discovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// `"static"`: the entry is one backend; its host is resolved per connection.
    #[default]
    Static,
    /// `"dns"`: every A and AAAA address of the URL's host is a backend (port from the URL), re-resolved
    /// every `discovery.refresh`.
    Dns,
    /// `"dns-srv"`: the URL's host is an SRV name; targets, ports, weights and priorities from its records.
    DnsSrv,
    /// `"kubernetes"`: the ready endpoints of the EndpointSlices of Service `<name>[.<namespace>]` (the URL's
    /// host); terminating ones drain.
    Kubernetes,
}

impl Discovery {
    /// The name in the file and in the admin API's `"source"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dns => "dns",
            Self::DnsSrv => "dns-srv",
            Self::Kubernetes => "kubernetes",
        }
    }

    /// Whether the entry is one configured backend.
    pub fn is_static(&self) -> bool {
        *self == Self::Static
    }
}

/// One backend of the configuration.
///
/// It parses from `URL[=WEIGHT]` (as `--backend` and `RRLB_BACKENDS` give it; the name is then `host:port`)
/// and displays back to that form (the weight only when it is not 1).
///
/// ```
/// use rrlb::config::BackendConfig;
///
/// let b: BackendConfig = "http://Echo-Go:8081=3".parse()?;
/// assert_eq!((b.name.as_str(), b.weight, b.url_string().as_str()), ("echo-go:8081", 3, "http://echo-go:8081"));
/// assert_eq!(b.to_string(), "http://echo-go:8081=3");
/// assert!("ftp://x".parse::<BackendConfig>().is_err());
/// # Ok::<(), rrlb::config::InvalidBackend>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Entry")]
pub struct BackendConfig {
    /// Where the backend is; its path, if any, is a prefix.
    #[serde(serialize_with = "serialize_url")]
    pub url: BackendUrl,
    /// Weight in `1..=10000`, used by `weighted-round-robin`.
    pub weight: u32,
    /// Unique name (default `host:port`), used in logs, metrics, `x-rrlb-backend` and the admin API. For a
    /// discovered entry, the group's name (default: the host).
    pub name: String,
    /// How its backends are found; default one static backend.
    #[serde(default, skip_serializing_if = "Discovery::is_static")]
    pub discovery: Discovery,
    /// `kubernetes` only: the EndpointSlice port of this name, instead of the URL's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// `https://` only: this backend's TLS settings (`[backends.tls]`), over `[upstream_tls]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::UpstreamTlsConfig>,
}

/// A `[[backends]]` entry as written; the name defaults to `host:port` (checked with the others in
/// [`super::load`], where a bad default can be blamed on the URL).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct Entry {
    #[serde(deserialize_with = "deserialize_url")]
    url: BackendUrl,
    #[serde(default = "default_weight", deserialize_with = "super::value::weight")]
    weight: u32,
    #[serde(default, deserialize_with = "deserialize_name")]
    name: Option<String>,
    #[serde(default)]
    discovery: Discovery,
    #[serde(default, deserialize_with = "deserialize_port_name")]
    port_name: Option<String>,
    #[serde(default)]
    tls: Option<super::UpstreamTlsConfig>,
}

fn default_weight() -> u32 {
    MIN_WEIGHT
}

impl From<Entry> for BackendConfig {
    fn from(e: Entry) -> Self {
        let name = e.name.unwrap_or_else(|| match e.discovery {
            Discovery::Static => default_name(&e.url),
            Discovery::Dns | Discovery::DnsSrv | Discovery::Kubernetes => e.url.host().to_owned(),
        });
        Self {
            url: e.url,
            weight: e.weight,
            name,
            discovery: e.discovery,
            port_name: e.port_name,
            tls: e.tls,
        }
    }
}

fn serialize_url<S: Serializer>(url: &BackendUrl, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url.text())
}

fn deserialize_url<'de, D: Deserializer<'de>>(d: D) -> Result<BackendUrl, D::Error> {
    parse_backend_url(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A Kubernetes port name (an IANA_SVC_NAME: 1 to 15 lowercase letters, digits and `-`).
fn deserialize_port_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(d)?;
    let ok = (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(Some(name))
    } else {
        Err(serde::de::Error::custom(
            "a Kubernetes port name: 1 to 15 lowercase letters, digits and -",
        ))
    }
}

fn deserialize_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(d)?;
    check_backend_name(&name).map_err(serde::de::Error::custom)?;
    Ok(Some(name))
}

/// `host:port`, the port explicit even when it is the scheme's default.
fn default_name(url: &BackendUrl) -> String {
    format!("{}:{}", url.host(), url.port())
}

impl FromStr for BackendConfig {
    type Err = InvalidBackend;

    /// `URL[=WEIGHT]`: everything after the **last** `=` is the weight.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        let (url, weight) = match s.rsplit_once('=') {
            Some((url, weight)) => (url, Some(parse_weight(weight.trim_ascii())?)),
            None => (s, None),
        };
        Self::new(url, weight, None)
    }
}

impl fmt::Display for BackendConfig {
    /// `URL[=WEIGHT]`, the weight only when it is not 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url.text())?;
        match self.weight {
            MIN_WEIGHT => Ok(()),
            weight => write!(f, "={weight}"),
        }
    }
}

/// Parses the `WEIGHT` of `URL=WEIGHT`: a whole number in `1..=10000`.
fn parse_weight(text: &str) -> Result<u32, InvalidBackend> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidBackend::InvalidWeight(text.to_owned()));
    }
    let weight = text.parse::<u32>();
    check_weight(weight.map_err(|_| InvalidBackend::WeightOutOfRange(text.to_owned()))?)
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
        let url = parse_backend_url(url)?;
        let name = name.map_or_else(|| default_name(&url), str::to_owned);
        check_backend_name(&name)?;
        let weight = check_weight(weight.unwrap_or(MIN_WEIGHT))?;
        Ok(Self {
            url,
            weight,
            name,
            discovery: Discovery::Static,
            port_name: None,
            tls: None,
        })
    }

    /// The engine's spec for this backend, carrying its parsed URL.
    pub fn spec(&self) -> BackendSpec {
        self.url
            .clone()
            .into_spec(self.name.clone())
            .with_weight(self.weight)
    }

    /// The host, lowercased (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        self.url.host()
    }

    /// The port: as written, else 443 for `https` and 80 for `http`.
    pub fn port(&self) -> u16 {
        self.url.port()
    }

    /// Whether the backend is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.url.is_https()
    }

    /// The path prefixed to every forwarded request: `""` when there is none, else e.g. `"/api"`.
    pub fn path_prefix(&self) -> &str {
        self.url.path_prefix()
    }

    /// The URL as users write it: no trailing `/` when there is no prefix.
    pub fn url_string(&self) -> String {
        self.url.text()
    }

    /// Whether both point at the same place (scheme, host, effective port and prefix);
    /// `http://a` and `http://a:80` are the same.
    pub fn same_url(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(s: &str) -> Result<BackendConfig, InvalidBackend> {
        s.parse()
    }

    #[test]
    fn url_and_weight() {
        let b = arg("http://echo-go:8081=3").unwrap();
        assert_eq!((b.weight, b.name.as_str()), (3, "echo-go:8081"));
        assert_eq!(b.to_string(), "http://echo-go:8081=3");
        let b = arg(" https://API.example.com/v1/ ").unwrap();
        assert_eq!(b.weight, 1);
        assert_eq!(b.to_string(), "https://api.example.com/v1");
    }

    #[test]
    fn refusals() {
        use InvalidBackend as E;
        let url = |e| Err(E::Url(e));
        assert_eq!(
            arg("ftp://x"),
            url(InvalidBackendUrl::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(
            arg("ftp://x").unwrap_err().to_string(),
            "unsupported scheme \"ftp\" (only http and https)"
        );
        assert_eq!(arg("=3"), url(InvalidBackendUrl::Empty));
        assert_eq!(arg("http://h=0"), Err(E::WeightOutOfRange("0".into())));
        assert_eq!(
            arg("http://h=10001"),
            Err(E::WeightOutOfRange("10001".into()))
        );
        assert_eq!(
            arg("http://h=99999999999999999999"),
            Err(E::WeightOutOfRange("99999999999999999999".into()))
        );
        assert_eq!(arg("http://h=x"), Err(E::InvalidWeight("x".into())));
        assert_eq!(arg("http://h="), Err(E::InvalidWeight(String::new())));
        assert_eq!(arg("http://h=-1"), Err(E::InvalidWeight("-1".into())));
        assert_eq!(arg("http://h/a=b=2"), Err(E::ReservedChar('=', "%3D")));
        assert_eq!(arg("http://h/a,b"), Err(E::ReservedChar(',', "%2C")));
    }

    /// Fuzz finding: a path ending in U+3000 (a Unicode space) lost it when displayed and
    /// re-parsed, because `str::trim` trims Unicode spaces. Non-ASCII is now refused outright.
    #[test]
    fn regression_unicode_space_in_path() {
        let input = "https://.///////S\u{3000}\u{3000}\u{3000}///////";
        assert!(matches!(
            arg(input),
            Err(InvalidBackend::Url(InvalidBackendUrl::Invalid(_)))
        ));
        // Only ASCII whitespace around the spec is trimmed.
        assert!(arg("\u{3000}http://h").is_err());
        assert_eq!(arg(" \thttp://h=2 ").map(|s| s.weight), Ok(2));
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
        // The engine's spec carries the parsed URL.
        let spec = c.spec();
        assert_eq!(
            (spec.name.as_str(), spec.url.as_str()),
            ("a:443", "https://a/api")
        );
        assert_eq!(spec.ext.get::<BackendUrl>(), Some(&c.url));
    }
}
