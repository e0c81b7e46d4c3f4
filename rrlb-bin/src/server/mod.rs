//! The listeners: bind them, serve them until shut down, then drain.
//!
//! - `mod.rs`: [`Listeners`], [`run`] and [`run_on_workers`], which start everything below and stop it.
//! - `accept.rs`: the proxy listener's two accept modes (one runtime, or thread-per-core workers), each
//!   connection served by the fast path and handed to hyper when it is not for the fast path; graceful drain.
//! - `admin.rs`: the admin listener, served by hyper with `crate::admin`'s handler.
//! - `reload.rs`: what triggers a reload (SIGHUP, a change to the configuration file).
//! - `healthcheck.rs`: the `--healthcheck` client, which probes a running rrlb's admin listener.

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::apply::{ApplyError, Control, Reloader};
use crate::config::Config;

mod accept;
mod admin;
mod healthcheck;
mod reload;

pub use healthcheck::healthcheck;
pub(crate) use healthcheck::healthcheck_addr;

/// The two bound listeners rrlb serves on.
#[derive(Debug)]
pub struct Listeners {
    /// The proxy listener (`listen`).
    pub proxy: TcpListener,
    /// The admin listener (`admin_listen`).
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds both listeners from the configuration.
    pub async fn bind(config: &Config) -> io::Result<Self> {
        let proxy = TcpListener::bind(config.listen).await.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
        let admin = TcpListener::bind(config.admin_listen).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {} (admin): {e}", config.admin_listen),
            )
        })?;
        Ok(Self { proxy, admin })
    }
}

/// Why [`run`] stopped with an error. `Display` says which step failed; the cause is the
/// [`source`](std::error::Error::source) (print the chain, e.g. with
/// [`ErrorChain`](crate::logging::ErrorChain)).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration could not be applied at start-up.
    #[error("cannot apply the configuration")]
    Apply(#[source] ApplyError),
    /// A listener's address could not be read, or a worker thread could not be started.
    #[error("cannot start serving")]
    Io(#[source] io::Error),
}

/// Serves the proxy and the admin API on `listeners` with `config` until `shutdown` resolves, then stops
/// accepting and drains in-flight requests for up to `timeouts.drain`.
///
/// The drain loses no request a client sent: connections the kernel had completed are still served, every
/// answer says `connection: close`, a keep-alive connection closes right after such an answer or once idle for
/// a short grace, and HTTP/2 connections get `GOAWAY`. It returns when every connection has closed.
///
/// `reloader`, when given, is what SIGHUP, a change to the configuration file and `POST /admin/reload` call to
/// get the new configuration.
pub async fn run(
    listeners: Listeners,
    config: Config,
    reloader: Option<Reloader>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_on_workers(listeners, config, reloader, shutdown, 0).await
}

/// Like [`run`], but with `workers > 0` the proxy listener is served thread-per-core: `workers` threads, each
/// with its own current-thread tokio runtime, accept loop and upstream connection pool, so a request never
/// crosses threads. The admin API, health checks and reloads stay on the calling runtime. With `workers == 0`
/// everything runs on the calling runtime.
pub async fn run_on_workers(
    listeners: Listeners,
    config: Config,
    reloader: Option<Reloader>,
    shutdown: impl Future<Output = ()>,
    workers: usize,
) -> Result<(), RunError> {
    let watch_path = config.source.clone();
    let control = Control::start(config, reloader).map_err(RunError::Apply)?;
    let app = Arc::clone(control.app());
    let (stop_tx, stop_rx) = watch::channel(false);

    let proxy_addr = listeners.proxy.local_addr().map_err(RunError::Io)?;
    let admin_addr = listeners.admin.local_addr().map_err(RunError::Io)?;
    let state_task = control
        .state()
        .start(crate::state::Member::this_process(proxy_addr, admin_addr));

    let reload_tasks = reload::spawn_triggers(&control, watch_path);
    let admin_task = tokio::spawn(admin::serve(
        listeners.admin,
        Arc::clone(&control),
        stop_rx.clone(),
    ));
    let proxies =
        accept::spawn_proxy(listeners.proxy, &app, stop_rx, workers).map_err(RunError::Io)?;
    // Logged only now, when the SIGHUP handler is installed: whoever waits for this line may signal at once.
    tracing::info!(%proxy_addr, %admin_addr, workers, backends = app.set.load().members().len(), "rrlb is serving");

    shutdown.await;
    tracing::info!("shutting down: no new connections; draining requests in flight");
    let _ = stop_tx.send(true);
    for t in reload_tasks {
        t.abort();
    }
    for done in proxies {
        let _ = done.await;
    }
    admin_task.abort();
    if let Some(t) = state_task {
        t.abort();
    }
    if !app.access_log.flush() {
        tracing::warn!("the access log's writer is stuck; its last lines may be lost");
    }
    // The last spans leave within the exporter's timeout.
    if let Some(t) = (*app.telemetry.swap(Arc::new(None))).clone() {
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
    tracing::info!("drained; bye");
    Ok(())
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn run_errors_name_the_step_and_keep_the_cause() {
        let e = RunError::Io(io::Error::other("no threads left"));
        assert_eq!(e.to_string(), "cannot start serving");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("no threads left")
        );
        assert_eq!(
            crate::logging::ErrorChain(&e).to_string(),
            "cannot start serving: no threads left"
        );
        let e = RunError::Apply(ApplyError::NoReloader);
        assert!(e.source().is_some_and(|s| s.is::<ApplyError>()));
    }
}
