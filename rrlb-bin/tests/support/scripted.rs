//! Raw-TCP backends: a test writes what a backend says byte by byte (well-formed or not), per connection.
//!
//! - [`RawBackend`]: a listener on `127.0.0.1:0` that hands every connection to the test's own function, counts
//!   the connections, and stops (with every connection) when dropped; [`RawBackend::start_tls`] serves the
//!   same bytes over TLS (an `https://` backend), the function getting the connection after the handshake.
//! - [`read_request`]: reads one request head and its `content-length` body off such a connection.
//! - [`long_body`]: a 1 MiB body, for answers that need many reads and writes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::tls::{Pair, server_config};

/// A TLS connection to a [`RawBackend::start_tls`] backend, after the handshake.
pub type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;

/// A backend speaking raw TCP (or raw bytes over TLS): each accepted connection is served by the function given
/// to [`start`] (or [`start_tls`]). Stopped, with every connection it serves, when dropped.
///
/// [`start`]: RawBackend::start
/// [`start_tls`]: RawBackend::start_tls
pub struct RawBackend {
    addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        // Dropping the accept task drops its `JoinSet`, which aborts every connection.
        self.task.abort();
    }
}

impl RawBackend {
    /// Binds `127.0.0.1:0` and serves each connection with `serve`.
    pub async fn start<F, Fut>(serve: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::listen("http", serve).await
    }

    /// Binds `127.0.0.1:0`, and serves each connection over TLS with `server`'s certificate: the handshake (in
    /// the connection's own task), then `serve`. A connection whose handshake fails is closed.
    pub async fn start_tls<F, Fut>(server: &Pair, serve: F) -> Self
    where
        F: Fn(ServerTls) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let acceptor = TlsAcceptor::from(server_config(server, None));
        let serve = Arc::new(serve);
        Self::listen("https", move |tcp| {
            let handshake = acceptor.accept(tcp);
            let serve = Arc::clone(&serve);
            async move {
                if let Ok(tls) = handshake.await {
                    serve(tls).await;
                }
            }
        })
        .await
    }

    /// Binds `127.0.0.1:0` and hands each accepted connection to `serve`, on a task of its own.
    async fn listen<F, Fut>(scheme: &'static str, serve: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let mut served = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while served.try_join_next().is_some() {}
                count.fetch_add(1, Ordering::SeqCst);
                served.spawn(serve(stream));
            }
        });
        Self {
            addr,
            scheme,
            connections,
            task,
        }
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, or `https://<addr>` for a TLS backend.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A request as a raw backend read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// The head, as text (lossy), up to and with its blank line.
    pub head: String,
}

/// Reads a request head and its `content-length` body from `stream` (TCP, or TLS over it), keeping what follows
/// in `buf` (a pipelined request); `None` when the connection ends (or breaks) first.
pub async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Option<RawRequest> {
    let (head_len, method, path, body_len) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(buf) {
            let len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            break (
                n,
                req.method.unwrap_or_default().to_owned(),
                req.path.unwrap_or_default().to_owned(),
                len,
            );
        }
        read_more(stream, buf).await?;
    };
    while buf.len() < head_len + body_len {
        read_more(stream, buf).await?;
    }
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    buf.drain(..head_len + body_len);
    Some(RawRequest { method, path, head })
}

/// Appends what the next read gives to `buf`; `None` at the end of the stream or on an error.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// A body long enough to need many reads and writes: 1 MiB of a repeating pattern (each byte one more than the
/// last, modulo 251, so it cannot hold a marker such as `POISON`).
pub fn long_body() -> Vec<u8> {
    (0..1024 * 1024).map(|i| (i % 251) as u8).collect()
}

/// `body` in chunked transfer coding, in chunks of `size` bytes, with the last chunk and no trailers.
pub fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / size * 10 + 5);
    for part in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
