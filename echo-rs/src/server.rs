//! Accepting connections, draining them gracefully, or dropping them all at once.
//!
//! Both entry points share one accept loop ([`run`]). It owns the listener and a [`JoinSet`] of
//! connection tasks, so stopping is explicit in both flavours:
//!
//! - graceful: close the listener, ask every connection to finish its current request (idle
//!   keep-alive connections close at once), wait up to the drain timeout, abort the rest;
//! - kill: close the listener and abort every connection task, then wait until they are gone,
//!   so that when [`EchoServer::kill`] returns, no socket of the server is open any more and
//!   the address can be bound again.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::chaos::Chaos;
use crate::config::Config;
use crate::service::App;

/// How the accept loop is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    Graceful,
    Kill,
}

/// Serves the echo contract on `listener` until `shutdown` completes, then drains gracefully.
///
/// After `shutdown` resolves the listener is closed at once, idle keep-alive connections are
/// closed, and requests in flight (including delayed echoes) are allowed to finish for up to
/// [`Config::drain_timeout`]; whatever is still open then is aborted. Returns `Ok(())` once
/// every connection is closed.
///
/// This is what the `echo-rs` binary runs, with `shutdown` completing on `SIGTERM`/`SIGINT`.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] when the configuration is invalid (see
/// [`Config::validate`]). Accept and connection errors are logged and do not stop the server.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = Arc::new(
        App::new(&config, Chaos::new(config.delay))
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?,
    );
    let stop = async {
        shutdown.await;
        Stop::Graceful
    };
    run(listener, app, config.drain_timeout, stop).await;
    Ok(())
}

/// A running in-process echo server.
///
/// Start one with [`EchoServer::start`] (or [`EchoServer::from_listener`]), talk to it at
/// [`local_addr`](EchoServer::local_addr), steer its faults through
/// [`chaos`](EchoServer::chaos), and stop it with [`shutdown`](EchoServer::shutdown)
/// (graceful) or [`kill`](EchoServer::kill) (abrupt, like a crashed process). Dropping the
/// handle kills the server too; its tasks end on their own shortly after.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use echo_rs::{Config, EchoServer};
///
/// let server = EchoServer::start("127.0.0.1:0", Config::new("backend-1")).await?;
/// let addr = server.local_addr();
/// server.chaos().set_healthy(false); // GET /health now answers 503
/// server.kill().await;
/// // The address is free again: a replacement can take over the same port.
/// let replacement = EchoServer::start(addr, Config::new("backend-1")).await?;
/// replacement.shutdown().await
/// # }
/// ```
pub struct EchoServer {
    local_addr: SocketAddr,
    chaos: Chaos,
    stop: watch::Sender<Stop>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for EchoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EchoServer")
            .field("local_addr", &self.local_addr)
            .field("chaos", &self.chaos.settings())
            .finish_non_exhaustive()
    }
}

impl EchoServer {
    /// Binds `addr` and starts serving on a background task of the current Tokio runtime.
    ///
    /// Binding sets `SO_REUSEADDR` (Tokio does on Unix), so a server can be started on the
    /// address of one that was just [killed](EchoServer::kill).
    ///
    /// # Errors
    ///
    /// The bind error, or [`io::ErrorKind::InvalidInput`] for an invalid configuration (see
    /// [`Config::validate`]).
    pub async fn start(addr: impl ToSocketAddrs, config: Config) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::from_listener(listener, config)
    }

    /// Starts serving on an already bound listener.
    ///
    /// # Errors
    ///
    /// When the listener has no local address, or [`io::ErrorKind::InvalidInput`] for an
    /// invalid configuration.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime (like [`tokio::spawn`]).
    pub fn from_listener(listener: TcpListener, config: Config) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let chaos = Chaos::new(config.delay);
        let app = Arc::new(
            App::new(&config, chaos.clone())
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?,
        );
        let (stop, mut stop_requested) = watch::channel(Stop::Running);
        let stop_signal = async move {
            match stop_requested.wait_for(|stop| *stop != Stop::Running).await {
                Ok(stop) => *stop,
                // The handle was dropped.
                Err(_) => Stop::Kill,
            }
        };
        let task = tokio::spawn(run(listener, app, config.drain_timeout, stop_signal));
        Ok(Self {
            local_addr,
            chaos,
            stop,
            task: Some(task),
        })
    }

    /// The address the server is listening on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local_addr>`, ready to use as a backend URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The fault-injection handle: the same state `/_chaos` changes. Clone it to keep it.
    pub fn chaos(&self) -> &Chaos {
        &self.chaos
    }

    /// Stops gracefully: closes the listener, lets in-flight requests finish (up to the drain
    /// timeout), closes idle connections, and returns when every connection is closed.
    ///
    /// # Errors
    ///
    /// Only if the server task panicked, which it is not expected to do.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.stop_with(Stop::Graceful).await
    }

    /// Stops abruptly, like a crashed process: closes the listener and every open connection,
    /// without answering requests in flight. When this returns, all of the server's sockets are
    /// closed.
    pub async fn kill(mut self) {
        // A panicked task has dropped its sockets as well, so there is nothing left to report.
        let _ = self.stop_with(Stop::Kill).await;
    }

    async fn stop_with(&mut self, stop: Stop) -> io::Result<()> {
        self.stop.send_replace(stop);
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other),
            None => Ok(()),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.stop.send_replace(Stop::Kill);
        }
    }
}

/// The accept loop. Returns when every connection task has ended.
async fn run(
    listener: TcpListener,
    app: Arc<App>,
    drain_timeout: Duration,
    stop: impl Future<Output = Stop>,
) {
    let mut stop = pin!(stop);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);

    let how = loop {
        tokio::select! {
            how = &mut stop => break how,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small responses: do not let Nagle hold them back.
                    let _ = stream.set_nodelay(true);
                    let app = Arc::clone(&app);
                    let service = service_fn(move |req| {
                        let app = Arc::clone(&app);
                        async move { Ok::<_, Infallible>(app.handle(req).await) }
                    });
                    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    connections.spawn(async move {
                        if let Err(err) = connection.await {
                            tracing::debug!(%err, "connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    // Typically EMFILE: back off instead of spinning on the error.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);

    if how == Stop::Graceful {
        let drain = async {
            graceful.shutdown().await;
            while connections.join_next().await.is_some() {}
        };
        if tokio::time::timeout(drain_timeout, drain).await.is_err() {
            tracing::warn!(
                remaining = connections.len(),
                "drain timeout reached; closing the remaining connections"
            );
        }
    }
    // Kill, or what the drain left: abort and wait until every socket is dropped.
    connections.shutdown().await;
}
