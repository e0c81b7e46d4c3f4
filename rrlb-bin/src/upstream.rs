//! The upstream side of both request paths: one balancing service ([`ProxyService`], rrlb-tower's `Balance`
//! over [`RawUpstream`]) that sends HTTP/1.1 over plain TCP connections kept in a per-thread pool, written and
//! read by the task that serves the client (no connection task, no channel, no second wake-up per request),
//! its answers framed by `h1::answer`. The fast path writes an answer's body to its client as bytes,
//! the hyper path as a [`RawBody`]. `https://` backends go through rrlb-tower's hyper client, whose answers are
//! checked by the same rules (`forward::check_answer`).

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body_util::Full;
use hyper::body::Incoming;
use rrlb_core::AnyBalancer;
use rrlb_core::Backend;
use rrlb_tower::http::HttpUpstream;
use rrlb_tower::{Balance, BoxError};
use rrlb_tower::{FailureKind, Policy, Routed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Service;

use crate::forward;
use crate::h1::answer::Body;
use crate::h1::{self, answer};

/// Idle connections kept per backend and thread.
const MAX_IDLE: usize = 64;

/// A request, ready to be sent to whichever backend is picked: everything but the request line's method and
/// path prefix and the `host` header is already encoded. Cloning it (for a retry) takes two references.
#[derive(Debug, Clone)]
pub(crate) struct RawRequest {
    /// The method.
    pub method: Method,
    /// `TARGET HTTP/1.1\r\n` followed by the header lines to forward (each ending in CRLF), without `host`
    /// and without the blank line that ends the head.
    pub rest: Bytes,
    /// The body (its `content-length` line is in `rest` when needed).
    pub body: Bytes,
}

impl RawRequest {
    /// A request whose head (`rest`, as `forward::Plan::write_h1` wrote it) gets its `content-length` line
    /// for `body` when the forwarding core says it needs one.
    pub(crate) fn new(method: Method, mut rest: Vec<u8>, body: Bytes) -> Self {
        if forward::sends_length(&method, body.len() as u64) {
            h1::push_header(
                &mut rest,
                b"content-length",
                itoa::Buffer::new().format(body.len()).as_bytes(),
            );
        }
        Self {
            method,
            rest: rest.into(),
            body,
        }
    }
}

/// A backend's answer: its head, rewritten for the client, and the start of its body.
#[derive(Debug)]
pub(crate) struct RawResponse {
    /// The status code.
    pub status: u16,
    /// `HTTP/1.1 STATUS REASON\r\n`, the forwarded header lines and the framing line; without the blank line.
    pub head: Vec<u8>,
    /// The body bytes read with the head, and where the rest comes from.
    pub(crate) body: BodySource,
    /// Which backend answered and after how many attempts (set when the balancer returns it).
    pub served: Option<(Arc<Backend>, u32)>,
}

/// Where a backend's answer body comes from.
#[derive(Debug)]
pub(crate) enum BodySource {
    /// A pooled TCP connection, read by [`TcpBody`].
    Tcp(TcpBody),
    /// A hyper response body (an `https://` backend).
    Hyper {
        /// The body.
        body: Incoming,
        /// Whether it has a body at all (not an answer to `HEAD`, a `204` or a `304`): the fast path then
        /// forwards it chunked.
        chunked: bool,
    },
}

/// An answer body on a backend connection: decoded by the rules of `h1::answer`, the connection handed
/// back to the pool only when `Body::reusable` says so.
#[derive(Debug)]
pub(crate) struct TcpBody {
    /// Decoded body data read with the head, not yet handed on.
    pub(crate) first: Bytes,
    body: Body,
    done: bool,
    buf: BytesMut,
    keep_alive: bool,
    conn: Option<Conn>,
}

impl TcpBody {
    /// Starts reading the body after a head: `start` are the bytes read after the head. The data among them is
    /// decoded into [`first`](Self::first) now (without a copy when the body is framed by a length), so that an
    /// answer whose body breaks the rules in its first read is refused before the client gets any of it.
    fn start(
        head: &answer::Head,
        mut start: BytesMut,
        conn: Conn,
    ) -> Result<Self, answer::AnswerError> {
        let mut body = Body::new(head.framing);
        let (first, done) = if let Body::Length(left) = &mut body {
            let take = start
                .len()
                .min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= take as u64;
            (start.split_to(take).freeze(), *left == 0)
        } else {
            let mut data = Vec::new();
            let progress = body.decode(&start, &mut data)?;
            let _ = start.split_to(progress.consumed);
            (Bytes::from(data), progress.done)
        };
        let mut this = Self {
            first,
            body,
            done: false,
            buf: start,
            keep_alive: head.keep_alive,
            conn: Some(conn),
        };
        if done {
            this.end(this.buf.len());
        }
        Ok(this)
    }

    /// The body reached its framed end with `unconsumed` bytes read after it: the connection goes back to the
    /// pool if it may, else it is closed.
    fn end(&mut self, unconsumed: usize) {
        self.done = true;
        let conn = self.conn.take();
        if self.body.reusable(self.keep_alive, unconsumed)
            && let Some(c) = conn
        {
            c.release();
        }
    }

    /// Whether the body was read to its end.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Appends `data` in the client's HTTP/1.1 framing (see `Body::frame`).
    pub(crate) fn frame(&self, data: &[u8], done: bool, out: &mut Vec<u8>) {
        self.body.frame(data, done, out);
    }

    /// The checked trailer fields of a chunked body that ended (`name: value\r\n` lines).
    pub(crate) fn trailers(&self) -> &[u8] {
        self.body.trailers()
    }

    /// Reads the next part of the body and appends its data to `data`; `true` once the body ended. An error
    /// when the backend broke the framing rules or the connection failed before the framed end.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        data: &mut Vec<u8>,
    ) -> Poll<Result<bool, RawError>> {
        if self.done {
            return Poll::Ready(Ok(true));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Err(RawError::new(
                FailureKind::Reset,
                "the backend connection is gone",
            )));
        };
        self.buf.clear();
        if self.buf.capacity() < 16 * 1024 {
            self.buf.reserve(16 * 1024);
        }
        let n = loop {
            if let Err(e) = std::task::ready!(conn.stream.poll_read_ready(cx)) {
                return Poll::Ready(Err(RawError::io(
                    FailureKind::Reset,
                    "reading from the backend",
                    &e,
                )));
            }
            match conn.stream.try_read_buf(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Err(RawError::io(
                        FailureKind::Reset,
                        "reading from the backend",
                        &e,
                    )));
                }
            }
        };
        if n == 0 {
            self.conn = None;
            return Poll::Ready(match self.body.finish() {
                Ok(()) => {
                    self.done = true;
                    Ok(true)
                }
                Err(e) => Err(RawError::protocol(e)),
            });
        }
        match self.body.decode(&self.buf, data) {
            Ok(progress) => {
                if progress.done {
                    self.end(self.buf.len() - progress.consumed);
                }
                Poll::Ready(Ok(progress.done))
            }
            Err(e) => {
                self.conn = None;
                Poll::Ready(Err(RawError::protocol(e)))
            }
        }
    }
}

/// A connection to a backend, taken from this thread's pool.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    backend: Arc<Backend>,
}

impl Conn {
    /// Gives the connection back to this thread's pool. Only for a connection whose answer was read to its
    /// framed end with nothing after it (`Body::reusable`).
    fn release(self) {
        checkin(self.backend, self.stream);
    }
}

/// Why an attempt failed.
#[derive(Debug)]
pub(crate) struct RawError {
    kind: FailureKind,
    message: String,
}

impl RawError {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn io(kind: FailureKind, what: &str, e: &std::io::Error) -> Self {
        Self::new(kind, format!("{what}: {e}"))
    }

    fn protocol(e: answer::AnswerError) -> Self {
        Self::new(FailureKind::Other, e.to_string())
    }
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RawError {}

/// Where a backend is: its socket address (or the name to resolve), its `host` line and its path prefix.
#[derive(Debug)]
struct Target {
    /// `host:port`, resolved at each new connection unless it is an IP address.
    authority: String,
    addr: Option<SocketAddr>,
    host_line: Box<[u8]>,
    prefix: Box<[u8]>,
    https: bool,
}

impl Target {
    fn of(backend: &Backend) -> Result<Self, RawError> {
        let invalid = || {
            RawError::new(
                FailureKind::Other,
                format!(
                    "backend URL {:?} is not an absolute http URL",
                    backend.url()
                ),
            )
        };
        let uri: http::Uri = backend.url().parse().map_err(|_| invalid())?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid()),
        };
        let authority = uri.authority().ok_or_else(invalid)?;
        let default_port = if https { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let host = authority.host();
        let host_value = if port == default_port {
            host.to_owned()
        } else {
            format!("{host}:{port}")
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = bare
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Ok(Self {
            authority: format!("{host}:{port}"),
            addr,
            host_line: format!("host: {host_value}\r\n").into_bytes().into(),
            prefix: uri.path().trim_end_matches('/').as_bytes().into(),
            https,
        })
    }

    async fn connect(&self, timeout: Duration) -> Result<TcpStream, RawError> {
        let connect = async {
            let addr = match self.addr {
                Some(a) => a,
                None => tokio::net::lookup_host(self.authority.as_str())
                    .await?
                    .next()
                    .ok_or_else(|| std::io::Error::other("the name resolved to no address"))?,
            };
            TcpStream::connect(addr).await
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(e)) => Err(RawError::io(FailureKind::Connect, "connect", &e)),
            Err(_) => Err(RawError::new(FailureKind::Connect, "connect timed out")),
        }
    }
}

/// One backend's entry in a thread's pool. The `Weak` keeps the backend's allocation (not the backend) alive,
/// so its address identifies it for as long as the entry exists.
struct Entry {
    backend: Weak<Backend>,
    target: Arc<Target>,
    idle: Vec<TcpStream>,
}

thread_local! {
    static POOL: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// This thread's target for `backend` and an idle connection to it, if there is one that is still quiet.
fn checkout(backend: &Arc<Backend>) -> Result<(Arc<Target>, Option<TcpStream>), RawError> {
    POOL.with_borrow_mut(|pool| {
        if let Some(e) = pool
            .iter_mut()
            .find(|e| std::ptr::eq(e.backend.as_ptr(), Arc::as_ptr(backend)))
        {
            while let Some(stream) = e.idle.pop() {
                if is_quiet(&stream) {
                    return Ok((Arc::clone(&e.target), Some(stream)));
                }
            }
            return Ok((Arc::clone(&e.target), None));
        }
        pool.retain(|e| e.backend.strong_count() > 0);
        let target = Arc::new(Target::of(backend)?);
        pool.push(Entry {
            backend: Arc::downgrade(backend),
            target: Arc::clone(&target),
            idle: Vec::new(),
        });
        Ok((target, None))
    })
}

/// Whether an idle connection has nothing to read: bytes that arrived while it was idle are an answer nobody
/// asked for (which would become the next client's answer), and a readable end means the backend closed it.
/// Either way it is dropped. The readiness check costs no system call when the socket is quiet (the reactor
/// has not seen it become readable); when it says readable, a non-blocking read tells data or the end from a
/// stale readiness.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}

fn checkin(backend: Arc<Backend>, stream: TcpStream) {
    POOL.with_borrow_mut(|pool| {
        if let Some(e) = pool
            .iter_mut()
            .find(|e| std::ptr::eq(e.backend.as_ptr(), Arc::as_ptr(&backend)))
            && e.idle.len() < MAX_IDLE
        {
            e.idle.push(stream);
        }
    });
}

/// Sends [`RawRequest`]s to their picked backends: plain HTTP/1.1 on this thread's pooled connections, or,
/// for `https://` backends, rrlb-tower's [`HttpUpstream`].
#[derive(Debug, Clone)]
pub(crate) struct RawUpstream {
    connect_timeout: Duration,
    tls: HttpUpstream,
}

impl RawUpstream {
    /// Connects within `connect_timeout`; `tls` serves `https://` backends.
    pub(crate) fn new(connect_timeout: Duration, tls: HttpUpstream) -> Self {
        Self {
            connect_timeout,
            tls,
        }
    }
}

/// The future of a [`RawUpstream`] call.
pub(crate) type RawFuture = Pin<Box<dyn Future<Output = Result<RawResponse, RawError>> + Send>>;

impl Service<Routed<RawRequest>> for RawUpstream {
    type Response = RawResponse;
    type Error = RawError;
    type Future = RawFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, routed: Routed<RawRequest>) -> Self::Future {
        let Routed { backend, request } = routed;
        let (target, idle) = match checkout(&backend) {
            Ok(t) => t,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        if target.https {
            return Box::pin(via_hyper(self.tls.clone(), backend, request));
        }
        Box::pin(send(backend, target, idle, request, self.connect_timeout))
    }
}

async fn send(
    backend: Arc<Backend>,
    target: Arc<Target>,
    mut idle: Option<TcpStream>,
    request: RawRequest,
    connect_timeout: Duration,
) -> Result<RawResponse, RawError> {
    let head_only = request.method == Method::HEAD;
    let (wire, inline) = encode(&request, &target);
    let body = (!inline).then_some(&request.body);
    loop {
        let reused = idle.is_some();
        let mut stream = match idle.take() {
            Some(s) => s,
            None => target.connect(connect_timeout).await?,
        };
        match exchange(&mut stream, &wire, body, head_only).await {
            Ok((head, start)) => {
                let body = TcpBody::start(&head, start, Conn { stream, backend })
                    .map_err(RawError::protocol)?;
                return Ok(RawResponse {
                    status: head.status,
                    head: head.bytes,
                    body: BodySource::Tcp(body),
                    served: None,
                });
            }
            // A pooled connection the backend closed while it was idle: nothing of the request was taken,
            // so it goes again on a new connection (the pool may hold more stale ones: those are dropped).
            Err(Exchange::Stale(_)) if reused => {
                idle = checkout(&backend).ok().and_then(|(_, s)| s);
            }
            Err(Exchange::Stale(e) | Exchange::Failed(e)) => return Err(e),
        }
    }
}

/// Bodies up to this size are sent in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

/// The request's head for `target`, with the body appended when it is small (then `true`).
fn encode(request: &RawRequest, target: &Target) -> (Vec<u8>, bool) {
    let inline_body = request.body.len() <= INLINE_BODY;
    let mut wire = Vec::with_capacity(
        request.method.as_str().len()
            + 1
            + target.prefix.len()
            + request.rest.len()
            + target.host_line.len()
            + 2
            + if inline_body { request.body.len() } else { 0 },
    );
    wire.extend_from_slice(request.method.as_str().as_bytes());
    wire.push(b' ');
    wire.extend_from_slice(&target.prefix);
    wire.extend_from_slice(&request.rest);
    wire.extend_from_slice(&target.host_line);
    wire.extend_from_slice(b"\r\n");
    if inline_body {
        wire.extend_from_slice(&request.body);
    }
    (wire, inline_body)
}

enum Exchange {
    /// Nothing came back: the connection was closed or reset before any byte of an answer.
    Stale(RawError),
    Failed(RawError),
}

/// Writes the request (`body` when it is not in `wire` already) and reads the answer's head (interim `1xx`
/// answers skipped); the head and the bytes read after it.
async fn exchange(
    stream: &mut TcpStream,
    wire: &[u8],
    body: Option<&Bytes>,
    head_only: bool,
) -> Result<(answer::Head, BytesMut), Exchange> {
    let write = async {
        stream.write_all(wire).await?;
        if let Some(body) = body {
            stream.write_all(body).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    if let Err(e) = write.await {
        return Err(Exchange::Stale(RawError::io(
            FailureKind::Reset,
            "sending to the backend",
            &e,
        )));
    }
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut received = false;
    let mut interim = 0;
    loop {
        if !buf.is_empty() {
            match answer::parse_head(&buf, head_only, forward::answer_header_forwarded) {
                Ok(answer::Parsed::Partial) => {
                    if buf.capacity() == buf.len() {
                        buf.reserve(buf.len().max(1024));
                    }
                }
                // Skipped, and what follows it parsed before reading more.
                Ok(answer::Parsed::Interim(len)) => {
                    interim += 1;
                    if interim > answer::MAX_INTERIM {
                        return Err(Exchange::Failed(RawError::protocol(
                            answer::AnswerError::TooManyInterim,
                        )));
                    }
                    let _ = buf.split_to(len);
                    continue;
                }
                Ok(answer::Parsed::Final(len, head)) => {
                    let _ = buf.split_to(len);
                    return Ok((head, buf));
                }
                Err(e) => return Err(Exchange::Failed(RawError::protocol(e))),
            }
        }
        // Nothing at all came back (a read error or the end): the connection was stale.
        let broken = |e: RawError| {
            if received {
                Exchange::Failed(e)
            } else {
                Exchange::Stale(e)
            }
        };
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                return Err(broken(RawError::new(
                    FailureKind::Reset,
                    "the backend closed the connection before a complete answer",
                )));
            }
            Ok(_) => received = true,
            Err(e) => {
                return Err(broken(RawError::io(
                    FailureKind::Reset,
                    "reading from the backend",
                    &e,
                )));
            }
        }
    }
}

/// Splits a [`RawRequest`]'s `rest` into its target and its header lines.
fn split_rest(rest: &[u8]) -> Option<(&str, &[u8])> {
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&rest[..line_end]).ok()?;
    let target = line.strip_suffix(" HTTP/1.1")?;
    Some((target, &rest[line_end + 2..]))
}

/// An `https://` backend: the request goes through rrlb-tower's hyper client, its answer comes back as a
/// [`RawResponse`] whose body is forwarded chunked.
async fn via_hyper(
    mut tls: HttpUpstream,
    backend: Arc<Backend>,
    request: RawRequest,
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
    let res = tls
        .call(Routed {
            backend,
            request: req,
        })
        .await
        .map_err(|e| {
            RawError::new(
                rrlb_tower::http::classify_transport_error(&*e),
                e.to_string(),
            )
        })?;
    let (parts, body) = res.into_parts();
    forward::check_answer(parts.status, &parts.headers).map_err(RawError::protocol)?;
    let mut head = Vec::with_capacity(256);
    h1::push_status_line(&mut head, parts.status.as_u16(), None);
    let mut response_headers = parts.headers;
    forward::strip_answer(&mut response_headers);
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
        head,
        body: BodySource::Hyper {
            body,
            chunked: !no_body,
        },
        served: None,
    })
}

/// The fast path's policy: as rrlb-tower's `HttpPolicy` (5xx answers and transport errors are failures,
/// requests are copied for retries), and the serving backend is noted in the answer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawPolicy;

impl Policy<RawRequest, RawResponse, RawError> for RawPolicy {
    fn classify_response(&self, response: &RawResponse) -> Option<FailureKind> {
        (500..600)
            .contains(&response.status)
            .then_some(FailureKind::Status5xx)
    }

    fn classify_error(&self, error: &RawError) -> FailureKind {
        error.kind
    }

    fn clone_request(&self, request: &RawRequest) -> Option<RawRequest> {
        Some(request.clone())
    }

    fn on_served(&self, response: &mut RawResponse, backend: &Arc<Backend>, attempts: u32) {
        response.served = Some((Arc::clone(backend), attempts));
    }
}

/// The balancing service both request paths call.
pub(crate) type ProxyService = Balance<RawUpstream, AnyBalancer, RawPolicy>;

/// The balancing service for a backend set, its connect timeout, balancing settings and retry budget.
pub(crate) fn service(
    set: &rrlb_core::BackendSet<AnyBalancer>,
    connect_timeout: Duration,
    tls: HttpUpstream,
    config: rrlb_tower::BalanceConfig,
    budget: rrlb_tower::RetryBudget,
) -> ProxyService {
    Balance::new(
        RawUpstream::new(connect_timeout, tls),
        set.clone(),
        RawPolicy,
        config,
    )
    .with_budget(budget)
}

/// An answer body for hyper's server (the hyper path): decoded data frames, and the checked trailers of a
/// chunked body as a trailers frame.
#[derive(Debug)]
pub(crate) struct RawBody {
    first: Option<Bytes>,
    source: Option<BodySource>,
}

impl RawBody {
    pub(crate) fn new(source: BodySource) -> Self {
        let (first, source) = match source {
            BodySource::Tcp(mut tcp) => {
                let first = std::mem::take(&mut tcp.first);
                (Some(first), BodySource::Tcp(tcp))
            }
            other => (None, other),
        };
        Self {
            first,
            source: Some(source),
        }
    }
}

impl hyper::body::Body for RawBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        use hyper::body::Frame;
        let this = self.get_mut();
        if let Some(first) = this.first.take()
            && !first.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match &mut this.source {
            None => Poll::Ready(None),
            Some(BodySource::Hyper { body, .. }) => {
                let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
                if frame.is_none() {
                    this.source = None;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Some(BodySource::Tcp(tcp)) => loop {
                if tcp.is_done() {
                    let trailers = trailer_map(tcp.trailers());
                    this.source = None;
                    return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                }
                let mut data = Vec::new();
                match std::task::ready!(tcp.poll_next(cx, &mut data)) {
                    Ok(_) if data.is_empty() => {}
                    Ok(_) => return Poll::Ready(Some(Ok(Frame::data(data.into())))),
                    Err(e) => {
                        this.source = None;
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                }
            },
        }
    }
}

/// Checked trailer lines as a `HeaderMap`; `None` without any.
fn trailer_map(lines: &[u8]) -> Option<http::HeaderMap> {
    if lines.is_empty() {
        return None;
    }
    let mut map = http::HeaderMap::new();
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut with_end = lines.to_vec();
    with_end.extend_from_slice(b"\r\n");
    if let Ok(httparse::Status::Complete((_, fields))) =
        httparse::parse_headers(&with_end, &mut fields)
    {
        for f in fields {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(f.name.as_bytes()),
                http::HeaderValue::from_bytes(f.value),
            ) {
                map.append(n, v);
            }
        }
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_carry_host_and_prefix() {
        let t = Target::of(&Backend::new(
            "a",
            "http://127.0.0.1:8081/api/",
            true,
            Default::default(),
            Default::default(),
        ))
        .unwrap();
        assert_eq!(t.addr, Some("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(&*t.host_line, b"host: 127.0.0.1:8081\r\n");
        assert_eq!(&*t.prefix, b"/api");
        let t = Target::of(&Backend::new(
            "b",
            "http://echo-go",
            true,
            Default::default(),
            Default::default(),
        ))
        .unwrap();
        assert_eq!(t.addr, None);
        assert_eq!(t.authority, "echo-go:80");
        assert_eq!(&*t.host_line, b"host: echo-go\r\n");
        assert!(t.prefix.is_empty());
    }
}
