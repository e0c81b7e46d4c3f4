//! Reading a client's request head for the fast path, and the header helpers both sides share.

use bytes::Bytes;
use http::Method;
use http::header::HeaderValue;

/// Longest request head the fast path reads (as the hyper path: 64 KiB); longer ones go to hyper, which
/// answers `431`.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most headers the fast path takes; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;

/// What a message's `connection` headers say: whether to close, and which other headers are hop-by-hop.
#[derive(Debug, Default)]
pub(super) struct HopByHop<'a> {
    /// `connection: close` was given.
    pub(super) close: bool,
    /// `connection: keep-alive` was given (what keeps an HTTP/1.0 connection open).
    pub(super) keep_alive: bool,
    named: Vec<&'a [u8]>,
}

impl<'a> HopByHop<'a> {
    /// Reads the `connection` headers among `headers`.
    pub(super) fn of(headers: &[httparse::Header<'a>]) -> Self {
        let mut hop = Self::default();
        for h in headers {
            if !h.name.eq_ignore_ascii_case("connection") {
                continue;
            }
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    hop.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    hop.keep_alive = true;
                } else if !token.is_empty() {
                    hop.named.push(token);
                }
            }
        }
        hop
    }

    /// Whether the header `name` describes the hop rather than the message (the hyper path's list, and any
    /// header the `connection` headers name).
    pub(super) fn drops(&self, name: &str) -> bool {
        crate::proxy::hop_by_hop()
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_str()))
            || self
                .named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// A `content-length` value: decimal digits only, no sign, no overflow.
pub(super) fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Appends `HTTP/1.1 STATUS REASON\r\n`; without a reason (or an empty one), the status's standard one.
pub(super) fn push_status_line(out: &mut Vec<u8>, status: u16, reason: Option<&str>) {
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
pub(super) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Splits a [`RawRequest`](super::upstream::RawRequest)'s `rest` into its target and its header lines.
pub(super) fn split_rest(rest: &[u8]) -> Option<(&str, &[u8])> {
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&rest[..line_end]).ok()?;
    let target = line.strip_suffix(" HTTP/1.1")?;
    Some((target, &rest[line_end + 2..]))
}

/// A request head the fast path takes.
#[derive(Debug)]
pub(super) struct RequestHead {
    /// Length of the head in the buffer.
    pub(super) len: usize,
    /// The method.
    pub(super) method: Method,
    /// The body's length (0 without `content-length`).
    pub(super) content_length: u64,
    /// The client asked to close the connection after this exchange.
    pub(super) close: bool,
    /// The request id: the client's when it is sane, else a new one.
    pub(super) request_id: HeaderValue,
    /// The path, for the access log (only when it is on).
    pub(super) path: Option<String>,
    /// The target, the protocol and the header lines to forward, with `x-forwarded-*`, `x-request-id` and
    /// `content-length` set: a [`RawRequest`](super::upstream::RawRequest)'s `rest`.
    pub(super) rest: Bytes,
}

/// What [`parse_request`] made of the buffer.
#[derive(Debug)]
pub(super) enum Head {
    /// Not a whole head yet.
    Partial,
    /// Not for the fast path (another protocol version, an upgrade, `expect`, a chunked body, an oversized or
    /// unusual request, ...): the connection goes to hyper, which serves or answers it.
    Hyper,
    /// A request the fast path serves.
    Ready(RequestHead),
    /// Not an HTTP/1 request head (hyper, which parses with the same `httparse`, would refuse it too): answered
    /// with rrlb's JSON `400`.
    Malformed(httparse::Error),
}

/// Reads a request head from the start of `buf`. `client_ip` is the client's address as text, for
/// `x-forwarded-for`; `access` asks for the path (the access log is on).
pub(super) fn parse_request(buf: &[u8], client_ip: &[u8], access: bool) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        // Too long or too many headers: hyper answers 431. The HTTP/2 preface: hyper serves h2c.
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => return Head::Hyper,
        Err(_) if buf.starts_with(b"PRI * HTTP/2") => return Head::Hyper,
        Err(e) => return Head::Malformed(e),
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Head::Hyper;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Head::Hyper;
    };
    if method == Method::CONNECT || !target.starts_with('/') {
        return Head::Hyper;
    }
    let hop = HopByHop::of(req.headers);
    let mut content_length = None;
    let mut host = None;
    let mut request_id = None;
    let mut forwarded_for = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            match parse_length(h.value) {
                Some(n) if content_length.is_none_or(|c| c == n) => content_length = Some(n),
                _ => return Head::Hyper,
            }
        } else if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Head::Hyper;
            }
            host = Some(h.value);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Head::Hyper;
        } else if name.eq_ignore_ascii_case("x-request-id") {
            request_id.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for.get_or_insert(h.value);
        }
    }
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Head::Hyper;
    };
    let request_id = request_id
        .filter(|v| crate::proxy::sane_request_id_bytes(v))
        .and_then(|v| HeaderValue::from_bytes(v).ok())
        .unwrap_or_else(crate::proxy::new_request_id);
    let content_length = content_length.unwrap_or(0);

    let mut rest = Vec::with_capacity(len + 160);
    rest.extend_from_slice(target.as_bytes());
    rest.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        let name = h.name;
        if hop.drops(name)
            || name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("x-request-id")
            || name.eq_ignore_ascii_case("x-forwarded-for")
            || name.eq_ignore_ascii_case("x-forwarded-proto")
            || name.eq_ignore_ascii_case("x-forwarded-host")
        {
            continue;
        }
        push_header(&mut rest, name.as_bytes(), h.value);
    }
    rest.extend_from_slice(b"x-forwarded-for: ");
    if let Some(prior) = forwarded_for.filter(|p| !p.is_empty()) {
        rest.extend_from_slice(prior);
        rest.extend_from_slice(b", ");
    }
    rest.extend_from_slice(client_ip);
    rest.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
    push_header(&mut rest, b"x-forwarded-host", host);
    push_header(&mut rest, b"x-request-id", request_id.as_bytes());
    if content_length > 0 || method != Method::GET {
        push_header(
            &mut rest,
            b"content-length",
            itoa::Buffer::new().format(content_length).as_bytes(),
        );
    }
    let path = access.then(|| target.split('?').next().unwrap_or(target).to_owned());
    Head::Ready(RequestHead {
        len,
        method,
        content_length,
        close: hop.close,
        request_id,
        path,
        rest: rest.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(raw: &[u8]) -> RequestHead {
        match parse_request(raw, b"10.0.0.9", true) {
            Head::Ready(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_are_rewritten_for_the_backend() {
        let raw = b"POST /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\nx-secret: s\r\nte: trailers\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-proto: https\r\nx-request-id: abc-1\r\ncontent-length: 2\r\nx-kept: k\r\n\r\n{}";
        let h = ready(raw);
        assert_eq!(h.len, raw.len() - 2);
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.content_length, 2);
        assert!(!h.close);
        assert_eq!(h.request_id, "abc-1");
        assert_eq!(h.path.as_deref(), Some("/a/b"));
        assert_eq!(
            std::str::from_utf8(&h.rest).unwrap(),
            "/a/b?q=1 HTTP/1.1\r\nx-kept: k\r\nx-forwarded-for: 1.2.3.4, 10.0.0.9\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: example.com\r\nx-request-id: abc-1\r\n\
             content-length: 2\r\n"
        );
        let (target, lines) = split_rest(&h.rest).unwrap();
        assert_eq!(target, "/a/b?q=1");
        assert!(lines.starts_with(b"x-kept: k\r\n"));
    }

    #[test]
    fn a_get_without_body_has_no_length_and_gets_a_new_request_id() {
        let h = ready(
            b"GET / HTTP/1.1\r\nhost: x\r\nx-request-id: bad id\r\nconnection: close\r\n\r\n",
        );
        assert!(h.close);
        assert_eq!(h.request_id.len(), 36);
        let rest = std::str::from_utf8(&h.rest).unwrap();
        assert!(!rest.contains("content-length"), "{rest}");
        assert!(rest.contains("x-forwarded-for: 10.0.0.9\r\n"), "{rest}");
        assert!(!rest.contains("bad id"), "{rest}");
    }

    #[test]
    fn unusual_requests_go_to_hyper() {
        for raw in [
            &b"GET / HTTP/1.0\r\nhost: x\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\nhost: x\r\n\r\n",
            b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(raw, b"1.1.1.1", false), Head::Hyper),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nhost: x\r\n", b"1.1.1.1", false),
            Head::Partial
        ));
        for raw in [
            &b"GARBAGE\x00\x01\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(raw, b"1.1.1.1", false), Head::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: 1\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n");
        assert!(matches!(
            parse_request(many.as_bytes(), b"1.1.1.1", false),
            Head::Hyper
        ));
        let huge = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse_request(huge.as_bytes(), b"1.1.1.1", false),
            Head::Hyper
        ));
    }

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
            b"99999999999999999999",
        ] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
