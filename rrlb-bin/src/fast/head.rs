//! Reading a client's request head for the fast path: `httparse` parses it, the forwarding core decides on it
//! ([`forward::decide`]), and this writes the head the backend will get.

use http::Method;
use http::header::HeaderValue;

use crate::forward::{self, BodyFraming, Facts, Peer, Protocol, Rejection};

/// Longest request head the fast path reads (as the hyper path: 64 KiB); a longer one is answered `431`.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a request; more is answered `431`.
const MAX_HEADERS: usize = 100;

/// A request head the fast path serves.
#[derive(Debug)]
pub(super) struct RequestHead {
    /// Length of the head in the buffer.
    pub(super) len: usize,
    /// The method.
    pub(super) method: Method,
    /// How the body arrives.
    pub(super) body: BodyFraming,
    /// The client asked to close the connection after this exchange.
    pub(super) close: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub(super) expect_continue: bool,
    /// The request id.
    pub(super) request_id: HeaderValue,
    /// The request's trace.
    pub(super) trace: forward::Trace,
    /// The origin-form target, ` HTTP/1.1`, and the header lines to forward, `x-forwarded-*` and
    /// `x-request-id` included; the caller adds `content-length` once the body is read. A
    /// [`RawRequest`](crate::upstream::RawRequest)'s `rest`.
    pub(super) rest: Vec<u8>,
}

/// What [`parse_request`] made of the buffer.
#[derive(Debug)]
pub(super) enum Head {
    /// Not a whole head yet.
    Partial,
    /// HTTP/1.0 or the HTTP/2 preface: the connection goes to hyper's server (the hyper path), which applies the
    /// same forwarding core.
    Hyper,
    /// A request the fast path serves (not boxed: one allocation less per request).
    Ready(RequestHead),
    /// A request refused before its body: answered, then the connection closes (nothing after a refused head
    /// can be trusted to start a request).
    Refused {
        /// The request's id (the client's when sane).
        request_id: HeaderValue,
        /// Why.
        rejection: Rejection,
    },
}

/// Reads a request head from the start of `buf`, sent by `peer`; a new trace is
/// sampled with probability `sample_ratio`.
pub(super) fn parse_request(buf: &[u8], peer: &Peer, sample_ratio: f64) -> Head {
    // Uninitialised: the parser writes only the fields it finds (an initialised array is 3 KiB of stores per
    // request).
    let mut headers = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return refused(&[], Rejection::HeadTooLarge);
        }
        Err(_) if buf.starts_with(b"PRI * HTTP/2") => return Head::Hyper,
        Err(e) => {
            return refused(
                &[],
                Rejection::BadRequest(format!("malformed request: {e}").into()),
            );
        }
    };
    if len > MAX_HEAD {
        return refused(req.headers, Rejection::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return refused(req.headers, Rejection::bad("malformed request"));
    };
    let protocol = if version == 1 {
        Protocol::Http11
    } else {
        Protocol::Http10
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return refused(req.headers, Rejection::bad("invalid method"));
    };
    let facts = Facts::gather(req.headers.iter().map(|h| (h.name, h.value)));
    let plan = match forward::decide(
        protocol,
        &method,
        (target, None),
        &facts,
        peer,
        sample_ratio,
    ) {
        Ok(plan) => plan,
        Err(rejection) => {
            return Head::Refused {
                request_id: facts.request_id(),
                rejection,
            };
        }
    };
    // HTTP/1.0 was checked by the same rules; hyper serves it (and decides again, identically).
    if protocol == Protocol::Http10 {
        return Head::Hyper;
    }
    let mut rest = Vec::with_capacity(len + 192);
    plan.write_h1(
        &facts,
        req.headers.iter().map(|h| (h.name, h.value)),
        &mut rest,
    );
    Head::Ready(RequestHead {
        len,
        method,
        body: plan.body,
        close: plan.close,
        expect_continue: plan.expect_continue,
        request_id: plan.request_id,
        trace: plan.trace,
        rest,
    })
}

fn refused(headers: &[httparse::Header<'_>], rejection: Rejection) -> Head {
    Head::Refused {
        request_id: Facts::gather(headers.iter().map(|h| (h.name, h.value))).request_id(),
        rejection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(raw: &[u8]) -> RequestHead {
        match parse_request(raw, &Peer::plain("10.0.0.9".into()), 0.0) {
            Head::Ready(h) => h,
            other => panic!("{other:?}"),
        }
    }

    fn refusal(raw: &[u8]) -> Rejection {
        match parse_request(raw, &Peer::plain("1.1.1.1".into()), 0.0) {
            Head::Refused { rejection, .. } => rejection,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn requests_are_rewritten_for_the_backend() {
        let raw = b"POST /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\nx-secret: s\r\nte: trailers\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-proto: https\r\nx-request-id: abc-1\r\ncontent-length: 2\r\nx-kept: k\r\n\r\n{}";
        let h = ready(raw);
        assert_eq!(h.len, raw.len() - 2);
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.body, BodyFraming::Length(2));
        assert!(!h.close);
        assert_eq!(h.request_id, "abc-1");
        assert_eq!(
            std::str::from_utf8(&h.rest).unwrap(),
            "/a/b?q=1 HTTP/1.1\r\nx-kept: k\r\nx-forwarded-for: 1.2.3.4, 10.0.0.9\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: example.com\r\nx-request-id: abc-1\r\n"
        );
        let h = ready(b"GET http://example.com/x HTTP/1.1\r\nhost: example.com\r\n\r\n");
        assert!(h.rest.starts_with(b"/x HTTP/1.1\r\n"));
        let h = ready(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Chunked);
        assert!(h.expect_continue);
        assert!(!String::from_utf8_lossy(&h.rest).contains("transfer-encoding"));
    }

    #[test]
    fn http10_and_h2c_go_to_hyper_and_the_rest_is_answered() {
        for raw in [
            &b"GET / HTTP/1.0\r\nhost: x\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_request(raw, &Peer::plain("1.1.1.1".into()), 0.0),
                    Head::Hyper
                ),
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse_request(
                b"GET / HTTP/1.1\r\nhost: x\r\n",
                &Peer::plain("1.1.1.1".into()),
                0.0
            ),
            Head::Partial
        ));
        assert_eq!(
            refusal(b"GET / HTTP/1.1\r\n\r\n"),
            Rejection::bad("missing host header")
        );
        assert_eq!(
            refusal(b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\n"),
            Rejection::Connect
        );
        assert!(matches!(
            refusal(b"GET / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n"),
            Rejection::BadRequest(_)
        ));
        for raw in [
            &b"GARBAGE\x00\x01\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: x\r\nx: \x01\r\n\r\n",
        ] {
            assert!(
                matches!(refusal(raw), Rejection::BadRequest(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: 1\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n");
        assert_eq!(refusal(many.as_bytes()), Rejection::HeadTooLarge);
        let huge = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD));
        assert_eq!(refusal(huge.as_bytes()), Rejection::HeadTooLarge);
        match parse_request(
            b"GET / HTTP/1.1\r\nx-request-id: mine\r\n\r\n",
            &Peer::plain("1.1.1.1".into()),
            0.0,
        ) {
            Head::Refused { request_id, .. } => assert_eq!(request_id, "mine"),
            other => panic!("{other:?}"),
        }
    }
}
