//! The fast path's upstream side: HTTP/1.1 over plain TCP connections kept in a per-thread pool, written and
//! read by the task that serves the client (no connection task, no channel, no second wake-up per request).
//! `https://` backends go through rrlb-tower's hyper client instead.

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
use rrlb_core::Backend;
use rrlb_tower::http::HttpUpstream;
use rrlb_tower::{FailureKind, Policy, Routed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Service;

use super::head::{self, HopByHop};

/// Longest response head accepted from a backend (as for requests: 64 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Most headers in a backend's response head.
const MAX_HEADERS: usize = 100;
/// Idle connections kept per backend and thread.
const MAX_IDLE: usize = 64;

/// A request, ready to be sent to whichever backend is picked: everything but the request line's method and
/// path prefix and the `host` header is already encoded. Cloning it (for a retry) takes two references.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The method.
    pub method: Method,
    /// `TARGET HTTP/1.1\r\n` followed by the header lines to forward (each ending in CRLF), without `host`
    /// and without the blank line that ends the head.
    pub rest: Bytes,
    /// The body (its `content-length` line is in `rest` when needed).
    pub body: Bytes,
}

/// How the body of a backend's answer is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (an answer to `HEAD`, a `204` or a `304`).
    Empty,
    /// `content-length` bytes.
    Length(u64),
    /// Chunked transfer coding, forwarded as it is.
    Chunked,
    /// Until the backend closes the connection; re-framed as chunked for the client.
    Close,
}

/// A backend's answer: its head, rewritten for the client, and the start of its body.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// `HTTP/1.1 STATUS REASON\r\n`, the forwarded header lines and the framing line; without the blank line.
    pub head: Vec<u8>,
    /// The body bytes read with the head.
    pub body: BodySource,
    /// Which backend answered and after how many attempts (set when the balancer returns it).
    pub served: Option<(Arc<Backend>, u32)>,
}

/// Where the rest of a backend's answer comes from.
#[derive(Debug)]
pub enum BodySource {
    /// A pooled TCP connection.
    Tcp {
        /// Body bytes already read.
        start: BytesMut,
        /// How the body ends.
        framing: Framing,
        /// The connection, handed back to the pool by [`Conn::release`] once the body was read whole.
        conn: Conn,
    },
    /// A hyper response body (an `https://` backend).
    Hyper {
        /// The body.
        body: Incoming,
        /// Forwarded chunked (`false`: the answer has no body).
        chunked: bool,
    },
}

/// A connection to a backend, taken from this thread's pool.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    backend: Arc<Backend>,
    /// Whether the backend lets the connection be used again (HTTP/1.1 without `connection: close`).
    keep_alive: bool,
}

impl Conn {
    /// Gives the connection back to this thread's pool, if the backend keeps it alive.
    pub fn release(self) {
        if self.keep_alive {
            checkin(self.backend, self.stream);
        }
    }
}

/// Why an attempt failed.
#[derive(Debug)]
pub struct RawError {
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

/// This thread's target for `backend` and an idle connection to it, if there is one.
fn checkout(backend: &Arc<Backend>) -> Result<(Arc<Target>, Option<TcpStream>), RawError> {
    POOL.with_borrow_mut(|pool| {
        if let Some(e) = pool
            .iter_mut()
            .find(|e| std::ptr::eq(e.backend.as_ptr(), Arc::as_ptr(backend)))
        {
            return Ok((Arc::clone(&e.target), e.idle.pop()));
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
pub struct RawUpstream {
    connect_timeout: Duration,
    tls: HttpUpstream,
}

impl RawUpstream {
    /// Connects within `connect_timeout`; `tls` serves `https://` backends.
    pub fn new(connect_timeout: Duration, tls: HttpUpstream) -> Self {
        Self {
            connect_timeout,
            tls,
        }
    }
}

/// The future of a [`RawUpstream`] call.
pub type RawFuture = Pin<Box<dyn Future<Output = Result<RawResponse, RawError>> + Send>>;

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
            Ok((status, head, start, framing, keep_alive)) => {
                return Ok(RawResponse {
                    status,
                    head,
                    body: BodySource::Tcp {
                        start,
                        framing,
                        conn: Conn {
                            stream,
                            backend,
                            keep_alive,
                        },
                    },
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

type Answer = (u16, Vec<u8>, BytesMut, Framing, bool);

/// Writes the request (`body` when it is not in `wire` already) and reads the answer's head.
async fn exchange(
    stream: &mut TcpStream,
    wire: &[u8],
    body: Option<&Bytes>,
    head_only: bool,
) -> Result<Answer, Exchange> {
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
    loop {
        match parse_response(&buf, head_only) {
            Ok(None) => {
                if buf.len() >= MAX_HEAD {
                    return Err(Exchange::Failed(RawError::new(
                        FailureKind::Other,
                        "the backend's answer head is too large",
                    )));
                }
                if buf.capacity() == buf.len() {
                    buf.reserve(buf.len().max(1024));
                }
            }
            // Skipped, and what follows it parsed before reading more.
            Ok(Some(Parsed::Interim(len))) => {
                let _ = buf.split_to(len);
                continue;
            }
            Ok(Some(Parsed::Final {
                len,
                status,
                head,
                framing,
                keep_alive,
            })) => {
                let _ = buf.split_to(len);
                return Ok((status, head, buf, framing, keep_alive));
            }
            Err(e) => return Err(Exchange::Failed(e)),
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

/// For the fuzz target: parses `buf` as a backend's answer head; the rewritten head when it is a final answer.
#[cfg(fuzzing)]
pub(super) fn check_response(buf: &[u8], head_only: bool) -> Option<Vec<u8>> {
    match parse_response(buf, head_only) {
        Ok(Some(Parsed::Final { len, head, .. })) => {
            assert!(len <= buf.len());
            Some(head)
        }
        _ => None,
    }
}

enum Parsed {
    /// A 1xx answer of `len` bytes, to skip.
    Interim(usize),
    Final {
        len: usize,
        status: u16,
        head: Vec<u8>,
        framing: Framing,
        keep_alive: bool,
    },
}

fn parse_response(buf: &[u8], head_only: bool) -> Result<Option<Parsed>, RawError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(RawError::new(
                FailureKind::Other,
                format!("the backend's answer is not HTTP/1: {e}"),
            ));
        }
    };
    let status = res.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some(Parsed::Interim(len)));
    }
    let hop = HopByHop::of(res.headers);
    let mut keep_alive = res.version == Some(1) && !hop.close;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut coded = false;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = head::parse_length(h.value).ok_or_else(|| {
                RawError::new(FailureKind::Other, "the backend sent a bad content-length")
            })?;
            if length.is_some_and(|l| l != n) {
                return Err(RawError::new(
                    FailureKind::Other,
                    "the backend sent two content-lengths",
                ));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let framing = if head_only || status == 204 || status == 304 || status == 101 {
        Framing::Empty
    } else if coded {
        if chunked {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::Close
    };
    let mut head = Vec::with_capacity(len + 64);
    head::push_status_line(&mut head, status, res.reason);
    for h in res.headers.iter() {
        let framing_header = h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding");
        // An answer without a body keeps its content-length (a HEAD answer's says how long the GET's is).
        if (framing_header && framing != Framing::Empty)
            || hop.drops(h.name)
            || h.name.eq_ignore_ascii_case("x-request-id")
            || h.name.eq_ignore_ascii_case("x-rrlb-backend")
        {
            continue;
        }
        head::push_header(&mut head, h.name.as_bytes(), h.value);
    }
    match framing {
        Framing::Length(n) => head::push_header(
            &mut head,
            b"content-length",
            itoa::Buffer::new().format(n).as_bytes(),
        ),
        Framing::Chunked | Framing::Close => {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        Framing::Empty => {}
    }
    Ok(Some(Parsed::Final {
        len,
        status,
        head,
        framing,
        keep_alive,
    }))
}

/// An `https://` backend: the request goes through rrlb-tower's hyper client, its answer comes back as a
/// [`RawResponse`] whose body is forwarded chunked.
async fn via_hyper(
    mut tls: HttpUpstream,
    backend: Arc<Backend>,
    request: RawRequest,
) -> Result<RawResponse, RawError> {
    let other = |m: String| RawError::new(FailureKind::Other, m);
    let (target, headers) = head::split_rest(&request.rest)
        .ok_or_else(|| other("could not re-read the request head".into()))?;
    let mut req = http::Request::new(Full::new(request.body.clone()));
    *req.method_mut() = request.method.clone();
    *req.uri_mut() = target
        .parse()
        .map_err(|e| other(format!("request target: {e}")))?;
    let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
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
    let mut head = Vec::with_capacity(256);
    head::push_status_line(&mut head, parts.status.as_u16(), None);
    let mut response_headers = parts.headers;
    crate::proxy::strip_hop_by_hop(&mut response_headers);
    for (name, value) in &response_headers {
        if name == http::header::CONTENT_LENGTH
            || name == crate::proxy::X_REQUEST_ID
            || name == crate::proxy::X_RRLB_BACKEND
        {
            continue;
        }
        head::push_header(&mut head, name.as_str().as_bytes(), value.as_bytes());
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
pub struct RawPolicy;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head_only: bool) -> (u16, String, Framing, bool) {
        match parse_response(raw, head_only).unwrap() {
            Some(Parsed::Final {
                status,
                head,
                framing,
                keep_alive,
                ..
            }) => (
                status,
                String::from_utf8(head).unwrap(),
                framing,
                keep_alive,
            ),
            _ => panic!("not a final answer"),
        }
    }

    #[test]
    fn answers_are_framed_and_rewritten_for_the_client() {
        let (status, head, framing, keep) = parse(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nx-request-id: theirs\r\nkeep-alive: timeout=5\r\nx-kept: yes\r\n\r\nhello",
            false,
        );
        assert_eq!(status, 200);
        assert_eq!(framing, Framing::Length(5));
        assert!(keep);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nx-kept: yes\r\ncontent-length: 5\r\n"
        );

        let (_, head, framing, keep) = parse(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            false,
        );
        assert_eq!(framing, Framing::Chunked);
        assert!(keep);
        assert_eq!(head, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n");

        let (_, head, framing, keep) = parse(b"HTTP/1.0 200 OK\r\nx-a: 1\r\n\r\n", false);
        assert_eq!(framing, Framing::Close);
        assert!(!keep);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n"
        );

        let (_, head, framing, _) = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n", true);
        assert_eq!(framing, Framing::Empty);
        assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 42\r\n");

        let (_, _, framing, keep) = parse(
            b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
            false,
        );
        assert_eq!(framing, Framing::Empty);
        assert!(!keep);
    }

    #[test]
    fn interim_answers_are_skipped_and_bad_ones_refused() {
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n",
                false
            ),
            Ok(Some(Parsed::Interim(_)))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-le", false),
            Ok(None)
        ));
        for bad in [
            &b"NOT HTTP\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        ] {
            assert!(parse_response(bad, false).is_err(), "{bad:?}");
        }
    }

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
