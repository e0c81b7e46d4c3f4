//! `https://` backends: the request goes through rrlb-tower's hyper client, and its answer is checked by the
//! same rules as a plain one (`answer::check_answer`) and written back as an HTTP/1.1 head.

use std::sync::Arc;

use http::Method;
use http_body_util::Full;
use rrlb_core::Backend;
use rrlb_tower::http::HttpUpstream;
use rrlb_tower::trace::{TRACEPARENT, TraceParent};
use rrlb_tower::{FailureKind, Routed};
use tower::Service;

use super::{BodySource, RawError, RawRequest, RawResponse};
use crate::h1::{self, answer};

/// Splits a [`RawRequest`]'s `rest` into its target and its header lines.
fn split_rest(rest: &[u8]) -> Option<(&str, &[u8])> {
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&rest[..line_end]).ok()?;
    let target = line.strip_suffix(" HTTP/1.1")?;
    Some((target, &rest[line_end + 2..]))
}

/// An `https://` backend: the request goes through rrlb-tower's hyper client, its answer comes back as a
/// [`RawResponse`] whose body is forwarded chunked.
pub(super) async fn via_hyper(
    mut tls: HttpUpstream,
    backend: Arc<Backend>,
    request: RawRequest,
    (span, attempt): (TraceParent, u32),
) -> Result<RawResponse, RawError> {
    let other = |m: String| RawError::new(FailureKind::Other, m);
    let (target, headers) = split_rest(&request.rest)
        .ok_or_else(|| other("could not re-read the request head".into()))?;
    let mut req = http::Request::new(Full::new(request.body.clone()));
    *req.method_mut() = request.method.clone();
    *req.uri_mut() = target
        .parse()
        .map_err(|e| other(format!("request target: {e}")))?;
    let mut parsed = [httparse::EMPTY_HEADER; 128];
    let (_, lines) = match httparse::parse_headers(headers, &mut parsed) {
        Ok(httparse::Status::Complete(done)) => done,
        _ => return Err(other("could not re-read the request headers".into())),
    };
    for h in lines {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_bytes(h.value),
        ) {
            req.headers_mut().append(name, value);
        }
    }
    // Always 55 bytes of lower-case hex and '-'.
    if let Ok(value) = http::HeaderValue::from_bytes(&span.encode()) {
        req.headers_mut().insert(TRACEPARENT, value);
    }
    let res = tls
        .call(Routed {
            backend,
            request: req,
            attempt,
        })
        .await
        .map_err(|e| RawError::client(rrlb_tower::http::classify_transport_error(&*e), e))?;
    let (parts, body) = res.into_parts();
    answer::check_answer(parts.status, &parts.headers).map_err(RawError::protocol)?;
    let mut head = Vec::with_capacity(256);
    h1::push_status_line(&mut head, parts.status.as_u16(), None);
    let mut response_headers = parts.headers;
    answer::strip_answer(&mut response_headers);
    for (name, value) in &response_headers {
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        h1::push_header(&mut head, name.as_str().as_bytes(), value.as_bytes());
    }
    let no_body = request.method == Method::HEAD || matches!(parts.status.as_u16(), 204 | 304);
    if !no_body {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    Ok(RawResponse {
        status: parts.status.as_u16(),
        head: head.into(),
        body: BodySource::Hyper {
            body,
            chunked: !no_body,
        },
        served: None,
    })
}
