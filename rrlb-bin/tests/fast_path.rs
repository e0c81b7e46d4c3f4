//! The fast HTTP/1.1 path against a scripted raw backend: every way a backend may frame its answer (length,
//! chunked, until close, none, interim 1xx), long bodies, pooled connections the backend closed, pipelined
//! requests, the exact head a backend receives, and the hand-over to hyper in the middle of a connection.

mod support;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::scripted::{RawBackend, RawRequest, chunked, long_body, read_request};
use support::wire::Conn;
use support::*;

/// A backend that answers by path, speaking raw HTTP/1.1 (or worse) on purpose ([`serve_scripted`]). Stopped
/// when dropped.
async fn scripted() -> RawBackend {
    RawBackend::start(serve_scripted).await
}

/// One backend connection: requests in, scripted answers out, until an answer closes it.
async fn serve_scripted(mut stream: TcpStream) {
    let mut buf = Vec::new();
    while let Some(RawRequest { method, path, head }) = read_request(&mut stream, &mut buf).await {
        let (answer, close): (Vec<u8>, bool) = match path.as_str() {
            "/health" => (ok(b"{}"), false),
            "/chunked" => (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunked\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n".to_vec(),
                false,
            ),
            "/until-close" => (
                b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nall of this, until the close".to_vec(),
                true,
            ),
            "/long" => {
                let body = long_body();
                let mut a = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
                a.extend_from_slice(&body);
                (a, false)
            }
            "/long-chunked" => {
                let mut a = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                a.extend_from_slice(&chunked(&long_body(), 100_000));
                (a, false)
            }
            "/head" if method == "HEAD" => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n".to_vec(),
                false,
            ),
            "/no-content" => (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), false),
            "/early-hints" => (
                b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal".to_vec(),
                false,
            ),
            // Keep-alive on the wire, but the connection is closed right after: the next request the
            // proxy sends on it finds it gone.
            "/then-close" => (ok(b"closing"), true),
            _ => (ok(head.as_bytes()), false),
        };
        if stream.write_all(&answer).await.is_err() || close {
            return;
        }
    }
}

/// A 200 with a content-length body.
fn ok(body: &[u8]) -> Vec<u8> {
    let mut a = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    a.extend_from_slice(body);
    a
}

async fn harness(backend: &RawBackend, url_suffix: &str) -> Harness {
    let url = format!("{}{url_suffix}", backend.url());
    Harness::builder()
        .file(backends_toml(&[("s", &url, 1)]))
        .start()
        .await
}

async fn get(h: &Harness, method: Method, path: &str) -> Resp {
    send(&h.client, method, &h.url(path), &[], Bytes::new()).await
}

/// Every framing a backend may use reaches the client intact, and the client's connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_framing_is_relayed() {
    let b = scripted().await;
    let h = harness(&b, "").await;

    let res = get(&h, Method::GET, "/chunked").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "hello world");
    assert_eq!(res.header("x-kind"), Some("chunked"));
    assert_eq!(res.backend(), "s");

    let res = get(&h, Method::GET, "/until-close").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "all of this, until the close");
    assert_eq!(
        res.header("transfer-encoding"),
        Some("chunked"),
        "re-framed for a keep-alive client"
    );

    for path in ["/long", "/long-chunked"] {
        let res = get(&h, Method::GET, path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert!(res.body == long_body(), "{path}: {} bytes", res.body.len());
    }

    let res = get(&h, Method::HEAD, "/head").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-length"), Some("42"));
    assert!(res.body.is_empty());

    let res = get(&h, Method::GET, "/no-content").await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());

    let res = get(&h, Method::GET, "/early-hints").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "final");

    assert_eq!(
        h.request_counts().await,
        counts(&[("s", 7)]),
        "every answer counted once"
    );
}

/// A pooled connection the backend closed is noticed on reuse and the request goes out again on a new one:
/// no client sees an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_closed_by_the_backend_are_replaced() {
    let b = scripted().await;
    let h = harness(&b, "").await;
    let before = b.connections();
    for i in 0..5 {
        let res = get(&h, Method::GET, "/then-close").await;
        assert_eq!(res.status, StatusCode::OK, "request {i}: {}", res.text());
        assert_eq!(res.text(), "closing");
    }
    assert!(
        b.connections() - before >= 5,
        "each answer closed its connection, so each request needed a new one"
    );
    let metrics = h.admin_get("/admin/metrics").await.json();
    assert_eq!(metrics["backends"][0]["failures"], 0, "{metrics}");
}

/// The backend receives the request line with its URL's path prefixed, its own `host`, the forwarded headers,
/// a `content-length` for the body, and none of the hop-by-hop headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_gets_a_clean_head() {
    let b = scripted().await;
    let h = harness(&b, "/prefix").await;
    let res = send(
        &h.client,
        Method::POST,
        &h.url("/echo?x=1"),
        &[
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-request-id", "req-42"),
            ("x-end", "kept"),
        ],
        "{\"a\":1}",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("x-request-id"), Some("req-42"));
    let head = res.text().to_ascii_lowercase();
    assert!(
        head.starts_with("post /prefix/echo?x=1 http/1.1\r\n"),
        "{head}"
    );
    let addr = b.addr().to_string();
    for line in [
        format!("host: {addr}"),
        "x-forwarded-for: 203.0.113.7, 127.0.0.1".to_owned(),
        "x-forwarded-proto: http".to_owned(),
        format!("x-forwarded-host: {}", h.proxy),
        "x-request-id: req-42".to_owned(),
        "content-length: 7".to_owned(),
        "x-end: kept".to_owned(),
    ] {
        assert!(
            head.contains(&format!("\r\n{line}\r\n")),
            "{line:?} in {head}"
        );
    }
    for gone in ["x-hop", "connection:", "te:", "keep-alive"] {
        assert!(!head.contains(&format!("\r\n{gone}")), "{gone:?} in {head}");
    }
    assert_eq!(head.matches("\r\nhost:").count(), 1, "{head}");
}

/// Reads one whole answer from `conn`, which must be `content-length` framed; returns its head and body.
async fn read_answer(conn: &mut Conn) -> (String, Vec<u8>) {
    let a = conn
        .answer(false)
        .await
        .into_answer()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(a.header("content-length").is_some(), "{}", a.describe());
    (a.head, a.body)
}

/// Two requests sent in one write are answered in order; an HTTP/1.0 request on the same connection is then
/// served by the hyper path, and a chunked request body too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_and_the_hand_over_to_hyper() {
    let b = scripted().await;
    let h = harness(&b, "").await;
    let mut conn = Conn::connect(h.proxy, HANG).await;
    conn.try_send(
            b"POST /first HTTP/1.1\r\nhost: p\r\ncontent-length: 3\r\n\r\nabcGET /second HTTP/1.1\r\nhost: p\r\n\r\n",
        )
        .await
        .expect("write");
    let (head1, body1) = read_answer(&mut conn).await;
    let (head2, body2) = read_answer(&mut conn).await;
    assert!(head1.starts_with("HTTP/1.1 200"), "{head1}");
    assert!(String::from_utf8_lossy(&body1).starts_with("POST /first "));
    assert!(head2.starts_with("HTTP/1.1 200"), "{head2}");
    assert!(String::from_utf8_lossy(&body2).starts_with("GET /second "));
    assert!(head1.contains("x-rrlb-backend: s\r\n"), "{head1}");

    conn.try_send(b"GET /third HTTP/1.0\r\nhost: p\r\nconnection: keep-alive\r\n\r\n")
        .await
        .expect("write");
    let (head3, body3) = read_answer(&mut conn).await;
    assert!(head3.contains(" 200 OK\r\n"), "{head3}");
    assert!(
        head3.to_ascii_lowercase().contains("x-rrlb-backend: s\r\n"),
        "{head3}"
    );
    assert!(String::from_utf8_lossy(&body3).starts_with("GET /third HTTP/1.1"));

    let mut chunked = Conn::connect(h.proxy, HANG).await;
    chunked
        .try_send(b"POST /fourth HTTP/1.1\r\nhost: p\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        .await
        .expect("write");
    let (head4, body4) = read_answer(&mut chunked).await;
    assert!(head4.starts_with("HTTP/1.1 200"), "{head4}");
    let body4 = String::from_utf8_lossy(&body4).to_ascii_lowercase();
    assert!(body4.contains("\r\ncontent-length: 2\r\n"), "{body4}");
    assert_eq!(h.request_counts().await, counts(&[("s", 4)]));
}

/// A body over the limit is answered `413` while the client is still sending it, and the answer is not lost to
/// a reset: the proxy closes its side and reads the rest of the body away before it lets go of the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_reaches_a_client_still_sending_its_body() {
    let b = scripted().await;
    let toml = format!(
        "{}[health]\nenabled = false\n[limits]\nmax_body_bytes = 64\n",
        backends_toml(&[("s", &b.url(), 1)])
    );
    let h = Harness::builder().file(toml).start().await;
    let body_len = 4 * 1024 * 1024;
    let stream = TcpStream::connect(h.proxy).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let sender = tokio::spawn(async move {
        let head =
            format!("POST /upload HTTP/1.1\r\nhost: p\r\ncontent-length: {body_len}\r\n\r\n");
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..body_len / chunk.len() {
            write.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    // The answer is read only once the client has sent (or failed to send) its whole body: by then a proxy that
    // closed with the body unread has reset the connection.
    let sent = tokio::time::timeout(HANG, sender)
        .await
        .expect("the client could send its body or learn it cannot");
    let mut answer = Vec::new();
    let got = tokio::time::timeout(HANG, read.read_to_end(&mut answer))
        .await
        .expect("the proxy closed the connection in time");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        got.is_ok(),
        "the answer was cut by a reset: {got:?}, read {text:?}"
    );
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(
        matches!(sent, Ok(Ok(()))),
        "the proxy read the body away: {sent:?}"
    );
    assert_eq!(b.connections(), 0, "nothing reached the backend");
}

/// A request head that is not HTTP/1 gets rrlb's JSON `400` (with a request id), is counted as rejected, and
/// the connection is closed; an HTTP/2 preface still reaches hyper's h2c server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heads_get_a_json_400() {
    let b = scripted().await;
    let h = harness(&b, "").await;
    for raw in [
        &b"GARBAGE\x00\x01 nonsense\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(h.proxy).await.expect("connect");
        stream.write_all(raw).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(HANG, stream.read_to_end(&mut answer))
            .await
            .expect("the proxy closed the connection in time")
            .expect("read");
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
        assert!(head.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert!(
            json["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("malformed request")),
            "{json}"
        );
        assert!(
            is_uuid_v4(json["request_id"].as_str().unwrap_or_default()),
            "{json}"
        );
    }
    let text = h.admin_get("/metrics").await.text();
    assert_eq!(
        metric(&text, r#"rrlb_rejected_total{reason="bad_request"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"rrlb_requests_total{backend="s",code="200"}"#),
        None,
        "nothing was forwarded: {text}"
    );
}
