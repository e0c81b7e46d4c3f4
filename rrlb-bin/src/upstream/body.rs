//! An answer's body after its head: read from a pooled connection (plain or TLS) by the rules of
//! `h1::answer` ([`UpstreamBody`]), and as a hyper body for the hyper path ([`RawBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use rrlb_tower::{BoxError, FailureKind};

use super::RawError;
use super::pool::Conn;
use crate::h1::answer::{self, BodyReader};

/// An answer body on a backend connection (TCP, or TLS over TCP): decoded by `h1::answer`'s [`BodyReader`], the connection handed
/// back to the pool only when the reader says it is reusable.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    /// Decoded body data read with the head, not yet handed on.
    pub(crate) first: Bytes,
    reader: BodyReader,
    buf: BytesMut,
    conn: Option<Conn>,
}

impl UpstreamBody {
    /// Starts reading the body after a head: `start` are the bytes read after the head (see
    /// [`BodyReader::start`]).
    pub(super) fn start(
        head: &answer::Head,
        mut start: BytesMut,
        conn: Conn,
    ) -> Result<Self, answer::AnswerError> {
        let (reader, first) = BodyReader::start(head, &mut start)?;
        let mut this = Self {
            first,
            reader,
            buf: start,
            conn: Some(conn),
        };
        this.release_if_done();
        Ok(this)
    }

    /// Once the body ended: the connection goes back to the pool if it may, else it is closed.
    fn release_if_done(&mut self) {
        if self.reader.is_done() {
            let conn = self.conn.take();
            if self.reader.reusable()
                && let Some(c) = conn
            {
                c.release();
            }
        }
    }

    /// Whether the body was read to its end.
    pub(crate) fn is_done(&self) -> bool {
        self.reader.is_done()
    }

    /// Appends `data` in the client's HTTP/1.1 framing (see `Body::frame`).
    pub(crate) fn frame(&self, data: &[u8], done: bool, out: &mut Vec<u8>) {
        self.reader.frame(data, done, out);
    }

    /// The checked trailer fields of a chunked body that ended (`name: value\r\n` lines).
    pub(crate) fn trailers(&self) -> &[u8] {
        self.reader.trailers()
    }

    /// Reads the next part of the body and appends its data to `data`; `true` once the body ended. An error
    /// when the backend broke the framing rules or the connection failed before the framed end.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        data: &mut Vec<u8>,
    ) -> Poll<Result<bool, RawError>> {
        if self.reader.is_done() {
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
        let n = match std::task::ready!(conn.stream.poll_read_into(cx, &mut self.buf)) {
            Ok(n) => n,
            Err(e) => {
                self.conn = None;
                return Poll::Ready(Err(RawError::io(
                    FailureKind::Reset,
                    "reading from the backend",
                    e,
                )));
            }
        };
        if n == 0 {
            self.conn = None;
            return Poll::Ready(match self.reader.closed() {
                Ok(()) => Ok(true),
                Err(e) => Err(RawError::protocol(e)),
            });
        }
        match self.reader.feed(&self.buf, data) {
            Ok(done) => {
                self.release_if_done();
                Poll::Ready(Ok(done))
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
    source: Option<UpstreamBody>,
}

impl RawBody {
    pub(crate) fn new(mut body: UpstreamBody) -> Self {
        Self {
            first: Some(std::mem::take(&mut body.first)),
            source: Some(body),
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
            Some(tcp) => loop {
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
