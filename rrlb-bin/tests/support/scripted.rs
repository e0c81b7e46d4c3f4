//! Raw-TCP backends: a test writes what a backend says byte by byte (well-formed or not), per connection.
//!
//! - [`RawBackend`]: a listener on `127.0.0.1:0` that hands every connection to the test's own function, counts
//!   the connections, and stops (with every connection) when dropped.
//! - [`read_request`]: reads one request head and its `content-length` body off such a connection.
//! - [`long_body`]: a 1 MiB body, for answers that need many reads and writes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A backend speaking raw TCP: each accepted connection is served by the function given to [`start`]. Stopped,
/// with every connection it serves, when dropped.
///
/// [`start`]: RawBackend::start
pub struct RawBackend {
    addr: SocketAddr,
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
            connections,
            task,
        }
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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

/// Reads a request head and its `content-length` body from `stream`, keeping what follows in `buf` (a pipelined
/// request); `None` when the connection ends (or breaks) first.
pub async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawRequest> {
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
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
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
