//! What an operator is shown of a certificate (`/admin/tls`, `rrlb --check`, the expiry metric), read with
//! x509-parser: subject, SANs, validity. Only the certificate is read here; a key never reaches this file.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rustls::server::ServerConnection;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

use super::TlsError;

/// What `/admin/tls` and `rrlb --check` show of one certificate. Never anything of a key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct CertInfo {
    /// The certificate's name, the `{name}` of `rrlb_tls_certificate_expiry_timestamp_seconds`: its first DNS
    /// name, else its first other SAN, else its subject's common name, else its file.
    pub(crate) name: String,
    /// The subject, as `C=.., O=.., CN=..` (attribute order as in the certificate).
    pub(crate) subject: String,
    /// The subject alternative names: DNS names as written (`*.example.com`), IP addresses, `email:`/`URI:`.
    pub(crate) sans: Vec<String>,
    /// Valid from (RFC 3339, UTC).
    pub(crate) not_before: String,
    /// Valid until (RFC 3339, UTC).
    pub(crate) not_after: String,
    /// Valid until, in seconds since the Unix epoch (the expiry metric's value).
    pub(crate) not_after_unix: i64,
    /// The certificate file, as configured.
    pub(crate) source: String,
    /// Valid from, in seconds since the Unix epoch (for the not-yet-valid warning).
    #[serde(skip)]
    pub(crate) not_before_unix: i64,
}

/// A certificate as rrlb uses it: what is shown, and the DNS names SNI selects it by.
pub(super) struct Parsed {
    pub(super) info: CertInfo,
    pub(super) dns_names: Vec<String>,
}

/// Reads a DER certificate's subject, SANs and validity; `source` is its file, for the info and for errors.
pub(super) fn parse(der: &[u8], source: &str) -> Result<Parsed, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::bad_certificate(source, e))?;
    let subject = name_string(cert.subject());
    let (sans, dns_names) = sans(&cert).map_err(|e| TlsError::bad_certificate(source, e))?;
    let validity = cert.validity();
    let not_before_unix = validity.not_before.timestamp();
    let not_after_unix = validity.not_after.timestamp();
    let name = dns_names
        .first()
        .or(sans.first())
        .cloned()
        .or_else(|| common_name(cert.subject()))
        .unwrap_or_else(|| source.to_owned());
    Ok(Parsed {
        info: CertInfo {
            name,
            subject,
            sans,
            not_before: rfc3339(not_before_unix),
            not_after: rfc3339(not_after_unix),
            not_after_unix,
            source: source.to_owned(),
            not_before_unix,
        },
        dns_names,
    })
}

/// All SANs as shown, and the DNS names alone (lower-cased, for SNI).
fn sans(
    cert: &X509Certificate<'_>,
) -> Result<(Vec<String>, Vec<String>), x509_parser::error::X509Error> {
    let mut shown = Vec::new();
    let mut dns = Vec::new();
    let Some(ext) = cert.subject_alternative_name()? else {
        return Ok((shown, dns));
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(n) => {
                shown.push((*n).to_owned());
                dns.push(n.to_ascii_lowercase());
            }
            GeneralName::IPAddress(b) => {
                if let Some(ip) = ip(b) {
                    shown.push(ip.to_string());
                }
            }
            GeneralName::RFC822Name(n) => shown.push(format!("email:{n}")),
            GeneralName::URI(n) => shown.push(format!("URI:{n}")),
            _ => {}
        }
    }
    Ok((shown, dns))
}

fn ip(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(b)
        .ok()
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// A distinguished name as `C=.., O=.., CN=..`, in visible ASCII only: control and non-ASCII bytes are
/// written as RFC 4514 `\XX` hex pairs, so the string can go into a header field as it is.
fn name_string(name: &X509Name<'_>) -> String {
    let raw = name.to_string();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
    out
}

/// Seconds since the epoch as RFC 3339 (`2026-01-31T12:00:00Z`); a time outside years 0–9999 (which no
/// X.509 time can be) as its number of seconds.
fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The verified client certificate's subject of an accepted connection (`C=.., O=.., CN=..`, visible ASCII
/// only), for the header named by `client_subject_header`; `None` without a client certificate. rustls keeps
/// a client's certificates only once its verifier accepted them, so this is never an unverified name.
pub(crate) fn client_subject(conn: &ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    Some(name_string(cert.subject()))
}
