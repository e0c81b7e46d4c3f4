//! W3C trace context through rrlb: every attempt of a request is a child span of the one request span, and the
//! access line carries the trace id. (What each path sends for each kind of client `traceparent` is in
//! `parity.rs`, which holds the three request paths to the same rules.)

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use rrlb_tower::trace::TraceParent;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use support::scripted::RawBackend;
use support::*;

const CLIENT_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A backend that reads one request head per connection, reports its `traceparent` values, and closes the
/// connection without answering: to rrlb, a reset attempt. Stopped when dropped.
async fn resetting_backend() -> (RawBackend, mpsc::UnboundedReceiver<Vec<String>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backend = RawBackend::start(move |mut stream: TcpStream| {
        let tx = tx.clone();
        async move {
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
    })
    .await;
    (backend, rx)
}

/// The access line of the request for `path`, once the log's writer has written it.
async fn access_line(h: &Harness, path: &str) -> String {
    let log = h.access_log();
    let field = format!("path={path} ");
    eventually("the access line", || {
        let (log, field) = (log.clone(), field.clone());
        async move {
            std::fs::read_to_string(&log)
                .ok()?
                .lines()
                .find(|l| l.contains(&field))
                .map(str::to_owned)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_a_child_of_the_request_span() {
    let (broken, mut seen_by_broken) = resetting_backend().await;
    let good = TestBackend::start().await;
    // Round robin starts with the first backend: the first request's first attempt is reset, and its retry
    // goes to the second.
    let toml = format!(
        "{}[health]\nenabled = false\n[retries]\non = [\"connect-failure\", \"reset\"]\n",
        backends_toml(&[("broken", &broken.url(), 1), ("good", &good.url(), 1)])
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
    let line = access_line(&h, "/traced").await;
    assert!(
        line.contains(&format!("trace_id={}", client.trace_id())),
        "{line}"
    );
    assert!(line.contains("attempts=2"), "{line}");
    drop(broken);
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
    let line = access_line(&h, "/untraced").await;
    assert!(
        line.contains(&format!("trace_id={}", sent.trace_id())),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Span export: an in-process OTLP/HTTP receiver

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

/// A span as the receiver decoded it, with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    kind: i32,
    name: String,
    attributes: Vec<(String, String)>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// An OTLP/HTTP protobuf receiver on 127.0.0.1: `POST /v1/traces` bodies are decoded and their spans sent on
/// the channel. Stopped when the handle is dropped.
struct Receiver {
    url: String,
    spans: mpsc::UnboundedReceiver<Got>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Self {
        use http_body_util::BodyExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, spans) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            async move {
                                let ok = req.uri().path() == "/v1/traces"
                                    && req.headers().get("content-type").map(|v| v.as_bytes())
                                        == Some(b"application/x-protobuf".as_slice());
                                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                                let decoded = body
                                    .ok()
                                    .filter(|_| ok)
                                    .and_then(|b| ExportTraceServiceRequest::decode(b).ok());
                                let status = match decoded {
                                    Some(request) => {
                                        for rs in request.resource_spans {
                                            let service = rs
                                                .resource
                                                .as_ref()
                                                .map(|r| pairs(&r.attributes))
                                                .and_then(|a| {
                                                    a.into_iter()
                                                        .find(|(k, _)| k == "service.name")
                                                        .map(|(_, v)| v)
                                                })
                                                .unwrap_or_default();
                                            for ss in rs.scope_spans {
                                                for s in ss.spans {
                                                    let _ = tx.send(Got {
                                                        service: service.clone(),
                                                        trace_id: s.trace_id,
                                                        span_id: s.span_id,
                                                        parent: s.parent_span_id,
                                                        kind: s.kind,
                                                        name: s.name,
                                                        attributes: pairs(&s.attributes),
                                                    });
                                                }
                                            }
                                        }
                                        200
                                    }
                                    None => 400,
                                };
                                let res = http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-protobuf")
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .expect("response");
                                Ok::<_, std::convert::Infallible>(res)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { url, spans, task }
    }

    /// Spans received until `done` says the collection is complete (bounded: 20 s).
    async fn until(&mut self, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(&got) {
            match tokio::time::timeout_at(deadline, self.spans.recv()).await {
                Ok(Some(span)) => got.push(span),
                _ => panic!("spans did not all arrive; got {got:#?}"),
            }
        }
        got
    }
}

fn id_of(tp: &TraceParent) -> Vec<u8> {
    tp.parent_id().to_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_with_their_parent_links() {
    let mut receiver = Receiver::start().await;
    let (broken, mut seen_by_broken) = resetting_backend().await;
    let good = TestBackend::start().await;
    let toml = format!(
        "{}[health]\nenabled = false\n[retries]\non = [\"connect-failure\", \"reset\"]\n\
         [tracing]\notlp_endpoint = {:?}\nservice_name = \"rrlb-under-test\"\nsample_ratio = 0.0\n",
        backends_toml(&[("broken", &broken.url(), 1), ("good", &good.url(), 1)]),
        receiver.url
    );
    let h = Harness::builder().file(toml).start().await;

    // Not sampled by its caller (flags 00): no spans, although its attempts still get their own parent ids.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let res = send(
        &h.client,
        Method::GET,
        &h.url("/quiet"),
        &[("traceparent", unsampled)],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let _ = seen_by_broken.recv().await;
    // Sampled by its caller: one SERVER span, and a CLIENT span per attempt (the first is reset, the retry
    // answers), though rrlb's own sample_ratio is 0 (a continued trace keeps its caller's decision).
    let res = send(
        &h.client,
        Method::GET,
        &h.url("/traced?q=1"),
        &[("traceparent", CLIENT_TRACE)],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let first = seen_by_broken.recv().await.expect("first attempt");
    let first = TraceParent::parse(first[0].as_bytes()).expect("valid");
    let second = res.json()["headers"]["traceparent"][0]
        .as_str()
        .map(|s| TraceParent::parse(s.as_bytes()).expect("valid"))
        .expect("the retry's traceparent");

    let client = TraceParent::parse(CLIENT_TRACE.as_bytes()).expect("valid");
    let trace = client.trace_id().to_bytes().to_vec();
    let spans = receiver
        .until(|got| got.iter().filter(|s| s.trace_id == trace).count() >= 3)
        .await;
    assert!(
        spans.iter().all(|s| s.trace_id == trace),
        "only the sampled request has spans: {spans:#?}"
    );
    let server: Vec<&Got> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    let clients: Vec<&Got> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    let [server] = server.as_slice() else {
        panic!("one SERVER span: {spans:#?}")
    };
    assert_eq!(server.service, "rrlb-under-test");
    assert_eq!(
        server.parent,
        id_of(&client),
        "the SERVER span's parent is the caller's span"
    );
    assert_eq!(server.name, "GET");
    assert_eq!(server.attr("http.request.method"), Some("GET"));
    assert_eq!(server.attr("url.path"), Some("/traced"));
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    assert_eq!(server.attr("network.protocol.version"), Some("1.1"));
    assert_eq!(server.attr("rrlb.backend"), Some("good"));
    assert_eq!(clients.len(), 2, "{spans:#?}");
    for c in &clients {
        assert_eq!(
            c.parent, server.span_id,
            "every attempt is a child of the SERVER span"
        );
    }
    let by_attempt = |n: &str| {
        clients
            .iter()
            .find(|c| c.attr("rrlb.attempt") == Some(n))
            .unwrap_or_else(|| panic!("attempt {n}: {clients:#?}"))
    };
    let (one, two) = (by_attempt("1"), by_attempt("2"));
    assert_eq!(one.attr("rrlb.backend"), Some("broken"));
    assert_eq!(one.attr("error.type"), Some("reset"));
    assert_eq!(two.attr("rrlb.backend"), Some("good"));
    assert_eq!(two.attr("http.response.status_code"), Some("200"));
    assert_eq!(two.attr("server.address"), Some("127.0.0.1"));
    // What each backend saw as its parent is that attempt's CLIENT span.
    assert_eq!(one.span_id, id_of(&first));
    assert_eq!(two.span_id, id_of(&second));
    drop(broken);
}
