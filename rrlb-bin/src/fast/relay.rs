//! Writing a backend's answer to the client: the head, then the body, decoded from the backend's framing
//! ([`TcpBody`](crate::upstream::TcpBody)) and written in the client's.

use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::forward::Record;
use crate::h1::chunked;
use crate::logging::ErrorChain;
use crate::upstream::BodySource;

/// Writes `out` (the answer's head, blank line included) and the body from `source`. `false` when the client
/// connection cannot carry another request: it broke, or the answer could not be completed (the backend broke
/// the framing rules mid-body, or closed early); the client then sees its connection close before the framed
/// end, never a byte of what broke the rules.
/// The body's bytes sent (framing included, the head not) are counted in `record`.
pub(super) async fn body(
    client: &mut impl crate::forward::ClientStream,
    mut out: crate::bufs::Buf,
    source: BodySource,
    record: &mut Record<'_>,
) -> bool {
    let mut head = out.len();
    match source {
        BodySource::Tcp(mut tcp) => {
            let first = std::mem::take(&mut tcp.first);
            tcp.frame(&first, tcp.is_done(), &mut out);
            let mut data = Vec::new();
            loop {
                if client.write_all(&out).await.is_err() {
                    return false;
                }
                record.sent((out.len() - std::mem::take(&mut head)) as u64);
                if tcp.is_done() {
                    return true;
                }
                out.clear();
                data.clear();
                match std::future::poll_fn(|cx| tcp.poll_next(cx, &mut data)).await {
                    Ok(done) => tcp.frame(&data, done, &mut out),
                    Err(e) => {
                        tracing::debug!(error = %ErrorChain(&e), "backend answer cut short");
                        return false;
                    }
                }
            }
        }
        BodySource::Hyper { mut body, chunked } => {
            if client.write_all(&out).await.is_err() {
                return false;
            }
            record.sent((out.len() - head) as u64);
            if !chunked {
                return true;
            }
            loop {
                out.clear();
                match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data()
                            && !data.is_empty()
                        {
                            chunked::encode_chunk(&mut out, &data);
                            if client.write_all(&out).await.is_err() {
                                return false;
                            }
                            record.sent(out.len() as u64);
                        }
                    }
                    Some(Err(_)) => return false,
                }
            }
            record.sent(chunked::LAST_CHUNK.len() as u64);
            client.write_all(chunked::LAST_CHUNK).await.is_ok()
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
