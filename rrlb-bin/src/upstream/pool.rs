//! This thread's pool of idle backend connections, and where each backend is: its address, and for an
//! `https://` backend the TLS client that wraps each new connection.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use prometheus_client::metrics::gauge::Gauge;
use rrlb_core::Backend;
use rrlb_tower::FailureKind;
use rrlb_tower::http::BackendUrl;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::RawError;
use super::tls::{BackendTls, UpstreamTls};
use crate::metrics::Metrics;

/// Idle connections kept per backend and thread.
const MAX_IDLE: usize = 64;

/// The byte stream of a backend connection: plain TCP, or TLS over TCP (boxed: the TLS state is large, and a
/// plain connection should not carry its size).
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An open connection to a backend, counted in `open` (`rrlb_connections{side="upstream"}`) from its connect
/// to its close, whether in use or idle in a pool.
#[derive(Debug)]
pub(super) struct Upstream {
    stream: Stream,
    open: Gauge,
}

impl Upstream {
    fn new(stream: Stream, open: &Gauge) -> Self {
        open.inc();
        Self {
            stream,
            open: open.clone(),
        }
    }

    /// Whether the connection is TLS (its writes are then flushed).
    pub(super) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Reads what is there into `buf` (its spare capacity); `0` at the end. A plain connection is read when
    /// the reactor says it is readable, with no future; a TLS one through the TLS stream.
    pub(super) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(tcp) => loop {
                std::task::ready!(tcp.poll_read_ready(cx))?;
                match tcp.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    done => return Poll::Ready(done),
                }
            },
            Stream::Tls(tls) => {
                // `read_buf` keeps no state between polls: dropping it when pending loses nothing.
                let read = std::pin::pin!(tokio::io::AsyncReadExt::read_buf(&mut **tls, buf));
                std::future::Future::poll(read, cx)
            }
        }
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A connection to a backend, taken from this thread's pool.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: Upstream,
    pub(super) backend: Arc<Backend>,
}

impl Conn {
    /// Gives the connection back to this thread's pool. Only for a connection whose answer was read to its
    /// framed end with nothing after it (`Body::reusable`).
    pub(super) fn release(self) {
        checkin(self.backend, self.stream);
    }
}

/// What making a backend's target takes: the gauge its connections count in, the TLS settings of `https://`
/// backends, and the metrics that count TLS handshakes.
#[derive(Debug, Clone)]
pub(super) struct Dial {
    pub(super) open: Gauge,
    pub(super) tls: Arc<BackendTls>,
    pub(super) metrics: Arc<Metrics>,
}

/// An `https://` backend's TLS client: its settings, the name it sends and verifies, and where its handshakes
/// are counted.
struct TargetTls {
    settings: UpstreamTls,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    backend: Box<str>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for TargetTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Where a backend is: its socket address (or the name to resolve), its `host` line, its path prefix, and for
/// an `https://` backend its TLS client.
#[derive(Debug)]
pub(super) struct Target {
    /// `host:port`, resolved at each new connection unless it is an IP address.
    authority: String,
    addr: Option<SocketAddr>,
    pub(super) host_line: Box<[u8]>,
    pub(super) prefix: Box<[u8]>,
    tls: Option<TargetTls>,
    /// Counts the connections this thread opens to the backend.
    open: Gauge,
}

impl Target {
    /// The backend's target, from the URL it carries (parsed when it was configured); an `https://` one takes
    /// its TLS settings from `dial`.
    fn of(backend: &Backend, dial: &Dial) -> Result<Self, RawError> {
        let url =
            BackendUrl::of(backend).map_err(|e| RawError::client(FailureKind::Other, e.into()))?;
        let (host, port) = (url.host(), url.port());
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = bare
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        let mut host_line = b"host: ".to_vec();
        host_line.extend_from_slice(url.host_header().as_bytes());
        host_line.extend_from_slice(b"\r\n");
        let tls = if url.is_https() {
            let settings = dial.tls.get(backend.name()).clone();
            let server_name = match &settings.server_name {
                Some(name) => name.clone(),
                None => ServerName::try_from(bare.to_owned()).map_err(|_| {
                    RawError::new(
                        FailureKind::Other,
                        format!("the backend's host {bare:?} is not a TLS server name"),
                    )
                })?,
            };
            Some(TargetTls {
                connector: TlsConnector::from(Arc::clone(&settings.config)),
                settings,
                server_name,
                backend: backend.name().into(),
                metrics: Arc::clone(&dial.metrics),
            })
        } else {
            None
        };
        Ok(Self {
            authority: format!("{host}:{port}"),
            addr,
            host_line: host_line.into(),
            prefix: url.path_prefix().as_bytes().into(),
            tls,
            open: dial.open.clone(),
        })
    }

    /// A new connection, counted as open: TCP, and for an `https://` backend the TLS handshake (counted in
    /// `rrlb_upstream_tls_handshakes_total` when it completes), both within `timeout`. A failed handshake is a
    /// connect failure: nothing of the request was sent.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<Upstream, RawError> {
        let connect = async {
            let addr = match self.addr {
                Some(a) => a,
                None => tokio::net::lookup_host(self.authority.as_str())
                    .await
                    .map_err(|e| ("connect", e))?
                    .next()
                    .ok_or_else(|| {
                        (
                            "connect",
                            io::Error::other("the name resolved to no address"),
                        )
                    })?,
            };
            let tcp = TcpStream::connect(addr).await.map_err(|e| ("connect", e))?;
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &self.tls else {
                return Ok(Stream::Plain(tcp));
            };
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| ("TLS handshake with the backend", e))?;
            tls.metrics.upstream_tls_handshake(&tls.backend);
            Ok(Stream::Tls(Box::new(stream)))
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => Ok(Upstream::new(stream, &self.open)),
            Ok(Err((what, e))) => Err(RawError::io(FailureKind::Connect, what, e)),
            Err(_) => Err(RawError::new(FailureKind::Connect, "connect timed out")),
        }
    }
}

/// One backend's entry in a thread's pool. The `Weak` keeps the backend's allocation (not the backend) alive,
/// so its address identifies it for as long as the entry exists.
struct Entry {
    backend: Weak<Backend>,
    target: Arc<Target>,
    idle: Vec<Upstream>,
    /// The id of the last [`BackendTls`] the target's TLS settings were checked against.
    tls_checked: u64,
}

thread_local! {
    static POOL: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// This thread's target for `backend` and an idle connection to it, if there is one that is still quiet. A new
/// target is made with `dial`. An `https://` backend whose TLS settings changed (a reload) gets a new target,
/// and its idle connections, made with the old settings, are closed.
pub(super) fn checkout(
    backend: &Arc<Backend>,
    dial: &Dial,
) -> Result<(Arc<Target>, Option<Upstream>), RawError> {
    POOL.with_borrow_mut(|pool| {
        if let Some(e) = pool
            .iter_mut()
            .find(|e| std::ptr::eq(e.backend.as_ptr(), Arc::as_ptr(backend)))
        {
            if let Some(tls) = &e.target.tls
                && e.tls_checked != dial.tls.id()
            {
                if !tls.settings.same(dial.tls.get(backend.name())) {
                    e.target = Arc::new(Target::of(backend, dial)?);
                    e.idle.clear();
                }
                e.tls_checked = dial.tls.id();
            }
            return Ok((Arc::clone(&e.target), quiet(&mut e.idle)));
        }
        pool.retain(|e| e.backend.strong_count() > 0);
        let target = Arc::new(Target::of(backend, dial)?);
        pool.push(Entry {
            backend: Arc::downgrade(backend),
            target: Arc::clone(&target),
            idle: Vec::new(),
            tls_checked: dial.tls.id(),
        });
        Ok((target, None))
    })
}

/// Another idle connection to `backend` from this thread's pool, if one is still quiet (after a pooled one
/// turned out to be stale).
pub(super) fn idle(backend: &Arc<Backend>) -> Option<Upstream> {
    POOL.with_borrow_mut(|pool| {
        pool.iter_mut()
            .find(|e| std::ptr::eq(e.backend.as_ptr(), Arc::as_ptr(backend)))
            .and_then(|e| quiet(&mut e.idle))
    })
}

/// The last idle connection that is still quiet; the others looked at on the way are closed.
fn quiet(idle: &mut Vec<Upstream>) -> Option<Upstream> {
    while let Some(mut stream) = idle.pop() {
        if is_quiet(&mut stream) {
            return Some(stream);
        }
    }
    None
}

/// Whether an idle connection has nothing to read: bytes that arrived while it was idle are an answer nobody
/// asked for (which would become the next client's answer), and a readable end means the backend closed it.
/// Either way it is dropped.
///
/// The readiness check costs no system call when the socket is quiet (the reactor has not seen it become
/// readable); when it says readable, a non-blocking read (plain) or peek (TLS) tells data or the end from a
/// stale readiness. Over TLS any byte that arrived while idle makes the connection unusable (a `close_notify`,
/// an alert or data alike), and the TLS stream is read once without waiting, for what rustls already holds
/// (decrypted data, or the peer's close, which the socket's readiness does not show).
fn is_quiet(stream: &mut Upstream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match &mut stream.stream {
        Stream::Plain(tcp) => match tcp.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        },
        Stream::Tls(tls) => {
            let mut probe = [0u8; 1];
            let tcp = tls.get_ref().0;
            match tcp.poll_read_ready(&mut cx) {
                Poll::Pending => {}
                Poll::Ready(Err(_)) => return false,
                Poll::Ready(Ok(())) => {
                    if !tcp
                        .poll_peek(&mut cx, &mut ReadBuf::new(&mut probe))
                        .is_pending()
                    {
                        return false;
                    }
                }
            }
            Pin::new(&mut **tls)
                .poll_read(&mut cx, &mut ReadBuf::new(&mut probe))
                .is_pending()
        }
    }
}

fn checkin(backend: Arc<Backend>, stream: Upstream) {
    POOL.with_borrow_mut(|pool| {
        if let Some(e) = pool
            .iter_mut()
            .find(|e| std::ptr::eq(e.backend.as_ptr(), Arc::as_ptr(&backend)))
            && e.idle.len() < MAX_IDLE
        {
            e.idle.push(stream);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dial() -> Dial {
        Dial {
            open: Gauge::default(),
            tls: Arc::new(BackendTls::new(
                crate::upstream::client_config(&crate::upstream::UpstreamTlsSpec::default())
                    .unwrap(),
            )),
            metrics: Arc::new(Metrics::new()),
        }
    }

    #[test]
    fn targets_carry_host_and_prefix() {
        let t = Target::of(
            &Backend::new(
                "a",
                "http://127.0.0.1:8081/api/",
                true,
                Default::default(),
                Default::default(),
            ),
            &dial(),
        )
        .unwrap();
        assert_eq!(t.addr, Some("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(&*t.host_line, b"host: 127.0.0.1:8081\r\n");
        assert_eq!(&*t.prefix, b"/api");
        let t = Target::of(
            &Backend::new(
                "b",
                "http://echo-go",
                true,
                Default::default(),
                Default::default(),
            ),
            &dial(),
        )
        .unwrap();
        assert_eq!(t.addr, None);
        assert_eq!(t.authority, "echo-go:80");
        assert_eq!(&*t.host_line, b"host: echo-go\r\n");
        assert!(t.prefix.is_empty());
    }
}
