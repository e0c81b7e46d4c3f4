//! This thread's pool of idle backend connections, and where each backend is.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use rrlb_core::Backend;
use rrlb_tower::FailureKind;
use rrlb_tower::http::BackendUrl;
use tokio::net::TcpStream;

use super::RawError;

/// Idle connections kept per backend and thread.
const MAX_IDLE: usize = 64;

/// An open connection to a backend, counted in `open` (`rrlb_connections{side="upstream"}`) from its connect
/// to its close, whether in use or idle in a pool.
#[derive(Debug)]
pub(super) struct Upstream {
    stream: TcpStream,
    open: Gauge,
}

impl Upstream {
    fn new(stream: TcpStream, open: &Gauge) -> Self {
        open.inc();
        Self {
            stream,
            open: open.clone(),
        }
    }
}

impl std::ops::Deref for Upstream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl std::ops::DerefMut for Upstream {
    fn deref_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
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

/// Where a backend is: its socket address (or the name to resolve), its `host` line and its path prefix.
#[derive(Debug)]
pub(super) struct Target {
    /// `host:port`, resolved at each new connection unless it is an IP address.
    authority: String,
    addr: Option<SocketAddr>,
    pub(super) host_line: Box<[u8]>,
    pub(super) prefix: Box<[u8]>,
    pub(super) https: bool,
    /// Counts the connections this thread opens to the backend.
    pub(super) open: Gauge,
}

impl Target {
    /// The backend's target, from the URL it carries (parsed when it was configured).
    fn of(backend: &Backend, open: &Gauge) -> Result<Self, RawError> {
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
        Ok(Self {
            authority: format!("{host}:{port}"),
            addr,
            host_line: host_line.into(),
            prefix: url.path_prefix().as_bytes().into(),
            https: url.is_https(),
            open: open.clone(),
        })
    }

    /// A new connection, counted as open.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<Upstream, RawError> {
        let connect = async {
            let addr = match self.addr {
                Some(a) => a,
                None => tokio::net::lookup_host(self.authority.as_str())
                    .await?
                    .next()
                    .ok_or_else(|| std::io::Error::other("the name resolved to no address"))?,
            };
            TcpStream::connect(addr).await
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(Upstream::new(stream, &self.open))
            }
            Ok(Err(e)) => Err(RawError::io(FailureKind::Connect, "connect", e)),
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
}

thread_local! {
    static POOL: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// This thread's target for `backend` and an idle connection to it, if there is one that is still quiet. A new
/// target counts its connections in `open`.
pub(super) fn checkout(
    backend: &Arc<Backend>,
    open: &Gauge,
) -> Result<(Arc<Target>, Option<Upstream>), RawError> {
    POOL.with_borrow_mut(|pool| {
        if let Some(e) = pool
            .iter_mut()
            .find(|e| std::ptr::eq(e.backend.as_ptr(), Arc::as_ptr(backend)))
        {
            while let Some(stream) = e.idle.pop() {
                if is_quiet(&stream) {
                    return Ok((Arc::clone(&e.target), Some(stream)));
                }
            }
            return Ok((Arc::clone(&e.target), None));
        }
        pool.retain(|e| e.backend.strong_count() > 0);
        let target = Arc::new(Target::of(backend, open)?);
        pool.push(Entry {
            backend: Arc::downgrade(backend),
            target: Arc::clone(&target),
            idle: Vec::new(),
        });
        Ok((target, None))
    })
}

/// Whether an idle connection has nothing to read: bytes that arrived while it was idle are an answer nobody
/// asked for (which would become the next client's answer), and a readable end means the backend closed it.
/// Either way it is dropped. The readiness check costs no system call when the socket is quiet (the reactor
/// has not seen it become readable); when it says readable, a non-blocking read tells data or the end from a
/// stale readiness.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
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
            &Gauge::default(),
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
            &Gauge::default(),
        )
        .unwrap();
        assert_eq!(t.addr, None);
        assert_eq!(t.authority, "echo-go:80");
        assert_eq!(&*t.host_line, b"host: echo-go\r\n");
        assert!(t.prefix.is_empty());
    }
}
