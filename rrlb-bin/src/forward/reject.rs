//! rrlb's own answers: why a request was not forwarded, or why forwarding it failed, and how each path writes
//! that answer (bytes for the fast path, a `Response` for hyper).

use std::borrow::Cow;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::h1::{push_header, push_status_line};
use crate::logging::ErrorChain;

/// Why rrlb answered a request itself, before any backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// A malformed or ambiguous request (`400`).
    BadRequest(Cow<'static, str>),
    /// A request head over the limits (`431`).
    HeadTooLarge,
    /// A transfer coding rrlb does not implement (`501`).
    UnsupportedCoding,
    /// An `expect` other than `100-continue` (`417`).
    Expectation,
    /// `CONNECT`: rrlb is a reverse proxy, not a tunnel (`405`).
    Connect,
    /// The body is over `limits.max_body_bytes` (`413`).
    BodyTooLarge(u64),
    /// The body did not arrive within `timeouts.body_read` (`408`).
    BodyTimeout,
    /// The client is over `limits.rate_per_client` (`429`; wait this many seconds).
    RateLimited(u64),
    /// No backend is eligible (`503`; retry after this many seconds).
    NoBackend(u64),
}

impl Rejection {
    /// A `400` for `why`.
    pub(crate) fn bad(why: &'static str) -> Self {
        Rejection::BadRequest(Cow::Borrowed(why))
    }

    /// The status rrlb answers with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Rejection::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
            Rejection::Expectation => StatusCode::EXPECTATION_FAILED,
            Rejection::Connect => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Rejection::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Rejection::NoBackend(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `reason` label of `rrlb_rejected_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Rejection::BadRequest(_)
            | Rejection::HeadTooLarge
            | Rejection::UnsupportedCoding
            | Rejection::Expectation
            | Rejection::Connect => "bad_request",
            Rejection::BodyTooLarge(_) => "body_too_large",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::RateLimited(_) => "rate_limit",
            Rejection::NoBackend(_) => "no_backend",
        }
    }

    /// Whether the client's connection must close after the answer: the request's framing cannot be trusted
    /// (or its body was not read), so nothing after it can be read as a request.
    pub(crate) fn closes(&self) -> bool {
        !matches!(self, Rejection::NoBackend(_))
    }

    /// The answer.
    pub(crate) fn answer(&self) -> ErrorAnswer {
        let message: Cow<'static, str> = match self {
            Rejection::BadRequest(why) => why.clone(),
            Rejection::HeadTooLarge => "request head too large".into(),
            Rejection::UnsupportedCoding => {
                "transfer-encoding other than chunked is not supported".into()
            }
            Rejection::Expectation => "only expect: 100-continue is supported".into(),
            Rejection::Connect => "CONNECT is not supported".into(),
            Rejection::BodyTooLarge(max) => format!("request body exceeds {max} bytes").into(),
            Rejection::BodyTimeout => "the request body did not arrive in time".into(),
            Rejection::RateLimited(_) => "rate limit exceeded for this client".into(),
            Rejection::NoBackend(_) => "no eligible backend".into(),
        };
        let retry_after = match self {
            Rejection::RateLimited(s) | Rejection::NoBackend(s) => Some(*s),
            _ => None,
        };
        let allow = matches!(self, Rejection::Connect);
        ErrorAnswer {
            status: self.status(),
            message,
            retry_after,
            backend: None,
            allow,
        }
    }

    /// From a balancing error that no backend was eligible; `None` for any other error.
    pub(crate) fn from_balance(e: &rrlb_tower::Error) -> Option<Self> {
        e.is_no_eligible_backend()
            .then(|| Rejection::NoBackend(no_backend_retry_after(e)))
    }
}

/// The `retry-after` seconds for a `503` with no eligible backend: until the first breaker may let a call
/// through, 1 to 60.
fn no_backend_retry_after(e: &rrlb_tower::Error) -> u64 {
    e.retry_at()
        .map(|t| {
            t.saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil() as u64
        })
        .unwrap_or(1)
        .clamp(1, 60)
}

/// One of rrlb's own JSON answers, `{"error": ..., "request_id": ...}`, before it is written for a protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorAnswer {
    /// The status.
    pub(crate) status: StatusCode,
    /// The `error` text.
    pub(crate) message: Cow<'static, str>,
    /// `retry-after` seconds, if any.
    pub(crate) retry_after: Option<u64>,
    /// `x-rrlb-backend`, when a backend was tried.
    pub(crate) backend: Option<String>,
    /// Whether to send `allow` (a `405`).
    allow: bool,
}

/// The methods a `405` allows: everything rrlb forwards.
const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

impl ErrorAnswer {
    /// The answer to a balancing error: `503` with `retry-after`, `504` for a timeout, `502` otherwise.
    pub(crate) fn from_balance(e: &rrlb_tower::Error) -> Self {
        if let Some(r) = Rejection::from_balance(e) {
            return r.answer();
        }
        Self {
            status: rrlb_tower::http::status_for(e),
            // The whole chain, as before `rrlb_tower::Error` kept its cause out of its own message.
            message: ErrorChain(e).to_string().into(),
            retry_after: None,
            backend: e.backend().map(str::to_owned),
            allow: false,
        }
    }

    /// The JSON body.
    pub(crate) fn body(&self, request_id: &HeaderValue) -> String {
        serde_json::json!({
            "error": self.message,
            "request_id": request_id.to_str().unwrap_or_default(),
        })
        .to_string()
    }

    /// Written as HTTP/1.1 bytes, with `connection: close` when `close`.
    /// The length of the JSON body the client gets (for the access log).
    pub(crate) fn body_len(&self, request_id: &HeaderValue) -> u64 {
        self.body(request_id).len() as u64
    }

    pub(crate) fn to_h1(&self, request_id: &HeaderValue, close: bool) -> Vec<u8> {
        let body = self.body(request_id);
        let mut out = Vec::with_capacity(body.len() + 256);
        push_status_line(&mut out, self.status.as_u16(), None);
        out.extend_from_slice(b"content-type: application/json\r\n");
        push_header(
            &mut out,
            b"content-length",
            itoa::Buffer::new().format(body.len()).as_bytes(),
        );
        super::AnswerFields::new(request_id, self.backend.as_deref()).write_h1(&mut out);
        if let Some(secs) = self.retry_after {
            push_header(
                &mut out,
                b"retry-after",
                itoa::Buffer::new().format(secs.max(1)).as_bytes(),
            );
        }
        if self.allow {
            push_header(&mut out, b"allow", ALLOW.as_bytes());
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        out
    }

    /// Written as a `Response` for hyper's server.
    pub(crate) fn to_response(&self, request_id: &HeaderValue) -> Response<Full<Bytes>> {
        let mut res = Response::new(Full::new(Bytes::from(self.body(request_id))));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        super::AnswerFields::new(request_id, self.backend.as_deref()).write_map(h);
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_renderings_say_the_same() {
        let id = HeaderValue::from_static("req-1");
        for r in [
            Rejection::bad("missing host"),
            Rejection::HeadTooLarge,
            Rejection::UnsupportedCoding,
            Rejection::Expectation,
            Rejection::Connect,
            Rejection::BodyTooLarge(10),
            Rejection::BodyTimeout,
            Rejection::RateLimited(3),
            Rejection::NoBackend(2),
        ] {
            let a = r.answer();
            let bytes = a.to_h1(&id, true);
            let text = String::from_utf8(bytes).unwrap();
            let res = a.to_response(&id);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {} ", res.status().as_u16())),
                "{text}"
            );
            for (name, value) in res.headers() {
                let line = format!("{}: {}\r\n", name, value.to_str().unwrap());
                assert!(text.contains(&line), "{line:?} missing in {text}");
            }
            assert!(text.ends_with(&a.body(&id)));
            assert!(text.contains("connection: close\r\n"));
            let json: serde_json::Value = serde_json::from_str(&a.body(&id)).unwrap();
            assert_eq!(json["request_id"], "req-1");
            assert!(!json["error"].as_str().unwrap().is_empty());
        }
    }
}
