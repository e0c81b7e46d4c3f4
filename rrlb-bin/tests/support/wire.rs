//! A raw HTTP/1 client: it sends bytes as written, and reads answers strictly (CRLF only, one framing, RFC 9112
//! §6.3), telling a whole answer from one cut short, malformed or never finished; every read is bounded.
//!
//! - [`Conn`]: a client connection, with everything it received (for checks on the bytes themselves).
//! - [`Read`]: what reading one answer gave; [`Answer`]: a whole one.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The default bound on a raw client's single wait (a connect, a write, a read): a hang becomes a failure that
/// says what arrived, never a timing assertion.
pub const WAIT: Duration = Duration::from_secs(10);

/// Bytes for a failure message: lossy text, cut at 300 bytes.
pub fn show(b: &[u8]) -> String {
    let cut = &b[..b.len().min(300)];
    let more = if b.len() > 300 {
        format!("… ({} bytes)", b.len())
    } else {
        String::new()
    };
    format!("{:?}{more}", String::from_utf8_lossy(cut))
}

/// An answer as a client read it.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The head as text (lossy), from the status line to the blank line.
    pub head: String,
    /// The minor version: `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    pub status: u16,
    /// Names as sent, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The 1xx answers before it.
    pub interim: Vec<u16>,
    /// The body was delimited by the close (no length, not chunked).
    pub until_close: bool,
}

impl Answer {
    /// The first value of header `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Whether it says `connection: close`.
    pub fn closes(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        })
    }

    /// Whether the connection ends after it: `connection: close`, or an HTTP/1.0 answer without
    /// `connection: keep-alive`.
    pub fn ends_connection(&self) -> bool {
        self.closes()
            || (self.version == 0
                && !self.header("connection").is_some_and(|c| {
                    c.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"))
                }))
    }

    /// The answer in one line, for a failure message.
    pub fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
            .collect();
        format!(
            "{}{} [{}] body {}",
            if self.interim.is_empty() {
                String::new()
            } else {
                format!("(after {:?}) ", self.interim)
            },
            self.status,
            headers.join("; "),
            show(&self.body)
        )
    }
}

/// What reading one answer gave.
#[derive(Debug)]
pub enum Read {
    Answer(Answer),
    /// The connection closed before any byte of an answer.
    Closed,
    /// The connection closed in the middle of an answer (what arrived of it, when its head did).
    Truncated {
        answer: Option<Answer>,
        why: String,
    },
    /// Bytes that are not a well-framed HTTP/1 answer.
    Malformed(String),
    /// Nothing more for the connection's wait bound (how long, and what arrived of an answer).
    Hang(String),
}

impl Read {
    /// The whole answer, or what went wrong instead.
    pub fn into_answer(self) -> Result<Answer, String> {
        match self {
            Read::Answer(a) => Ok(a),
            other => Err(describe(&other)),
        }
    }
}

/// What a read gave, in one line, for a failure message.
pub fn describe(r: &Read) -> String {
    match r {
        Read::Answer(a) => a.describe(),
        Read::Closed => "the connection closed without an answer".to_owned(),
        Read::Truncated { answer, why } => format!(
            "a truncated answer ({why}){}",
            answer
                .as_ref()
                .map(|a| format!(": {}", a.describe()))
                .unwrap_or_default()
        ),
        Read::Malformed(why) => format!("a malformed answer: {why}"),
        Read::Hang(got) => format!("no (whole) answer {got}"),
    }
}

/// A response head, parsed.
pub enum Head {
    Partial,
    Bad(String),
    Done {
        len: usize,
        version: u8,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
    },
}

/// A response head at the start of `buf`, strictly: CRLF line endings only.
pub fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(buf) {
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(e) => Head::Bad(format!("{e} in {}", show(buf))),
        Ok(httparse::Status::Complete(len)) => {
            let head = &buf[..len];
            if head
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
            {
                return Head::Bad(format!("a bare LF in the head {}", show(head)));
            }
            Head::Done {
                len,
                version: res.version.unwrap_or(1),
                status: res.code.unwrap_or(0),
                headers: res
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect(),
            }
        }
    }
}

/// How an answer's body is delimited.
pub enum BodyFraming {
    None,
    Length(usize),
    Chunked,
    Close,
}

/// How the body of an answer to a client is delimited (RFC 9112 §6.3), refusing what rrlb must never send.
pub fn body_framing(
    status: u16,
    head_only: bool,
    headers: &[(String, Vec<u8>)],
) -> Result<BodyFraming, String> {
    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::None);
    }
    let named = |n: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    let te = named("transfer-encoding");
    let cl = named("content-length");
    match (te.is_empty(), cl.as_slice()) {
        (false, []) => {
            let last = te.last().and_then(|v| v.rsplit(|&b| b == b',').next());
            Ok(
                if last.is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked")) {
                    BodyFraming::Chunked
                } else {
                    BodyFraming::Close
                },
            )
        }
        (false, _) => Err("both transfer-encoding and content-length".to_owned()),
        (true, []) => Ok(BodyFraming::Close),
        (true, [one]) => std::str::from_utf8(one)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .map(BodyFraming::Length)
            .ok_or_else(|| format!("a bad content-length {}", show(one))),
        (true, _) => Err("several content-length headers".to_owned()),
    }
}

/// A chunked body, decoded as far as it goes.
pub enum Chunks {
    /// Not all there yet: the data of the whole chunks so far.
    Partial(Vec<u8>),
    Done {
        body: Vec<u8>,
        len: usize,
    },
    Bad(String),
}

/// One CRLF-terminated line from `pos`: `Ok(None)` when it is not all there; bare CR and bare LF are errors.
pub fn line(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, String> {
    let Some(lf) = buf[pos..].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let raw = &buf[pos..pos + lf];
    let Some(text) = raw.strip_suffix(b"\r") else {
        return Err(format!("a bare LF after {}", show(raw)));
    };
    if text.contains(&b'\r') {
        return Err(format!("a bare CR in {}", show(text)));
    }
    Ok(Some((text, pos + lf + 1)))
}

/// Decodes a chunked body at the start of `buf`, strictly (RFC 9112 §7.1).
pub fn decode_chunked(buf: &[u8]) -> Chunks {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (size_line, next) = match line(buf, pos) {
            Ok(Some(l)) => l,
            Ok(None) => return Chunks::Partial(body),
            Err(e) => return Chunks::Bad(format!("chunk-size line: {e}")),
        };
        let digits = size_line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 16)
            .and_then(|d| u64::from_str_radix(d, 16).ok());
        let Some(size) = size.and_then(|s| usize::try_from(s).ok()) else {
            return Chunks::Bad(format!("a bad chunk size {}", show(size_line)));
        };
        pos = next;
        if size == 0 {
            loop {
                match line(buf, pos) {
                    Ok(Some((t, next))) => {
                        pos = next;
                        if t.is_empty() {
                            return Chunks::Done { body, len: pos };
                        }
                        if !t.contains(&b':') {
                            return Chunks::Bad(format!("a bad trailer line {}", show(t)));
                        }
                    }
                    Ok(None) => return Chunks::Partial(body),
                    Err(e) => return Chunks::Bad(format!("trailer: {e}")),
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Chunks::Partial(body);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Chunks::Bad(format!(
                "no CRLF after a chunk's data: {}",
                show(&buf[pos..])
            ));
        }
        pos += size + 2;
    }
}

/// A byte stream a [`Conn`] reads and writes: plain TCP, or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A raw client connection: what it received (all of it, for checks on the bytes themselves), and what is not
/// consumed yet.
pub struct Conn {
    stream: Box<dyn Stream>,
    /// The bound on each wait.
    wait: Duration,
    /// Received, not yet consumed.
    pub buf: Vec<u8>,
    /// Everything received.
    pub seen: Vec<u8>,
    closed: bool,
    /// The read error that ended the connection (a reset), when one did.
    error: Option<String>,
}

impl Conn {
    /// Connects to `addr`; each wait is bounded by [`WAIT`].
    pub async fn open(addr: SocketAddr) -> Self {
        Self::connect(addr, WAIT).await
    }

    /// Connects to `addr`; each wait is bounded by `wait`.
    pub async fn connect(addr: SocketAddr, wait: Duration) -> Self {
        let stream = tokio::time::timeout(wait, TcpStream::connect(addr))
            .await
            .expect("connect to rrlb in time")
            .expect("connect to rrlb");
        Self::new(stream, wait)
    }

    /// A client on `stream` (TCP, or TLS over it); each wait is bounded by `wait`.
    pub fn new(stream: impl Stream + 'static, wait: Duration) -> Self {
        Self {
            stream: Box::new(stream),
            wait,
            buf: Vec::new(),
            seen: Vec::new(),
            closed: false,
            error: None,
        }
    }

    /// Writes `bytes`; a failure (rrlb closed first) shows in what is read next.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.try_send(bytes).await;
    }

    /// Writes `bytes`; `Err` when the connection broke (or the write hung) first.
    pub async fn try_send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let write = async {
            self.stream.write_all(bytes).await?;
            // TLS holds records until flushed.
            self.stream.flush().await
        };
        match tokio::time::timeout(self.wait, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the write hung for {:?}", self.wait)),
        }
    }

    /// The read error that ended the connection (a reset rather than a close), once it ended so.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Reads more: `Some(true)` when bytes came, `Some(false)` at the end (closed or reset), `None` after the
    /// wait bound without any.
    pub async fn fill(&mut self) -> Option<bool> {
        if self.closed {
            return Some(false);
        }
        let mut chunk = vec![0u8; 64 * 1024];
        match tokio::time::timeout(self.wait, self.stream.read(&mut chunk)).await {
            Err(_) => None,
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.seen.extend_from_slice(&chunk[..n]);
                Some(true)
            }
            Ok(result) => {
                self.error = result.err().map(|e| e.to_string());
                self.closed = true;
                Some(false)
            }
        }
    }

    /// A [`Read::Hang`] saying how long nothing came, and what had.
    fn hang(&self, got: String) -> Read {
        Read::Hang(format!("within {:?}; got {got}", self.wait))
    }

    /// Reads one final answer (collecting any 1xx before it); `head_only` for an answer to `HEAD`.
    pub async fn answer(&mut self, head_only: bool) -> Read {
        let mut interim = Vec::new();
        loop {
            let (len, version, status, headers) = loop {
                match parse_head(&self.buf) {
                    Head::Done {
                        len,
                        version,
                        status,
                        headers,
                    } => break (len, version, status, headers),
                    Head::Bad(why) => return Read::Malformed(why),
                    Head::Partial => match self.fill().await {
                        Some(true) => {}
                        Some(false) if self.buf.is_empty() && interim.is_empty() => {
                            return Read::Closed;
                        }
                        Some(false) => {
                            return Read::Truncated {
                                answer: None,
                                why: format!(
                                    "closed in a head, after {interim:?}: {}",
                                    show(&self.buf)
                                ),
                            };
                        }
                        None => return self.hang(show(&self.buf)),
                    },
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..len]).into_owned();
            self.buf.drain(..len);
            if (100..200).contains(&status) && status != 101 {
                interim.push(status);
                continue;
            }
            let mut answer = Answer {
                head,
                version,
                status,
                headers,
                body: Vec::new(),
                interim,
                until_close: false,
            };
            let framing = match body_framing(status, head_only, &answer.headers) {
                Ok(f) => f,
                Err(why) => return Read::Malformed(format!("{why}: {}", answer.describe())),
            };
            return match framing {
                BodyFraming::None => Read::Answer(answer),
                BodyFraming::Length(n) => loop {
                    if self.buf.len() >= n {
                        answer.body = self.buf.drain(..n).collect();
                        break Read::Answer(answer);
                    }
                    match self.fill().await {
                        Some(true) => {}
                        Some(false) => {
                            answer.body = std::mem::take(&mut self.buf);
                            break Read::Truncated {
                                why: format!(
                                    "closed after {} of {n} body bytes",
                                    answer.body.len()
                                ),
                                answer: Some(answer),
                            };
                        }
                        None => {
                            break self.hang(format!(
                                "{} and {}",
                                answer.describe(),
                                show(&self.buf)
                            ));
                        }
                    }
                },
                BodyFraming::Chunked => loop {
                    match decode_chunked(&self.buf) {
                        Chunks::Done { body, len } => {
                            self.buf.drain(..len);
                            answer.body = body;
                            break Read::Answer(answer);
                        }
                        Chunks::Bad(why) => {
                            break Read::Malformed(format!(
                                "{why} (in the body of {})",
                                answer.describe()
                            ));
                        }
                        Chunks::Partial(body) => match self.fill().await {
                            Some(true) => {}
                            Some(false) => {
                                answer.body = body;
                                // What is left is the cut chunk: part of this answer, not bytes after it.
                                self.buf.clear();
                                break Read::Truncated {
                                    answer: Some(answer),
                                    why: "closed before the last chunk".to_owned(),
                                };
                            }
                            None => {
                                break self.hang(format!(
                                    "{} and {}",
                                    answer.describe(),
                                    show(&self.buf)
                                ));
                            }
                        },
                    }
                },
                BodyFraming::Close => loop {
                    match self.fill().await {
                        Some(true) => {}
                        Some(false) => {
                            answer.body = std::mem::take(&mut self.buf);
                            answer.until_close = true;
                            break Read::Answer(answer);
                        }
                        None => {
                            break self.hang(format!(
                                "{} and {}",
                                answer.describe(),
                                show(&self.buf)
                            ));
                        }
                    }
                },
            };
        }
    }

    /// Reads until the connection ends: `Ok(what came after what was consumed)`, or `Err(that)` when it stays open
    /// for the wait bound without a byte.
    pub async fn rest(&mut self) -> Result<Vec<u8>, Vec<u8>> {
        loop {
            match self.fill().await {
                Some(true) => {}
                Some(false) => return Ok(std::mem::take(&mut self.buf)),
                None => return Err(std::mem::take(&mut self.buf)),
            }
        }
    }

    /// After an answer that must end the connection: a failure when anything follows it or it stays open.
    pub async fn must_close(&mut self) -> Option<String> {
        match self.rest().await {
            Ok(rest) if rest.is_empty() => None,
            Ok(rest) => Some(format!("bytes after the answer: {}", show(&rest))),
            Err(rest) => Some(format!(
                "the connection stayed open after the answer (nothing for {:?}); after it: {}",
                self.wait,
                show(&rest)
            )),
        }
    }
}
