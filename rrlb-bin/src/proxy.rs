//! The hyper path: HTTP/1.0 and HTTP/2 (h2c) requests, served by hyper's server and decided on by the same
//! forwarding core as the fast path ([`crate::forward`]); the answer comes through rrlb-tower's hyper client,
//! checked by [`forward::check_answer`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use rrlb_tower::Served;

use crate::forward::{self, ErrorAnswer, Facts, Outcome, Protocol, Record, Rejection};
use crate::state::{App, Local, LocalService, ProxyService, call_local};

/// The proxy's response body: a backend's streamed body, or one of rrlb's own JSON answers.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

thread_local! {
    /// This thread's copy of the proxy service (see [`call_local`]).
    static SERVICE: LocalService<ProxyService> = const { RefCell::new(None) };
}

/// Handles one request on the proxy listener. Never fails: every problem is an HTTP answer.
pub async fn handle(
    app: Arc<Local>,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let protocol = match req.version() {
        Version::HTTP_09 | Version::HTTP_10 => Protocol::Http10,
        Version::HTTP_11 => Protocol::Http11,
        _ => Protocol::Http2,
    };
    let record = Record::start(client, req.method(), || req.uri().path().to_owned());
    let (mut parts, body) = req.into_parts();
    let client_ip = client.ip().to_string();
    let decided = {
        let facts = Facts::gather(
            parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        );
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = parts.uri.authority().map(|a| a.as_str());
        match forward::decide(
            protocol,
            &parts.method,
            target,
            authority,
            &facts,
            &client_ip,
        ) {
            Ok(plan) => match plan.target.parse::<http::Uri>() {
                Ok(uri) => Ok((
                    plan.request_id.clone(),
                    uri,
                    plan.header_map(&facts, &parts.headers),
                    facts.declared_length(),
                    plan.body == forward::BodyFraming::Chunked,
                )),
                Err(_) => Err((plan.request_id, Rejection::bad("invalid request target"))),
            },
            Err(r) => Err((facts.request_id(), r)),
        }
    };
    let (request_id, uri, headers, declared, chunked) = match decided {
        Ok(d) => d,
        Err((id, rejection)) => return Ok(refuse(&app, &record, &id, &rejection, protocol)),
    };
    if let Err(rejection) = forward::admit(
        &app.limiter.load(),
        app.config.load().limits.max_body_bytes,
        client,
        declared,
    ) {
        return Ok(refuse(&app, &record, &request_id, &rejection, protocol));
    }
    let body = match read_body(&app, body).await {
        Ok(body) => body,
        Err(rejection) => return Ok(refuse(&app, &record, &request_id, &rejection, protocol)),
    };
    parts.uri = uri;
    parts.headers = headers;
    if forward::sends_length(&parts.method, body.len() as u64) {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let upstream_req = Request::from_parts(parts, Full::new(body));

    // A chunked request that reached hyper (HTTP/1.1 after a hand-over) was framed by hyper's decoder, not
    // rrlb's: nothing after it on the connection is read as a request.
    let close = chunked && protocol != Protocol::Http2;
    let res = match call_local(&SERVICE, &app.service, upstream_req).await {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            let served = parts.extensions.remove::<Served>();
            forward::strip_answer(&mut parts.headers);
            parts
                .headers
                .insert(forward::X_REQUEST_ID.clone(), request_id.clone());
            let (name, attempts) = match &served {
                Some(s) => {
                    if let Ok(v) = HeaderValue::from_str(s.backend.name()) {
                        parts.headers.insert(forward::X_RRLB_BACKEND.clone(), v);
                    }
                    (Some(s.backend.name()), s.attempts)
                }
                None => (None, 1),
            };
            record.done(
                &app.metrics,
                &request_id,
                Outcome {
                    status: parts.status.as_u16(),
                    backend: name,
                    attempts,
                    reject: None,
                },
            );
            Response::from_parts(parts, Either::Left(body))
        }
        Err(e) => {
            let answer = ErrorAnswer::from_balance(&e);
            let outcome = match Rejection::from_balance(&e) {
                Some(r) => Outcome::rejected(&r),
                None => Outcome {
                    status: answer.status.as_u16(),
                    backend: e.backend(),
                    attempts: e.attempts(),
                    reject: None,
                },
            };
            record.done(&app.metrics, &request_id, outcome);
            answer.to_response(&request_id).map(Either::Right)
        }
    };
    Ok(if close { closing(res) } else { res })
}

/// The request body, within `limits.max_body_bytes` and `timeouts.body_read` between frames.
async fn read_body(app: &App, body: Incoming) -> Result<Bytes, Rejection> {
    let (max, wait) = {
        let c = app.config.load();
        (c.limits.max_body_bytes, c.timeouts.body_read)
    };
    let mut body = Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    let mut out = BytesMut::new();
    loop {
        match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(Rejection::BodyTimeout),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) if e.is::<LengthLimitError>() => {
                return Err(Rejection::BodyTooLarge(max));
            }
            Ok(Some(Err(e))) => {
                return Err(Rejection::BadRequest(
                    format!("could not read the request body: {e}").into(),
                ));
            }
        }
    }
}

/// rrlb's answer to a refused request, recorded; an HTTP/1 connection closes after it when the rejection says
/// so (its framing or its unread body cannot be trusted).
fn refuse(
    app: &App,
    record: &Record,
    request_id: &HeaderValue,
    rejection: &Rejection,
    protocol: Protocol,
) -> Response<ProxyBody> {
    record.done(&app.metrics, request_id, Outcome::rejected(rejection));
    let res = rejection
        .answer()
        .to_response(request_id)
        .map(Either::Right);
    if rejection.closes() && protocol != Protocol::Http2 {
        closing(res)
    } else {
        res
    }
}

/// Asks hyper's HTTP/1 server to close the connection after this answer.
fn closing(mut res: Response<ProxyBody>) -> Response<ProxyBody> {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

#[allow(dead_code)]
fn _assert_send(app: Arc<Local>, req: Request<Incoming>, client: SocketAddr) {
    fn is_send<T: Send>(_: T) {}
    is_send(handle(app, req, client));
}
