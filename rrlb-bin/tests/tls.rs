//! The TLS listener end to end: an in-process rrlb whose proxy listener serves `[tls]` with certificates made
//! here (rcgen), reached by rustls clients that trust the test CA. Both request paths (HTTP/1.1 over TLS on the
//! fast path, HTTP/1.0 and ALPN `h2` on hyper's), certificate choice by SNI, rotation (files replaced, a bad
//! key refused, a Kubernetes-style `..data` symlink swap), plaintext on the TLS port, client certificates, and
//! what `/admin/tls` and the metrics show.
//!
//! The explicit triggers (SIGHUP, `POST /admin/reload`) are tested with certificate files behind symlinks into
//! a directory rrlb does not watch, so that the watcher cannot be what loaded the new pair; SIGHUP on the real
//! binary (a signal would reach every in-process harness of this test binary).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use support::tls::{Pair, Pki, Tls, connect, try_connect};
use support::wire::{self, Answer, BodyFraming, Chunks, Conn, Head};
use support::{HANG, Harness, Process, TestBackend, eventually, metric, write_atomic};

// ---------------------------------------------------------------------------------------------------------
// Configuration

/// A TOML string of a path.
fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// `cert = ..` and `key = ..` for files.
fn pair_keys(cert: &Path, key: &Path) -> String {
    format!("cert = {}\nkey = {}\n", toml_path(cert), toml_path(key))
}

/// One backend `b` at `backend`, no health checks, and `tls` as the `[tls]` table's body (which may go on with
/// `[[tls.certificates]]` tables).
fn config(backend: &str, tls: &str) -> String {
    format!(
        "[[backends]]\nname = \"b\"\nurl = \"{backend}\"\n\n[health]\nenabled = false\n\n[tls]\n{tls}\n"
    )
}

async fn start(backend: &TestBackend, tls: &str) -> Harness {
    Harness::builder()
        .file(config(&backend.url(), tls))
        .start()
        .await
}

/// The PEM files of `pair`, written atomically (a temporary file, then a rename) over `cert` and `key`.
fn install(pair: &Pair, cert: &Path, key: &Path) {
    let read = |p: &Path| std::fs::read_to_string(p).expect("read PEM");
    write_atomic(cert, &read(&pair.cert_file));
    write_atomic(key, &read(&pair.key_file));
}

// ---------------------------------------------------------------------------------------------------------
// Clients

/// The certificate the server presented (its leaf).
fn peer_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .expect("a server certificate")
}

/// The leaf certificate a new connection (ALPN http/1.1, fresh session) to `addr` as `name` is served.
async fn served_cert(pki: &Pki, addr: SocketAddr, name: &str) -> CertificateDer<'static> {
    peer_cert(&connect(addr, name, pki.client_config(&["http/1.1"], None)).await)
}

/// `POST /echo` as `version` (`"1.1"`, `"1.0"`) with `body` and `extra` header lines.
fn post_request(version: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!(
        "POST /echo HTTP/{version}\r\nhost: localhost\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// Reads one answer from `s` (leftovers in `buf`), with `wire`'s strict head parser; `Err` on a read error, an
/// end before a whole answer, or nothing for [`HANG`].
async fn read_answer<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Result<Answer, String> {
    async fn more<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(HANG, s.read(&mut chunk)).await {
            Err(_) => Err(format!("nothing for {HANG:?} after {}", wire::show(buf))),
            Ok(Err(e)) => Err(format!("read error {e} after {}", wire::show(buf))),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }
    let (len, version, status, headers) = loop {
        match wire::parse_head(buf) {
            Head::Done {
                len,
                version,
                status,
                headers,
            } => break (len, version, status, headers),
            Head::Bad(why) => return Err(why),
            Head::Partial => {
                if !more(s, buf).await? {
                    return Err(format!("closed before a whole head: {}", wire::show(buf)));
                }
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..len]).into_owned();
    buf.drain(..len);
    let mut answer = Answer {
        head,
        version,
        status,
        headers,
        ..Answer::default()
    };
    match wire::body_framing(status, false, &answer.headers)? {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            while buf.len() < n {
                if !more(s, buf).await? {
                    return Err(format!("closed in the body of {}", answer.describe()));
                }
            }
            answer.body = buf.drain(..n).collect();
        }
        BodyFraming::Chunked => loop {
            match wire::decode_chunked(buf) {
                Chunks::Done { body, len } => {
                    buf.drain(..len);
                    answer.body = body;
                    break;
                }
                Chunks::Bad(why) => return Err(why),
                Chunks::Partial(_) => {
                    if !more(s, buf).await? {
                        return Err(format!("closed in the body of {}", answer.describe()));
                    }
                }
            }
        },
        BodyFraming::Close => {
            while more(s, buf).await? {}
            answer.body = std::mem::take(buf);
            answer.until_close = true;
        }
    }
    Ok(answer)
}

/// Sends `request` on `s` and reads the answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
) -> Result<Answer, String> {
    s.write_all(request).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    read_answer(s, &mut Vec::new()).await
}

/// `POST /echo` with `body` on `tls` as HTTP/1.1; asserts a `200` from the test backend and returns what the
/// backend reported (`{"method","path","headers","body_len"}`).
async fn post_h1(tls: &mut Tls, body: &str, extra: &[(&str, &str)]) -> Value {
    let answer = exchange(tls, &post_request("1.1", body, extra))
        .await
        .unwrap_or_else(|e| panic!("HTTP/1.1 over TLS: {e}"));
    backend_saw(answer.status, &answer.body, body)
}

/// Checks a `200` from the test backend that got `body`, and returns what it reported.
fn backend_saw(status: u16, answer: &[u8], body: &str) -> Value {
    assert_eq!(status, 200, "{}", wire::show(answer));
    let seen: Value = serde_json::from_slice(answer)
        .unwrap_or_else(|e| panic!("not the backend's JSON ({e}): {}", wire::show(answer)));
    assert_eq!(seen["method"], "POST", "{seen}");
    assert_eq!(seen["path"], "/echo", "{seen}");
    assert_eq!(seen["body_len"], body.len(), "{seen}");
    seen
}

/// The values of header `name` the backend reported.
fn seen_header(seen: &Value, name: &str) -> Vec<String> {
    seen["headers"][name]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /echo` with `body` over HTTP/2 on `tls` (which must have negotiated `h2`); the status and body.
async fn post_h2(tls: Tls, body: &str, extra: &[(&str, &str)]) -> (StatusCode, Bytes) {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("https://localhost/echo");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let fut = async {
        let res = sender.send_request(req).await.expect("h2 request");
        let status = res.status();
        let body = res.into_body().collect().await.expect("h2 body").to_bytes();
        (status, body)
    };
    let out = tokio::time::timeout(HANG, fut)
        .await
        .expect("h2 answer in time");
    driver.abort();
    out
}

/// The proxy's `/metrics` text.
async fn metrics(h: &Harness) -> String {
    let res = h.admin_get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    res.text()
}

/// `rrlb_tls_handshakes_total{side="client",result=..}`.
fn handshakes(text: &str, result: &str) -> Option<f64> {
    metric(
        text,
        &format!("rrlb_tls_handshakes_total{{side=\"client\",result=\"{result}\"}}"),
    )
}

// ---------------------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn https_is_served_on_both_request_paths_and_backends_are_told() {
    let pki = Pki::new();
    let server = pki.issue(&["127.0.0.1", "localhost"]);
    let backend = TestBackend::start().await;
    let h = start(&backend, &pair_keys(&server.cert_file, &server.key_file)).await;

    // HTTP/1.1 over TLS (ALPN http/1.1): the fast path; two requests on one connection.
    let mut tls = connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(peer_cert(&tls), server.cert);
    for body in ["hello over tls", "and again on the same connection"] {
        let seen = post_h1(&mut tls, body, &[]).await;
        assert_eq!(seen_header(&seen, "x-forwarded-proto"), ["https"], "{seen}");
    }
    // A client's own x-forwarded-proto never passes.
    let seen = post_h1(&mut tls, "spoofed", &[("x-forwarded-proto", "http")]).await;
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), ["https"], "{seen}");

    // h2 (ALPN h2): hyper's HTTP/2 server.
    let tls = connect(
        h.proxy,
        "127.0.0.1",
        pki.client_config(&["h2", "http/1.1"], None),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, body) = post_h2(tls, "hello over h2", &[]).await;
    let seen = backend_saw(status.as_u16(), &body, "hello over h2");
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), ["https"], "{seen}");

    // HTTP/1.0 over TLS: handed to hyper.
    let mut tls = connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    let answer = exchange(&mut tls, &post_request("1.0", "hello as 1.0", &[]))
        .await
        .unwrap_or_else(|e| panic!("HTTP/1.0 over TLS: {e}"));
    let seen = backend_saw(answer.status, &answer.body, "hello as 1.0");
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), ["https"], "{seen}");

    // No ALPN at all: HTTP/1.1.
    let mut tls = connect(h.proxy, "localhost", pki.client_config(&[], None)).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    post_h1(&mut tls, "without ALPN", &[]).await;

    assert_eq!(backend.received().list().len(), 6);
    assert_eq!(handshakes(&metrics(&h).await, "ok"), Some(4.0));
}

#[tokio::test]
async fn sni_picks_the_pair_whose_certificate_names_the_host() {
    let pki = Pki::new();
    let default = pki.issue(&["127.0.0.1", "localhost"]);
    let api = pki.issue(&["api.test"]);
    let backend = TestBackend::start().await;
    let tls = format!(
        "{}\n[[tls.certificates]]\n{}",
        pair_keys(&default.cert_file, &default.key_file),
        pair_keys(&api.cert_file, &api.key_file)
    );
    let h = start(&backend, &tls).await;

    // SNI api.test: its pair, and requests work on it.
    let mut conn = connect(h.proxy, "api.test", pki.client_config(&["http/1.1"], None)).await;
    assert_eq!(
        peer_cert(&conn),
        api.cert,
        "SNI api.test got another certificate"
    );
    post_h1(&mut conn, "to api.test", &[]).await;

    // No SNI (connected by address): the default pair.
    assert_eq!(
        served_cert(&pki, h.proxy, "127.0.0.1").await,
        default.cert,
        "a client without SNI got another certificate"
    );
    // A name no [[tls.certificates]] pair has: the default pair (which names it).
    assert_eq!(served_cert(&pki, h.proxy, "localhost").await, default.cert);

    // A name that no pair has and the default does not carry: the default is served, so the client's check
    // of the name fails.
    let err = try_connect(h.proxy, "nowhere.test", pki.client_config(&[], None))
        .await
        .map(|_| ())
        .expect_err("nowhere.test is named by no certificate");
    assert!(
        err.to_string().to_ascii_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn replaced_certificate_files_are_served_to_new_connections_and_old_ones_keep_working() {
    let pki = Pki::new();
    let v1 = pki.issue(&["127.0.0.1", "localhost"]);
    let v2 = pki.issue(&["127.0.0.1", "localhost"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    install(&v1, &cert, &key);
    let backend = TestBackend::start().await;
    let h = start(&backend, &pair_keys(&cert, &key)).await;

    let mut old = connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    assert_eq!(peer_cert(&old), v1.cert);
    post_h1(&mut old, "before the rotation", &[]).await;

    install(&v2, &cert, &key);
    eventually(
        "new connections are served the replaced certificate",
        || {
            let pki = &pki;
            let v2 = &v2;
            let addr = h.proxy;
            async move { (served_cert(pki, addr, "localhost").await == v2.cert).then_some(()) }
        },
    )
    .await;

    // The connection opened before keeps its certificate, and keeps working.
    post_h1(&mut old, "after the rotation", &[]).await;
    assert_eq!(peer_cert(&old), v1.cert);
    let text = metrics(&h).await;
    assert_eq!(
        metric(&text, "rrlb_config_reloads_total{result=\"failure\"}").unwrap_or(0.0),
        0.0,
        "a reload failed on the way: {text}"
    );
}

#[tokio::test]
async fn a_key_that_does_not_match_is_refused_naming_the_file_and_the_old_pair_keeps_serving() {
    let pki = Pki::new();
    let v1 = pki.issue(&["127.0.0.1", "localhost"]);
    let v2 = pki.issue(&["127.0.0.1", "localhost"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    install(&v1, &cert, &key);
    let backend = TestBackend::start().await;
    let h = start(&backend, &pair_keys(&cert, &key)).await;

    // v1's certificate with v2's key.
    write_atomic(
        &key,
        &std::fs::read_to_string(&v2.key_file).expect("read key"),
    );
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    let error = res.json()["error"].as_str().unwrap_or_default().to_owned();
    let key_name = key.display().to_string();
    assert!(
        error.contains(&key_name),
        "the error does not name {key_name}: {error}"
    );
    assert!(!error.contains("PRIVATE KEY"), "{error}");

    // The running pair keeps serving new connections, and they work.
    let mut conn = connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    assert_eq!(peer_cert(&conn), v1.cert, "the refused pair was served");
    post_h1(&mut conn, "after the refused reload", &[]).await;
    let text = metrics(&h).await;
    assert!(
        metric(&text, "rrlb_config_reloads_total{result=\"failure\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );

    // Fixing the files is the next change, and it loads.
    install(&v2, &cert, &key);
    eventually("the fixed pair is served", || {
        let pki = &pki;
        let v2 = &v2;
        let addr = h.proxy;
        async move { (served_cert(pki, addr, "localhost").await == v2.cert).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_kubernetes_secret_volume_symlink_swap_is_seen() {
    let pki = Pki::new();
    let v1 = pki.issue(&["127.0.0.1", "localhost"]);
    let v2 = pki.issue(&["127.0.0.1", "localhost"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let version = |name: &str, pair: &Pair| -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::copy(&pair.cert_file, d.join("tls.crt")).expect("copy cert");
        std::fs::copy(&pair.key_file, d.join("tls.key")).expect("copy key");
        d
    };
    // As the kubelet lays a Secret volume out: `..data` -> a timestamped directory, each key a symlink through
    // `..data`.
    version("..2024_01_01_00_00_00.1", &v1);
    std::os::unix::fs::symlink("..2024_01_01_00_00_00.1", root.join("..data")).expect("..data");
    for f in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), root.join(f)).expect("symlink");
    }
    let backend = TestBackend::start().await;
    let h = start(
        &backend,
        &pair_keys(&root.join("tls.crt"), &root.join("tls.key")),
    )
    .await;
    assert_eq!(served_cert(&pki, h.proxy, "localhost").await, v1.cert);

    // The update: a new directory, a new `..data_tmp` link to it renamed over `..data`, the old one removed.
    version("..2024_01_01_00_01_00.2", &v2);
    std::os::unix::fs::symlink("..2024_01_01_00_01_00.2", root.join("..data_tmp")).expect("link");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(root.join("..2024_01_01_00_00_00.1")).expect("remove v1");

    eventually("the swapped-in certificate is served", || {
        let pki = &pki;
        let v2 = &v2;
        let addr = h.proxy;
        async move { (served_cert(pki, addr, "localhost").await == v2.cert).then_some(()) }
    })
    .await;
    let mut conn = connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    post_h1(&mut conn, "after the swap", &[]).await;
}

#[tokio::test]
async fn plaintext_http_on_the_tls_port_gets_a_400_and_a_close() {
    let pki = Pki::new();
    let server = pki.issue(&["127.0.0.1", "localhost"]);
    let backend = TestBackend::start().await;
    let h = start(&backend, &pair_keys(&server.cert_file, &server.key_file)).await;

    let mut conn = Conn::open(h.proxy).await;
    conn.send(b"GET /echo HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await;
    let answer = conn
        .answer(false)
        .await
        .into_answer()
        .unwrap_or_else(|e| panic!("the answer to plaintext: {e}"));
    assert_eq!(answer.status, 400, "{}", answer.describe());
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.describe()));
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("TLS"), "{body}");
    assert!(error.contains("https://"), "{body}");
    if let Some(why) = conn.must_close().await {
        panic!("after the 400: {why}");
    }
    assert!(
        backend.received().list().is_empty(),
        "a plaintext request reached the backend"
    );

    let text = metrics(&h).await;
    assert_eq!(handshakes(&text, "plaintext"), Some(1.0), "{text}");
    assert_eq!(handshakes(&text, "ok").unwrap_or(0.0), 0.0, "{text}");

    // The port still speaks TLS.
    let mut tls = connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    post_h1(&mut tls, "over TLS", &[]).await;
}

#[tokio::test]
async fn client_certificates_are_required_and_their_subject_reaches_the_backend() {
    let pki = Pki::new();
    let server = pki.issue(&["127.0.0.1", "localhost"]);
    let client = pki.issue_named("rrlb-test-client", &[]);
    let backend = TestBackend::start().await;
    let tls = format!(
        "{}client_ca = {}\nclient_auth = \"required\"\nclient_subject_header = \"x-client-subject\"\n",
        pair_keys(&server.cert_file, &server.key_file),
        toml_path(&pki.ca_file)
    );
    let h = start(&backend, &tls).await;

    // Without a certificate: the handshake fails (TLS 1.2), or the server's alert ends the connection at the
    // first read (TLS 1.3, where the client finishes first).
    match try_connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await {
        Err(_) => {}
        Ok(mut tls) => {
            let got = exchange(&mut tls, &post_request("1.1", "no certificate", &[])).await;
            assert!(
                got.is_err(),
                "answered without a client certificate: {got:?}"
            );
        }
    }
    assert!(
        backend.received().list().is_empty(),
        "a request without a client certificate reached the backend"
    );
    eventually("the failed handshake is counted", || async {
        (handshakes(&metrics(&h).await, "error") == Some(1.0)).then_some(())
    })
    .await;

    // A certificate from another CA is refused as well.
    let other = Pki::new().issue_named("intruder", &[]);
    if let Ok(mut tls) = try_connect(
        h.proxy,
        "localhost",
        pki.client_config(&["http/1.1"], Some(&other)),
    )
    .await
    {
        let got = exchange(&mut tls, &post_request("1.1", "other CA", &[])).await;
        assert!(
            got.is_err(),
            "answered with another CA's certificate: {got:?}"
        );
    }
    assert!(backend.received().list().is_empty());

    // With one from the CA: through, with the subject, and a forged header dropped; HTTP/1.1 then h2.
    let mut tls = connect(
        h.proxy,
        "localhost",
        pki.client_config(&["http/1.1"], Some(&client)),
    )
    .await;
    let seen = post_h1(
        &mut tls,
        "with a certificate",
        &[("x-client-subject", "forged")],
    )
    .await;
    let subject = seen_header(&seen, "x-client-subject");
    assert_eq!(subject.len(), 1, "{seen}");
    assert!(subject[0].contains("CN=rrlb-test-client"), "{seen}");
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), ["https"], "{seen}");

    let tls = connect(
        h.proxy,
        "localhost",
        pki.client_config(&["h2"], Some(&client)),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, body) = post_h2(tls, "over h2", &[("x-client-subject", "forged")]).await;
    let seen = backend_saw(status.as_u16(), &body, "over h2");
    let subject = seen_header(&seen, "x-client-subject");
    assert_eq!(subject.len(), 1, "{seen}");
    assert!(subject[0].contains("CN=rrlb-test-client"), "{seen}");
    assert_eq!(backend.received().list().len(), 2);
}

#[tokio::test]
async fn a_forged_subject_header_is_dropped_for_a_client_without_a_certificate() {
    let pki = Pki::new();
    let server = pki.issue(&["127.0.0.1", "localhost"]);
    let backend = TestBackend::start().await;
    let tls = format!(
        "{}client_ca = {}\nclient_auth = \"optional\"\nclient_subject_header = \"x-client-subject\"\n",
        pair_keys(&server.cert_file, &server.key_file),
        toml_path(&pki.ca_file)
    );
    let h = start(&backend, &tls).await;
    let mut tls = connect(h.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    let seen = post_h1(
        &mut tls,
        "no certificate",
        &[("x-client-subject", "forged")],
    )
    .await;
    assert!(seen_header(&seen, "x-client-subject").is_empty(), "{seen}");
    let tls = connect(h.proxy, "localhost", pki.client_config(&["h2"], None)).await;
    let (status, body) =
        post_h2(tls, "no certificate, h2", &[("x-client-subject", "forged")]).await;
    let seen = backend_saw(status.as_u16(), &body, "no certificate, h2");
    assert!(seen_header(&seen, "x-client-subject").is_empty(), "{seen}");
}

#[tokio::test]
async fn admin_tls_lists_the_certificates_and_the_expiry_metric_matches() {
    let pki = Pki::new();
    let default = pki.issue(&["localhost", "127.0.0.1"]);
    let api = pki.issue(&["api.test", "www.api.test"]);
    let backend = TestBackend::start().await;
    let tls = format!(
        "{}\n[[tls.certificates]]\n{}",
        pair_keys(&default.cert_file, &default.key_file),
        pair_keys(&api.cert_file, &api.key_file)
    );
    let h = start(&backend, &tls).await;

    let res = h.admin_get("/admin/tls").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let info = res.json();
    assert_eq!(info["enabled"], true, "{info}");
    let certs = info["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 2, "{info}");
    let sans = |c: &Value| -> Vec<String> {
        c["sans"]
            .as_array()
            .expect("sans")
            .iter()
            .map(|s| s.as_str().expect("a SAN").to_owned())
            .collect()
    };
    // The default pair first.
    assert_eq!(certs[0]["name"], "localhost", "{info}");
    assert_eq!(sans(&certs[0]), ["localhost", "127.0.0.1"], "{info}");
    assert_eq!(
        certs[0]["source"],
        default.cert_file.display().to_string(),
        "{info}"
    );
    assert_eq!(certs[1]["name"], "api.test", "{info}");
    assert_eq!(sans(&certs[1]), ["api.test", "www.api.test"], "{info}");
    assert_eq!(
        certs[1]["source"],
        api.cert_file.display().to_string(),
        "{info}"
    );

    let text = metrics(&h).await;
    for c in certs {
        for key in ["subject", "not_before", "not_after"] {
            assert!(
                c[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} in {c}"
            );
        }
        let not_after = c["not_after_unix"].as_i64().expect("not_after_unix");
        let name = c["name"].as_str().expect("name");
        let series = format!("rrlb_tls_certificate_expiry_timestamp_seconds{{name=\"{name}\"}}");
        assert_eq!(
            metric(&text, &series),
            Some(not_after as f64),
            "{series} in {text}"
        );
    }
    assert!(!text.contains("PRIVATE KEY"));
}

/// A certificate replaced as soon as rrlb answers is reloaded like any later change: the file watcher is armed,
/// and reads the contents it compares against, before rrlb reports ready (it once did so on a task of its own,
/// and a change in that window was taken for the starting point and never loaded).
#[tokio::test]
async fn a_certificate_replaced_right_after_start_is_loaded() {
    let pki = Pki::new();
    let v1 = pki.issue(&["127.0.0.1", "localhost"]);
    let v2 = pki.issue(&["127.0.0.1", "localhost"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    install(&v1, &cert, &key);
    let backend = TestBackend::start().await;
    let h = start(&backend, &pair_keys(&cert, &key)).await;
    install(&v2, &cert, &key);
    eventually(
        "the certificate replaced right after start is served",
        || {
            let pki = &pki;
            let v2 = &v2;
            let addr = h.proxy;
            async move { (served_cert(pki, addr, "localhost").await == v2.cert).then_some(()) }
        },
    )
    .await;
}

/// Certificate files reached through symlinks into a directory of their own, as a tool that keeps its
/// certificates elsewhere (certbot's `live/` links into `archive/`) lays them out: rrlb watches the directory of
/// the paths it was given, so a change *behind* the links is no event, and only an explicit reload loads it.
/// That makes the two explicit triggers observable on their own.
struct Linked {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    /// The paths the configuration names: symlinks.
    cert: PathBuf,
    key: PathBuf,
    /// Where the links point: the files that change.
    target_cert: PathBuf,
    target_key: PathBuf,
}

impl Linked {
    fn new(pair: &Pair) -> Self {
        let (named, behind) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let target_cert = behind.path().join("cert.pem");
        let target_key = behind.path().join("key.pem");
        install(pair, &target_cert, &target_key);
        let cert = named.path().join("tls.crt");
        let key = named.path().join("tls.key");
        std::os::unix::fs::symlink(&target_cert, &cert).expect("symlink");
        std::os::unix::fs::symlink(&target_key, &key).expect("symlink");
        Self {
            _dirs: (named, behind),
            cert,
            key,
            target_cert,
            target_key,
        }
    }

    /// Replaces the files behind the links.
    fn replace(&self, pair: &Pair) {
        install(pair, &self.target_cert, &self.target_key);
    }
}

#[tokio::test]
async fn admin_reload_loads_a_certificate_changed_behind_a_symlink() {
    let pki = Pki::new();
    let v1 = pki.issue(&["127.0.0.1", "localhost"]);
    let v2 = pki.issue(&["127.0.0.1", "localhost"]);
    let files = Linked::new(&v1);
    let backend = TestBackend::start().await;
    let h = start(&backend, &pair_keys(&files.cert, &files.key)).await;
    assert_eq!(served_cert(&pki, h.proxy, "localhost").await, v1.cert);

    files.replace(&v2);
    // Nothing watched changed: the running pair stays until told.
    assert_eq!(served_cert(&pki, h.proxy, "localhost").await, v1.cert);
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(served_cert(&pki, h.proxy, "localhost").await, v2.cert);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_loads_a_certificate_changed_behind_a_symlink() {
    let pki = Pki::new();
    let v1 = pki.issue(&["127.0.0.1", "localhost"]);
    let v2 = pki.issue(&["127.0.0.1", "localhost"]);
    let files = Linked::new(&v1);
    let backend = TestBackend::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rrlb.toml");
    write_atomic(
        &path,
        &config(&backend.url(), &pair_keys(&files.cert, &files.key)),
    );
    let mut p = Process::spawn_with_config(&path).await;
    let mut old = connect(p.proxy, "localhost", pki.client_config(&["http/1.1"], None)).await;
    assert_eq!(peer_cert(&old), v1.cert);

    files.replace(&v2);
    assert_eq!(served_cert(&pki, p.proxy, "localhost").await, v1.cert);
    p.signal("HUP");
    p.wait_line("a SIGHUP reload", |l| {
        l.contains("configuration reloaded") && l.contains("SIGHUP")
    })
    .await;
    assert_eq!(served_cert(&pki, p.proxy, "localhost").await, v2.cert);
    // The connection made before keeps its pair and keeps working.
    post_h1(&mut old, "after SIGHUP", &[]).await;
    assert_eq!(peer_cert(&old), v1.cert);
}
