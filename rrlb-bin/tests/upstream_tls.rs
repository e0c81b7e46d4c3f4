//! `https://` backends end to end: an in-process rrlb in front of TLS echo backends whose certificates are made
//! here (rcgen), with each backend's TLS client settings in the configuration file (`[upstream_tls]`,
//! `[backends.tls]`). Both request paths: the fast path (an HTTP/1.1 client) and the hyper path (an HTTP/1.0
//! client).

mod support;

use http::{Method, StatusCode};
use support::tls::{Pki, TlsEcho};
use support::wire::Conn;
use support::{Harness, assert_json_error, metric, send};

/// A configuration with one backend `b` at `url` (with `own`, its `[backends.tls]` keys, when not empty),
/// `upstream` as the `[upstream_tls]` keys, and no health checks (their probes are not the subject).
fn config(url: &str, own: &str, upstream: &str) -> String {
    let own = if own.is_empty() {
        String::new()
    } else {
        format!("tls = {{ {own} }}\n")
    };
    format!(
        "[[backends]]\nname = \"b\"\nurl = \"{url}\"\n{own}\n[health]\nenabled = false\n\n[upstream_tls]\n{upstream}\n"
    )
}

/// A TOML string of a path.
fn path(p: &std::path::Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// The private CA as extra roots, as `[upstream_tls]` keys.
fn with_ca(pki: &Pki) -> String {
    format!("ca = {}\n", path(&pki.ca_file))
}

async fn start(url: &str, upstream: &str) -> Harness {
    start_with(url, "", upstream).await
}

async fn start_with(url: &str, own: &str, upstream: &str) -> Harness {
    Harness::builder()
        .file(config(url, own, upstream))
        .start()
        .await
}

/// POSTs `body` through rrlb's fast path (HTTP/1.1).
async fn post(h: &Harness, body: &'static str) -> support::Resp {
    send(&h.client, Method::POST, &h.url("/echo"), &[], body).await
}

/// POSTs `body` as HTTP/1.0 (the hyper path); the answer as read.
async fn post_http10(h: &Harness, body: &str) -> support::wire::Answer {
    let mut conn = Conn::open(h.proxy).await;
    let request = format!(
        "POST /echo HTTP/1.0\r\nhost: rrlb\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.send(request.as_bytes()).await;
    conn.answer(false)
        .await
        .into_answer()
        .unwrap_or_else(|e| panic!("HTTP/1.0 answer: {e}"))
}

#[tokio::test]
async fn a_private_ca_backend_answers_on_both_request_paths() {
    let pki = Pki::new();
    let backend = TlsEcho::start(&pki.issue(&["127.0.0.1", "localhost"]), None).await;
    let h = start(&backend.url(), &with_ca(&pki)).await;

    let res = post(&h, "hello over tls").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "hello over tls");
    assert_eq!(res.backend(), "b");

    let res = post_http10(&h, "and again, as HTTP/1.0").await;
    assert_eq!(res.status, 200, "{}", res.describe());
    assert_eq!(res.body, b"and again, as HTTP/1.0");
}

#[tokio::test]
async fn without_the_private_ca_the_answer_is_a_502_naming_the_certificate_problem() {
    let pki = Pki::new();
    let backend = TlsEcho::start(&pki.issue(&["127.0.0.1"]), None).await;
    let h = start(&backend.url(), "").await;
    let res = post(&h, "refused").await;
    let body = assert_json_error(&res, 502);
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("TLS handshake") && error.contains("invalid peer certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn mtls_works_with_the_client_certificate_and_fails_without() {
    let pki = Pki::new();
    let server = pki.issue(&["127.0.0.1"]);
    let client = pki.issue(&["rrlb-client.test"]);
    let backend = TlsEcho::start(&server, Some(&pki)).await;

    let with_cert = format!(
        "{}cert = {}\nkey = {}\n",
        with_ca(&pki),
        path(&client.cert_file),
        path(&client.key_file)
    );
    let h = start(&backend.url(), &with_cert).await;
    let res = post(&h, "with a client certificate").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "with a client certificate");
    drop(h);

    let h = start(&backend.url(), &with_ca(&pki)).await;
    let res = post(&h, "without one").await;
    let body = assert_json_error(&res, 502);
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.to_ascii_lowercase().contains("certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn server_name_overrides_the_name_sent_and_verified() {
    let pki = Pki::new();
    let backend = TlsEcho::start(&pki.issue(&["backend.test"]), None).await;

    // The URL's host (127.0.0.1) is not in the certificate...
    let h = start(&backend.url(), &with_ca(&pki)).await;
    assert_json_error(&post(&h, "by address").await, 502);
    drop(h);

    // ... the overriding name is.
    let named = format!("{}server_name = \"backend.test\"\n", with_ca(&pki));
    let h = start(&backend.url(), &named).await;
    let res = post(&h, "by name").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "by name");
}

#[tokio::test]
async fn insecure_skip_verify_is_per_backend() {
    let pki = Pki::new();
    let backend = TlsEcho::start(&pki.self_signed(&["127.0.0.1"]), None).await;
    let h = start_with(&backend.url(), "insecure_skip_verify = true", "").await;
    let res = post(&h, "self-signed").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "self-signed");
    drop(h);

    // Without it (another backend's setting does not apply to `b`), the certificate is verified.
    let h = start(&backend.url(), "").await;
    assert_json_error(&post(&h, "verified").await, 502);
}

/// Sequential requests on one serving thread (this test's current-thread runtime, rrlb with no workers) reuse
/// the pooled TLS connection: one handshake for all of them.
#[tokio::test]
async fn pooled_tls_connections_are_reused() {
    let pki = Pki::new();
    let backend = TlsEcho::start(&pki.issue(&["127.0.0.1"]), None).await;
    let h = start(&backend.url(), &with_ca(&pki)).await;
    for i in 0..20 {
        let body = format!("request {i}");
        let res = send(&h.client, Method::POST, &h.url("/echo"), &[], body.clone()).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.text(), body);
    }
    let text = h.admin_get("/metrics").await.text();
    assert_eq!(
        metric(&text, "rrlb_requests_total{backend=\"b\",code=\"200\"}"),
        Some(20.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "rrlb_upstream_tls_handshakes_total{backend=\"b\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "rrlb_connections{side=\"upstream\"}"),
        Some(1.0),
        "{text}"
    );
}
