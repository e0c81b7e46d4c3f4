//! A minimal HTTP/1.1 echo server for proxy benchmarks: hyper on a *current-thread* tokio runtime, answering
//! every request with its body (`content-type: application/json`) and `x-echo-service: NAME`. No routing, no
//! checks, no logging: the backend a benchmark wants to cost as little as possible, so that the proxies'
//! differences show.
//!
//! `HOST` (default `127.0.0.1`), `PORT` (default `0`: an ephemeral port) and `SERVICE_NAME` (default
//! `hyper-echo`) configure it; it prints `hyper-echo listening on HOST:PORT` once bound, and stops on SIGTERM
//! or Ctrl-C.
//!
//! ```sh
//! cargo run --release -p echo-rs --example hyper_echo
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> std::io::Result<()> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".to_owned());
    let name = std::env::var("SERVICE_NAME").unwrap_or_default();
    let name = header::HeaderValue::from_str(&name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or(header::HeaderValue::from_static("hyper-echo"));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(format!("{host}:{port}"), name))
}

async fn serve(addr: String, name: header::HeaderValue) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("hyper-echo listening on {}", listener.local_addr()?);
    let accept = async {
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let name = name.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| echo(req, name.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        r = accept => r,
        _ = stop() => Ok(()),
    }
}

async fn stop() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn echo(
    req: Request<Incoming>,
    name: header::HeaderValue,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut res = Response::new(Full::new(body));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert("x-echo-service", name);
    Ok(res)
}
