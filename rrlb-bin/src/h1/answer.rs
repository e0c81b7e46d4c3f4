//! A backend's answer, framed by RFC 9112 §6.3, as a state machine over bytes: first the head ([`parse_head`]),
//! then the body ([`Body`]), and at the end the one decision that keeps clients apart: may the connection carry
//! another request ([`Body::reusable`])?
//!
//! A pooled backend connection is shared by every client in turn. If rrlb ever reads an answer's end at a
//! different place than where the backend meant it, the bytes left over become the answer to somebody else's
//! request (a response desync). So the rules fail closed:
//!
//! 1. The head must be HTTP/1.0 or HTTP/1.1 with a status of 100 to 599, every line ending in CRLF (no bare LF
//!    or CR), field names that are tokens with no space before the colon, no obs-fold, and values with no
//!    control character but HTAB. Otherwise: an error (the proxy answers `502`, the connection is dropped).
//! 2. `1xx` answers are interim and never have a body; they are skipped, at most [`MAX_INTERIM`] of them.
//!    `101` is refused: rrlb never asks a backend to switch protocols.
//! 3. An answer to `HEAD`, a `204` and a `304` have no body, whatever their headers say (§6.3 rule 1). Such an
//!    answer that nevertheless announces a body (`transfer-encoding` on any of them; a non-zero
//!    `content-length` on a `204`) is relayed without one, but its connection is not used again.
//! 4. `transfer-encoding` must be exactly `chunked`, once, and only on HTTP/1.1; with a `content-length` beside
//!    it, the answer is refused (§6.3 rule 3 would let `chunked` win, but a message with both is the classic
//!    smuggling vector, and a recipient that reads it the other way desyncs).
//! 5. `content-length` must appear once, as decimal digits only (`5, 5` or two equal headers are refused).
//! 6. Without either, the body runs until the backend closes (§6.3 rule 8); the connection ends with it.
//! 7. The connection is used again only when the answer was HTTP/1.1 without `connection: close`, its body
//!    was read to its framed end with no byte after it, and nothing in rule 3 made it ambiguous. The pool also
//!    checks an idle connection when it is taken: one that became readable (bytes nobody asked for, or the
//!    close) is dropped.
//!
//! The body is decoded, never relayed as framed by the backend: [`Body::relay`] writes the client's framing
//! itself (the same length, or chunks of its own with the trailers checked by [`super::chunked`]).

use std::fmt;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};

use super::chunked::{self, ChunkError};
use super::{Connection, is_field_value, is_tchar, parse_length, push_header, push_status_line};

/// Longest answer head accepted from a backend.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in an answer head.
pub(crate) const MAX_HEADERS: usize = 100;
/// Most interim (`1xx`) answers before the final one.
pub(crate) const MAX_INTERIM: usize = 16;

/// Why a backend's answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerError {
    /// Not an HTTP/1.x answer head, or one breaking the syntax rules (rule 1).
    Head(&'static str),
    /// A status outside 100–599.
    Status,
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    UnaskedUpgrade,
    /// More than [`MAX_INTERIM`] interim answers.
    TooManyInterim,
    /// Framing headers that conflict, repeat or are malformed (rules 4 and 5).
    Framing(&'static str),
    /// The head is longer than [`MAX_HEAD`].
    TooLarge,
    /// The chunked body broke the rules of [`super::chunked`].
    Chunked(ChunkError),
    /// The backend closed the connection before the body's framed end.
    Truncated,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Head(why) => write!(f, "the backend's answer head is malformed: {why}"),
            AnswerError::Status => f.write_str("the backend's answer has a status outside 100-599"),
            AnswerError::UnaskedUpgrade => {
                f.write_str("the backend switched protocols (101) without being asked to")
            }
            AnswerError::TooManyInterim => f.write_str("the backend sent too many 1xx answers"),
            AnswerError::Framing(why) => {
                write!(f, "the backend's answer framing is ambiguous: {why}")
            }
            AnswerError::TooLarge => f.write_str("the backend's answer head is too large"),
            AnswerError::Chunked(e) => write!(f, "the backend's chunked body is malformed: {e}"),
            AnswerError::Truncated => {
                f.write_str("the backend closed the connection before the end of the answer")
            }
        }
    }
}

impl std::error::Error for AnswerError {}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (rule 3).
    Empty,
    /// `content-length` bytes.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Until the backend closes the connection (rule 6).
    Close,
}

/// A final answer's head, checked and rewritten for the client.
#[derive(Debug)]
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: u16,
    /// `HTTP/1.1 STATUS REASON\r\n`, the forwarded header lines and the client's framing line; without the
    /// blank line that ends a head (the caller adds its own headers first).
    pub(crate) bytes: crate::bufs::Buf,
    /// How the body is delimited.
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request once the body is read (rules 3 and 7).
    pub(crate) keep_alive: bool,
}

/// What [`parse_head`] found at the start of a buffer.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An interim (`1xx`) answer of this many bytes, to skip.
    Interim(usize),
    /// A final answer whose head is this many bytes.
    Final(usize, Head),
}

/// Parses the answer head at the start of `buf`. `head_request`: the request was `HEAD`. `forwarded` says
/// which end-to-end header fields go to the client (hop-by-hop and framing fields never do).
pub(crate) fn parse_head(
    buf: &[u8],
    head_request: bool,
    forwarded: impl Fn(&str) -> bool,
) -> Result<Parsed, AnswerError> {
    // Uninitialised: the parser writes only the fields it finds (an initialised array is 3 KiB of stores per
    // answer).
    let mut headers = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Parsed::Partial),
        Ok(httparse::Status::Partial) => return Err(AnswerError::TooLarge),
        Err(httparse::Error::TooManyHeaders) => return Err(AnswerError::TooLarge),
        Err(e) => return Err(AnswerError::Head(httparse_reason(e))),
    };
    if len > MAX_HEAD {
        return Err(AnswerError::TooLarge);
    }
    // httparse accepts a bare LF as a line end (RFC 9112 §2.2 allows it); rule 1 does not.
    if !super::strict_line_ends(&buf[..len]) {
        return Err(AnswerError::Head("a line not ending in CRLF"));
    }
    let status = res.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        return Err(AnswerError::Status);
    }
    let reason = res.reason.unwrap_or("");
    if !is_field_value(reason.as_bytes()) {
        return Err(AnswerError::Head(
            "a control character in the reason phrase",
        ));
    }
    let mut connection = Connection::default();
    let mut length: Option<u64> = None;
    let mut lengths = 0usize;
    let mut codings = 0usize;
    let mut chunked = false;
    for h in res.headers.iter() {
        if h.name.is_empty() || !h.name.bytes().all(is_tchar) {
            return Err(AnswerError::Head("an invalid field name"));
        }
        if !is_field_value(h.value) {
            return Err(AnswerError::Head("a control character in a field value"));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = Some(parse_length(h.value).ok_or(AnswerError::Framing(
                "content-length is not one decimal number",
            ))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            chunked = super::is_chunked(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection.add(h.value);
        }
    }
    if status == 101 {
        return Err(AnswerError::UnaskedUpgrade);
    }
    if status < 200 {
        return Ok(Parsed::Interim(len));
    }
    let http11 = res.version == Some(1);
    if lengths > 1 {
        return Err(AnswerError::Framing("more than one content-length"));
    }
    if codings > 0 {
        if lengths > 0 {
            return Err(AnswerError::Framing(
                "both content-length and transfer-encoding",
            ));
        }
        if codings > 1 || !chunked {
            return Err(AnswerError::Framing(
                "a transfer-encoding other than chunked",
            ));
        }
        if !http11 {
            return Err(AnswerError::Framing(
                "transfer-encoding in an HTTP/1.0 answer",
            ));
        }
    }
    let no_body = head_request || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Empty
    } else if codings > 0 {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    // Rule 3: a body announced where none may be is not read, and the connection is not trusted after it.
    let ambiguous = no_body && (codings > 0 || (status == 204 && length.is_some_and(|n| n > 0)));
    let keep_alive = http11 && !connection.close && framing != Framing::Close && !ambiguous;

    // Reused from an earlier answer when this thread has one: the caller adds its own lines and, on the fast
    // path, the body's first bytes.
    let mut bytes = crate::bufs::take(len + 256);
    push_status_line(&mut bytes, status, Some(reason));
    for h in res.headers.iter() {
        let name = h.name;
        if connection.is_hop_by_hop(name)
            || name.eq_ignore_ascii_case("content-length")
            || !forwarded(name)
        {
            continue;
        }
        push_header(&mut bytes, name.as_bytes(), h.value);
    }
    match framing {
        Framing::Length(n) => push_header(
            &mut bytes,
            b"content-length",
            itoa::Buffer::new().format(n).as_bytes(),
        ),
        Framing::Chunked | Framing::Close => {
            bytes.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        // An answer to HEAD and a 304 keep their content-length: it tells the size of what a GET would get.
        Framing::Empty => {
            if let Some(n) = length.filter(|_| status != 204) {
                push_header(
                    &mut bytes,
                    b"content-length",
                    itoa::Buffer::new().format(n).as_bytes(),
                );
            }
        }
    }
    Ok(Parsed::Final(
        len,
        Head {
            status,
            bytes,
            framing,
            keep_alive,
        },
    ))
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "an invalid field name",
        httparse::Error::HeaderValue => "an invalid field value",
        httparse::Error::NewLine => "a line not ending in CRLF",
        httparse::Error::Status => "an invalid status",
        httparse::Error::Version => "not HTTP/1.0 or HTTP/1.1",
        _ => "not an HTTP/1 answer",
    }
}

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

/// Reads a backend's answer head from the bytes received so far, without I/O: interim `1xx` answers are
/// skipped (at most [`MAX_INTERIM`]) and every head is held to the rules of [`parse_head`]. The upstream calls
/// [`read`](Self::read) after each read from the backend; the fuzz target `answer` drives the same reader.
#[derive(Debug)]
pub(crate) struct HeadReader {
    head_request: bool,
    interim: usize,
}

impl HeadReader {
    /// A reader for the answer to a request; `head_request`: it was `HEAD`.
    pub(crate) fn new(head_request: bool) -> Self {
        Self {
            head_request,
            interim: 0,
        }
    }

    /// The final head, once `buf` holds it: it is split off `buf`, which keeps what followed it (the body's
    /// start). `Ok(None)`: more bytes are needed (interim answers already read are removed from `buf`).
    pub(crate) fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Head>, AnswerError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            match parse_head(buf, self.head_request, answer_header_forwarded)? {
                Parsed::Partial => return Ok(None),
                Parsed::Interim(len) => {
                    self.interim += 1;
                    if self.interim > MAX_INTERIM {
                        return Err(AnswerError::TooManyInterim);
                    }
                    let _ = buf.split_to(len);
                }
                Parsed::Final(len, head) => {
                    let _ = buf.split_to(len);
                    return Ok(Some(head));
                }
            }
        }
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

/// Whether a backend's answer field `name` reaches the client (hop-by-hop fields are dropped by each path's
/// framing code, which knows the `connection` header): not `x-request-id` and `x-rrlb-backend`, which are
/// rrlb's.
pub(crate) fn answer_header_forwarded(name: &str) -> bool {
    !(name.eq_ignore_ascii_case("x-request-id") || name.eq_ignore_ascii_case("x-rrlb-backend"))
}

/// The answer rules of this module that still apply to an answer hyper's client has parsed (the hyper path):
/// a status of 200 to 599 (hyper keeps `1xx` to itself, and `101` was never asked for), one `content-length`
/// of digits, no `content-length` beside `transfer-encoding`, and only `chunked`.
pub(crate) fn check_answer(
    status: http::StatusCode,
    headers: &HeaderMap,
) -> Result<(), AnswerError> {
    let s = status.as_u16();
    if s == 101 {
        return Err(AnswerError::UnaskedUpgrade);
    }
    if !(100..=599).contains(&s) {
        return Err(AnswerError::Status);
    }
    let lengths = headers.get_all(header::CONTENT_LENGTH);
    let mut n = 0;
    for v in lengths {
        n += 1;
        if super::parse_length(v.as_bytes()).is_none() {
            return Err(AnswerError::Framing(
                "content-length is not one decimal number",
            ));
        }
    }
    if n > 1 {
        return Err(AnswerError::Framing("more than one content-length"));
    }
    let mut codings = 0;
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        codings += 1;
        if n > 0 {
            return Err(AnswerError::Framing(
                "both content-length and transfer-encoding",
            ));
        }
        if !super::is_chunked(v.as_bytes()) {
            return Err(AnswerError::Framing(
                "a transfer-encoding other than chunked",
            ));
        }
    }
    if codings > 1 {
        return Err(AnswerError::Framing(
            "a transfer-encoding other than chunked",
        ));
    }
    Ok(())
}

/// Removes from an answer's fields what does not reach the client (the hyper path): hop-by-hop fields, those
/// `connection` names, and rrlb's own.
pub(crate) fn strip_answer(headers: &mut HeaderMap) {
    let mut connection = Connection::default();
    for v in headers.get_all(header::CONNECTION) {
        connection.add(v.as_bytes());
    }
    let drop: Vec<HeaderName> = headers
        .keys()
        .filter(|k| connection.is_hop_by_hop(k.as_str()) || !answer_header_forwarded(k.as_str()))
        .cloned()
        .collect();
    for name in drop {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &str) -> bool {
        true
    }

    fn final_head(raw: &[u8], head_request: bool) -> (usize, Head) {
        match parse_head(raw, head_request, all) {
            Ok(Parsed::Final(len, head)) => (len, head),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    /// Reads a whole answer the way the fast path does: the client's bytes, and whether the connection is
    /// reusable.
    fn read(raw: &[u8], head_request: bool) -> Result<(Vec<u8>, bool), AnswerError> {
        let mut at = 0;
        loop {
            match parse_head(&raw[at..], head_request, all)? {
                Parsed::Partial => return Err(AnswerError::Truncated),
                Parsed::Interim(n) => at += n,
                Parsed::Final(n, head) => {
                    at += n;
                    let mut out = head.bytes.clone();
                    out.extend_from_slice(b"\r\n");
                    let mut body = Body::new(head.framing);
                    let p = body.relay(&raw[at..], &mut out)?;
                    if !p.done {
                        body.finish()?;
                        body.frame(b"", true, &mut out);
                    }
                    let left = raw.len() - at - p.consumed;
                    return Ok((out, body.reusable(head.keep_alive, left)));
                }
            }
        }
    }

    #[test]
    fn answers_are_framed_and_rewritten_for_the_client() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nx-kept: yes\r\n\r\nhello";
        let (len, h) = final_head(raw, false);
        assert_eq!(len, raw.len() - 5);
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Length(5), true)
        );
        assert_eq!(
            *h.bytes,
            b"HTTP/1.1 200 OK\r\nx-kept: yes\r\ncontent-length: 5\r\n"
        );

        let (_, h) = final_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
        assert_eq!(
            *h.bytes,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
        );

        let (_, h) = final_head(b"HTTP/1.0 200 OK\r\nx-a: 1\r\n\r\n", false);
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));

        let (_, h) = final_head(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n", true);
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        assert_eq!(*h.bytes, b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n");

        let (_, h) = final_head(
            b"HTTP/1.1 204 No Content\r\ncontent-length: 6\r\n\r\n",
            false,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, false));
        assert_eq!(*h.bytes, b"HTTP/1.1 204 No Content\r\n");

        let (_, h) = final_head(
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 6\r\n\r\n",
            false,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));

        let (_, h) = final_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\n",
            false,
        );
        assert!(!h.keep_alive);
    }

    #[test]
    fn interim_answers_are_skipped_and_unasked_upgrades_refused() {
        assert!(matches!(
            parse_head(
                b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n",
                false,
                all
            ),
            Ok(Parsed::Interim(40))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false, all),
            Ok(Parsed::Partial)
        ));
        assert_eq!(
            parse_head(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
                false,
                all
            )
            .err(),
            Some(AnswerError::UnaskedUpgrade)
        );
    }

    #[test]
    fn ambiguous_or_malformed_heads_are_refused() {
        for bad in [
            &b"NOT HTTP\r\n\r\n"[..],
            b"HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 600 High\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 999 High\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.2 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/2.0 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\ncontent-length: 0\n\n",
            b"HTTP/1.1 200 OK\r\nx: a\rb\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx: \x01\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx: \x7f\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx: a\r\n folded\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx : a\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx-bad\xffname: 1\r\n\r\n",
        ] {
            assert!(
                parse_head(bad, false, all).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bytes_after_the_end_make_a_connection_unusable() {
        let good = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(
            read(good, false),
            Ok((
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec(),
                true
            ))
        );
        let extra = [
            &good[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON",
        ]
        .concat();
        let (out, reusable) = read(&extra, false).unwrap();
        assert!(!reusable);
        assert!(!out.windows(6).any(|w| w == b"POISON"));

        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nx-t: 1\r\n\r\n";
        let (out, reusable) = read(chunked, false).unwrap();
        assert!(reusable);
        assert!(
            out.ends_with(b"\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let extra = [&chunked[..], b"HTTP/1.1 200 OK\r\n\r\nPOISON"].concat();
        assert!(!read(&extra, false).unwrap().1);

        for no_body in [
            &b"HTTP/1.1 204 No Content\r\n\r\nPOISON"[..],
            b"HTTP/1.1 304 Not Modified\r\n\r\nPOISON",
        ] {
            let (out, reusable) = read(no_body, false).unwrap();
            assert!(!reusable && out.ends_with(b"\r\n\r\n"));
        }
        let (out, reusable) =
            read(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON", true).unwrap();
        assert!(!reusable && out.ends_with(b"content-length: 6\r\n\r\n"));
        let (out, reusable) = read(b"HTTP/1.1 200 OK\r\n\r\nuntil close", false).unwrap();
        assert!(!reusable);
        assert!(out.ends_with(b"b\r\nuntil close\r\n0\r\n\r\n"));
    }

    #[test]
    fn a_bad_chunk_relays_nothing_of_its_read() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let (_, head) = final_head(raw, false);
        let mut body = Body::new(head.framing);
        let mut out = Vec::new();
        assert!(body.relay(b"5\r\nhello\r\n", &mut out).is_ok());
        assert_eq!(out, b"5\r\nhello\r\n");
        out.clear();
        let smuggled = b"3\r\nabc\r\n5\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nPOISON";
        assert!(body.relay(smuggled, &mut out).is_err());
        assert!(out.is_empty());
        assert_eq!(Body::Length(5).finish(), Err(AnswerError::Truncated));
    }

    #[test]
    fn answers_from_hyper_are_checked_like_raw_ones() {
        use http::HeaderValue;
        let mut h = HeaderMap::new();
        assert!(check_answer(http::StatusCode::OK, &h).is_ok());
        assert!(check_answer(http::StatusCode::from_u16(999).unwrap(), &h).is_err());
        assert!(check_answer(http::StatusCode::SWITCHING_PROTOCOLS, &h).is_err());
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5, 5"));
        assert!(check_answer(http::StatusCode::OK, &h).is_err());
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.append(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(check_answer(http::StatusCode::OK, &h).is_err());
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.append("x-hop", HeaderValue::from_static("1"));
        h.append("x-request-id", HeaderValue::from_static("theirs"));
        h.append("x-kept", HeaderValue::from_static("1"));
        strip_answer(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
