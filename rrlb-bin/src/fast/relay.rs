//! Writing a backend's answer to the client: the head, then the body, decoded from the backend's framing
//! ([`UpstreamBody`](crate::upstream::UpstreamBody)) and written in the client's.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::forward::Record;
use crate::logging::ErrorChain;
use crate::upstream::UpstreamBody;

/// Writes `out` (the answer's head, blank line included) and the body from `source`. `false` when the client
/// connection cannot carry another request: it broke, or the answer could not be completed (the backend broke
/// the framing rules mid-body, or closed early); the client then sees its connection close before the framed
/// end, never a byte of what broke the rules.
/// The body's bytes sent (framing included, the head not) are counted in `record`.
pub(super) async fn body(
    client: &mut impl crate::forward::ClientStream,
    mut out: crate::bufs::Buf,
    mut source: UpstreamBody,
    record: &mut Record<'_>,
) -> bool {
    let mut head = out.len();
    let first = std::mem::take(&mut source.first);
    source.frame(&first, source.is_done(), &mut out);
    let mut data = Vec::new();
    loop {
        if client.write_all(&out).await.is_err() {
            return false;
        }
        record.sent((out.len() - std::mem::take(&mut head)) as u64);
        if source.is_done() {
            return true;
        }
        out.clear();
        data.clear();
        match std::future::poll_fn(|cx| source.poll_next(cx, &mut data)).await {
            Ok(done) => source.frame(&data, done, &mut out),
            Err(e) => {
                tracing::debug!(error = %ErrorChain(&e), "backend answer cut short");
                return false;
            }
        }
    }
}

/// Empties `buf` and reads into it (at least 16 KiB of room).
pub(super) async fn refill(
    stream: &mut impl crate::forward::ClientStream,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    buf.clear();
    if buf.capacity() < 16 * 1024 {
        buf.reserve(16 * 1024);
    }
    stream.read_buf(buf).await
}
