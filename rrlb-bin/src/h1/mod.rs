//! HTTP/1.1 as bytes (RFC 9112), without I/O: the syntax rules every peer's bytes are held to, the chunked
//! coding ([`chunked`]) and the framing of a backend's answer ([`answer`]).
//!
//! This is the wire-format boundary of the fast path: everything here is a pure function or a state machine fed
//! with bytes, so that unit tests and the `http1`/`answer` fuzz targets can drive it without sockets. Policy
//! (which headers rrlb forwards, what it answers) is not here but in [`crate::forward`].

pub(crate) mod answer;
pub(crate) mod chunked;

/// `tchar` (RFC 9110 §5.6.2): what a field name or a token is made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A field value (RFC 9110 §5.5) as rrlb accepts it: visible ASCII, spaces and tabs, and obs-text; no other
/// control character (a CR, LF or NUL in a value is how headers get injected).
pub(crate) fn is_field_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether every line of `head` ends in CRLF: no bare LF, no bare CR. RFC 9112 §2.2 lets a recipient accept a
/// bare LF; rrlb does not from backends, whose heads it must frame exactly as the client will.
pub(crate) fn strict_line_ends(head: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' if prev != b'\r' => return false,
            b'\r' if head.get(i + 1) != Some(&b'\n') => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

/// A `content-length` value: 1 to 19 decimal digits, nothing else (no sign, no list, no spaces inside).
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether a `transfer-encoding` value is exactly `chunked` (case-insensitive, surrounding spaces allowed).
/// rrlb accepts no other coding, and no list: `gzip, chunked` or `chunked, identity` are refused rather than
/// guessed at.
pub(crate) fn is_chunked(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), never forwarded either way.
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What a message's `connection` headers say: whether to close, and which other headers are hop-by-hop.
#[derive(Debug, Default, Clone)]
pub(crate) struct Connection<'a> {
    /// `connection: close` was given.
    pub(crate) close: bool,
    /// `connection: keep-alive` was given (what keeps an HTTP/1.0 connection open).
    pub(crate) keep_alive: bool,
    named: Vec<&'a [u8]>,
}

impl<'a> Connection<'a> {
    /// Reads one `connection` header value (call it for each).
    pub(crate) fn add(&mut self, value: &'a [u8]) {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty() {
                self.named.push(token);
            }
        }
    }

    /// Whether `name` is hop-by-hop: in [`HOP_BY_HOP`] or named by a `connection` header.
    pub(crate) fn is_hop_by_hop(&self, name: &str) -> bool {
        HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
            || self
                .named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Appends `HTTP/1.1 STATUS REASON\r\n`; without a reason (or an empty one), the status's standard one.
pub(crate) fn push_status_line(out: &mut Vec<u8>, status: u16, reason: Option<&str>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    let reason = reason.filter(|r| !r.is_empty()).or_else(|| {
        http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
    });
    out.extend_from_slice(reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether a request gets a `content-length` (of `len`) from rrlb: when it has a body, or when its method
/// defines one (RFC 9110 §8.6: a `POST` with no body says `content-length: 0`). Bodies are always forwarded
/// with a length, never chunked.
pub(crate) fn sends_length(method: &http::Method, len: u64) -> bool {
    len > 0 || !matches!(*method, http::Method::GET | http::Method::HEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_strict_decimals() {
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(parse_length(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1e3",
            b"0x10",
            b"5, 5",
            b"5 5",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn line_ends_and_values_are_strict() {
        assert!(strict_line_ends(b"HTTP/1.1 200 OK\r\na: b\r\n\r\n"));
        assert!(!strict_line_ends(b"HTTP/1.1 200 OK\na: b\r\n\r\n"));
        assert!(!strict_line_ends(b"HTTP/1.1 200 OK\r\na: b\rc\r\n\r\n"));
        assert!(!strict_line_ends(b"a\r"));
        assert!(is_field_value(b"a b\tc \xff"));
        assert!(!is_field_value(b"a\x01"));
        assert!(!is_field_value(b"a\x7f"));
        assert!(!is_field_value(b"a\rb"));
        assert!(is_chunked(b" Chunked "));
        for bad in [
            &b"gzip, chunked"[..],
            b"chunked, identity",
            b"xchunked",
            b"identity",
            b"",
        ] {
            assert!(!is_chunked(bad), "{bad:?}");
        }
    }

    #[test]
    fn connection_names_hop_by_hop_headers() {
        let mut c = Connection::default();
        c.add(b"keep-alive, X-Secret");
        c.add(b"close");
        assert!(c.close && c.keep_alive);
        assert!(c.is_hop_by_hop("x-secret"));
        assert!(c.is_hop_by_hop("TE"));
        assert!(!c.is_hop_by_hop("x-kept"));
    }
}
