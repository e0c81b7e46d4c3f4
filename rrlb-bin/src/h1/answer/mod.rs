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

mod body;

#[cfg(test)]
use self::body::Body;
pub(crate) use self::body::BodyReader;

use std::fmt;

use bytes::BytesMut;

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

/// Whether a backend's answer field `name` reaches the client (hop-by-hop fields are dropped by each path's
/// framing code, which knows the `connection` header): not `x-request-id` and `x-rrlb-backend`, which are
/// rrlb's.
pub(crate) fn answer_header_forwarded(name: &str) -> bool {
    !(name.eq_ignore_ascii_case("x-request-id") || name.eq_ignore_ascii_case("x-rrlb-backend"))
}

#[cfg(test)]
mod tests;
