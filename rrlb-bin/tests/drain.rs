//! The lossless drain of the real `rrlb` binary: SIGTERM under keep-alive load answers every request a client
//! wrote, the last ones with `connection: close`, then closes; HTTP/2 gets `GOAWAY`; the process exits 0.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use support::wire::Conn;
use support::*;

/// Keep-alive clients sending back to back.
const CLIENTS: usize = 16;
/// Requests answered in total before the SIGTERM: the load is well under way.
const BEFORE_STOP: u64 = 50 * CLIENTS as u64;
/// Most requests one client sends (a bound: the drain ends every client long before).
const MAX_REQUESTS: u64 = 200_000;

/// `rrlb -b BACKEND` on ephemeral ports.
async fn rrlb_over(backend: &str) -> Process {
    Process::spawn(&[
        "-b",
        backend,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .await
}

/// A keep-alive client: writes `request`, reads the whole answer, again, until an answer says the connection
/// closes; then the server must close it. Returns how many requests were answered, or what went wrong: a
/// request written and not answered is a failure.
async fn keep_alive_client(
    proxy: SocketAddr,
    request: &'static [u8],
    answered: Arc<AtomicU64>,
) -> Result<u64, String> {
    let stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    serve_until_close(stream, request, &answered).await
}

/// Like [`keep_alive_client`], and when told to close, connects again (as wrk does) until the connection is
/// refused: the listener has closed. A request written on a connection the server accepted must be answered.
async fn reconnecting_client(
    proxy: SocketAddr,
    request: &'static [u8],
    answered: Arc<AtomicU64>,
) -> Result<u64, String> {
    let mut total = 0;
    for c in 0..MAX_REQUESTS {
        let Ok(stream) = TcpStream::connect(proxy).await else {
            return Ok(total);
        };
        total += serve_until_close(stream, request, &answered)
            .await
            .map_err(|e| format!("connection {c}: {e}"))?;
    }
    Err(format!("{MAX_REQUESTS} connections and never refused"))
}

/// Sends `request` back to back on `stream` until an answer says `connection: close`, then checks that the
/// server closes; the number of answers.
async fn serve_until_close(
    stream: TcpStream,
    request: &'static [u8],
    answered: &AtomicU64,
) -> Result<u64, String> {
    let mut conn = Conn::new(stream, HANG);
    for i in 0..MAX_REQUESTS {
        conn.try_send(request)
            .await
            .map_err(|e| format!("request {i}: the connection broke while it was written: {e}"))?;
        let answer = conn
            .answer(false)
            .await
            .into_answer()
            .map_err(|e| format!("request {i} was written and got no complete answer: {e}"))?;
        if answer.status != 200 {
            return Err(format!("request {i}: status {}", answer.status));
        }
        answered.fetch_add(1, Relaxed);
        if answer.ends_connection() {
            // Told to go: the server closes its side next (nothing more to read).
            if let Some(e) = conn.must_close().await {
                return Err(e);
            }
            return match conn.error() {
                None => Ok(i + 1),
                Some(e) => Err(format!("the close after the last answer: {e}")),
            };
        }
    }
    Err(format!("{MAX_REQUESTS} requests and never told to close"))
}

/// Runs `CLIENTS` clients sending `request` back to back on `proxy`, calls `stop` once the load is under way,
/// and waits for every client to end: `Err` lists the clients that lost a request, or says that no answer came
/// after the stop (then the drain was not tested).
async fn load_then_stop<F, Fut>(
    proxy: SocketAddr,
    request: &'static [u8],
    client: F,
    stop: impl FnOnce(),
) -> Result<(), String>
where
    F: Fn(SocketAddr, &'static [u8], Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(proxy, request, Arc::clone(&answered))))
        .collect();
    let load = Arc::clone(&answered);
    eventually("the load to get going", || {
        let load = Arc::clone(&load);
        async move { (load.load(Relaxed) >= BEFORE_STOP).then_some(()) }
    })
    .await;

    let before_stop = answered.load(Relaxed);
    stop();
    let mut failures = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        match tokio::time::timeout(HANG, c).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => failures.push(format!("client {i}: {e}")),
            Ok(Err(e)) => failures.push(format!("client {i}: panicked: {e}")),
            Err(_) => failures.push(format!("client {i}: hung")),
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "requests lost in the drain:\n{}",
            failures.join("\n")
        ));
    }
    if answered.load(Relaxed) <= before_stop {
        return Err(
            "no request was answered after the stop (the test did not test the drain)".into(),
        );
    }
    Ok(())
}

/// `CLIENTS` keep-alive clients sending `request` back to back to the real rrlb; SIGTERM once the load is under
/// way; every request written is answered, every client is told to close and then closed, and rrlb exits 0.
async fn sigterm_under_load_loses_nothing<F, Fut>(request: &'static [u8], client: F)
where
    F: Fn(SocketAddr, &'static [u8], Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    let backend = echo("a").await;
    let mut p = rrlb_over(&format!("http://{}", backend.local_addr())).await;
    let result = load_then_stop(p.proxy, request, client, || p.signal("TERM")).await;
    if let Err(e) = result {
        panic!("{e}\n{}", p.stderr());
    }
    let status = p.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
    assert!(p.stderr().contains("drained"), "{}", p.stderr());
}

/// The same drain when rrlb serves on one runtime (`rrlb::run`, in process): reconnecting clients lose nothing,
/// and `run` returns `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_of_the_single_runtime_server_loses_no_request() {
    let a = echo("a").await;
    let url = a.url();
    let mut h = Harness::builder()
        .echoes(vec![a])
        .file(format!(
            "{}[health]\nenabled = false\n",
            backends_toml(&[("a", &url, 1)])
        ))
        .start()
        .await;
    let proxy = h.proxy;
    let result = load_then_stop(
        proxy,
        b"GET /health HTTP/1.1\r\nhost: rrlb\r\n\r\n",
        reconnecting_client,
        || h.shutdown(),
    )
    .await;
    if let Err(e) = result {
        panic!("{e}");
    }
    h.join().await.expect("run returns Ok after the drain");
}

/// The fast path (HTTP/1.1): 16 keep-alive clients, SIGTERM mid-load, no request without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_http11_keep_alive_load_loses_no_request() {
    sigterm_under_load_loses_nothing(
        b"GET /health HTTP/1.1\r\nhost: rrlb\r\n\r\n",
        keep_alive_client,
    )
    .await;
}

/// Clients that connect again after `connection: close` (as wrk does): the connections the kernel completed
/// while rrlb stopped are served too, and the rest are refused before a request is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_with_reconnecting_clients_loses_no_request() {
    sigterm_under_load_loses_nothing(
        b"GET /health HTTP/1.1\r\nhost: rrlb\r\n\r\n",
        reconnecting_client,
    )
    .await;
}

/// The hyper path (HTTP/1.0 with keep-alive): the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_http10_keep_alive_load_loses_no_request() {
    sigterm_under_load_loses_nothing(
        b"GET /health HTTP/1.0\r\nhost: rrlb\r\nconnection: keep-alive\r\n\r\n",
        keep_alive_client,
    )
    .await;
}

/// HTTP/2 (h2c): SIGTERM with a request in flight sends `GOAWAY`; the request in flight is answered, the
/// client's connection ends cleanly, and rrlb exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_h2c_goaway_and_answers_the_stream_in_flight() {
    let backend = TestBackend::start().await;
    let mut p = rrlb_over(&backend.url()).await;
    let stream = TcpStream::connect(p.proxy).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let proxy = p.proxy;
    let req = move |path: &str| {
        Request::builder()
            .method(Method::GET)
            .uri(format!("http://{proxy}{path}"))
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    // The connection serves before the stop.
    let res = sender
        .send_request(req("/work/first"))
        .await
        .expect("first");
    assert_eq!(res.status(), StatusCode::OK);
    let held = tokio::spawn(sender.send_request(req("/work/hold")));
    backend.wait_held(1).await;

    p.signal("TERM");
    p.wait_line("the shutdown line", |l| l.contains("shutting down"))
        .await;
    // GOAWAY: the connection takes no new streams (a stream opened before the client saw it may still be
    // answered), while the one in flight stays open.
    eventually("new streams to be refused after GOAWAY", || {
        let mut sender = sender.clone();
        let next = req("/health");
        async move { sender.send_request(next).await.is_err().then_some(()) }
    })
    .await;
    assert!(p.is_running(), "exited with a stream in flight");

    backend.release();
    let res = tokio::time::timeout(HANG, held)
        .await
        .expect("hang")
        .expect("task")
        .expect("the stream in flight is answered");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("/work/hold"));
    tokio::time::timeout(HANG, conn)
        .await
        .expect("the connection never ended")
        .expect("task")
        .expect("the connection ends cleanly after GOAWAY");
    let status = p.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
}
