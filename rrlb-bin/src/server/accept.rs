//! The proxy listener: accept, hand each connection to the fast path (and from there to hyper), drain on stop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::stopped;
use crate::app::App;
use http::header::{HeaderName, HeaderValue};
use tokio::io::AsyncWriteExt;

use crate::forward::{ClientStream, Peer};
use crate::tls::{self, TlsListener};
use crate::{fast, proxy};

/// Starts serving the proxy listener: on the calling runtime with `workers == 0`, else on `workers` threads
/// of their own. Each receiver resolves when its accept loop or worker has stopped and drained.
pub(super) fn spawn_proxy(
    listener: TcpListener,
    app: &Arc<App>,
    stop: watch::Receiver<bool>,
    workers: usize,
) -> io::Result<Vec<oneshot::Receiver<()>>> {
    let mut proxies = Vec::new();
    if workers == 0 {
        let (done_tx, done_rx) = oneshot::channel();
        let app = Arc::clone(app);
        tokio::spawn(async move {
            serve_proxy(listener, app, stop).await;
            let _ = done_tx.send(());
        });
        proxies.push(done_rx);
    } else {
        // Thread-per-core: this runtime accepts and hands each connection to the worker with the fewest open
        // ones. Workers sharing one listening socket would split connections by who happens to wake first
        // (measured: 36 % / 64 % of the CPU under a steady wrk load), and the busier one sets the latency.
        let mut handoffs = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            handoffs.push(Handoff {
                tx,
                open: Arc::clone(&open),
            });
            let (app, stop) = (Arc::clone(app), stop.clone());
            let (done_tx, done_rx) = oneshot::channel();
            std::thread::Builder::new()
                .name(format!("rrlb-worker-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(serve_handed(rx, open, app, stop)),
                        Err(e) => tracing::error!(error = %e, "worker cannot start its runtime"),
                    }
                    let _ = done_tx.send(());
                })?;
            proxies.push(done_rx);
        }
        tokio::spawn(accept_for_workers(listener, handoffs, stop));
    }
    Ok(proxies)
}

fn builder(app: &App) -> auto::Builder<TokioExecutor> {
    let config = app.config.load();
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.timeouts.header_read)
        // Caps the request head (request line + headers) at 64 KiB, as Envoy's default does: larger heads get 431.
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    b
}

/// A worker's end of the accept loop: where to send it connections, and how many it has open.
struct Handoff {
    tx: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
}

/// Accepts on `listener` and hands every connection to the worker with the fewest open (the first such on
/// a tie), until `stop`.
async fn accept_for_workers(
    listener: TcpListener,
    workers: Vec<Handoff>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Some((stream, client)) = accepted_or_back_off(accepted).await else {
                    continue;
                };
                let mut handed = match stream.into_std() {
                    Ok(stream) => Some((stream, client)),
                    Err(e) => {
                        tracing::debug!(%client, error = %e, "cannot hand the connection over");
                        None
                    }
                };
                // A worker whose runtime is gone (it cannot be, short of a bug) is skipped, not fed.
                while let Some(connection) = handed.take() {
                    let Some(worker) = workers
                        .iter()
                        .filter(|w| !w.tx.is_closed())
                        .min_by_key(|w| w.open.load(Relaxed))
                    else {
                        tracing::error!("no proxy worker is running");
                        return;
                    };
                    worker.open.fetch_add(1, Relaxed);
                    if let Err(mpsc::error::SendError(connection)) = worker.tx.send(connection) {
                        worker.open.fetch_sub(1, Relaxed);
                        handed = Some(connection);
                    }
                }
            }
            _ = stopped(&mut stop) => break,
        }
    }
    // Connections the kernel completed before the stop are served (their answers say `connection: close`):
    // closing the listener over them would reset them, requests and all.
    accept_backlog(listener, |stream, client| {
        let Some(worker) = workers
            .iter()
            .filter(|w| !w.tx.is_closed())
            .min_by_key(|w| w.open.load(Relaxed))
        else {
            return;
        };
        worker.open.fetch_add(1, Relaxed);
        if worker.tx.send((stream, client)).is_err() {
            worker.open.fetch_sub(1, Relaxed);
        }
    })
    .await;
}

/// How long handshakes already under way when the proxy listener stops have to complete: far above a round
/// trip in a data centre, short enough not to hold up the drain.
const HANDSHAKE_SETTLE: Duration = Duration::from_millis(20);

/// Most connections taken from the stopping listener's backlog in one go (a listen backlog holds 1024).
const MAX_BACKLOG: usize = 4096;

/// Closes `listener` without resetting a connection a client may already have sent a request on: new
/// handshakes are refused first (on Linux; elsewhere this step is skipped), then every connection the kernel
/// completed (the backlog, and the handshakes under way, given [`HANDSHAKE_SETTLE`]) is accepted and handed
/// to `serve`, and only then is the listener closed.
///
/// Closing a listener resets the connections in its backlog, and a client that connected a moment before
/// (e.g. one reconnecting after a `connection: close`) has usually written its request already. A client whose
/// SYN is dropped instead retries it after a second: by then the port is closed (connection refused, nothing
/// sent) or a new rrlb listens on it.
async fn accept_backlog(
    listener: TcpListener,
    mut serve: impl FnMut(std::net::TcpStream, SocketAddr),
) {
    // Direct accept(2) calls until they would block: tokio's readiness may not have seen the last ones yet.
    let Ok(listener) = listener.into_std() else {
        return;
    };
    // Bounded: without the SYN filter, a flood of new connections could otherwise keep this loop going.
    let mut drain = |listener: &std::net::TcpListener| {
        for _ in 0..MAX_BACKLOG {
            match listener.accept() {
                // tokio wants its streams non-blocking; accept(2) does not pass the listener's flag on.
                Ok((stream, client)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        serve(stream, client);
                    }
                }
                // A connection its client gave up on while it waited: the next one may be fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) => {}
                // Would block (the backlog is empty), or the listener cannot accept any more.
                Err(_) => return,
            }
        }
    };
    if refuse_new_handshakes(&listener) {
        drain(&listener);
        tokio::time::sleep(HANDSHAKE_SETTLE).await;
    }
    drain(&listener);
}

/// Makes `listener` drop every SYN that opens a new connection (a classic BPF socket filter; packets of
/// handshakes under way and of accepted connections pass). Whether it did.
#[cfg(target_os = "linux")]
fn refuse_new_handshakes(listener: &std::net::TcpListener) -> bool {
    use socket2::{SockFilter, SockRef};
    // The filter sees the TCP header at offset 0. Flags are its byte 13: SYN 0x02, ACK 0x10.
    const LD_B_ABS: u16 = 0x30;
    const AND_K: u16 = 0x54;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let program = [
        SockFilter::new(LD_B_ABS, 0, 0, 13),
        SockFilter::new(AND_K, 0, 0, 0x12),
        // A SYN without ACK: drop (the next instruction); anything else: keep (the one after).
        SockFilter::new(JEQ_K, 0, 1, 0x02),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
    ];
    match SockRef::from(listener).attach_filter(&program) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "cannot filter new connections on the stopping listener");
            false
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn refuse_new_handshakes(_listener: &std::net::TcpListener) -> bool {
    false
}

/// A worker: serves the connections the accept loop hands it, on this thread's runtime, until the accept loop
/// has stopped (after `stop`, with its backlog handed over); then drains them.
async fn serve_handed(
    mut incoming: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
    app: Arc<App>,
    stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let worker = worker(&app, &stop);
    // Until the accept loop has stopped and handed over its backlog (it then drops its sender).
    while let Some((stream, client)) = incoming.recv().await {
        match TcpStream::from_std(stream) {
            Ok(stream) => {
                serve_connection(&worker, &graceful, stream, client, Some(Arc::clone(&open)));
            }
            Err(e) => {
                open.fetch_sub(1, Relaxed);
                tracing::warn!(%client, error = %e, "worker cannot use the connection");
            }
        }
    }
    drain(&app, graceful).await;
}

/// The single-runtime mode: accepts and serves on the calling runtime until `stop`; then drains.
async fn serve_proxy(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let worker = worker(&app, &stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Some((stream, client)) = accepted_or_back_off(accepted).await {
                    serve_connection(&worker, &graceful, stream, client, None);
                }
            }
            _ = stopped(&mut stop) => break,
        }
    }
    accept_backlog(listener, |stream, client| {
        match TcpStream::from_std(stream) {
            Ok(stream) => serve_connection(&worker, &graceful, stream, client, None),
            Err(e) => {
                tracing::debug!(%client, error = %e, "cannot serve a connection from the backlog")
            }
        }
    })
    .await;
    drain(&app, graceful).await;
}

/// An accepted connection, or (EMFILE and friends) nothing after a short pause rather than a spin.
async fn accepted_or_back_off(
    accepted: io::Result<(TcpStream, SocketAddr)>,
) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(20)).await;
            None
        }
    }
}

/// What the connections of one serving thread share: the fast path's state, and the hyper server it hands
/// HTTP/1.0 and h2c connections to.
struct Worker {
    fast: fast::Worker,
    hyper: auto::Builder<TokioExecutor>,
}

fn worker(app: &Arc<App>, stop: &watch::Receiver<bool>) -> Arc<Worker> {
    Arc::new(Worker {
        fast: fast::Worker {
            app: Arc::new(crate::app::Local(Arc::clone(app))),
            stop: stop.clone(),
        },
        hyper: builder(app),
    })
}

/// Serves one client connection on a task of the current runtime (the fast path, which hands what it does not
/// serve itself to hyper); `open` is decremented when it ends.
fn serve_connection(
    worker: &Arc<Worker>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    client: SocketAddr,
    open: Option<Arc<AtomicUsize>>,
) {
    let _ = stream.set_nodelay(true);
    let worker = Arc::clone(worker);
    let watcher = graceful.watcher();
    let counted = Open::new(&worker.fast.app.metrics.client_connections);
    tokio::spawn(async move {
        let _counted = counted;
        let tls = (*worker.fast.app.tls.load_full()).clone();
        match tls {
            None => {
                let peer = Peer::plain(client.ip().to_string());
                serve_stream(&worker, stream, (client, peer), false, watcher).await;
            }
            Some(tls) => serve_tls(&worker, &tls, stream, client, watcher).await,
        }
        if let Some(open) = open {
            open.fetch_sub(1, Relaxed);
        }
    });
}

/// Serves a connection on the TLS listener: a plaintext HTTP/1 request gets a clear `400` and a close (not a
/// handshake that waits for bytes that never come); otherwise the handshake, within `timeouts.header_read`
/// (a client that stalls it is a slowloris like any other), then the fast path over TLS, or hyper's HTTP/2
/// server at once when ALPN chose `h2`.
async fn serve_tls(
    worker: &Worker,
    tls: &TlsListener,
    mut stream: TcpStream,
    client: SocketAddr,
    watcher: Watcher,
) {
    let app = &worker.fast.app;
    let (header_read, subject_header) = {
        let c = app.config.load();
        let header = c.tls.client_subject_header.as_deref();
        let header = header.and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok());
        (c.timeouts.header_read, header)
    };
    let deadline = tokio::time::Instant::now() + header_read;
    // What the client sends first tells a TLS ClientHello from a plaintext request line.
    let mut first = [0u8; 24];
    let n = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        Ok(_) => return,
        Err(_) => {
            app.metrics.tls.handshake("timeout");
            return;
        }
    };
    if tls::looks_like_plain_http(&first[..n]) {
        app.metrics.tls.handshake("plaintext");
        let _ = stream.write_all(tls::PLAIN_HTTP_ANSWER).await;
        let _ = stream.shutdown().await;
        return;
    }
    let stream = match tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            app.metrics.tls.handshake("error");
            tracing::debug!(%client, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            app.metrics.tls.handshake("timeout");
            return;
        }
    };
    app.metrics.tls.handshake("ok");
    let (_, conn) = stream.get_ref();
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let subject = subject_header.map(|name| {
        let value = tls::client_subject(conn).and_then(|s| HeaderValue::from_str(&s).ok());
        (name, value)
    });
    let peer = Peer {
        ip: client.ip().to_string(),
        https: true,
        subject,
    };
    serve_stream(worker, stream, (client, peer), h2, watcher).await;
}

/// Serves a client connection, plain or TLS: the fast path, or hyper's server at once when TLS negotiated h2
/// (`h2`), or after the fast path handed it over (HTTP/1.0, h2c).
async fn serve_stream<S: ClientStream>(
    worker: &Worker,
    stream: S,
    (client, peer): (SocketAddr, Peer),
    h2: bool,
    watcher: Watcher,
) {
    let app = Arc::clone(&worker.fast.app);
    let stop = worker.fast.stop.clone();
    if h2 {
        let stream = (stream, bytes::Bytes::new(), true);
        proxy::serve(app, &worker.hyper, stream, (client, peer), stop, watcher).await;
    } else if let Some(handover) = fast::serve(&worker.fast, stream, client, peer).await {
        let stream = (handover.stream, handover.read, false);
        proxy::serve(
            app,
            &worker.hyper,
            stream,
            (client, handover.peer),
            stop,
            watcher,
        )
        .await;
    }
}

/// A client connection counted in `rrlb_connections{side="client"}` while this lives.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Open {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Waits for the connections in flight to finish, up to the configured drain timeout.
async fn drain(app: &App, graceful: GracefulShutdown) {
    let drain = app.config.load().timeouts.drain;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "drain timeout: closing the remaining connections");
    }
}
