//! The fast path: HTTP/1.1 proxying without a general-purpose HTTP stack on the hot path.
//!
//! A client connection is served by one task that reads a request head, has the forwarding core decide on it
//! (`forward`), reads the body (by length or chunked, within `timeouts.body_read`), sends the request
//! through the balancer ([`ProxyService`](crate::upstream::ProxyService)) on a pooled backend
//! connection that the same task writes and reads, and writes the answer back, framed by the rules of
//! `h1::answer`. HTTP/1.0 and HTTP/2 (h2c) connections are returned, with the bytes already read
//! ([`Handover`]), for hyper's server and the hyper path ([`crate::proxy`]), which applies the same forwarding
//! core. A request the core refuses gets rrlb's JSON answer and the connection closes.

mod head;
mod relay;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::app::Local;
use crate::forward::{
    self, BodyFraming, ClientStream, DRAIN_IDLE_GRACE, KEEP_ALIVE_IDLE, Peer, Record, Rejection,
    Settings, Verdict,
};
use crate::h1::chunked;

/// The fast path's request reader, for [`crate::testing`].
pub(crate) fn fuzzing_request(buf: &[u8], client_ip: &str) -> Option<(usize, Vec<u8>)> {
    match head::parse_request(buf, &Peer::plain(client_ip.to_owned()), 0.0) {
        head::Head::Ready(h) => Some((h.len, h.rest)),
        _ => None,
    }
}

use crate::upstream::{RawRequest, RawResponse};

/// How long, and for how many bytes, a connection closed with its request body unread keeps reading it (see
/// `Connection::linger`).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 << 20;

/// What every connection of one serving thread shares.
pub(crate) struct Worker {
    /// The application state, through this thread's handle.
    pub app: Arc<Local>,
    /// Set when the server stops: idle connections close, busy ones close after their answer.
    pub stop: watch::Receiver<bool>,
}

/// A connection the fast path does not serve (HTTP/1.0, h2c), with the bytes already read from it: for the
/// hyper path ([`proxy::serve`](crate::proxy::serve)).
pub(crate) struct Handover<S> {
    pub stream: S,
    /// What was read of it and not yet served.
    pub read: Bytes,
    /// The client.
    pub peer: Peer,
}

/// Serves one client connection from `peer` until it closes, or returns it when it is one for the hyper path.
pub(crate) async fn serve<S: ClientStream>(
    worker: &Worker,
    stream: S,
    client: SocketAddr,
    peer: Peer,
) -> Option<Handover<S>> {
    let mut conn = Connection {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        client,
        peer,
        stop: worker.stop.clone(),
        stopped: {
            let mut stop = worker.stop.clone();
            Box::pin(async move {
                // The server stopped, or is gone (the sender dropped): either way, stop.
                let _ = stop.wait_for(|s| *s).await;
            })
        },
        stop_seen: false,
        served: false,
        timer: Box::pin(tokio::time::sleep(
            worker.app.config.load().timeouts.header_read,
        )),
    };
    loop {
        match conn.next_head(&worker.app).await {
            Next::Close => return None,
            Next::Hyper => {
                return Some(Handover {
                    stream: conn.stream,
                    read: conn.buf.freeze(),
                    peer: conn.peer,
                });
            }
            Next::Refused(id, rejection) => {
                conn.refuse(&worker.app, &id, &rejection, None).await;
                return None;
            }
            Next::Request(head) => {
                match conn.exchange(&worker.app, head).await {
                    After::KeepAlive => conn.served = true,
                    After::Close => return None,
                    After::Drained => {
                        // The answer said `connection: close`: the client sends nothing more, and a pipelined
                        // request it did send must not turn the close into a reset that loses the answer.
                        conn.linger().await;
                        return None;
                    }
                }
            }
        }
    }
}

struct Connection<S> {
    stream: S,
    buf: BytesMut,
    client: SocketAddr,
    peer: Peer,
    stop: watch::Receiver<bool>,
    /// Resolves when the server stops: one future for the connection's life, so that waiting for the stop
    /// while idle registers with the watch once, not once per request.
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Whether `stopped` resolved (it must not be polled again).
    stop_seen: bool,
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
    Refused(HeaderValue, Rejection),
    Close,
}

/// What becomes of a connection after an exchange.
enum After {
    /// It can carry another request.
    KeepAlive,
    /// It closes now (the client asked to, or the exchange broke it).
    Close,
    /// The server is stopping: the answer said `connection: close`; the connection closes gracefully.
    Drained,
}

/// Why a request body could not be read.
enum BodyError {
    /// Refused: answered, then the connection closes.
    Refused(Rejection),
    /// The client went away.
    Gone,
}

impl<S: ClientStream> Connection<S> {
    /// Reads the next request head, unless the server stops first. A new connection must send its head within
    /// the header-read timeout (slowloris); a keep-alive connection may stay idle for [`KEEP_ALIVE_IDLE`], and
    /// has the header-read timeout from its next request's first byte.
    async fn next_head(&mut self, app: &Local) -> Next {
        let Settings {
            header_read,
            sample_ratio,
            ..
        } = Settings::of(app);
        let now = tokio::time::Instant::now();
        let mut deadline = if self.served && self.buf.is_empty() {
            now + KEEP_ALIVE_IDLE
        } else {
            now + header_read
        };
        let mut waiting_for_first_byte = self.served && self.buf.is_empty();
        // Set once the server stops while this connection is idle: it then has `DRAIN_IDLE_GRACE` to send a head.
        let mut draining = false;
        if self.stop_seen {
            draining = true;
            deadline = deadline.min(now + DRAIN_IDLE_GRACE);
        }
        loop {
            if waiting_for_first_byte && !self.buf.is_empty() {
                waiting_for_first_byte = false;
                deadline = tokio::time::Instant::now() + header_read;
            }
            if !self.buf.is_empty() {
                match head::parse_request(&self.buf, &self.peer, sample_ratio) {
                    head::Head::Ready(h) => return Next::Request(h),
                    head::Head::Hyper => return Next::Hyper,
                    head::Head::Refused {
                        request_id,
                        rejection,
                    } => return Next::Refused(request_id, rejection),
                    head::Head::Partial => {}
                }
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8 * 1024);
            }
            if self.timer.deadline() > deadline {
                self.timer.as_mut().reset(deadline);
            }
            // An idle connection closes when the server stops and it stays quiet for a short grace (its next
            // request may be on the wire); one with a head on the way gets its answer.
            let idle = self.buf.is_empty() && !draining;
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
                _ = self.stopped.as_mut(), if idle => {
                    self.stop_seen = true;
                    draining = true;
                    deadline = deadline.min(tokio::time::Instant::now() + DRAIN_IDLE_GRACE);
                    continue;
                }
            };
            match n {
                Ok(n) if n > 0 => {}
                // Closed or broken.
                _ => return Next::Close,
            }
        }
    }

    /// Serves one request: limits, `100 Continue`, the body, the balancer, the answer. The outcome is recorded
    /// before the answer leaves (so whoever got it sees it counted). Says what becomes of the connection.
    async fn exchange(&mut self, app: &Local, head: head::RequestHead) -> After {
        // The target is what precedes the first space of `rest` (the head was parsed already): only it is
        // decoded. The access log and the span take its path, without the query.
        let end = head
            .rest
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(head.rest.len());
        let target = head
            .rest
            .get(..end)
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or("");
        let path = target.split('?').next().unwrap_or(target);
        let log = forward::Log::Borrowed(&app.access_log);
        let mut record = Record::start(log, self.client, head.method.as_str(), path);
        self.buf.advance(head.len);
        {
            let telemetry = app.telemetry.load();
            record.traced(
                &head.trace,
                telemetry.as_ref().as_ref(),
                (&head.method, target, "1.1"),
            );
        }
        let id = &head.request_id;
        let declared = match head.body {
            BodyFraming::Length(n) => Some(n),
            _ => None,
        };
        let settings = Settings::of(app);
        if let Err(rejection) = forward::admit(app, &settings, self.client, declared) {
            // A request without a body leaves the connection in a known state; one whose body is unread
            // does not.
            // During the drain the answer says `connection: close` (and `refuse` closes with a lingering close).
            let keep = head.body == BodyFraming::None && !head.close && !self.stopping();
            let written = self
                .refuse(app, id, &rejection, Some((&mut record, keep)))
                .await;
            return if written && keep {
                After::KeepAlive
            } else {
                After::Close
            };
        }
        let body = match self.read_body(&settings, &head).await {
            Ok(body) => body,
            Err(BodyError::Refused(rejection)) => {
                self.refuse(app, id, &rejection, Some((&mut record, false)))
                    .await;
                return After::Close;
            }
            Err(BodyError::Gone) => {
                record.done(
                    &app.metrics,
                    id,
                    Verdict::rejected(&Rejection::bad("the client closed the connection")),
                );
                return After::Close;
            }
        };
        record.received(body.len() as u64);
        let request = RawRequest::new(head.method.clone(), head.rest, body, head.trace);
        let result = app.call(request).await;
        // Decided when the answer is about to leave: an answer written during the drain says `connection: close`.
        let draining = !head.close && self.stopping();
        let close = head.close || draining;
        let written = match result {
            Ok(res) => self.answer(app, res, id, close, &mut record).await,
            Err(e) => {
                let answer = record.failed(&app.metrics, id, &e);
                self.stream
                    .write_all(&answer.to_h1(id, close))
                    .await
                    .is_ok()
            }
        };
        match (written, close, draining) {
            (true, false, _) => After::KeepAlive,
            (true, true, true) => After::Drained,
            _ => After::Close,
        }
    }

    /// Whether the server is stopping (answers then say `connection: close`).
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// The request body, read within `timeouts.body_read` between reads, up to `limits.max_body_bytes`.
    async fn read_body(
        &mut self,
        settings: &Settings,
        head: &head::RequestHead,
    ) -> Result<Bytes, BodyError> {
        let whole_in_buffer = match head.body {
            BodyFraming::None => return Ok(Bytes::new()),
            BodyFraming::Length(n) => self.buf.len() as u64 >= n,
            BodyFraming::Chunked => false,
        };
        let (max_body, body_read) = (settings.max_body, settings.body_read);
        if head.expect_continue && !whole_in_buffer {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| BodyError::Gone)?;
        }
        match head.body {
            BodyFraming::None => Ok(Bytes::new()),
            BodyFraming::Length(n) => {
                let len = usize::try_from(n)
                    .map_err(|_| BodyError::Refused(Rejection::BodyTooLarge(max_body)))?;
                while self.buf.len() < len {
                    // Room for what is still to come, a megabyte at most at a time: a client's announced length
                    // is not memory to set aside before the bytes arrive.
                    if self.buf.capacity() - self.buf.len() < 8 * 1024 {
                        self.buf.reserve((len - self.buf.len()).min(1 << 20));
                    }
                    self.read_more(body_read).await?;
                }
                Ok(self.buf.split_to(len).freeze())
            }
            BodyFraming::Chunked => {
                let mut decoder = chunked::Decoder::default();
                let mut body = Vec::new();
                loop {
                    let mut over = false;
                    let progress = decoder
                        .decode(&self.buf, |data| {
                            if (body.len() + data.len()) as u64 > max_body {
                                over = true;
                            } else {
                                body.extend_from_slice(data);
                            }
                        })
                        .map_err(|e| {
                            BodyError::Refused(Rejection::BadRequest(
                                format!("malformed chunked body: {e}").into(),
                            ))
                        })?;
                    self.buf.advance(progress.consumed);
                    if over {
                        return Err(BodyError::Refused(Rejection::BodyTooLarge(max_body)));
                    }
                    if progress.done {
                        return Ok(body.into());
                    }
                    if self.buf.capacity() - self.buf.len() < 8 * 1024 {
                        self.buf.reserve(16 * 1024);
                    }
                    self.read_more(body_read).await?;
                }
            }
        }
    }

    /// Reads more of the request into the buffer, within `timeout`.
    async fn read_more(&mut self, timeout: Duration) -> Result<(), BodyError> {
        match tokio::time::timeout(timeout, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(_) => Err(BodyError::Gone),
            Err(_) => Err(BodyError::Refused(Rejection::BodyTimeout)),
        }
    }

    /// Answers a refused request (recording it, when `record` is given with whether the connection stays
    /// open). A connection that closes is closed with a lingering close, so a client still sending gets the
    /// answer. Returns whether the answer was written.
    async fn refuse(
        &mut self,
        app: &Local,
        id: &HeaderValue,
        rejection: &Rejection,
        record: Option<(&mut Record<'_>, bool)>,
    ) -> bool {
        let (answer, keep) = match record {
            Some((record, keep)) => (record.refused(&app.metrics, id, rejection), keep),
            None => {
                // A head that could not be read: no method or path to log.
                let log = forward::Log::Borrowed(&app.access_log);
                let mut record = Record::start(log, self.client, "-", "-");
                let answer = record.refused(&app.metrics, id, rejection);
                tracing::debug!(client = %self.client, error = %answer.message, "request refused");
                (answer, false)
            }
        };
        let written = self
            .stream
            .write_all(&answer.to_h1(id, !keep))
            .await
            .is_ok();
        if written && !keep {
            self.linger().await;
        }
        written
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
        app: &Local,
        res: RawResponse,
        id: &HeaderValue,
        close: bool,
        record: &mut Record<'_>,
    ) -> bool {
        let RawResponse {
            status,
            head: mut out,
            body,
            served,
        } = res;
        let outcome = Verdict::answered(status, &served);
        forward::AnswerFields::new(id, outcome.backend).write_h1(&mut out);
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        record.done(&app.metrics, id, outcome);
        relay::body(&mut self.stream, out, body, record).await
    }
}
