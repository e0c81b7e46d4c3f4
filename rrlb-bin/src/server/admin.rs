//! The admin listener: hyper's HTTP/1 server with `crate::admin`'s handler, until stop.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::stopped;
use crate::apply::Control;

pub(super) async fn serve(
    listener: TcpListener,
    app: Arc<Control>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let (app, stop) = (Arc::clone(&app), stop.clone());
                let svc = service_fn(move |req| crate::admin::handle(Arc::clone(&app), stop.clone(), req));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = stopped(&mut stop) => break,
        }
    }
}
