//! The real `rrlb` binary: start-up refusals, `--check`, `--healthcheck`, SIGTERM drain, SIGHUP reload.

mod support;

use http::{Method, StatusCode};
use serde_json::json;

use support::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// 10. An admin listener on a non-loopback address without a token: refused, exit 2, naming why.
#[test]
fn public_admin_listener_without_token_is_refused() {
    let out = run_rrlb(&[
        "--admin-listen",
        "0.0.0.0:0",
        "--listen",
        "127.0.0.1:0",
        "-b",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("admin-listen") || err.contains("admin_listen"),
        "{err}"
    );
    assert!(err.contains("token"), "{err}");

    // The same from the environment and the file.
    let out = rrlb_bin()
        .args(["--listen", "127.0.0.1:0", "--check"])
        .env("RRLB_ADMIN_LISTEN", "0.0.0.0:9901")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("RRLB_ADMIN_LISTEN"),
        "{}",
        stderr_of(&out)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rrlb.toml");
    std::fs::write(&path, "admin_listen = \"0.0.0.0:9901\"\n").expect("write");
    let out = run_rrlb(&["--config", path.to_str().expect("utf-8"), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("admin_listen"),
        "{}",
        stderr_of(&out)
    );

    // With a token it is allowed (checked, not started).
    let out = run_rrlb(&[
        "--admin-listen",
        "0.0.0.0:9901",
        "--admin-token",
        "t0ken",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains("t0ken"),
        "--check prints the token: {printed}"
    );
}

/// 10. A configuration file with an unknown key or a bad value: exit 2, naming the file and the key.
#[test]
fn bad_config_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.toml");
    let p = path.to_str().expect("utf-8");
    for (text, key) in [
        (
            "[[backends]]\nurl = \"http://127.0.0.1:8081\"\n[health]\nintervall = \"2s\"\n",
            "intervall",
        ),
        (
            "[[backends]]\nurl = \"http://127.0.0.1:8081\"\nweight = 0\n",
            "backends[0].weight",
        ),
        ("[timeouts]\nrequest = \"soon\"\n", "timeouts.request"),
        ("algorithm = \"fastest\"\n", "algorithm"),
    ] {
        std::fs::write(&path, text).expect("write");
        for extra in [
            &["--check"][..],
            &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"][..],
        ] {
            let mut args = vec!["--config", p];
            args.extend_from_slice(extra);
            let out = run_rrlb(&args);
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{text}: {err}");
            assert!(err.contains(key), "{key:?} not named: {err}");
            assert!(err.contains("broken.toml"), "file not named: {err}");
        }
    }
    // A missing file, and a bad flag.
    let out = run_rrlb(&[
        "--config",
        dir.path().join("absent.toml").to_str().expect("utf-8"),
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("absent.toml"));
    let out = run_rrlb(&["--algorithm", "fastest", "--check"]);
    assert_eq!(out.status.code(), Some(2));
}

/// 10. `--check` prints the effective configuration and exits 0.
#[test]
fn check_prints_the_effective_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rrlb.toml");
    std::fs::write(
        &path,
        "algorithm = \"random\"\n[[backends]]\nurl = \"http://127.0.0.1:8081\"\nname = \"one\"\nweight = 4\n[timeouts]\nrequest = \"750ms\"\n",
    )
    .expect("write");
    let out = run_rrlb(&[
        "--config",
        path.to_str().expect("utf-8"),
        "--timeout",
        "3s",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc: toml::Table =
        toml::from_str(&printed).unwrap_or_else(|e| panic!("not TOML ({e}):\n{printed}"));
    assert_eq!(doc["algorithm"].as_str(), Some("random"));
    assert_eq!(doc["backends"][0]["name"].as_str(), Some("one"));
    assert_eq!(doc["backends"][0]["weight"].as_integer(), Some(4));
    assert_eq!(
        doc["timeouts"]["request"].as_str(),
        Some("3s"),
        "the flag beats the file"
    );
    assert_eq!(
        doc["listen"].as_str(),
        Some("0.0.0.0:8080"),
        "defaults are shown"
    );
    assert_eq!(doc["health"]["interval"].as_str(), Some("2s"));
}

/// 10. `--healthcheck` exits 0 against a running rrlb and 1 against nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_probes_the_admin_listener() {
    let e = echo("a").await;
    let url = e.url();
    let p = Process::spawn(&[
        "-b",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .await;
    let admin = p.admin.to_string();
    let out =
        tokio::task::spawn_blocking(move || run_rrlb(&["--healthcheck", "--admin-listen", &admin]))
            .await
            .expect("task");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    let nothing = free_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_rrlb(&["--healthcheck", "--admin-listen", &nothing])
    })
    .await
    .expect("task");
    assert_eq!(out.status.code(), Some(1));
}

/// 9. SIGTERM with a request in flight: no new connections, the request completes, exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_and_exits_0() {
    let backend = TestBackend::start().await;
    let mut p = Process::spawn(&[
        "-b",
        &backend.url(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .await;
    let c = client();
    let url = format!("http://{}/work/hold", p.proxy);
    let c2 = c.clone();
    let pending = tokio::spawn(async move { send(&c2, Method::POST, &url, &[], "{}").await });
    backend.wait_held(1).await;

    p.signal("TERM");
    p.wait_line("the shutdown line", |l| l.contains("shutting down"))
        .await;
    let proxy = p.proxy;
    eventually("the proxy listener closes", || async move {
        tokio::net::TcpStream::connect(proxy)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(p.is_running(), "exited with a request in flight");
    assert!(!pending.is_finished());

    backend.release();
    let res = tokio::time::timeout(HANG, pending)
        .await
        .expect("hang")
        .expect("task");
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["path"], "/work/hold");
    let status = p.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
    assert!(p.stderr().contains("drained"), "{}", p.stderr());
}

/// 7. SIGHUP re-reads the file; a bad file is refused and the process keeps serving the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file() {
    let a = echo("a").await;
    let b = echo("b").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rrlb.toml");
    let quiet = "[health]\nenabled = false\n";
    write_atomic(
        &path,
        &format!("{}{quiet}", backends_toml(&[("a", &a.url(), 1)])),
    );
    let mut p = Process::spawn_with_config(&path).await;
    let c = client();
    let proxy = format!("http://{}/", p.proxy);
    let admin = format!("http://{}/admin/backends", p.admin);
    let names = |c: &HttpClient| {
        let (c, admin) = (c.clone(), admin.clone());
        async move {
            let res = send(&c, Method::GET, &admin, &[], "").await;
            res.json()["backends"]
                .as_array()
                .expect("backends")
                .iter()
                .map(|b| b["name"].as_str().expect("name").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(&c).await, ["a"]);

    // A signal without a change re-reads and re-applies the same file, and the process lives on.
    p.signal("HUP");
    p.wait_line("a SIGHUP reload", |l| {
        l.contains("configuration reloaded") && l.contains("SIGHUP")
    })
    .await;
    assert!(p.is_running());

    write_atomic(
        &path,
        &format!(
            "{}{quiet}",
            backends_toml(&[("a", &a.url(), 1), ("b", &b.url(), 1)])
        ),
    );
    p.signal("HUP");
    let cr = &c;
    eventually("the new file is applied", || async move {
        (names(cr).await == ["a", "b"]).then_some(())
    })
    .await;
    let mut served = Vec::new();
    for _ in 0..4 {
        let res = send(
            &c,
            Method::POST,
            &proxy,
            &[("content-type", "application/json")],
            json!({}).to_string(),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK);
        served.push(res.backend().to_owned());
    }
    assert_eq!(
        tally(served.iter().map(String::as_str)),
        counts(&[("a", 2), ("b", 2)])
    );

    // A bad file: refused and logged, naming the key; the old configuration keeps serving.
    write_atomic(
        &path,
        &format!("{}{quiet}bogus = 1\n", backends_toml(&[("b", &b.url(), 1)])),
    );
    p.signal("HUP");
    p.wait_line("a refused reload", |l| {
        l.contains("reload rejected") && l.contains("bogus")
    })
    .await;
    assert!(p.is_running());
    assert_eq!(names(&c).await, ["a", "b"]);
    let res = send(
        &c,
        Method::POST,
        &proxy,
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
}

/// `--demo` starts three in-process echo backends and balances over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_serves_three_backends() {
    let p = Process::spawn(&[
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .await;
    let c = client();
    let url = format!("http://{}/demo", p.proxy);
    let mut served = Vec::new();
    for _ in 0..6 {
        let res = send(
            &c,
            Method::POST,
            &url,
            &[("content-type", "application/json")],
            "{\"d\":1}",
        )
        .await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.body, "{\"d\":1}".as_bytes());
        served.push(res.backend().to_owned());
    }
    assert_eq!(
        tally(served.iter().map(String::as_str)),
        counts(&[("echo-fast", 2), ("echo-medium", 2), ("echo-slow", 2)])
    );
}

/// Signals sent the moment the start-up line appears are handled, not fatal: SIGHUP reloads, SIGTERM
/// stops gracefully with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_right_after_start_are_handled() {
    let a = echo("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rrlb.toml");
    write_atomic(&path, &backends_toml(&[("a", &a.url(), 1)]));
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];

    let mut p = Process::spawn(&args).await;
    p.signal("HUP");
    p.wait_line("a SIGHUP reload", |l| {
        l.contains("configuration reloaded") && l.contains("SIGHUP")
    })
    .await;
    assert!(p.is_running());

    let mut p = Process::spawn(&args).await;
    p.signal("TERM");
    let status = p.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status}: {}", p.stderr());
}

/// The access log goes to its file, one line per request on either request path, with every field; SIGUSR1
/// after a rotation (the file moved away) makes rrlb write on to a new file at the configured path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_and_rotation() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = echo("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, log) = (dir.path().join("rrlb.toml"), dir.path().join("access.log"));
    let toml = format!(
        "{}[health]\nenabled = false\n[access_log]\nformat = \"json\"\npath = {:?}\n",
        backends_toml(&[("a", &a.url(), 1)]),
        log.to_str().expect("utf-8")
    );
    write_atomic(&path, &toml);
    let mut p = Process::spawn_with_config(&path).await;
    let c = client();
    let body = json!({"k": "v"}).to_string();
    let res = send(
        &c,
        Method::POST,
        &format!("http://{}/one", p.proxy),
        &[("content-type", "application/json")],
        body.clone(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let sent_back = res.text().len() as u64;
    let one_id = res.header("x-request-id").expect("x-request-id").to_owned();

    // Rotate: move the file away, then SIGUSR1; what follows goes to a new file.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    p.signal("USR1");
    p.wait_line("the reopen", |l| l.contains("reopened the access log"))
        .await;
    // An HTTP/1.0 request (the hyper path) and one rrlb refuses itself.
    let mut s = tokio::net::TcpStream::connect(p.proxy)
        .await
        .expect("connect");
    let request = b"POST /two HTTP/1.0\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    s.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let mut s = tokio::net::TcpStream::connect(p.proxy)
        .await
        .expect("connect");
    s.write_all(b"GET /three HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // SIGTERM: the log is flushed before rrlb exits.
    p.signal("TERM");
    assert!(p.wait_exit().await.success());
    let lines = |file: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(file)
            .expect("read the log")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    };
    let (old, new) = (lines(&rotated), lines(&log));
    // Requests after the reopen went to the new file. /one was answered before the rotation, but its line is
    // written when rrlb is done with it, which may be a moment after the client has the answer: either file.
    let path_of = |l: &serde_json::Value| l["path"].as_str().unwrap_or("").to_owned();
    assert!(old.iter().all(|l| path_of(l) == "/one"), "{old:?}");
    let mut after: Vec<_> = new
        .iter()
        .filter(|l| path_of(l) != "/one")
        .map(|l| (path_of(l), l["status"].as_u64().unwrap_or(0)))
        .collect();
    // Lines from different worker threads are not in time order (each thread has its own buffer).
    after.sort();
    // The refused request's head was not read: no method or path.
    assert_eq!(after, [("-".to_owned(), 400), ("/two".to_owned(), 200)]);
    let refused = new
        .iter()
        .find(|l| path_of(l) == "-")
        .expect("the refused line");
    assert_eq!(refused["backend"], "-");
    assert!(refused["bytes_out"].as_u64().unwrap_or(0) > 0);

    let ones: Vec<_> = old
        .iter()
        .chain(&new)
        .filter(|l| path_of(l) == "/one")
        .collect();
    assert_eq!(ones.len(), 1, "{old:?} {new:?}");
    let one = ones[0];
    for key in [
        "time",
        "request_id",
        "client",
        "method",
        "path",
        "status",
        "backend",
        "attempts",
        "bytes_in",
        "bytes_out",
        "duration_ms",
    ] {
        assert!(!one[key].is_null(), "{key} missing from {one}");
    }
    assert_eq!(
        (one["method"].as_str(), one["status"].as_u64()),
        (Some("POST"), Some(200))
    );
    assert_eq!(
        (
            one["backend"].as_str(),
            one["attempts"].as_u64(),
            one["client"].as_str()
        ),
        (Some("a"), Some(1), Some("127.0.0.1"))
    );
    assert_eq!(one["bytes_in"].as_u64(), Some(body.len() as u64));
    assert_eq!(one["bytes_out"].as_u64(), Some(sent_back));
    assert_eq!(one["request_id"].as_str(), Some(one_id.as_str()));
}
