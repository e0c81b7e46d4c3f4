//! An answer's body after its head: decoding the backend's framing ([`Body`]), writing the client's, and
//! reading it as the upstream does ([`BodyReader`]), without I/O.

use bytes::{Bytes, BytesMut};

use super::chunked;
use super::{AnswerError, Framing, Head};

/// What one [`Body::relay`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Input bytes consumed; fewer than given only when the body ended before the input did.
    pub(crate) consumed: usize,
    /// The body reached its framed end.
    pub(crate) done: bool,
}

/// An answer's body being read: decodes the backend's framing, writes the client's.
#[derive(Debug)]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// This many bytes still to come.
    Length(u64),
    /// Chunked, being decoded.
    Chunked(Box<chunked::Decoder>),
    /// Until the backend closes (`true` once it did); re-framed as chunks.
    Close(bool),
}

impl Body {
    /// The reader for a head's framing.
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Body::Empty,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Box::default()),
            Framing::Close => Body::Close(false),
        }
    }

    /// Whether the body has been read to its end (a `Close` body ends only at [`finish`](Self::finish)).
    pub(crate) fn is_done(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Length(n) => *n == 0,
            Body::Chunked(d) => d.is_done(),
            Body::Close(ended) => *ended,
        }
    }

    /// Decodes `input` (bytes read from the backend), appending the body's data to `data`. On an error nothing
    /// of the read is appended; the caller must then end the client's answer early (it cannot be completed).
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        data: &mut Vec<u8>,
    ) -> Result<Progress, AnswerError> {
        match self {
            Body::Empty => Ok(Progress {
                consumed: 0,
                done: true,
            }),
            Body::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                data.extend_from_slice(&input[..take]);
                *left -= take as u64;
                Ok(Progress {
                    consumed: take,
                    done: *left == 0,
                })
            }
            Body::Chunked(decoder) => {
                let mark = data.len();
                match decoder.decode(input, |d| data.extend_from_slice(d)) {
                    Ok(p) => Ok(Progress {
                        consumed: p.consumed,
                        done: p.done,
                    }),
                    Err(e) => {
                        data.truncate(mark);
                        Err(AnswerError::Chunked(e))
                    }
                }
            }
            Body::Close(_) => {
                data.extend_from_slice(input);
                Ok(Progress {
                    consumed: input.len(),
                    done: false,
                })
            }
        }
    }

    /// The trailer fields of a chunked body that ended, checked and re-written (`name: value\r\n` lines).
    pub(crate) fn trailers(&self) -> &[u8] {
        match self {
            Body::Chunked(d) => d.trailers(),
            _ => b"",
        }
    }

    /// Appends `data` (decoded) in the client's HTTP/1.1 framing: as it is for a length, as a chunk otherwise,
    /// and after the last data of a chunked body (`done`) the last chunk with the trailers.
    pub(crate) fn frame(&self, data: &[u8], done: bool, out: &mut Vec<u8>) {
        match self {
            Body::Empty => {}
            Body::Length(_) => out.extend_from_slice(data),
            Body::Chunked(d) => {
                chunked::encode_chunk(out, data);
                if done {
                    chunked::encode_end(out, d.trailers());
                }
            }
            Body::Close(_) => {
                chunked::encode_chunk(out, data);
                if done {
                    chunked::encode_end(out, b"");
                }
            }
        }
    }

    /// [`decode`](Self::decode) then [`frame`](Self::frame): what the client gets for `input`, appended to `out`.
    #[cfg(test)]
    pub(crate) fn relay(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Progress, AnswerError> {
        if let Body::Length(_) = self {
            // The same bytes: no copy through a side buffer.
            return self.decode(input, out);
        }
        let mut data = Vec::new();
        let progress = self.decode(input, &mut data)?;
        self.frame(&data, progress.done, out);
        Ok(progress)
    }

    /// The backend closed the connection: the end of a body framed by the close, an error for any other body
    /// that had not reached its framed end.
    pub(crate) fn finish(&mut self) -> Result<(), AnswerError> {
        match self {
            Body::Close(ended) => {
                *ended = true;
                Ok(())
            }
            _ if self.is_done() => Ok(()),
            _ => Err(AnswerError::Truncated),
        }
    }

    /// Rule 7: whether the connection may carry another request, given the head's `keep_alive` and how many
    /// bytes the backend sent after the body's end (already read, not consumed).
    pub(crate) fn reusable(&self, keep_alive: bool, unconsumed: usize) -> bool {
        keep_alive && unconsumed == 0 && self.is_done() && !matches!(self, Body::Close(_))
    }
}

/// An answer's body as the upstream reads it, without I/O: decoded by the head's framing, written in the
/// client's, and at its end whether the connection may carry another request (rule 7). The upstream feeds it
/// what it reads from the backend; the fuzz target `answer` feeds it the same way.
#[derive(Debug)]
pub(crate) struct BodyReader {
    body: Body,
    keep_alive: bool,
    /// Set at the framed end: whether the connection may go back to the pool.
    reusable: Option<bool>,
}

impl BodyReader {
    /// Starts reading the body after `head`; `start` holds the bytes read after the head. Their data is decoded
    /// now (split off without a copy when the body is framed by a length), so that an answer whose body breaks
    /// the rules in its first read is refused before the client gets any of it. Returns the reader and that
    /// first data.
    pub(crate) fn start(head: &Head, start: &mut BytesMut) -> Result<(Self, Bytes), AnswerError> {
        let mut this = Self {
            body: Body::new(head.framing),
            keep_alive: head.keep_alive,
            reusable: None,
        };
        let (first, done) = if let Body::Length(left) = &mut this.body {
            let take = start
                .len()
                .min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= take as u64;
            (start.split_to(take).freeze(), *left == 0)
        } else {
            let mut data = Vec::new();
            let progress = this.body.decode(start, &mut data)?;
            let _ = start.split_to(progress.consumed);
            (Bytes::from(data), progress.done)
        };
        if done {
            this.end(start.len());
        }
        Ok((this, first))
    }

    fn end(&mut self, unconsumed: usize) {
        self.reusable = Some(self.body.reusable(self.keep_alive, unconsumed));
    }

    /// Decodes `input` (the next read from the backend), appending the body's data to `data`; `true` once the
    /// body reached its framed end (bytes after it count against reusing the connection).
    pub(crate) fn feed(&mut self, input: &[u8], data: &mut Vec<u8>) -> Result<bool, AnswerError> {
        if self.is_done() {
            return Ok(true);
        }
        let progress = self.body.decode(input, data)?;
        if progress.done {
            self.end(input.len() - progress.consumed);
        }
        Ok(progress.done)
    }

    /// The backend closed the connection: the end of a body framed by the close, an error for any other body
    /// cut short. The connection is not reused.
    pub(crate) fn closed(&mut self) -> Result<(), AnswerError> {
        self.body.finish()?;
        self.reusable = Some(false);
        Ok(())
    }

    /// Whether the body was read to its end.
    pub(crate) fn is_done(&self) -> bool {
        self.reusable.is_some()
    }

    /// Whether the connection may carry another request: only after the body's framed end with nothing after it
    /// on an HTTP/1.1 keep-alive connection.
    pub(crate) fn reusable(&self) -> bool {
        self.reusable == Some(true)
    }

    /// Appends `data` in the client's HTTP/1.1 framing (see [`Body::frame`]).
    pub(crate) fn frame(&self, data: &[u8], done: bool, out: &mut Vec<u8>) {
        self.body.frame(data, done, out);
    }

    /// The checked trailer fields of a chunked body that ended (`name: value\r\n` lines).
    pub(crate) fn trailers(&self) -> &[u8] {
        self.body.trailers()
    }
}
