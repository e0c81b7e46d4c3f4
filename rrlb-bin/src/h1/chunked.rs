//! The chunked transfer coding (RFC 9112 §7.1), decoded strictly and byte by byte across reads.
//!
//! rrlb never relays a peer's chunk framing as it is: the decoder takes the data out, and whoever forwards it
//! writes framing of its own ([`encode_chunk`]). A recipient that reads framing differently from
//! the sender is how responses and requests get smuggled, so every rule below fails closed:
//!
//! - `chunk-size` is 1 to 16 hex digits (no sign, no `0x`, no overflow of 64 bits);
//! - a chunk extension (`;name=value`, RFC 9112 §7.1.1) may follow after optional spaces or tabs; it may hold
//!   visible ASCII, spaces and tabs only, and is dropped (a proxy need not forward extensions it does not know);
//! - every line ends in CRLF: a bare LF or a bare CR anywhere in a size line, after chunk data or in the trailer
//!   section is an error (RFC 9112 §2.2 lets a recipient accept a bare LF in a *head*; in a body the safe
//!   reading is the strict one, and the HTTP Garden and PortSwigger findings are about exactly this);
//! - a size line (with its extension) is at most [`MAX_LINE`] bytes, the trailer section at most
//!   [`MAX_TRAILERS`] bytes;
//! - a trailer field is `token ":" OWS value OWS` with no control character but HTAB in the value, and never one
//!   of the fields that frame, route or control the message ([`forbidden_trailer`], RFC 9110 §6.5.1).
//!
//! Valid trailer fields are kept, re-written as `name: value\r\n`, for a forwarder that wants them.

use std::fmt;

/// The longest chunk-size line, extension included.
pub(crate) const MAX_LINE: usize = 4096;
/// The longest trailer section.
pub(crate) const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// A chunk size that is not 1 to 16 hex digits.
    Size,
    /// A byte that a chunk extension may not hold.
    Extension,
    /// A line that does not end in CRLF (a bare CR or LF), or no CRLF after chunk data.
    LineEnd,
    /// A size line or trailer section over the limits.
    TooLong,
    /// A trailer line that is not a field, or holds a control character.
    Trailer,
    /// A trailer field that may not be sent as a trailer.
    ForbiddenTrailer,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkError::Size => "invalid chunk size",
            ChunkError::Extension => "invalid chunk extension",
            ChunkError::LineEnd => "a chunked line not ending in CRLF",
            ChunkError::TooLong => "a chunk-size line or trailer section too long",
            ChunkError::Trailer => "an invalid trailer field",
            ChunkError::ForbiddenTrailer => "a trailer field that may not be a trailer",
        })
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the size.
    #[default]
    Size,
    /// Spaces or tabs after the size, before `;` or CR.
    SizeSpace,
    /// An extension, up to CR.
    Extension,
    /// The LF ending the size line.
    SizeLf,
    /// Chunk data.
    Data,
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line, or the CR of the final CRLF.
    TrailerStart,
    /// Inside a trailer line, up to CR.
    TrailerLine,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF of the final CRLF.
    EndLf,
    /// The body ended.
    Done,
}

/// What one [`Decoder::decode`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Input bytes consumed (all of them unless the body ended).
    pub(crate) consumed: usize,
    /// The body ended with the last consumed byte.
    pub(crate) done: bool,
}

/// Decodes a chunked body: data goes to a sink, framing is checked and dropped.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    state: State,
    size: u64,
    digits: u8,
    line: usize,
    /// The trailer section, re-written (`name: value\r\n` lines).
    trailers: Vec<u8>,
    /// The current trailer line as received.
    trailer_line: Vec<u8>,
    trailer_bytes: usize,
}

impl Decoder {
    /// Whether the whole body was read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The valid trailer fields, as `name: value\r\n` lines (empty without trailers).
    pub(crate) fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// Decodes `input`, handing each run of chunk data to `data`. Stops after the body's last byte: bytes after
    /// it are not consumed (they are not part of this message).
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Data {
                let take = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                data(&input[i..i + take]);
                self.size -= take as u64;
                i += take;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// One byte of framing (anything but chunk data).
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size | State::SizeSpace | State::Extension => {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(ChunkError::TooLong);
                }
            }
            _ => {}
        }
        match self.state {
            State::Size => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if self.digits == 16 {
                        return Err(ChunkError::Size);
                    }
                    let digit = (b as char).to_digit(16).ok_or(ChunkError::Size)?;
                    self.size = (self.size << 4) | u64::from(digit);
                    self.digits += 1;
                }
                _ if self.digits == 0 => return Err(ChunkError::Size),
                b' ' | b'\t' => self.state = State::SizeSpace,
                b';' => self.state = State::Extension,
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(ChunkError::LineEnd),
                _ => return Err(ChunkError::Size),
            },
            State::SizeSpace => match b {
                b' ' | b'\t' => {}
                b';' => self.state = State::Extension,
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(ChunkError::LineEnd),
                _ => return Err(ChunkError::Size),
            },
            State::Extension => match b {
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(ChunkError::LineEnd),
                b'\t' | b' '..=b'~' => {}
                _ => return Err(ChunkError::Extension),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::LineEnd);
                }
                self.line = 0;
                self.digits = 0;
                self.state = if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                };
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(ChunkError::LineEnd);
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(ChunkError::LineEnd);
                }
                self.state = State::Size;
            }
            State::TrailerStart => match b {
                b'\r' => self.state = State::EndLf,
                b'\n' => return Err(ChunkError::LineEnd),
                _ => {
                    self.trailer_line.clear();
                    self.push_trailer_byte(b)?;
                    self.state = State::TrailerLine;
                }
            },
            State::TrailerLine => match b {
                b'\r' => self.state = State::TrailerLf,
                b'\n' => return Err(ChunkError::LineEnd),
                _ => self.push_trailer_byte(b)?,
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(ChunkError::LineEnd);
                }
                self.finish_trailer_line()?;
                self.state = State::TrailerStart;
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(ChunkError::LineEnd);
                }
                self.state = State::Done;
            }
            State::Data | State::Done => {}
        }
        Ok(())
    }

    fn push_trailer_byte(&mut self, b: u8) -> Result<(), ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILERS {
            return Err(ChunkError::TooLong);
        }
        self.trailer_line.push(b);
        Ok(())
    }

    /// Checks a complete trailer line and keeps it, re-written.
    fn finish_trailer_line(&mut self) -> Result<(), ChunkError> {
        let line = &self.trailer_line;
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ChunkError::Trailer)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| super::is_tchar(b)) {
            return Err(ChunkError::Trailer);
        }
        if !super::is_field_value(value) {
            return Err(ChunkError::Trailer);
        }
        let name = std::str::from_utf8(name).map_err(|_| ChunkError::Trailer)?;
        if forbidden_trailer(name) {
            return Err(ChunkError::ForbiddenTrailer);
        }
        self.trailers.extend_from_slice(name.as_bytes());
        self.trailers.extend_from_slice(b": ");
        self.trailers.extend_from_slice(value.trim_ascii());
        self.trailers.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Fields that must not be sent in a trailer section (RFC 9110 §6.5.1): those that frame the message, route it,
/// belong to the hop, or that a recipient would act on before the content (authentication, content processing,
/// response control).
pub(crate) fn forbidden_trailer(name: &str) -> bool {
    const FORBIDDEN: [&str; 24] = [
        "content-length",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "max-forwards",
        "cache-control",
        "authorization",
        "proxy-authorization",
        "proxy-authenticate",
        "www-authenticate",
        "set-cookie",
        "cookie",
        "content-encoding",
        "content-type",
        "content-range",
        "location",
        "retry-after",
        "x-rrlb-backend",
    ];
    FORBIDDEN.iter().any(|f| name.eq_ignore_ascii_case(f))
}

/// Appends `data` as one chunk (nothing for empty data: an empty chunk would end the body).
pub(crate) fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let mut n = data.len();
    let mut at = size.len();
    loop {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 0xF];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&size[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and `trailers` (`name: value\r\n` lines, possibly none), ending the body.
pub(crate) fn encode_end(out: &mut Vec<u8>, trailers: &[u8]) {
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data, the trailers, and the offset after the end in the whole input.
    type Decoded = (Vec<u8>, Vec<u8>, Option<usize>);

    /// Decodes `parts` in order.
    fn decode(parts: &[&[u8]]) -> Result<Decoded, ChunkError> {
        let mut d = Decoder::default();
        let mut data = Vec::new();
        let mut offset = 0;
        for p in parts {
            let progress = d.decode(p, |b| data.extend_from_slice(b))?;
            if progress.done {
                return Ok((
                    data,
                    d.trailers().to_vec(),
                    Some(offset + progress.consumed),
                ));
            }
            offset += p.len();
        }
        Ok((data, d.trailers().to_vec(), None))
    }

    #[test]
    fn bodies_are_decoded_across_every_split() {
        let body = b"5\r\nhello\r\n6;name=\"v a\"\r\n world\r\n0\r\nx-sum: 1 \r\n\r\nNEXT";
        let end = body.len() - 4;
        let (data, trailers, at) = decode(&[body]).unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(trailers, b"x-sum: 1\r\n");
        assert_eq!(at, Some(end));
        for cut in 0..end {
            let (a, b) = body.split_at(cut);
            let (data, _, at) = decode(&[a, b]).unwrap();
            assert_eq!(data, b"hello world", "cut at {cut}");
            assert_eq!(at, Some(end), "cut at {cut}");
        }
        assert_eq!(decode(&[b"A\r\n0123456789\r\n"]).unwrap().2, None);
        assert_eq!(decode(&[b"1 \t;x\r\na\r\n0\r\n\r\n"]).unwrap().0, b"a");
    }

    #[test]
    fn anything_ambiguous_is_refused() {
        for (bad, why) in [
            (&b"ZZ\r\n"[..], ChunkError::Size),
            (b"\r\n", ChunkError::Size),
            (b"-5\r\n", ChunkError::Size),
            (b"0x5\r\n", ChunkError::Size),
            (b"11111111111111111\r\n", ChunkError::Size),
            (b"5\nhello\r\n0\r\n\r\n", ChunkError::LineEnd),
            (b"5;ext\nhello\r\n", ChunkError::LineEnd),
            (b"5;e\x01\r\n", ChunkError::Extension),
            (b"5;e\xff\r\n", ChunkError::Extension),
            (b"3\r\nabcX\r\n", ChunkError::LineEnd),
            (b"3\r\nabc\n0\r\n\r\n", ChunkError::LineEnd),
            (b"3\rX", ChunkError::LineEnd),
            (b"0\r\n\rX", ChunkError::LineEnd),
            (b"0\r\n\n", ChunkError::LineEnd),
            (b"0\r\nx: 1\n\r\n", ChunkError::LineEnd),
            (b"0\r\nx: \x01\r\n\r\n", ChunkError::Trailer),
            (b"0\r\nno colon\r\n\r\n", ChunkError::Trailer),
            (b"0\r\nbad name: 1\r\n\r\n", ChunkError::Trailer),
            (
                b"0\r\ncontent-length: 5\r\n\r\n",
                ChunkError::ForbiddenTrailer,
            ),
            (
                b"0\r\nTransfer-Encoding: chunked\r\n\r\n",
                ChunkError::ForbiddenTrailer,
            ),
            (b"0\r\nhost: x\r\n\r\n", ChunkError::ForbiddenTrailer),
        ] {
            assert_eq!(
                decode(&[bad]),
                Err(why),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1;{}\r\n", "x".repeat(MAX_LINE));
        assert_eq!(decode(&[long.as_bytes()]), Err(ChunkError::TooLong));
        let many = format!("0\r\nx: {}\r\n\r\n", "v".repeat(MAX_TRAILERS));
        assert_eq!(decode(&[many.as_bytes()]), Err(ChunkError::TooLong));
    }

    #[test]
    fn encoding_round_trips() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        encode_chunk(&mut out, &[7u8; 300]);
        encode_end(&mut out, b"x-a: 1\r\n");
        assert!(out.starts_with(b"12c\r\n"));
        let (data, trailers, at) = decode(&[&out]).unwrap();
        assert_eq!(data, vec![7u8; 300]);
        assert_eq!(trailers, b"x-a: 1\r\n");
        assert_eq!(at, Some(out.len()));
    }
}
