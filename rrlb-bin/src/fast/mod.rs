//! The fast path: HTTP/1.1 proxying without a general-purpose HTTP stack on the hot path.
//!
//! A client connection is served by one task that reads a request head, checks and rewrites it, sends it through
//! the balancer ([`FastService`], rrlb-tower's `Balance` over [`RawUpstream`]) on a pooled backend connection that
//! the same task writes and reads, and writes the answer back. Everything the fast path does not handle itself —
//! HTTP/1.0, HTTP/2 (h2c), upgrades, `expect`, chunked request bodies, absolute-form targets, oversized heads —
//! hands the connection, with the bytes already read, to hyper's server and the [`proxy::handle`] service for the
//! rest of its life: the behaviour stays that of the hyper path, the fast path only makes the common case cheaper.
//! A head that is not HTTP/1 at all gets rrlb's JSON `400`.

mod head;
mod relay;
mod upstream;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use http::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use rrlb_core::AnyBalancer;
use rrlb_tower::Balance;
use rrlb_tower::http::status_for;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::proxy::{self, Local};

/// The fast path's parsers, exposed only to the fuzz targets (`cargo fuzz` builds with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing {
    /// A client's request head: `Some((head length, forwarded head))` when the fast path takes it.
    pub fn request(buf: &[u8], client_ip: &[u8]) -> Option<(usize, bytes::Bytes)> {
        match super::head::parse_request(buf, client_ip, true) {
            super::head::Head::Ready(h) => Some((h.len, h.rest)),
            _ => None,
        }
    }

    /// A backend's answer head: the head rewritten for the client when it is a final answer.
    pub fn response(buf: &[u8], head_only: bool) -> Option<Vec<u8>> {
        super::upstream::check_response(buf, head_only)
    }

    /// Where a chunked body fed in `parts` ends (counted from the start of the first part).
    #[allow(clippy::result_unit_err)]
    pub fn chunk_end(parts: &[&[u8]]) -> Result<Option<usize>, ()> {
        let mut scan = super::relay::ChunkScan::default();
        let mut offset = 0;
        for p in parts {
            if let Some(n) = scan.feed(p)? {
                return Ok(Some(offset + n));
            }
            offset += p.len();
        }
        Ok(None)
    }
}

pub use upstream::{
    BodySource, Conn, Framing, RawError, RawFuture, RawPolicy, RawRequest, RawResponse, RawUpstream,
};

/// The balancing service of the fast path.
pub type FastService = Balance<RawUpstream, AnyBalancer, RawPolicy>;

/// How long a keep-alive client connection may stay idle between requests (NGINX's `keepalive_timeout` default
/// is 75 s; clients' pools usually drop idle connections sooner).
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);

/// How long, and for how many bytes, a connection closed with its request body unread keeps reading it (see
/// `Connection::linger`).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 << 20;

/// What every connection of one serving thread shares.
pub struct Worker {
    /// The application state, through this thread's handle.
    pub app: Arc<Local>,
    /// The hyper server a connection is handed to when the fast path does not take it.
    pub hyper: auto::Builder<TokioExecutor>,
    /// Set when the server stops: idle connections close, busy ones close after their answer.
    pub stop: watch::Receiver<bool>,
}

/// Serves one client connection. `watcher` keeps the graceful shutdown waiting until the connection ends.
pub async fn serve(worker: Arc<Worker>, stream: TcpStream, client: SocketAddr, watcher: Watcher) {
    let mut conn = Connection {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        client,
        client_ip: client.ip().to_string().into_bytes(),
        stop: worker.stop.clone(),
        served: false,
        timer: Box::pin(tokio::time::sleep(
            worker.app.config.load().timeouts.header_read,
        )),
    };
    loop {
        match conn.next_head(&worker.app).await {
            Next::Close => return,
            Next::Hyper => return hand_to_hyper(&worker, conn, watcher).await,
            Next::Malformed(e) => return conn.refuse(&worker.app, e).await,
            Next::Request(head) => {
                if !conn.exchange(&worker.app, head).await || *conn.stop.borrow() {
                    return;
                }
                conn.served = true;
            }
        }
    }
}

struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    client: SocketAddr,
    client_ip: Vec<u8>,
    stop: watch::Receiver<bool>,
    /// Whether a request was served on this connection already (it is then a keep-alive connection).
    served: bool,
    /// The head-read timer, one per connection: it is moved only when it would fire too late, and when it
    /// fires too early (an earlier head's deadline) it is set again, so a busy connection does not add and
    /// remove a timer for every request.
    timer: Pin<Box<tokio::time::Sleep>>,
}

enum Next {
    Request(head::RequestHead),
    Hyper,
    Malformed(httparse::Error),
    Close,
}

impl Connection {
    /// Reads the next request head, unless the server stops first. A new connection must send its head within
    /// the header-read timeout (slowloris); a keep-alive connection may stay idle for [`KEEP_ALIVE_IDLE`], and
    /// has the header-read timeout from its next request's first byte.
    async fn next_head(&mut self, app: &Local) -> Next {
        let access = tracing::enabled!(target: "rrlb::access", tracing::Level::INFO);
        let header_read = app.config.load().timeouts.header_read;
        let now = tokio::time::Instant::now();
        let mut deadline = if self.served && self.buf.is_empty() {
            now + KEEP_ALIVE_IDLE
        } else {
            now + header_read
        };
        let mut waiting_for_first_byte = self.served && self.buf.is_empty();
        loop {
            if waiting_for_first_byte && !self.buf.is_empty() {
                waiting_for_first_byte = false;
                deadline = tokio::time::Instant::now() + header_read;
            }
            if !self.buf.is_empty() {
                match head::parse_request(&self.buf, &self.client_ip, access) {
                    head::Head::Ready(h) => return Next::Request(h),
                    head::Head::Hyper => return Next::Hyper,
                    head::Head::Malformed(e) => return Next::Malformed(e),
                    head::Head::Partial => {}
                }
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8 * 1024);
            }
            if self.timer.deadline() > deadline {
                self.timer.as_mut().reset(deadline);
            }
            // An idle connection closes when the server stops; one with a head on the way gets its answer.
            let idle = self.buf.is_empty();
            let n = tokio::select! {
                biased;
                r = self.stream.read_buf(&mut self.buf) => r,
                _ = self.timer.as_mut() => {
                    if tokio::time::Instant::now() < deadline {
                        self.timer.as_mut().reset(deadline);
                        continue;
                    }
                    // Too slow (slowloris), or idle too long: the connection ends without an answer.
                    return Next::Close;
                }
                _ = self.stop.wait_for(|s| *s), if idle => return Next::Close,
            };
            match n {
                Ok(n) if n > 0 => {}
                // Closed or broken.
                _ => return Next::Close,
            }
        }
    }

    /// Serves one request; `false` when the connection must close.
    async fn exchange(&mut self, app: &Local, head: head::RequestHead) -> bool {
        let record = Record {
            app,
            head: &head,
            client: self.client,
            started: quanta::Instant::now(),
        };
        self.buf.advance(head.len);
        self.forward(app, &head, &record).await && !head.close
    }

    /// Checks limits, reads the body, balances and writes the answer, recording the outcome before the answer
    /// leaves (so whoever got it sees it counted). Returns whether the connection can carry another request.
    async fn forward(
        &mut self,
        app: &Local,
        head: &head::RequestHead,
        record: &Record<'_>,
    ) -> bool {
        let id = &head.request_id;
        let close = head.close;
        if let Some(secs) = proxy::rate_limited(app, self.client) {
            // The body is not read: the connection cannot carry another request.
            let keep = head.content_length == 0 && !close;
            record.done(&Outcome::rejected(429, "rate_limit"));
            let ok = self
                .answer_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate limit exceeded for this client",
                    id,
                    Some(secs),
                    None,
                    !keep,
                )
                .await;
            if ok && !keep {
                self.linger().await;
            }
            return ok && keep;
        }
        let max_body = app.config.load().limits.max_body_bytes;
        if head.content_length > max_body {
            let message = format!("request body exceeds {max_body} bytes");
            record.done(&Outcome::rejected(413, "body_too_large"));
            if self
                .answer_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &message,
                    id,
                    None,
                    None,
                    true,
                )
                .await
            {
                self.linger().await;
            }
            return false;
        }
        let Some(body) = self.read_body(head.content_length).await else {
            record.done(&Outcome::rejected(400, "bad_request"));
            return false;
        };
        let request = RawRequest {
            method: head.method.clone(),
            rest: head.rest.clone(),
            body,
        };
        match proxy::call_local(&FAST, &app.fast, request).await {
            Ok(res) => self.answer(res, id, close, record).await,
            Err(e) => {
                let status = status_for(&e);
                if e.is_no_eligible_backend() {
                    let secs = proxy::no_backend_retry_after(&e);
                    record.done(&Outcome::rejected(503, "no_backend"));
                    return self
                        .answer_error(status, &e.to_string(), id, Some(secs), None, close)
                        .await;
                }
                record.done(&Outcome {
                    status: status.as_u16(),
                    backend: e.backend(),
                    attempts: e.attempts(),
                    reject: None,
                });
                self.answer_error(status, &e.to_string(), id, None, e.backend(), close)
                    .await
            }
        }
    }

    /// The request body: `len` bytes, some of which may be in the buffer already. `None` if the client went
    /// away first.
    async fn read_body(&mut self, len: u64) -> Option<Bytes> {
        let len = usize::try_from(len).ok()?;
        if len == 0 {
            return Some(Bytes::new());
        }
        while self.buf.len() < len {
            // Room for what is still to come, a megabyte at most at a time: a client's announced length is
            // not memory to set aside before the bytes arrive.
            if self.buf.capacity() - self.buf.len() < 8 * 1024 {
                self.buf.reserve((len - self.buf.len()).min(1 << 20));
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(n) if n > 0 => {}
                _ => return None,
            }
        }
        Some(self.buf.split_to(len).freeze())
    }

    /// Answers a malformed request head with rrlb's JSON `400` and closes the connection (nothing after a
    /// malformed head can be trusted to start a request).
    async fn refuse(&mut self, app: &Local, e: httparse::Error) {
        app.metrics.reject("bad_request");
        let id = proxy::new_request_id();
        tracing::debug!(client = %self.client, error = %e, "malformed request head");
        let message = format!("malformed request: {e}");
        if self
            .answer_error(StatusCode::BAD_REQUEST, &message, &id, None, None, true)
            .await
        {
            self.linger().await;
        }
    }

    /// Closes after an answer that left the request body unread: the write side first, then whatever the client
    /// still sends is read and dropped for a short while. Closing a socket with unread bytes would reset the
    /// connection, and a client still sending its body could lose the answer to the reset (what NGINX calls a
    /// lingering close).
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let drain = async {
            let mut left = LINGER_BYTES;
            while left > 0 {
                match relay::refill(&mut self.stream, &mut self.buf).await {
                    Ok(n) if n > 0 => left = left.saturating_sub(n),
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    /// Writes a backend's answer and relays its body.
    async fn answer(
        &mut self,
        res: RawResponse,
        id: &HeaderValue,
        close: bool,
        record: &Record<'_>,
    ) -> bool {
        let RawResponse {
            status,
            head: mut out,
            body,
            served,
        } = res;
        let (backend, attempts) = match &served {
            Some((b, n)) => (Some(b.name()), *n),
            None => (None, 1),
        };
        head::push_header(&mut out, b"x-request-id", id.as_bytes());
        if let Some(name) = backend {
            head::push_header(&mut out, b"x-rrlb-backend", name.as_bytes());
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        record.done(&Outcome {
            status,
            backend,
            attempts,
            reject: None,
        });
        relay::body(&mut self.stream, out, body).await
    }

    /// Writes one of rrlb's own JSON error answers; `false` if the client is gone.
    async fn answer_error(
        &mut self,
        status: StatusCode,
        message: &str,
        id: &HeaderValue,
        retry_after: Option<u64>,
        backend: Option<&str>,
        close: bool,
    ) -> bool {
        let body = proxy::error_body(message, id);
        let mut out = Vec::with_capacity(body.len() + 256);
        head::push_status_line(&mut out, status.as_u16(), None);
        out.extend_from_slice(b"content-type: application/json\r\n");
        head::push_header(
            &mut out,
            b"content-length",
            itoa::Buffer::new().format(body.len()).as_bytes(),
        );
        head::push_header(&mut out, b"x-request-id", id.as_bytes());
        if let Some(secs) = retry_after {
            head::push_header(
                &mut out,
                b"retry-after",
                itoa::Buffer::new().format(secs).as_bytes(),
            );
        }
        if let Some(name) = backend {
            head::push_header(&mut out, b"x-rrlb-backend", name.as_bytes());
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        self.stream.write_all(&out).await.is_ok()
    }
}

/// Records one exchange in the metrics and the access log, as the hyper path does: when the answer (its head)
/// is ready, with the latency until then.
struct Record<'a> {
    app: &'a Local,
    head: &'a head::RequestHead,
    client: SocketAddr,
    started: quanta::Instant,
}

impl Record<'_> {
    fn done(&self, outcome: &Outcome<'_>) {
        let elapsed = self.started.elapsed();
        match outcome.reject {
            Some(reason) => self.app.metrics.reject(reason),
            None => self.app.metrics.observe(
                outcome.backend,
                outcome.status,
                elapsed.as_secs_f64(),
                outcome.attempts.saturating_sub(1),
            ),
        }
        if let Some(path) = &self.head.path {
            tracing::info!(
                target: "rrlb::access",
                request_id = self.head.request_id.to_str().unwrap_or_default(),
                client = %self.client.ip(),
                method = %self.head.method,
                path = %path,
                status = outcome.status,
                backend = outcome.backend.unwrap_or("-"),
                attempts = outcome.attempts,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
            );
        }
    }
}

/// What one exchange records in the metrics and the access log.
struct Outcome<'a> {
    status: u16,
    backend: Option<&'a str>,
    attempts: u32,
    reject: Option<&'static str>,
}

impl Outcome<'_> {
    fn rejected(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            backend: None,
            attempts: 0,
            reject: Some(reason),
        }
    }
}

std::thread_local! {
    /// This thread's copy of the fast service (see [`proxy::call_local`]).
    static FAST: proxy::LocalService<FastService> = const { std::cell::RefCell::new(None) };
}

/// Hands the connection, and what was read of it, to hyper's HTTP/1 + HTTP/2 server.
async fn hand_to_hyper(worker: &Worker, conn: Connection, watcher: Watcher) {
    let Connection {
        stream,
        buf,
        client,
        ..
    } = conn;
    let app = Arc::clone(&worker.app);
    let svc = service_fn(move |req| proxy::handle(Arc::clone(&app), req, client));
    let io = Rewind {
        prefix: buf.freeze(),
        inner: stream,
    };
    let conn = worker
        .hyper
        .serve_connection(TokioIo::new(io), svc)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}

/// A stream whose first reads return `prefix`.
struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
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

impl AsyncWrite for Rewind {
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

/// The fast service for a configuration: the same backend set, timeouts, retries and budget as the hyper
/// path's, over [`RawUpstream`].
pub fn service(
    set: &rrlb_core::BackendSet<AnyBalancer>,
    connect_timeout: Duration,
    tls: rrlb_tower::http::HttpUpstream,
    config: rrlb_tower::BalanceConfig,
    budget: rrlb_tower::RetryBudget,
) -> FastService {
    Balance::new(
        RawUpstream::new(connect_timeout, tls),
        set.clone(),
        RawPolicy,
        config,
    )
    .with_budget(budget)
}
