//! W3C trace context through rrlb: every attempt of a request is a child span of the one request span, and the
//! access line carries the trace id. (What each path sends for each kind of client `traceparent` is in
//! `parity.rs`, which holds the three request paths to the same rules.)

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use rrlb_tower::trace::TraceParent;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use support::*;

const CLIENT_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A backend that reads one request head per connection, reports its `traceparent` values, and closes the
/// connection without answering: to rrlb, a reset attempt.
async fn resetting_backend() -> (
    String,
    mpsc::UnboundedReceiver<Vec<String>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let values = String::from_utf8_lossy(&head)
                .lines()
                .filter_map(|l| l.strip_prefix("traceparent: ").map(str::to_owned))
                .collect();
            let _ = tx.send(values);
            // Dropped: closed with no answer.
        }
    });
    (url, rx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_a_child_of_the_request_span() {
    let (broken, mut seen_by_broken, broken_task) = resetting_backend().await;
    let good = TestBackend::start().await;
    // Round robin starts with the first backend: the first request's first attempt is reset, and its retry
    // goes to the second.
    let toml = format!(
        "{}[health]\nenabled = false\n[retries]\non = [\"connect-failure\", \"reset\"]\n",
        backends_toml(&[("broken", &broken, 1), ("good", &good.url(), 1)])
    );
    let h = Harness::builder().file(toml).start().await;

    let res = send(
        &h.client,
        Method::GET,
        &h.url("/traced"),
        &[("traceparent", CLIENT_TRACE)],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.backend(), "good");

    let first = tokio::time::timeout(Duration::from_secs(10), seen_by_broken.recv())
        .await
        .expect("the first attempt reached the broken backend")
        .expect("backend task alive");
    let second = res.json()["headers"]["traceparent"]
        .as_array()
        .expect("the good backend got a traceparent")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    let (first, second) = match (first.as_slice(), second.as_slice()) {
        ([a], [b]) => (
            TraceParent::parse(a.as_bytes()).expect("valid"),
            TraceParent::parse(b.as_bytes()).expect("valid"),
        ),
        other => panic!("each attempt sends exactly one traceparent: {other:?}"),
    };
    let client = TraceParent::parse(CLIENT_TRACE.as_bytes()).expect("valid");
    for attempt in [first, second] {
        assert_eq!(attempt.trace_id(), client.trace_id());
        assert_eq!(attempt.flags(), client.flags());
        assert_ne!(attempt.parent_id(), client.parent_id());
    }
    assert_ne!(
        first.parent_id(),
        second.parent_id(),
        "each attempt is a span of its own"
    );

    // The access line has the trace id, and the two attempts.
    let log = h.access_log();
    let line = eventually("the access line", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .ok()?
                .lines()
                .find(|l| l.contains("path=/traced"))
                .map(str::to_owned)
        }
    })
    .await;
    assert!(
        line.contains(&format!("trace_id={}", client.trace_id())),
        "{line}"
    );
    assert!(line.contains("attempts=2"), "{line}");
    broken_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_trace_starts_one_and_logs_it() {
    let good = TestBackend::start().await;
    let toml = format!(
        "{}[health]\nenabled = false\n[tracing]\nsample_ratio = 1.0\n",
        backends_toml(&[("good", &good.url(), 1)])
    );
    let h = Harness::builder().file(toml).start().await;
    let res = send(&h.client, Method::GET, &h.url("/untraced"), &[], "").await;
    assert_eq!(res.status, StatusCode::OK);
    let sent = res.json()["headers"]["traceparent"][0]
        .as_str()
        .expect("a traceparent")
        .to_owned();
    let sent = TraceParent::parse(sent.as_bytes()).expect("valid");
    assert!(
        sent.is_sampled(),
        "sample_ratio = 1.0 samples every new trace"
    );
    let log = h.access_log();
    let line = eventually("the access line", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .ok()?
                .lines()
                .find(|l| l.contains("path=/untraced"))
                .map(str::to_owned)
        }
    })
    .await;
    assert!(
        line.contains(&format!("trace_id={}", sent.trace_id())),
        "{line}"
    );
}
