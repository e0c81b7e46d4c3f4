//! Shared helpers for the integration tests: a tiny HTTP/1.1 client over hyper, and raw
//! sockets for the cases where the test must control exactly when bytes are written.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A response with its body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// Completes when the connection is closed.
    pub closed: JoinHandle<()>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        let closed = tokio::spawn(async move {
            let _ = connection.await;
        });
        Connection { sender, closed }
    }

    pub async fn send(&mut self, method: Method, path: &str, body: &str) -> hyper::Result<Answer> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "test")
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("a valid request");
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// One request on a fresh connection.
pub async fn request(addr: SocketAddr, method: Method, path: &str, body: &str) -> Answer {
    Connection::open(addr)
        .await
        .send(method, path, body)
        .await
        .expect("a response")
}

/// Writes a complete `POST` with `connection: close` and returns the socket without reading.
pub async fn write_post(addr: SocketAddr, path: &str, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body.as_bytes()).await.expect("write body");
    stream
}

/// Reads everything until the server closes; `None` when it closed without a status line.
pub async fn read_until_close(mut stream: TcpStream) -> Option<(u16, String)> {
    let mut raw = Vec::new();
    // A reset after a kill is as good as a close here.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8(raw).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Whether a new connection to `addr` is refused.
pub async fn refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect(addr).await,
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
