//! The operational metrics on `/metrics`: build info, reloads, open connections, upstream errors by kind,
//! health checks. Each is driven by the event it counts and read back from the exposition.

mod support;

use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::scripted::RawBackend;
use support::wire::Conn;
use support::*;

const QUIET: &str = "[health]\nenabled = false\n";

/// The exposition now.
async fn exposition(h: &Harness) -> String {
    let res = h.admin_get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    res.text()
}

/// One sample, which must be there.
async fn sample(h: &Harness, series: &str) -> f64 {
    let text = exposition(h).await;
    metric(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// `rrlb_build_info` is 1 with the version; the reload counters start at 0 (both results) and the last-success
/// time is set at start; a good reload counts a success and moves the time; a refused one counts a failure and
/// leaves the time where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_count_by_result_and_only_a_success_moves_the_timestamp() {
    let a = echo("a").await;
    let url = a.url();
    let h = Harness::builder()
        .echoes(vec![a])
        .file(format!("{}{QUIET}", backends_toml(&[("a", &url, 1)])))
        .start()
        .await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&h, &format!("rrlb_build_info{{version=\"{version}\"}}")).await,
        1.0
    );
    const OK: &str = "rrlb_config_reloads_total{result=\"success\"}";
    const FAILED: &str = "rrlb_config_reloads_total{result=\"failure\"}";
    const LAST: &str = "rrlb_config_last_reload_success_timestamp_seconds";
    assert_eq!((sample(&h, OK).await, sample(&h, FAILED).await), (0.0, 0.0));
    let started = sample(&h, LAST).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        started > 0.0 && started <= now,
        "start time {started} (now {now})"
    );

    h.write_config(&format!("{}{QUIET}", backends_toml(&[("a", &url, 3)])));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!((sample(&h, OK).await, sample(&h, FAILED).await), (1.0, 0.0));
    let reloaded = sample(&h, LAST).await;
    assert!(reloaded >= started, "{reloaded} < {started}");

    h.write_config(&format!(
        "{}{QUIET}[timeouts]\nrequest = \"soon\"\n",
        backends_toml(&[("a", &url, 1)])
    ));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert!(
        res.status.is_client_error(),
        "{}: {}",
        res.status,
        res.text()
    );
    assert_eq!((sample(&h, OK).await, sample(&h, FAILED).await), (1.0, 1.0));
    assert_eq!(
        sample(&h, LAST).await,
        reloaded,
        "a refused reload moved the time"
    );
    // The running configuration stayed (weight 3 from the good reload).
    assert_eq!(h.backend("a").await.expect("a")["weight"], 3);
}

/// A backend that misbehaves in one way: what it does with each connection it accepts.
#[derive(Clone, Copy)]
enum Broken {
    /// Closes it at once, before any answer (`reset`).
    Closes,
    /// Answers something that is not HTTP (`protocol`).
    Garbage,
    /// Reads the request and never answers (`timeout`, with a short request timeout).
    Silent,
}

/// Starts a broken backend on `127.0.0.1:0`; stopped (with the connections it holds) when dropped.
async fn broken_backend(how: Broken) -> RawBackend {
    RawBackend::start(move |mut stream: TcpStream| async move {
        let mut buf = [0u8; 4096];
        match how {
            Broken::Closes => drop(stream),
            Broken::Garbage => {
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"SSH-2.0-not-http\r\n\r\n").await;
            }
            Broken::Silent => {
                let _ = stream.read(&mut buf).await;
                // Held open, unanswered, until the backend is dropped.
                std::future::pending::<()>().await;
            }
        }
    })
    .await
}

/// Every kind of upstream error is counted against its backend: a refused connection (`connect`), a
/// connection closed before an answer (`reset`), an answer that is not HTTP (`protocol`), no answer within the
/// request timeout (`timeout`). Each request is one attempt (one backend, nothing to retry on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_are_counted_by_backend_and_kind() {
    let dead = free_addr();
    let cases = [
        ("connect", None),
        ("reset", Some(Broken::Closes)),
        ("protocol", Some(Broken::Garbage)),
        ("timeout", Some(Broken::Silent)),
    ];
    for (kind, how) in cases {
        let backend = match how {
            Some(how) => Some(broken_backend(how).await),
            None => None,
        };
        let addr = backend.as_ref().map_or(dead, RawBackend::addr);
        let h = Harness::builder()
            .file(format!(
                "{}{QUIET}[timeouts]\nrequest = \"300ms\"\n",
                backends_toml(&[("b", &format!("http://{addr}"), 1)])
            ))
            .start()
            .await;
        for n in 1..=2 {
            let res = send(&h.client, Method::GET, &h.url("/work"), &[], "").await;
            assert!(res.status.is_server_error(), "{kind}: {}", res.status);
            let series = format!("rrlb_upstream_errors_total{{backend=\"b\",kind=\"{kind}\"}}");
            assert_eq!(sample(&h, &series).await, f64::from(n), "{kind}");
        }
        let text = exposition(&h).await;
        let others = text
            .lines()
            .filter(|l| l.starts_with("rrlb_upstream_errors_total{") && !l.contains(kind))
            .collect::<Vec<_>>();
        assert!(
            others.is_empty(),
            "{kind}: counted as another kind too: {others:?}"
        );
        drop(h);
        drop(backend);
    }
}

/// Health checks are counted per backend and result: a live backend passes, a dead one fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_counted_by_backend_and_result() {
    let live = echo("live").await;
    let url = live.url();
    let dead = free_addr();
    let h = Harness::builder()
        .echoes(vec![live])
        .file(format!(
            "{}[health]\ninterval = \"100ms\"\ntimeout = \"100ms\"\n",
            backends_toml(&[("live", &url, 1), ("dead", &format!("http://{dead}"), 1)])
        ))
        .start()
        .await;
    let h = &h;
    eventually("two checks of each backend", || async move {
        let text = exposition(h).await;
        let pass = metric(
            &text,
            "rrlb_health_checks_total{backend=\"live\",result=\"pass\"}",
        );
        let fail = metric(
            &text,
            "rrlb_health_checks_total{backend=\"dead\",result=\"fail\"}",
        );
        (pass >= Some(2.0) && fail >= Some(2.0)).then_some(())
    })
    .await;
    let text = exposition(h).await;
    assert_eq!(
        metric(
            &text,
            "rrlb_health_checks_total{backend=\"live\",result=\"fail\"}"
        ),
        None,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "rrlb_health_checks_total{backend=\"dead\",result=\"pass\"}"
        ),
        None,
        "{text}"
    );
}

/// Writes one keep-alive request on `conn` and reads its whole answer, which must be a 200.
async fn one_request(conn: &mut Conn) {
    conn.try_send(b"GET /health HTTP/1.1\r\nhost: rrlb\r\n\r\n")
        .await
        .expect("write");
    let answer = conn
        .answer(false)
        .await
        .into_answer()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status, 200, "{}", answer.describe());
}

/// `rrlb_connections`: the client gauge follows the open client connections up and back down; the upstream
/// gauge counts the pooled backend connection, and drops when it is found closed by the backend.
#[tokio::test(flavor = "current_thread")]
async fn connection_gauges_go_up_and_back_down() {
    let a = echo("a").await;
    let url = a.url();
    let mut h = Harness::builder()
        .echoes(vec![a])
        .file(format!("{}{QUIET}", backends_toml(&[("a", &url, 1)])))
        .start()
        .await;
    const CLIENT: &str = "rrlb_connections{side=\"client\"}";
    const UPSTREAM: &str = "rrlb_connections{side=\"upstream\"}";
    assert_eq!(sample(&h, CLIENT).await, 0.0);
    assert_eq!(sample(&h, UPSTREAM).await, 0.0);

    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Conn::connect(h.proxy, HANG).await;
        one_request(&mut c).await;
        clients.push(c);
    }
    assert_eq!(sample(&h, CLIENT).await, 3.0);
    // One request at a time: one backend connection, kept in the pool.
    assert_eq!(sample(&h, UPSTREAM).await, 1.0);

    drop(clients);
    let h_ref = &h;
    eventually(
        "the client connections to be counted closed",
        || async move { (sample(h_ref, CLIENT).await == 0.0).then_some(()) },
    )
    .await;

    // The backend goes away: the next request finds the pooled connection closed, drops it, and cannot
    // open another.
    h.kill(0).await;
    let res = send(&h.client, Method::GET, &h.url("/work"), &[], "").await;
    assert!(res.status.is_server_error(), "{}", res.status);
    assert_eq!(sample(&h, UPSTREAM).await, 0.0);
}
