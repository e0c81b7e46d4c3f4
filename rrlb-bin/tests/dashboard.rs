//! The live dashboard on the admin listener: the page, and the Server-Sent Events stream that feeds it.
//! (The page drawn in a real browser: `tests/dashboard_browser.rs`.)

mod support;

use std::collections::BTreeSet;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use support::*;

const TOKEN: &str = "dashb0ard-T0ken";

/// Three echo backends `a`, `b`, `c`, no active checks, an admin token.
async fn three() -> Harness {
    let echoes = vec![echo("a").await, echo("b").await, echo("c").await];
    let toml = format!(
        "{}[health]\nenabled = false\n",
        backends_toml(&[
            ("a", &echoes[0].url(), 1),
            ("b", &echoes[1].url(), 1),
            ("c", &echoes[2].url(), 2),
        ])
    );
    Harness::builder()
        .echoes(echoes)
        .file(toml)
        .args(&["--admin-token", TOKEN])
        .start()
        .await
}

/// An open `GET /admin/events` answer, read event by event.
struct Events {
    body: Incoming,
    buf: String,
}

impl Events {
    /// Opens the stream, without a token; asserts the SSE headers.
    async fn open(h: &Harness) -> Self {
        // A client of its own: a stream is one connection, closed when the answer is dropped.
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let req = Request::get(h.admin_url("/admin/events"))
            .body(Empty::new())
            .expect("request");
        let res = tokio::time::timeout(HANG, client.request(req))
            .await
            .expect("no answer to GET /admin/events")
            .expect("GET /admin/events");
        assert_eq!(res.status(), StatusCode::OK);
        let header = |name| res.headers().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("content-type"), Some("text/event-stream"));
        assert_eq!(header("cache-control"), Some("no-cache"));
        Self {
            body: res.into_body(),
            buf: String::new(),
        }
    }

    /// The next chunk of the stream: `Some(bytes)`, or `None` at its (clean) end.
    async fn chunk(&mut self) -> Option<Bytes> {
        loop {
            let frame = tokio::time::timeout(HANG, self.body.frame())
                .await
                .expect("the stream stalled")?
                .expect("the stream broke");
            if let Ok(data) = frame.into_data() {
                return Some(data);
            }
        }
    }

    /// The next event's `data` as JSON (events without data, such as the opening `retry:`, are skipped).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let data = data.join("\n");
                return serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data:?}"));
            }
            let chunk = self.chunk().await.expect("the stream ended early");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 stream"));
        }
    }
}

fn names(snapshot: &Value) -> BTreeSet<String> {
    snapshot["backends"]
        .as_array()
        .unwrap_or_else(|| panic!("no backends in {snapshot}"))
        .iter()
        .map(|b| b["name"].as_str().expect("name").to_owned())
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

async fn open_streams(h: &Harness) -> f64 {
    let text = h.admin_get("/metrics").await.text();
    metric(&text, "rrlb_admin_event_streams").expect("rrlb_admin_event_streams")
}

/// `GET /` and `GET /admin/dashboard` serve the same self-contained HTML page, without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_served_self_contained() {
    let h = three().await;
    let root = h.admin_get("/").await;
    let page = h.admin_get("/admin/dashboard").await;
    for res in [&root, &page] {
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        let csp = res.header("content-security-policy").expect("a CSP");
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
    }
    assert_eq!(root.body, page.body);
    let html = page.text();
    assert!(html.to_ascii_lowercase().starts_with("<!doctype html>"));
    assert!(html.contains("/admin/events"), "the page reads the stream");
    // Nothing from elsewhere: no absolute or protocol-relative URL anywhere (src, href, url(), fetch).
    for external in ["http://", "https://", "src=\"//", "href=\"//", "url(//"] {
        assert!(!html.contains(external), "{external} in the page");
    }
    // HEAD too, like every GET.
    let head = h.admin_call(Method::HEAD, "/", None, None).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
}

/// The stream needs no token (a token is configured), and each event is the `/admin/metrics` snapshot with
/// every backend, plus `time`, later each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_metrics_snapshots_with_time_and_every_backend() {
    let h = three().await;
    let served = h.hits(8).await;
    assert_eq!(served.values().sum::<u64>(), 8);
    let metrics = h.admin_get("/admin/metrics").await.json();

    let mut events = Events::open(&h).await;
    let first = events.next().await;
    let second = events.next().await;
    let mut times = Vec::new();
    for event in [&first, &second] {
        let mut fields = keys(event);
        assert!(fields.remove("time"), "no time in {event}");
        assert_eq!(fields, keys(&metrics), "the fields of /admin/metrics");
        assert_eq!(names(event), ["a", "b", "c"].map(String::from).into());
        assert_eq!(event["total_requests"], 8, "{event}");
        for b in event["backends"].as_array().expect("backends") {
            assert_eq!(keys(b), keys(&metrics["backends"][0]), "{b}");
        }
        let time = event["time"].as_str().expect("time is a string");
        let at = humantime::parse_rfc3339(time).unwrap_or_else(|e| panic!("{time}: {e}"));
        assert!(at <= SystemTime::now(), "{time} is in the future");
        times.push(at);
    }
    assert!(times[0] < times[1], "{times:?}");
    assert_eq!(first["request_counts"], metrics["request_counts"]);
}

/// A backend added while the stream is open shows up in a later event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_backends_that_come_and_go() {
    let h = three().await;
    let d = echo("d").await;
    let mut events = Events::open(&h).await;
    assert_eq!(names(&events.next().await).len(), 3);
    let auth = format!("Bearer {TOKEN}");
    let res = send(
        &h.client,
        Method::POST,
        &h.admin_url("/admin/backends"),
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        serde_json::json!({"url": d.url(), "name": "d"}).to_string(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    // Events arrive once a second; the first after the add lists `d`.
    let mut seen = None;
    for _ in 0..MAX_POLLS {
        let event = events.next().await;
        if names(&event).contains("d") {
            seen = Some(event);
            break;
        }
    }
    let event = seen.expect("d never appeared");
    assert_eq!(names(&event), ["a", "b", "c", "d"].map(String::from).into());
}

/// When the client goes away, its stream ends (the open-streams gauge goes back to zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_ends_when_the_client_goes_away() {
    let h = three().await;
    assert_eq!(open_streams(&h).await, 0.0);
    let mut events = Events::open(&h).await;
    events.next().await;
    assert_eq!(open_streams(&h).await, 1.0);
    drop(events);
    let h = &h;
    eventually("the stream of a gone client ends", || async move {
        (open_streams(h).await == 0.0).then_some(())
    })
    .await;
}

/// On shutdown the stream ends cleanly (its chunked body is terminated) and does not hold rrlb up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_ends_cleanly_on_shutdown() {
    let mut h = three().await;
    let mut events = Events::open(&h).await;
    events.next().await;
    h.shutdown();
    // Whatever was in flight, then the end of the body (no error: `chunk` panics on a broken stream).
    while events.chunk().await.is_some() {}
    h.join().await.expect("rrlb::run");
}

/// At most 64 event streams are open at once; the next request gets a 503 with a JSON reason and
/// `retry-after`, and a stream that closes makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited() {
    const MAX_STREAMS: usize = 64;
    let h = three().await;
    let mut open = Vec::with_capacity(MAX_STREAMS);
    for _ in 0..MAX_STREAMS {
        let mut events = Events::open(&h).await;
        events.next().await;
        open.push(events);
    }
    assert_eq!(open_streams(&h).await, MAX_STREAMS as f64);
    let refused = h.admin_get("/admin/events").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert!(
        refused.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("64 event streams")),
        "{}",
        refused.text()
    );
    // The refusal was not counted as an open stream.
    assert_eq!(open_streams(&h).await, MAX_STREAMS as f64);
    open.pop();
    let h = &h;
    eventually("a closed stream makes room", || async move {
        (open_streams(h).await < MAX_STREAMS as f64).then_some(())
    })
    .await;
    Events::open(h).await.next().await;
}
