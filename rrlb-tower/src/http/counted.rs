//! The upstream's open connections, counted as they are made and closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tower::Service;

/// How many connections to backends an [`HttpUpstream`](super::HttpUpstream) has open, pooled or in use.
///
/// A clone shares the count, so one count can follow the upstreams that replace each other on reloads.
/// Connecting adds one and closing takes it away: nothing per request.
///
/// ```
/// use rrlb_tower::http::{ConnectionCount, HttpUpstream, UpstreamConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let count = ConnectionCount::new();
/// let upstream = HttpUpstream::new(UpstreamConfig::default()).counting(count.clone());
/// assert_eq!(count.get(), 0); // nothing was sent yet
/// # drop(upstream);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConnectionCount(Arc<AtomicI64>);

impl ConnectionCount {
    /// A count at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The connections open now.
    pub fn get(&self) -> u64 {
        u64::try_from(self.0.load(Relaxed)).unwrap_or(0)
    }
}

/// A connector whose connections count themselves in a [`ConnectionCount`] for as long as they live.
#[derive(Clone, Debug)]
pub(crate) struct Counting<C> {
    pub(crate) inner: C,
    pub(crate) count: ConnectionCount,
}

impl<C> Service<Uri> for Counting<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
    C::Response: 'static,
{
    type Response = Counted<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let count = self.count.clone();
        // A box per connection, not per request.
        Box::pin(async move {
            let io = connecting.await?;
            count.0.fetch_add(1, Relaxed);
            Ok(Counted { io, count })
        })
    }
}

/// A connection that counts itself until it is dropped.
#[derive(Debug)]
pub(crate) struct Counted<T> {
    io: T,
    count: ConnectionCount,
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.count.0.fetch_sub(1, Relaxed);
    }
}

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Counted<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}
