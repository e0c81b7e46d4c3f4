//! Writing a backend's answer to the client: the head, then the body, decoded from the backend's framing and
//! written in the client's ([`Body::relay`]).

use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::h1::chunked;
use crate::upstream::BodySource;

/// Writes `out` (the answer's head, blank line included) and the body from `source`; the backend connection goes
/// back to the pool only when [`Body::reusable`](crate::h1::answer::Body::reusable) says so. `false` when the
/// client connection cannot carry another request (it broke, or the answer could not be completed: then the
/// client sees its connection close before the framed end, never a byte of what broke the rules).
pub(super) async fn body(client: &mut TcpStream, mut out: Vec<u8>, source: BodySource) -> bool {
    match source {
        BodySource::Tcp {
            mut start,
            mut body,
            keep_alive,
            conn,
        } => {
            let mut conn = Some(conn);
            loop {
                let progress = match body.relay(&start, &mut out) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(error = %e, "backend answer refused mid-body");
                        return false;
                    }
                };
                if progress.done {
                    let reusable = body.reusable(keep_alive, start.len() - progress.consumed);
                    if client.write_all(&out).await.is_err() {
                        return false;
                    }
                    if reusable && let Some(c) = conn.take() {
                        c.release();
                    }
                    return true;
                }
                if !out.is_empty() {
                    if client.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                }
                let Some(c) = conn.as_mut() else {
                    return false;
                };
                match refill(&mut c.stream, &mut start).await {
                    Ok(n) if n > 0 => {}
                    Ok(_) => {
                        // The backend closed: the end of a body framed by the close, else a truncated answer.
                        if body.finish(&mut out).is_err() {
                            return false;
                        }
                        return client.write_all(&out).await.is_ok();
                    }
                    Err(_) => return false,
                }
            }
        }
        BodySource::Hyper { mut body, chunked } => {
            if client.write_all(&out).await.is_err() {
                return false;
            }
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
                        }
                    }
                    Some(Err(_)) => return false,
                }
            }
            client.write_all(chunked::LAST_CHUNK).await.is_ok()
        }
    }
}

/// Empties `buf` and reads into it (at least 16 KiB of room): what the relay loops read the next piece with.
pub(super) async fn refill(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.clear();
    if buf.capacity() < 16 * 1024 {
        buf.reserve(16 * 1024);
    }
    stream.read_buf(buf).await
}
