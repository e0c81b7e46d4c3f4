//! The hyper path: HTTP/1.0 and HTTP/2 (h2c) clients, parsed by hyper's server. Everything after the parsing is
//! the fast path's: the same forwarding core decides (`forward`), the same balancing service and
//! backend connections carry the request ([`crate::upstream`]), and the same answer rules frame the answer,
//! whose body reaches hyper as a [`RawBody`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::app::{App, Local};
use crate::forward::{
    self, BodyFraming, ClientStream, Facts, Peer, Protocol, Record, Rejection, Settings, Verdict,
};
use crate::logging::ErrorChain;
use crate::upstream::{RawBody, RawRequest, RawResponse};

/// The proxy's response body: a backend's answer body, or one of rrlb's own JSON answers.
pub(crate) type ProxyBody = Either<Logged, Full<Bytes>>;

/// A backend's answer body, counted into its exchange's record, which writes the access line when the body
/// is done (or dropped: the client went away).
pub(crate) struct Logged {
    body: RawBody,
    record: Record<'static>,
}

impl hyper::body::Body for Logged {
    type Data = Bytes;
    type Error = <RawBody as hyper::body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(|f| f.data_ref())) {
            this.record.sent(data.map_or(0, |d| d.len() as u64));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves a connection the fast path handed over (`stream`, and `read`, what it had read of it) on hyper's
/// HTTP/1 + HTTP/2 server, until it closes or the server stops (`stop`) and it is drained. `watcher` is held
/// while the connection is open, so the server's drain waits for it.
///
/// The drain: HTTP/2 gets `GOAWAY` at once (hyper's graceful shutdown: streams already opened are served).
/// HTTP/1 answers say `connection: close` from the stop on ([`handle`]), which closes a busy connection after
/// its answer; one still open after [`DRAIN_IDLE_GRACE`](crate::forward::DRAIN_IDLE_GRACE) has been idle since
/// the stop and is then closed by hyper (or finishes the request it is serving first).
pub(crate) async fn serve<S: ClientStream>(
    app: Arc<Local>,
    hyper: &auto::Builder<TokioExecutor>,
    (stream, read, h2): (S, Bytes, bool),
    (client, peer): (SocketAddr, Peer),
    mut stop: watch::Receiver<bool>,
    watcher: Watcher,
) {
    let h2 = h2 || read.starts_with(b"PRI * HTTP/2");
    let draining = stop.clone();
    let peer = Arc::new(peer);
    let svc = service_fn(move |req| {
        let peer = Arc::clone(&peer);
        handle(Arc::clone(&app), req, (client, peer), draining.clone())
    });
    let io = Rewind {
        prefix: read,
        inner: stream,
    };
    let conn = hyper.serve_connection(TokioIo::new(io), svc).into_owned();
    let mut conn = std::pin::pin!(conn);
    let stopping = async {
        let _ = stop.wait_for(|s| *s).await;
        if !h2 {
            tokio::time::sleep(crate::forward::DRAIN_IDLE_GRACE).await;
        }
    };
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%client, error = %ErrorChain(&*e), "connection ended with an error");
    }
    drop(watcher);
}

/// Handles one request on the proxy listener. Never fails: every problem is an HTTP answer.
///
/// Once `stop` is set, HTTP/1 answers say `connection: close`, so the client sends nothing more on the connection
/// and hyper closes it after the answer.
pub(crate) async fn handle(
    app: Arc<Local>,
    req: Request<Incoming>,
    (client, peer): (SocketAddr, Arc<Peer>),
    stop: watch::Receiver<bool>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let h1 = matches!(
        req.version(),
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    );
    let res = respond(app, req, client, &peer).await;
    Ok(if h1 && *stop.borrow() {
        closing(res)
    } else {
        res
    })
}

/// The answer to one request on the proxy listener.
async fn respond(
    app: Arc<Local>,
    req: Request<Incoming>,
    client: SocketAddr,
    peer: &Peer,
) -> Response<ProxyBody> {
    let protocol = match req.version() {
        Version::HTTP_09 | Version::HTTP_10 => Protocol::Http10,
        Version::HTTP_11 => Protocol::Http11,
        _ => Protocol::Http2,
    };
    // The answer's body holds the state only while the access log is on.
    let log = match app.access_log.is_on() {
        true => forward::Log::Shared(Arc::clone(&app)),
        false => forward::Log::Off,
    };
    let mut record = Record::start(log, client, req.method().as_str(), req.uri().path());
    let (parts, body) = req.into_parts();
    let settings = Settings::of(&app);
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
            (target, authority),
            &facts,
            peer,
            settings.sample_ratio,
        ) {
            Ok(plan) => {
                let mut rest = Vec::with_capacity(512);
                let cookie = (protocol == Protocol::Http2)
                    .then(|| joined_cookies(&parts.headers))
                    .flatten();
                let fields = parts
                    .headers
                    .iter()
                    .filter(|(n, _)| cookie.is_none() || *n != header::COOKIE)
                    .map(|(n, v)| (n.as_str(), v.as_bytes()))
                    .chain(cookie.as_deref().map(|c| ("cookie", c)));
                plan.write_h1(&facts, fields, &mut rest);
                record.traced(
                    &plan.trace,
                    app.telemetry.load().as_ref().as_ref(),
                    (&parts.method, &plan.target, protocol.version()),
                );
                Ok((
                    plan.request_id,
                    plan.trace,
                    rest,
                    facts.declared_length(),
                    plan.body == BodyFraming::Chunked,
                ))
            }
            Err(r) => Err((facts.request_id(), r)),
        }
    };
    let (request_id, trace, rest, declared, chunked) = match decided {
        Ok(d) => d,
        Err((id, rejection)) => return refuse(&app, &mut record, &id, &rejection, protocol),
    };
    if let Err(rejection) = forward::admit(&app, &settings, client, declared) {
        return refuse(&app, &mut record, &request_id, &rejection, protocol);
    }
    let body = match read_body(&settings, body).await {
        Ok(body) => body,
        Err(rejection) => return refuse(&app, &mut record, &request_id, &rejection, protocol),
    };
    record.received(body.len() as u64);
    let request = RawRequest::new(parts.method, rest, body, trace);

    // A chunked request that reached hyper (HTTP/1.1 after a hand-over) was framed by hyper's decoder, not
    // rrlb's: nothing after it on the connection is read as a request.
    let close = chunked && protocol != Protocol::Http2;
    let res = match app.call(request).await {
        Ok(res) => answer(&app, record, &request_id, res),
        Err(e) => record
            .failed(&app.metrics, &request_id, &e)
            .to_response(&request_id)
            .map(Either::Right),
    };
    if close { closing(res) } else { res }
}

/// A backend's answer as a `Response`: its head (already checked and rewritten by the answer rules) parsed
/// back into fields, less the framing line, which hyper writes for its client itself.
fn answer(
    app: &App,
    mut record: Record<'static>,
    request_id: &HeaderValue,
    res: RawResponse,
) -> Response<ProxyBody> {
    let RawResponse {
        status,
        head,
        body,
        served,
    } = res;
    let outcome = Verdict::answered(status, &served);
    let added = forward::AnswerFields::new(request_id, outcome.backend);
    record.done(&app.metrics, request_id, outcome);
    let body = RawBody::new(body);
    let mut out = Response::new(Either::Left(Logged { body, record }));
    *out.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let mut fields = [httparse::EMPTY_HEADER; crate::h1::answer::MAX_HEADERS + 4];
    let mut with_end = head;
    with_end.extend_from_slice(b"\r\n");
    let headers = out.headers_mut();
    if let Some(line_end) = with_end.windows(2).position(|w| w == b"\r\n")
        && let Ok(httparse::Status::Complete((_, fields))) =
            httparse::parse_headers(&with_end[line_end + 2..], &mut fields)
    {
        for f in fields.iter() {
            if f.name.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(f.name.as_bytes()),
                HeaderValue::from_bytes(f.value),
            ) {
                headers.append(n, v);
            }
        }
    }
    added.write_map(headers);
    out
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 needs one, joined with `; ` (RFC 9113 §8.2.3).
/// `None` unless there are several.
fn joined_cookies(headers: &http::HeaderMap) -> Option<Vec<u8>> {
    let mut values = headers.get_all(header::COOKIE).iter();
    let first = values.next()?;
    let second = values.next()?;
    let mut joined = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(values) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    Some(joined)
}

/// The request body, within `limits.max_body_bytes` and `timeouts.body_read` between frames.
async fn read_body(settings: &Settings, body: Incoming) -> Result<Bytes, Rejection> {
    let (max, wait) = (settings.max_body, settings.body_read);
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
    record: &mut Record<'_>,
    request_id: &HeaderValue,
    rejection: &Rejection,
    protocol: Protocol,
) -> Response<ProxyBody> {
    let res = record
        .refused(&app.metrics, request_id, rejection)
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

/// A stream whose first reads return `prefix`.
struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: ClientStream> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: ClientStream> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
