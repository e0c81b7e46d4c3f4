//! An answer's body after its head: read from a pooled connection by the rules of `h1::answer`
//! ([`TcpBody`]), and as a hyper body for the hyper path ([`RawBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use rrlb_tower::{BoxError, FailureKind};

use super::pool::Conn;
use super::{BodySource, RawError};
use crate::h1::answer::{self, Body};

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
    pub(super) fn start(
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
                    e,
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
                        e,
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
