//! [`BackendUrl`]: a backend's address, parsed once.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::str::FromStr;

use http::header::HeaderValue;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use rrlb_core::{Backend, BackendSpec};

/// A backend's address: an `http` or `https` URL whose path, if any, is a prefix for every forwarded path.
///
/// Parsed once, where a backend is configured, and carried by the engine's backend as its
/// [`Extension`](rrlb_core::backend::Extension) ([`BackendUrl::into_spec`]), so that the request path reads
/// the scheme, the address to connect to, the `host` header and the prefix without parsing again
/// ([`BackendUrl::of`]).
///
/// Rules: only `http` and `https`; a host is required; the port defaults to 80 or 443; no credentials
/// (`user@host`), query string or fragment; ASCII only (percent-encode the rest); a trailing `/` of the path is
/// dropped. Scheme and host are lowercased, so `HTTP://Echo:80` and `http://echo` are the same backend: two
/// `BackendUrl`s are equal when scheme, host, effective port and prefix are.
///
/// It dereferences to its normalized [`Uri`] (whose `Display` ends the authority with `/`);
/// [`BackendUrl::text`] is the form users write.
///
/// ```
/// use rrlb_tower::http::BackendUrl;
///
/// let url: BackendUrl = "HTTP://Echo-Go:8081/api/".parse()?;
/// assert_eq!(url.text(), "http://echo-go:8081/api");
/// assert_eq!((url.host(), url.port(), url.path_prefix()), ("echo-go", 8081, "/api"));
/// assert_eq!(url.host_header(), "echo-go:8081");
/// assert_eq!(url, "http://echo-go:8081/api".parse()?);
/// assert_eq!(url.uri_for(Some(&"/v1?q=1".parse()?))?, "http://echo-go:8081/api/v1?q=1");
/// assert!("ftp://x".parse::<BackendUrl>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackendUrl {
    uri: Uri,
    port: u16,
    host_header: HeaderValue,
}

/// Why a backend URL was refused.
///
/// ```
/// use rrlb_tower::http::{BackendUrl, InvalidBackendUrl};
///
/// assert_eq!("echo:8081".parse::<BackendUrl>().unwrap_err(), InvalidBackendUrl::MissingScheme("echo:8081".into()));
/// assert_eq!("http://u:p@echo".parse::<BackendUrl>().unwrap_err(), InvalidBackendUrl::UserInfo);
/// let error = "ftp://echo".parse::<BackendUrl>().unwrap_err();
/// assert!(error.to_string().contains("ftp"), "{error}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidBackendUrl {
    /// Nothing was given.
    Empty,
    /// `echo:8081` instead of `http://echo:8081`.
    MissingScheme(String),
    /// A scheme other than `http` or `https`.
    UnsupportedScheme(String),
    /// Not a URL at all, or one that cannot carry a request path.
    Invalid(String),
    /// `http://:8080`.
    MissingHost,
    /// `http://user:pass@host`.
    UserInfo,
    /// `http://host/?q=1`.
    Query,
    /// `http://host/#x`.
    Fragment,
    /// Port 0, above 65535, or empty.
    InvalidPort(String),
}

impl fmt::Display for InvalidBackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty backend URL"),
            Self::MissingScheme(s) => write!(f, "missing scheme (write http://{s} or https://{s})"),
            Self::UnsupportedScheme(s) => {
                write!(f, "unsupported scheme {s:?} (only http and https)")
            }
            Self::Invalid(why) => write!(f, "invalid URL: {why}"),
            Self::MissingHost => f.write_str("the URL has no host"),
            Self::UserInfo => f.write_str("credentials in the URL (user@host) are not supported"),
            Self::Query => f.write_str("a backend URL takes no query string"),
            Self::Fragment => f.write_str("a backend URL takes no fragment"),
            Self::InvalidPort(p) => write!(f, "invalid port {p:?} (1..=65535)"),
        }
    }
}

impl std::error::Error for InvalidBackendUrl {}

fn invalid(e: impl fmt::Display) -> InvalidBackendUrl {
    InvalidBackendUrl::Invalid(e.to_string())
}

impl FromStr for BackendUrl {
    type Err = InvalidBackendUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if text.is_empty() {
            return Err(InvalidBackendUrl::Empty);
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
            return Err(invalid(format_args!("{c:?} must be percent-encoded")));
        }
        if text.contains('#') {
            return Err(InvalidBackendUrl::Fragment);
        }
        let uri: Uri = text.parse().map_err(invalid)?;
        let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(InvalidBackendUrl::UnsupportedScheme(other.to_owned())),
            None if uri.authority().is_some() => {
                return Err(InvalidBackendUrl::MissingScheme(text.to_owned()));
            }
            None => return Err(invalid("expected http://HOST[:PORT][/PREFIX]")),
        };
        let authority = uri.authority().ok_or(InvalidBackendUrl::MissingHost)?;
        if authority.as_str().contains('@') {
            return Err(InvalidBackendUrl::UserInfo);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(InvalidBackendUrl::MissingHost);
        }
        // What follows the host is either nothing or `:PORT`.
        let default_port = if https { 443 } else { 80 };
        let port = match authority.as_str().get(host.len()..).unwrap_or_default() {
            "" => default_port,
            rest => match rest.strip_prefix(':') {
                Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
                    Ok(port) if port != 0 => port,
                    _ => return Err(InvalidBackendUrl::InvalidPort(p.to_owned())),
                },
                Some(p) => return Err(InvalidBackendUrl::InvalidPort(p.to_owned())),
                None => return Err(invalid(format_args!("unexpected {rest:?} after the host"))),
            },
        };
        if uri.query().is_some() || text.contains('?') {
            return Err(InvalidBackendUrl::Query);
        }
        let authority: Authority = authority
            .as_str()
            .to_ascii_lowercase()
            .parse()
            .map_err(invalid)?;
        let host = authority.host();
        let host_header = if port == default_port {
            HeaderValue::from_str(host)
        } else {
            HeaderValue::from_str(&format!("{host}:{port}"))
        };
        let prefix = uri.path().trim_end_matches('/');
        let path: PathAndQuery = if prefix.is_empty() { "/" } else { prefix }
            .parse()
            .map_err(invalid)?;
        let scheme = if https { Scheme::HTTPS } else { Scheme::HTTP };
        Ok(Self {
            uri: Uri::builder()
                .scheme(scheme)
                .authority(authority.clone())
                .path_and_query(path)
                .build()
                .map_err(invalid)?,
            port,
            host_header: host_header.map_err(invalid)?,
        })
    }
}

impl BackendUrl {
    /// The backend's URL: the one it carries (see [`BackendUrl::into_spec`]), else its [`Backend::url`]
    /// parsed now.
    pub fn of(backend: &Backend) -> Result<Cow<'_, Self>, InvalidBackendUrl> {
        match backend.ext::<Self>() {
            Some(url) => Ok(Cow::Borrowed(url)),
            None => backend.url().parse().map(Cow::Owned),
        }
    }

    /// A spec for a backend named `name` (weight 1) at this URL, which its backend carries.
    pub fn into_spec(self, name: impl Into<String>) -> BackendSpec {
        BackendSpec::new(name, self.text()).with_ext(self)
    }

    /// The same backend reached at `addr` (a discovered instance of it): requests connect to `addr`, and keep
    /// this URL's scheme, prefix and `host` header.
    ///
    /// ```
    /// use rrlb_tower::http::BackendUrl;
    ///
    /// let url: BackendUrl = "http://echo-go:8081/api".parse()?;
    /// let one = url.at("[::1]:9000".parse()?);
    /// assert_eq!(one.text(), "http://[::1]:9000/api");
    /// assert_eq!((one.host(), one.port()), ("[::1]", 9000));
    /// assert_eq!(one.host_header(), "echo-go:8081");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn at(&self, addr: std::net::SocketAddr) -> Self {
        let mut parts = self.uri.clone().into_parts();
        // A socket address always makes a valid authority; on the impossible failure keep the original.
        parts.authority = addr
            .to_string()
            .parse::<Authority>()
            .ok()
            .or(parts.authority);
        let uri = Uri::from_parts(parts).unwrap_or_else(|_| self.uri.clone());
        Self {
            port: uri.port_u16().unwrap_or(self.port),
            uri,
            host_header: self.host_header.clone(),
        }
    }

    /// The host, lowercased (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or_default()
    }

    /// The port: as written, else 443 for `https` and 80 for `http`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the backend is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.uri.scheme() == Some(&Scheme::HTTPS)
    }

    /// The path prefixed to every forwarded request: `""` when there is none, else e.g. `"/api"`.
    pub fn path_prefix(&self) -> &str {
        self.uri.path().trim_end_matches('/')
    }

    /// The `host` header a request to this backend carries: the host, and the port unless it is the scheme's
    /// default.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// The URL as users write it: no trailing `/` when there is no prefix.
    pub fn text(&self) -> String {
        let text = self.uri.to_string();
        match text.strip_suffix('/') {
            Some(trimmed) if self.uri.path() == "/" => trimmed.to_owned(),
            _ => text,
        }
    }

    /// The URI of a request for `path_and_query` (`/` when `None`) on this backend, its prefix prepended.
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, InvalidBackendUrl> {
        let rest = path_and_query.map_or("/", PathAndQuery::as_str);
        let path: PathAndQuery = match self.path_prefix() {
            "" => path_and_query
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            prefix => format!("{prefix}{rest}").parse().map_err(invalid)?,
        };
        let mut parts = self.uri.clone().into_parts();
        parts.path_and_query = Some(path);
        Uri::from_parts(parts).map_err(invalid)
    }

    /// What makes two URLs the same backend.
    fn place(&self) -> (bool, &str, u16, &str) {
        (self.is_https(), self.host(), self.port, self.path_prefix())
    }
}

impl Deref for BackendUrl {
    type Target = Uri;

    fn deref(&self) -> &Uri {
        &self.uri
    }
}

impl PartialEq for BackendUrl {
    fn eq(&self, other: &Self) -> bool {
        self.place() == other.place()
    }
}

impl Eq for BackendUrl {}

impl Hash for BackendUrl {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.place().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Result<BackendUrl, InvalidBackendUrl> {
        s.parse()
    }

    #[test]
    fn normalizes() {
        let u = url(" https://API.example.com/v1/ ").unwrap();
        assert_eq!(u.text(), "https://api.example.com/v1");
        assert_eq!(
            (u.port(), u.is_https(), u.host_header().to_str().unwrap()),
            (443, true, "api.example.com")
        );
        assert_eq!(url("http://a").unwrap(), url("HTTP://A:80/").unwrap());
        assert_ne!(url("http://a").unwrap(), url("https://a").unwrap());
        assert_ne!(url("http://a/v1").unwrap(), url("http://a/v2").unwrap());
        let v6 = url("http://[::1]:8081").unwrap();
        assert_eq!(
            (v6.host(), v6.text().as_str()),
            ("[::1]", "http://[::1]:8081")
        );
        assert_eq!(url("http://h:8080").unwrap().host_header(), "h:8080");
        assert_eq!(url("http://h:80").unwrap().host_header(), "h");
    }

    #[test]
    fn refusals() {
        use InvalidBackendUrl as E;
        assert_eq!(url("ftp://x"), Err(E::UnsupportedScheme("ftp".into())));
        assert_eq!(
            url("ftp://x").unwrap_err().to_string(),
            "unsupported scheme \"ftp\" (only http and https)"
        );
        assert_eq!(url(""), Err(E::Empty));
        assert!(matches!(url("echo:8081"), Err(E::MissingScheme(_))));
        assert_eq!(url("http://:80"), Err(E::MissingHost));
        assert_eq!(url("http://u:p@h:80"), Err(E::UserInfo));
        assert_eq!(url("http://h/p?x"), Err(E::Query));
        assert_eq!(url("http://h/p#x"), Err(E::Fragment));
        assert_eq!(url("http://h:0"), Err(E::InvalidPort("0".into())));
        assert_eq!(url("http://h:99999"), Err(E::InvalidPort("99999".into())));
        assert_eq!(url("http://h:"), Err(E::InvalidPort(String::new())));
        for bad in [
            "/just/a/path",
            "http://h h",
            "http://h/caf\u{e9}",
            "http://h/a\tb",
            "not a url",
        ] {
            assert!(matches!(url(bad), Err(E::Invalid(_))), "{bad}");
        }
    }
}
