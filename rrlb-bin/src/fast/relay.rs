//! Writing a backend's answer to the client: the head, then the body as the backend frames it.

use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::upstream::{BodySource, Framing};

/// Writes `out` (the answer's head) and the body from `source`; the backend connection goes back to the pool
/// when its body was read whole and nothing else came with it. `false` when the client connection cannot carry
/// another request (it broke, or the answer could not be completed).
pub(super) async fn body(client: &mut TcpStream, mut out: Vec<u8>, source: BodySource) -> bool {
    match source {
        BodySource::Tcp {
            mut start,
            framing,
            mut conn,
        } => match framing {
            Framing::Empty => {
                let ok = client.write_all(&out).await.is_ok();
                if start.is_empty() {
                    conn.release();
                }
                ok
            }
            Framing::Length(n) => {
                let first = start.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                out.extend_from_slice(&start[..first]);
                let clean = first == start.len();
                if client.write_all(&out).await.is_err() {
                    return false;
                }
                let mut left = n - first as u64;
                while left > 0 {
                    match refill(&mut conn.stream, &mut start).await {
                        Ok(read) if read > 0 => {}
                        _ => return false,
                    }
                    let take = start.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    if client.write_all(&start[..take]).await.is_err() {
                        return false;
                    }
                    left -= take as u64;
                    if take < start.len() {
                        return true; // the backend sent more than it announced: its connection is not reused
                    }
                }
                if clean {
                    conn.release();
                }
                true
            }
            Framing::Chunked => {
                let mut scan = ChunkScan::default();
                let mut pending = &start[..];
                loop {
                    let end = match scan.feed(pending) {
                        Ok(end) => end,
                        Err(()) => return false,
                    };
                    out.extend_from_slice(&pending[..end.unwrap_or(pending.len())]);
                    if client.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                    if let Some(end) = end {
                        if end == pending.len() {
                            conn.release();
                        }
                        return true;
                    }
                    match refill(&mut conn.stream, &mut start).await {
                        Ok(read) if read > 0 => {}
                        _ => return false,
                    }
                    pending = &start[..];
                }
            }
            Framing::Close => {
                let mut data = start;
                loop {
                    if !data.is_empty() {
                        push_chunk(&mut out, &data);
                    }
                    if client.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                    match refill(&mut conn.stream, &mut data).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
                client.write_all(b"0\r\n\r\n").await.is_ok()
            }
        },
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
                            push_chunk(&mut out, &data);
                            if client.write_all(&out).await.is_err() {
                                return false;
                            }
                        }
                    }
                    Some(Err(_)) => return false,
                }
            }
            client.write_all(b"0\r\n\r\n").await.is_ok()
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

/// Appends `data` as one chunk.
fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Finds where a chunked body ends (RFC 9112 §7.1), byte by byte across reads, without decoding it.
#[derive(Debug, Default)]
pub(crate) struct ChunkScan {
    state: State,
    size: u64,
    digits: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The chunk size (and any extension) up to CR.
    #[default]
    Size,
    /// An extension after the size, up to CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// The start of a trailer line, or the final CRLF.
    Trailer,
    TrailerLine,
    EndLf,
    Done,
}

impl ChunkScan {
    /// Consumes `bytes`; `Some(n)` when the body ended after the first `n` of them, `Err` on malformed framing.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).ok_or(())?;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(digit)))
                            .ok_or(())?;
                        self.digits = true;
                    }
                    b';' | b' ' | b'\t' if self.digits => self.state = State::Extension,
                    b'\r' if self.digits => self.state = State::SizeLf,
                    _ => return Err(()),
                },
                State::Extension => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = if self.size == 0 {
                        State::Trailer
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let take =
                        (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(());
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = State::Size;
                    self.digits = false;
                }
                State::Trailer => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        State::TrailerLine
                    };
                }
                State::TrailerLine => {
                    if b == b'\n' {
                        self.state = State::Trailer;
                    }
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = State::Done;
                    return Ok(Some(i + 1));
                }
                State::Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok((self.state == State::Done).then_some(bytes.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of(parts: &[&[u8]]) -> Result<Option<(usize, usize)>, ()> {
        let mut scan = ChunkScan::default();
        for (k, p) in parts.iter().enumerate() {
            if let Some(n) = scan.feed(p)? {
                return Ok(Some((k, n)));
            }
        }
        Ok(None)
    }

    #[test]
    fn chunked_ends_are_found_across_reads() {
        let body = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\nNEXT";
        assert_eq!(end_of(&[body]), Ok(Some((0, body.len() - 4))));
        // Split at every position: the end is found at the same place.
        for cut in 0..body.len() - 4 {
            let (a, b) = body.split_at(cut);
            let found = end_of(&[a, b]).unwrap().unwrap();
            let at = if found.0 == 0 { found.1 } else { cut + found.1 };
            assert_eq!(at, body.len() - 4, "cut at {cut}");
        }
        let trailers = b"3\r\nabc\r\n0\r\nx-sum: 1\r\ny: 2\r\n\r\n";
        assert_eq!(end_of(&[trailers]), Ok(Some((0, trailers.len()))));
        assert_eq!(end_of(&[b"A\r\n0123456789\r\n"]), Ok(None));
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"ZZ\r\n"[..],
            b"\r\n",
            b"3\r\nabcX\r\n",
            b"3\rX",
            b"fffffffffffffffff\r\n",
            b"0\r\n\rX",
        ] {
            assert_eq!(end_of(&[bad]), Err(()), "{bad:?}");
        }
    }
}
