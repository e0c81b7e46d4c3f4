//! HTTP/1.1 clients: hyper for ordinary exchanges, raw sockets where a case must control the
//! bytes on the wire (chunked and oversized bodies, a request in flight at `SIGTERM`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;

/// The bound on any single exchange, so a hung server fails a case instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
}

impl Reply {
    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as (lossy) text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {:?}", self.text()))
    }

    /// The `error` string of an error body `{"error":"..."}`.
    ///
    /// # Panics
    ///
    /// When the body is not a JSON object with a string `error`.
    pub fn error_message(&self) -> String {
        match self.json().get("error") {
            Some(serde_json::Value::String(message)) => message.clone(),
            _ => panic!("expected {{\"error\": \"...\"}}, got {:?}", self.text()),
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.text();
        let mut body: String = text.chars().take(300).collect();
        if body.len() < text.len() {
            body.push_str("...");
        }
        write!(f, "{} {:?} {body:?}", self.status, self.headers)
    }
}

async fn bounded<T>(
    what: &str,
    future: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {REQUEST_TIMEOUT:?}")))
}

/// One keep-alive HTTP/1.1 connection driven by hyper.
#[derive(Debug)]
pub struct KeepAlive {
    sender: SendRequest<Full<Bytes>>,
    connection: JoinHandle<()>,
}

impl KeepAlive {
    /// Connects to `addr`.
    ///
    /// # Errors
    ///
    /// When the connection or handshake fails.
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        bounded("connect", async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|err| format!("connect to {addr}: {err}"))?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|err| format!("handshake with {addr}: {err}"))?;
            let connection = tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(Self { sender, connection })
        })
        .await
    }

    /// Sends one request and reads the whole response.
    ///
    /// # Errors
    ///
    /// When the exchange fails or takes longer than [`REQUEST_TIMEOUT`].
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<Reply, String> {
        let body = body.into();
        let mut request = Request::builder().method(method.clone()).uri(path);
        request = request.header(http::header::HOST, "127.0.0.1");
        if !body.is_empty() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body))
            .map_err(|err| format!("building {method} {path}: {err}"))?;
        let what = format!("{method} {path}");
        bounded(&what, async {
            self.sender
                .ready()
                .await
                .map_err(|err| format!("{what}: connection not usable: {err}"))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|err| format!("{what}: {err}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|err| format!("{what}: reading the body: {err}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
        .await
    }

    /// Waits until the server has closed the connection (at most [`REQUEST_TIMEOUT`]).
    ///
    /// # Errors
    ///
    /// When it is still open after the timeout.
    pub async fn closed(self) -> Result<(), String> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.connection)
            .await
            .map(drop)
            .map_err(|_| format!("the connection stayed open for {REQUEST_TIMEOUT:?}"))
    }
}

/// One request on a fresh connection.
///
/// # Errors
///
/// When the exchange fails or takes longer than [`REQUEST_TIMEOUT`].
pub async fn exchange(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    KeepAlive::open(addr).await?.send(method, path, body).await
}

/// A plain TCP connection, for cases that must decide exactly which bytes are sent when.
#[derive(Debug)]
pub struct RawConnection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawConnection {
    /// Connects to `addr`.
    ///
    /// # Errors
    ///
    /// When the connection fails.
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = bounded("connect", async {
            TcpStream::connect(addr)
                .await
                .map_err(|err| format!("connect to {addr}: {err}"))
        })
        .await?;
        let (reader, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::new(reader),
            writer,
        })
    }

    /// Writes bytes (a whole request or part of one).
    ///
    /// # Errors
    ///
    /// When the write fails, e.g. because the server closed the connection.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        bounded("write", async {
            self.writer
                .write_all(bytes)
                .await
                .map_err(|err| format!("write: {err}"))
        })
        .await
    }

    /// Reads one response.
    ///
    /// # Errors
    ///
    /// When the connection closes first, the response is malformed, or it takes longer than
    /// [`REQUEST_TIMEOUT`].
    pub async fn read_reply(&mut self) -> Result<Reply, String> {
        bounded("read a response", read_reply(&mut self.reader)).await
    }

    /// Splits off the writing half, e.g. to keep sending a large body from another task while
    /// this side reads an early response.
    pub fn split(self) -> (RawReader, OwnedWriteHalf) {
        (RawReader(self.reader), self.writer)
    }

    /// Waits until the server closes the connection (end of stream or reset).
    ///
    /// # Errors
    ///
    /// When the server sends data instead, or keeps it open for [`REQUEST_TIMEOUT`].
    pub async fn closed(mut self) -> Result<(), String> {
        wait_closed(&mut self.reader).await
    }
}

/// The reading half of a [`RawConnection`].
#[derive(Debug)]
pub struct RawReader(BufReader<OwnedReadHalf>);

impl RawReader {
    /// Reads one response.
    ///
    /// # Errors
    ///
    /// As for [`RawConnection::read_reply`].
    pub async fn read_reply(&mut self) -> Result<Reply, String> {
        bounded("read a response", read_reply(&mut self.0)).await
    }
}

async fn wait_closed(reader: &mut BufReader<OwnedReadHalf>) -> Result<(), String> {
    let mut buffer = [0u8; 1024];
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read(&mut buffer)).await {
        Ok(Ok(0) | Err(_)) => Ok(()),
        Ok(Ok(n)) => Err(format!(
            "expected the connection to be closed, got {:?}",
            String::from_utf8_lossy(&buffer[..n])
        )),
        Err(_) => Err(format!(
            "the connection stayed open for {REQUEST_TIMEOUT:?}"
        )),
    }
}

/// The head of a request: request line and headers, ending with the empty line.
pub fn request_head(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// `body` in chunked transfer coding, in chunks of at most `chunk_size` bytes.
pub fn chunked(body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(body.len() + body.len() / chunk_size.max(1) * 8 + 8);
    for chunk in body.chunks(chunk_size.max(1)) {
        encoded.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    encoded
}

const MAX_HEADERS: usize = 100;

async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<String, String> {
    let mut line = Vec::new();
    let n = reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|err| format!("read: {err}"))?;
    if n == 0 {
        return Err("the connection closed before a complete response".to_owned());
    }
    let line = String::from_utf8(line).map_err(|_| "a response line is not UTF-8".to_owned())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Parses one HTTP/1.1 response: status line, headers, and a body framed by `content-length`,
/// chunked coding, or the end of the connection.
async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Reply, String> {
    let status_line = read_line(reader).await?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let mut headers = HeaderMap::new();
    for _ in 0..MAX_HEADERS {
        let line = read_line(reader).await?;
        if line.is_empty() {
            let body = read_body(reader, &headers).await?;
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line {line:?}"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|err| format!("header name {name:?}: {err}"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|err| format!("header value {value:?}: {err}"))?;
        headers.append(name, value);
    }
    Err(format!("more than {MAX_HEADERS} header lines"))
}

async fn read_body<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    headers: &HeaderMap,
) -> Result<Bytes, String> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    if header(http::header::TRANSFER_ENCODING)
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let size_line = read_line(reader).await?;
            let size = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                for _ in 0..MAX_HEADERS {
                    if read_line(reader).await?.is_empty() {
                        return Ok(body.into());
                    }
                }
                return Err("too many trailer lines".to_owned());
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader
                .read_exact(&mut body[start..])
                .await
                .map_err(|err| format!("reading a chunk: {err}"))?;
            if !read_line(reader).await?.is_empty() {
                return Err("a chunk is not followed by CRLF".to_owned());
            }
        }
    } else if let Some(length) = header(http::header::CONTENT_LENGTH) {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad content-length {length:?}"))?;
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|err| format!("reading {length} body bytes: {err}"))?;
        Ok(body.into())
    } else {
        let mut body = Vec::new();
        reader
            .read_to_end(&mut body)
            .await
            .map_err(|err| format!("reading the body to the end: {err}"))?;
        Ok(body.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &'static [u8]) -> Result<Reply, String> {
        read_reply(&mut BufReader::new(raw)).await
    }

    #[tokio::test]
    async fn parses_content_length_bodies() {
        let reply =
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Echo-Service: a\r\n\r\n{}extra")
                .await
                .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-echo-service"), Some("a"));
        assert_eq!(&reply.body[..], b"{}");
    }

    #[tokio::test]
    async fn parses_chunked_bodies() {
        let reply = parse(b"HTTP/1.1 413 Payload Too Large\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n4\r\n\":1}\r\n0\r\ntrailer: t\r\n\r\n").await.unwrap();
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(&reply.body[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn reads_to_the_end_without_framing() {
        let reply = parse(b"HTTP/1.0 500 Oops\r\n\r\n{\"error\":\"x\"}")
            .await
            .unwrap();
        assert_eq!(reply.error_message(), "x");
    }

    #[tokio::test]
    async fn refuses_garbage() {
        assert!(parse(b"SSH-2.0\r\n\r\n").await.is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n").await.is_err());
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}")
                .await
                .is_err()
        );
        assert!(parse(b"").await.is_err());
    }

    #[test]
    fn encodes_chunks() {
        assert_eq!(
            chunked(b"abcde", 2),
            b"2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n0\r\n\r\n"
        );
        assert_eq!(chunked(b"", 2), b"0\r\n\r\n");
    }

    #[test]
    fn builds_request_heads() {
        assert_eq!(
            request_head("POST", "/x", &[("content-length", "2")]),
            b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\n\r\n"
        );
    }
}
