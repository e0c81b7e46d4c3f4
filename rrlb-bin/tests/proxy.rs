//! The proxy listener: balancing, forwarding, header hygiene, request ids, limits, HTTP/2, metrics, bad
//! clients and graceful drain.

mod support;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::*;

/// Sends raw bytes and reads the answer's head (up to the blank line), or what came before the
/// connection closed.
async fn raw_head(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything (e.g. an over-long header).
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(HANG, read)
        .await
        .expect("the server neither answered nor closed");
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `bytes` (what a server sent after the HTTP/2 preface) hold a GOAWAY frame.
fn has_goaway(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        if bytes[3] == 0x7 {
            return true;
        }
        bytes = bytes.get(9 + len..).unwrap_or_default();
    }
    false
}

/// 1. Plain round robin over three echo backends is exact, and the body comes back unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_exact_and_bodies_round_trip() {
    let echoes = vec![echo("alpha").await, echo("beta").await, echo("gamma").await];
    let toml = backends_toml(&[
        ("alpha", &echoes[0].url(), 1),
        ("beta", &echoes[1].url(), 1),
        ("gamma", &echoes[2].url(), 1),
    ]);
    let h = Harness::builder().echoes(echoes).file(toml).start().await;

    let mut served = Vec::new();
    for i in 0..300 {
        let sent = json!({"n": i, "text": "h\u{e9}llo \u{1f980}", "nested": {"list": [1, 2.5, null, true]}}).to_string();
        let res = send(
            &h.client,
            Method::POST,
            &h.url(&format!("/items/{i}?q=1")),
            &[("content-type", "application/json")],
            sent.clone(),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.body, sent.as_bytes(), "the echoed body differs");
        assert_eq!(
            res.header("x-echo-service"),
            Some(res.backend()),
            "served by another backend than reported"
        );
        assert_eq!(res.header("content-type"), Some("application/json"));
        served.push(res.backend().to_owned());
    }
    // Strict rotation: every three consecutive answers come from the three backends.
    for (k, turn) in served.chunks(3).enumerate() {
        let mut turn = turn.to_vec();
        turn.sort();
        assert_eq!(turn, ["alpha", "beta", "gamma"], "turn {k}");
    }
    let expected = counts(&[("alpha", 100), ("beta", 100), ("gamma", 100)]);
    assert_eq!(
        tally(served.iter().map(String::as_str)),
        expected,
        "by x-rrlb-backend"
    );
    assert_eq!(
        h.request_counts().await,
        expected,
        "by /admin/metrics request_counts"
    );
    let metrics = h.admin_get("/admin/metrics").await.json();
    assert_eq!(metrics["total_requests"], 300);
    for b in metrics["backends"].as_array().expect("backends") {
        assert_eq!(b["requests"], 100, "{b}");
        assert_eq!(b["successes"], 100, "{b}");
        assert_eq!(b["failures"], 0, "{b}");
        assert_eq!(b["circuit"], "closed", "{b}");
        assert_eq!(b["healthy"], true, "{b}");
        assert!(b["latency_ms"]["p99"].as_f64().is_some(), "{b}");
    }
}

/// 2. Smooth weighted round robin: weights 5, 1, 1 give `a a b a c a a`, and exact proportions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_is_smooth_and_proportional() {
    let echoes = vec![echo("a").await, echo("b").await, echo("c").await];
    let args = [
        "--algorithm".to_owned(),
        "weighted-round-robin".to_owned(),
        "-b".to_owned(),
        format!("{}=5", echoes[0].url()),
        "-b".to_owned(),
        format!("{}=1", echoes[1].url()),
        "--backend".to_owned(),
        format!("{}=1", echoes[2].url()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Given on the command line, backends are named host:port.
    let names: Vec<String> = echoes.iter().map(|e| e.local_addr().to_string()).collect();
    let h = Harness::builder().echoes(echoes).args(&args).start().await;

    let mut order = Vec::new();
    for _ in 0..700 {
        let res = h.post("/", &json!({"w": 1})).await;
        assert_eq!(res.status, StatusCode::OK);
        order.push(
            res.header("x-echo-service")
                .expect("x-echo-service")
                .to_owned(),
        );
    }
    assert_eq!(
        order[..7],
        ["a", "a", "b", "a", "c", "a", "a"],
        "not the smooth sequence"
    );
    assert_eq!(
        tally(order.iter().map(String::as_str)),
        counts(&[("a", 500), ("b", 100), ("c", 100)])
    );
    // Names default to host:port when given on the command line.
    assert_eq!(
        h.request_counts().await,
        counts(&[(&names[0], 500), (&names[1], 100), (&names[2], 100)])
    );
}

/// 8. Bodies over `limits.max_body_bytes` get `413`, whether announced by Content-Length or chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let e = echo("a").await;
    let toml = format!(
        "{}[limits]\nmax_body_bytes = 1024\n",
        backends_toml(&[("a", &e.url(), 1)])
    );
    let h = Harness::builder().echoes(vec![e]).file(toml).start().await;

    // Exactly at the limit: forwarded.
    let exact = format!("{{\"p\":\"{}\"}}", "x".repeat(1024 - 8));
    assert_eq!(exact.len(), 1024);
    let res = send(
        &h.client,
        Method::POST,
        &h.url("/"),
        &[("content-type", "application/json")],
        exact.clone(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, exact.as_bytes());

    // One byte over, with Content-Length.
    let over = format!("{{\"p\":\"{}\"}}", "x".repeat(1025 - 8));
    let res = send(
        &h.client,
        Method::POST,
        &h.url("/"),
        &[("content-type", "application/json")],
        over.clone(),
    )
    .await;
    let body = assert_json_error(&res, 413);
    assert!(
        body["error"].as_str().unwrap_or_default().contains("1024"),
        "{body}"
    );
    assert!(
        res.header("x-rrlb-backend").is_none(),
        "a 413 must not reach a backend"
    );

    // Chunked, without any length announced.
    let mut chunked = b"POST /up HTTP/1.1\r\nhost: rrlb\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".to_vec();
    for part in over.as_bytes().chunks(100) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = raw_head(h.proxy, &chunked).await;
    assert!(
        head.starts_with("HTTP/1.1 413"),
        "chunked body over the limit: {head:?}"
    );
    assert!(
        head.to_ascii_lowercase().contains("x-request-id:"),
        "{head:?}"
    );

    assert_eq!(
        h.request_counts().await,
        counts(&[("a", 1)]),
        "only the accepted body reached the backend"
    );
    let metrics = h.admin_get("/metrics").await.text();
    assert!(
        metrics.contains("rrlb_rejected_total{reason=\"body_too_large\"} 2"),
        "{metrics}"
    );
}

/// 8. `[limits] rate_per_client` answers `429` with `retry-after` once the burst is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let e = echo("a").await;
    let toml = format!(
        "{}[limits]\nrate_per_client = 5\nburst = 5\n",
        backends_toml(&[("a", &e.url(), 1)])
    );
    let h = Harness::builder().echoes(vec![e]).file(toml).start().await;

    // The burst is there from the start.
    for i in 0..5 {
        let res = h.post("/", &json!({"i": i})).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "request {i} of the burst: {}",
            res.text()
        );
    }
    // Then the rate applies: requests come far faster than 5/s, so one is refused soon.
    let mut refused = None;
    for _ in 0..500 {
        let res = h.post("/", &json!({})).await;
        if res.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status, StatusCode::OK);
    }
    let res = refused.expect("no 429 after 500 requests at far over 5/s");
    assert_json_error(&res, 429);
    let retry: u64 = res
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("retry-after in seconds");
    assert!(retry >= 1, "retry-after {retry}");
    assert!(res.header("x-rrlb-backend").is_none());
    // The admin listener is not rate limited.
    for _ in 0..10 {
        assert_eq!(h.admin_get("/healthz").await.status, StatusCode::OK);
    }
    let metrics = h.admin_get("/metrics").await.text();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("rrlb_rejected_total{reason=\"rate_limit\"}") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}

/// 8. HTTP/2 with prior knowledge (h2c) on the proxy listener, several streams on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_is_served() {
    let echoes = vec![echo("a").await, echo("b").await];
    let toml = backends_toml(&[("a", &echoes[0].url(), 1), ("b", &echoes[1].url(), 1)]);
    let h = Harness::builder().echoes(echoes).file(toml).start().await;

    let stream = TcpStream::connect(h.proxy).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut streams = Vec::new();
    for i in 0..6 {
        let mut sender = sender.clone();
        let uri = h.url(&format!("/h2/{i}"));
        streams.push(tokio::spawn(async move {
            let body = json!({"stream": i}).to_string();
            let req = Request::post(uri)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.clone())))
                .expect("request");
            let res = sender.send_request(req).await.expect("h2 request");
            let version = res.version();
            let status = res.status();
            let backend = res.headers().get("x-rrlb-backend").cloned();
            let got = res.into_body().collect().await.expect("h2 body").to_bytes();
            (version, status, backend, got, body)
        }));
    }
    let mut backends = Vec::new();
    for s in streams {
        let (version, status, backend, got, sent) = tokio::time::timeout(HANG, s)
            .await
            .expect("h2 hang")
            .expect("task");
        assert_eq!(version, Version::HTTP_2);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got, sent.as_bytes());
        backends.push(
            backend
                .expect("x-rrlb-backend")
                .to_str()
                .expect("ascii")
                .to_owned(),
        );
    }
    assert_eq!(
        tally(backends.iter().map(String::as_str)),
        counts(&[("a", 3), ("b", 3)])
    );
    drop(sender);
    conn.abort();
}

/// 8. Request ids: a sane one is kept end to end; an absent or insane one is replaced by a UUID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_kept_or_generated() {
    let backend = TestBackend::start().await;
    let h = Harness::builder()
        .args(&["-b", &backend.url()])
        .start()
        .await;

    let seen = |res: &Resp| -> String {
        let v = res.json();
        let ids = v["headers"]["x-request-id"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(ids.len(), 1, "the backend got {ids:?}");
        ids[0].as_str().expect("str").to_owned()
    };

    let sane = "client-id_42.trace:1/2+3=@";
    let res = send(
        &h.client,
        Method::GET,
        &h.url("/id"),
        &[("x-request-id", sane)],
        Bytes::new(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("x-request-id"),
        Some(sane),
        "returned to the client"
    );
    assert_eq!(seen(&res), sane, "forwarded to the backend");

    let too_long = "a".repeat(129);
    for insane in ["has space", "semi;colon", "\"quoted\"", too_long.as_str()] {
        let res = send(
            &h.client,
            Method::GET,
            &h.url("/id"),
            &[("x-request-id", insane)],
            Bytes::new(),
        )
        .await;
        let id = res.header("x-request-id").expect("x-request-id").to_owned();
        assert_ne!(id, insane);
        assert!(is_uuid_v4(&id), "generated id {id:?} for {insane:?}");
        assert_eq!(
            seen(&res),
            id,
            "the backend must get the id the client gets"
        );
    }

    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let res = send(&h.client, Method::GET, &h.url("/id"), &[], Bytes::new()).await;
        let id = res.header("x-request-id").expect("x-request-id").to_owned();
        assert!(is_uuid_v4(&id), "{id:?}");
        assert_eq!(seen(&res), id);
        ids.insert(id);
    }
    assert_eq!(ids.len(), 20, "generated ids repeat");
}

/// 8. Hop-by-hop headers (also those named by `connection`) never reach the backend; the
/// `x-forwarded-*` headers do; methods, paths and queries are forwarded under the backend's path prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_strips_hop_by_hop_and_sets_forwarded_headers() {
    let backend = TestBackend::start().await;
    let prefixed = format!("{}/api", backend.url());
    let h = Harness::builder().args(&["-b", &prefixed]).start().await;

    let res = send(
        &h.client,
        Method::POST,
        &h.url("/things/7?x=1&y=two"),
        &[
            ("host", "client.example:8080"),
            ("connection", "x-secret, x-other"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-kept", "yes"),
            ("authorization", "Bearer end-to-end"),
            ("content-type", "application/json"),
        ],
        "{\"k\":1}",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let got = res.json();
    let headers = got["headers"].as_object().expect("headers");
    for hop in [
        "connection",
        "x-secret",
        "x-other",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(
            !headers.contains_key(hop),
            "hop-by-hop {hop} reached the backend: {got}"
        );
    }
    let one = |name: &str| -> String {
        let v = headers
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing at the backend: {got}"));
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{name}: {v}");
        v[0].as_str().expect("str").to_owned()
    };
    assert_eq!(one("x-kept"), "yes");
    assert_eq!(one("authorization"), "Bearer end-to-end");
    assert_eq!(one("x-forwarded-for"), "10.0.0.1, 127.0.0.1");
    assert_eq!(one("x-forwarded-proto"), "http");
    assert_eq!(one("x-forwarded-host"), "client.example:8080");
    assert_eq!(
        one("host"),
        backend.addr().to_string(),
        "host is the backend's authority"
    );
    assert_eq!(
        one("x-request-id"),
        res.header("x-request-id").expect("x-request-id")
    );
    assert_eq!(one("content-length"), "7");
    assert_eq!(got["method"], "POST");
    assert_eq!(got["path"], "/api/things/7?x=1&y=two");
    assert_eq!(got["body_len"], 7);
    assert_eq!(
        res.header("x-rrlb-backend"),
        Some(backend.addr().to_string().as_str())
    );
    assert_eq!(
        res.header("x-test-backend"),
        Some("1"),
        "backend response headers are passed on"
    );

    // Every method is forwarded, with its path.
    for method in [
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::HEAD,
    ] {
        let res = send(&h.client, method.clone(), &h.url("/m"), &[], Bytes::new()).await;
        assert_eq!(res.status, StatusCode::OK, "{method}");
        if method != Method::HEAD {
            let got = res.json();
            assert_eq!(got["method"], method.as_str());
            assert_eq!(got["path"], "/api/m");
            assert!(got["headers"].get("x-forwarded-for").is_some());
        }
    }
    // Without a prior x-forwarded-for, the client's address alone.
    let res = send(&h.client, Method::GET, &h.url("/"), &[], Bytes::new()).await;
    assert_eq!(
        res.json()["headers"]["x-forwarded-for"],
        json!(["127.0.0.1"])
    );
    assert_eq!(res.json()["path"], "/api/");
}

/// 9. Graceful drain: a request in flight when shutdown begins completes; new connections are refused;
/// `run` returns `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight() {
    let backend = TestBackend::start().await;
    let mut h = Harness::builder()
        .args(&["-b", &backend.url()])
        .start()
        .await;

    let client = h.client.clone();
    let url = h.url("/slow/hold");
    let in_flight = tokio::spawn(async move {
        send(
            &client,
            Method::POST,
            &url,
            &[("content-type", "application/json")],
            "{\"x\":1}",
        )
        .await
    });
    backend.wait_held(1).await;
    h.shutdown();

    // The listener closes: new connections are refused.
    let proxy = h.proxy;
    eventually("the proxy listener refuses connections", || async move {
        TcpStream::connect(proxy).await.is_err().then_some(())
    })
    .await;
    assert!(!in_flight.is_finished(), "the request in flight was cut");

    backend.release();
    let res = tokio::time::timeout(HANG, in_flight)
        .await
        .expect("hang")
        .expect("task");
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["path"], "/slow/hold");
    h.join().await.expect("run() returns Ok after draining");
    assert!(TcpStream::connect(proxy).await.is_err());
}

/// 11. `GET /metrics` exposes every metric `docs/operations.md` lists (and `docs/api-spec.yml` describes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_cover_requests_backends_retries_and_rejections() {
    let e = echo("live").await;
    let dead = free_addr();
    let toml = format!(
        "{}[health]\nenabled = false\n[limits]\nmax_body_bytes = 64\n",
        backends_toml(&[
            ("live", &e.url(), 1),
            ("dead", &format!("http://{dead}"), 1)
        ])
    );
    let h = Harness::builder().echoes(vec![e]).file(toml).start().await;

    // The dead backend's turns are retried on the live one.
    for _ in 0..4 {
        assert_eq!(h.hit().await, "live");
    }
    let res = h.post("/", &json!({"big": "x".repeat(100)})).await;
    assert_json_error(&res, 413);

    let res = h.admin_get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.header("content-type")
            .unwrap_or_default()
            .contains("text"),
        "{:?}",
        res.headers
    );
    let text = res.text();
    let value = |series: &str| -> f64 {
        metric(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value("rrlb_requests_total{backend=\"live\",code=\"200\"}"),
        4.0
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("rrlb_request_duration_seconds_bucket{")
                && l.contains("backend=\"live\""))
    );
    assert_eq!(
        value("rrlb_request_duration_seconds_count{backend=\"live\"}"),
        4.0
    );
    assert_eq!(value("rrlb_backend_healthy{backend=\"live\"}"), 1.0);
    assert_eq!(
        value("rrlb_backend_healthy{backend=\"dead\"}"),
        1.0,
        "no active checks: counted healthy"
    );
    assert_eq!(value("rrlb_circuit_state{backend=\"live\"}"), 0.0);
    assert!(text.contains("rrlb_circuit_state{backend=\"dead\"}"));
    assert_eq!(value("rrlb_in_flight{backend=\"live\"}"), 0.0);
    assert!(value("rrlb_retries_total") >= 1.0, "{text}");
    assert_eq!(value("rrlb_rejected_total{reason=\"body_too_large\"}"), 1.0);
    for ty in [
        "# TYPE rrlb_requests counter",
        "# TYPE rrlb_request_duration_seconds histogram",
        "# TYPE rrlb_backend_healthy gauge",
        "# TYPE rrlb_circuit_state gauge",
        "# TYPE rrlb_in_flight gauge",
        "# TYPE rrlb_retries counter",
        "# TYPE rrlb_rejected counter",
    ] {
        assert!(text.contains(ty), "no {ty:?} in\n{text}");
    }
}

/// 12. Malformed requests get `400` (or a closed connection) and never take the proxy down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_do_not_take_the_proxy_down() {
    let e = echo("a").await;
    let toml = format!(
        "{}[timeouts]\nheader_read = \"1s\"\n",
        backends_toml(&[("a", &e.url(), 1)])
    );
    let h = Harness::builder().echoes(vec![e]).file(toml).start().await;

    let huge_header = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(600_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GARBAGE\x00\x01\x02 nonsense\r\n\r\n".to_vec()),
        ("bad version", b"GET / HTTP/9.9\r\nhost: x\r\n\r\n".to_vec()),
        ("bad content-length", b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n".to_vec()),
        (
            "two content-lengths",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec(),
        ),
        (
            "bad chunk",
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nZZZ\r\nnot a chunk\r\n\r\n".to_vec(),
        ),
        ("tls on plain text", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".repeat(8)),
        ("broken h2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec()),
        ("huge header", huge_header.into_bytes()),
        ("slowloris", b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: 1\r\n".to_vec()),
    ];
    let n = cases.len() as u64;
    for (what, bytes) in cases {
        let head = raw_head(h.proxy, &bytes).await;
        let status = head.get(9..12).unwrap_or_default();
        // An HTTP/1 client error, a closed connection, or (to a broken HTTP/2 client) a GOAWAY frame.
        let http1_error =
            head.starts_with("HTTP/1.1 4") && ["400", "408", "413", "414", "431"].contains(&status);
        let goaway = what.contains("h2") && has_goaway(head.as_bytes());
        assert!(head.is_empty() || http1_error || goaway, "{what}: {head:?}");
        // The proxy still serves (on a new connection: with a 1 s header_read, the proxy may close an
        // idle pooled one just as it is reused).
        let res = send(
            &client(),
            Method::POST,
            &h.url("/"),
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "after {what}: {}", res.text());
    }
    // A body that breaks off mid-chunk gets rrlb's own JSON 400 when the head was fine.
    let head = raw_head(
        h.proxy,
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":1}\r\nQQ\r\n",
    )
    .await;
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 400"),
        "{head:?}"
    );
    assert_eq!(
        h.request_counts().await,
        counts(&[("a", n)]),
        "no malformed request reached the backend"
    );
}

/// Smoke check of the JSON error helper against a real 502: no backend can be connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_backends_give_502() {
    let dead1 = free_addr();
    let dead2 = free_addr();
    let toml = format!(
        "{}[health]\nenabled = false\n",
        backends_toml(&[
            ("d1", &format!("http://{dead1}"), 1),
            ("d2", &format!("http://{dead2}"), 1)
        ])
    );
    let h = Harness::builder().file(toml).start().await;
    let res = h.post("/", &json!({})).await;
    let body = assert_json_error(&res, 502);
    let backend = res.backend().to_owned();
    assert!(["d1", "d2"].contains(&backend.as_str()), "{backend}");
    assert!(body["error"].is_string());
    // The message carries the whole error chain: the balancer's level, then the failed step and its cause.
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("could not connect to backend") && error.contains(": connect: "),
        "{error}"
    );
    // Both were tried: one attempt, one retry on the other.
    let counts = h.request_counts().await;
    assert_eq!(counts.values().sum::<u64>(), 2, "{counts:?}");
}
