//! The HTTP/1.1 exchange with a backend, on a pooled connection or a new one, plain or TLS alike.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Method;
use rrlb_core::Backend;
use rrlb_tower::FailureKind;
use rrlb_tower::trace::TraceParent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::UpstreamBody;
use super::pool::{Conn, Target, Upstream};
use super::{RawError, RawRequest, RawResponse};
use crate::h1::answer;

/// Sends `request` to `backend` (at `target`) on `idle`, or on a new connection, and reads the answer's head.
pub(super) async fn send(
    backend: Arc<Backend>,
    target: Arc<Target>,
    mut idle: Option<Upstream>,
    (request, span): (RawRequest, TraceParent),
    connect_timeout: Duration,
) -> Result<RawResponse, RawError> {
    let head_only = request.method == Method::HEAD;
    let (wire, inline) = encode(&request, &target, &span);
    let body = (!inline).then_some(&request.body);
    loop {
        let reused = idle.is_some();
        let mut stream = match idle.take() {
            Some(s) => s,
            None => target.connect(connect_timeout).await?,
        };
        match exchange(&mut stream, &wire, body, head_only).await {
            Ok((head, start)) => {
                let body = UpstreamBody::start(&head, start, Conn { stream, backend })
                    .map_err(RawError::protocol)?;
                return Ok(RawResponse {
                    status: head.status,
                    head: head.bytes,
                    body,
                    served: None,
                });
            }
            // A pooled connection the backend closed while it was idle: nothing of the request was taken,
            // so it goes again on a new connection (the pool may hold more stale ones: those are dropped).
            Err(Exchange::Stale(_)) if reused => {
                idle = super::pool::idle(&backend);
            }
            Err(Exchange::Stale(e) | Exchange::Failed(e)) => return Err(e),
        }
    }
}

/// `traceparent: ` + the value + CRLF.
const TRACEPARENT_LINE: usize = 13 + TraceParent::LEN + 2;

/// Bodies up to this size are sent in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

/// The request's head for `target`, with this attempt's `traceparent` (`span`), and the body appended when it
/// is small (then `true`).
fn encode(request: &RawRequest, target: &Target, span: &TraceParent) -> (crate::bufs::Buf, bool) {
    let inline_body = request.body.len() <= INLINE_BODY;
    // A buffer of an earlier request's, when this thread has one.
    let mut wire = crate::bufs::take(
        request.method.as_str().len()
            + 1
            + target.prefix.len()
            + request.rest.len()
            + target.host_line.len()
            + TRACEPARENT_LINE
            + 2
            + if inline_body { request.body.len() } else { 0 },
    );
    wire.extend_from_slice(request.method.as_str().as_bytes());
    wire.push(b' ');
    wire.extend_from_slice(&target.prefix);
    wire.extend_from_slice(&request.rest);
    wire.extend_from_slice(&target.host_line);
    crate::h1::push_header(&mut wire, b"traceparent", &span.encode());
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
    stream: &mut Upstream,
    wire: &[u8],
    body: Option<&Bytes>,
    head_only: bool,
) -> Result<(answer::Head, BytesMut), Exchange> {
    let write = async {
        stream.write_all(wire).await?;
        if let Some(body) = body {
            stream.write_all(body).await?;
        }
        // A TLS stream may keep the last record in its buffer; a plain one has nothing to flush.
        if stream.is_tls() {
            stream.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    };
    if let Err(e) = write.await {
        return Err(Exchange::Stale(RawError::io(
            FailureKind::Reset,
            "sending to the backend",
            e,
        )));
    }
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut received = false;
    let mut reader = answer::HeadReader::new(head_only);
    loop {
        match reader.read(&mut buf) {
            Ok(Some(head)) => return Ok((head, buf)),
            Ok(None) => {
                if buf.capacity() == buf.len() {
                    buf.reserve(buf.len().max(1024));
                }
            }
            Err(e) => return Err(Exchange::Failed(RawError::protocol(e))),
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
                    e,
                )));
            }
        }
    }
}
