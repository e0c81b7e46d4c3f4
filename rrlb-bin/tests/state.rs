//! The runtime state: the admin API's changes as an overlay on the file's backends, re-applied by reloads,
//! kept across restarts by the file store, dropped by `DELETE /admin/runtime`, guarded by revisions
//! (`etag` / `if-match`), and refused whole (`503`) when the store cannot keep them.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use support::*;

/// Backends `names` at the URLs of `echoes` (weight 1), with health checks off, and `extra` after them.
fn config(backends: &[(&str, String)], extra: &str) -> String {
    let mut text = String::new();
    for (name, url) in backends {
        text.push_str(&format!(
            "[[backends]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"
        ));
    }
    text.push_str("[health]\nenabled = false\n\n");
    text.push_str(extra);
    text
}

fn file_store(path: &Path) -> String {
    format!(
        "[state]\nstore = \"file\"\npath = {:?}\n",
        path.display().to_string()
    )
}

/// Each backend's (weight, draining, origin), by name, as `GET /admin/backends` lists them.
async fn listed(h: &Harness) -> BTreeMap<String, (u64, bool, String)> {
    h.backends()
        .await
        .iter()
        .map(|b| {
            (
                b["name"].as_str().expect("name").to_owned(),
                (
                    b["weight"].as_u64().expect("weight"),
                    b["draining"].as_bool().expect("draining"),
                    b["origin"].as_str().expect("origin").to_owned(),
                ),
            )
        })
        .collect()
}

fn entry(weight: u64, draining: bool, origin: &str) -> (u64, bool, String) {
    (weight, draining, origin.to_owned())
}

/// An admin call with extra headers (`if-match`).
async fn call(
    h: &Harness,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    send(&h.client, method, &h.admin_url(path), &all, body).await
}

/// The JSON error body of an admin refusal with `status`.
fn refused(res: &Resp, status: u16) -> Value {
    assert_eq!(res.status.as_u16(), status, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body
}

/// `PATCH /admin/backends/{name}` with `body`, without a precondition.
async fn patch(h: &Harness, name: &str, body: Value) -> Resp {
    let path = format!("/admin/backends/{name}");
    call(h, Method::PATCH, &path, &[], Some(body)).await
}

fn etag(res: &Resp) -> String {
    res.header("etag")
        .unwrap_or_else(|| panic!("no etag: {:?}", res.headers))
        .to_owned()
}

#[tokio::test]
async fn runtime_changes_outlive_a_reload_show_their_origin_and_can_be_dropped() {
    let (a, b, c, d) = (
        echo("a").await,
        echo("b").await,
        echo("c").await,
        echo("d").await,
    );
    let h = Harness::builder()
        .file(config(&[("a", a.url()), ("b", b.url())], ""))
        .start()
        .await;
    let res = call(
        &h,
        Method::POST,
        "/admin/backends",
        &[],
        Some(json!({"url": c.url(), "name": "c"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.json()["origin"], "runtime");
    let res = patch(&h, "a", json!({"weight": 5})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = call(&h, Method::DELETE, "/admin/backends/b", &[], None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_eq!(etag(&res), "\"3\"");

    // The file changes (d added, b still listed) and is reloaded: the overlay is applied to the new base.
    h.write_config(&config(
        &[("a", a.url()), ("b", b.url()), ("d", d.url())],
        "",
    ));
    let res = call(&h, Method::POST, "/admin/reload", &[], None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        listed(&h).await,
        BTreeMap::from([
            ("a".to_owned(), entry(5, false, "file")),
            ("c".to_owned(), entry(1, false, "runtime")),
            ("d".to_owned(), entry(1, false, "file")),
        ])
    );
    let served = h.hits(7).await;
    assert_eq!(
        served.keys().cloned().collect::<Vec<_>>(),
        ["a", "c", "d"],
        "{served:?}"
    );

    let runtime = h.admin_get("/admin/runtime").await.json();
    assert_eq!(runtime["revision"], 3);
    assert_eq!(runtime["store"], "memory");
    assert_eq!(runtime["backends"]["b"], json!({"change": "remove"}));
    assert_eq!(
        runtime["backends"]["a"],
        json!({"change": "modify", "weight": 5, "draining": false})
    );

    // Dropped: back to the file's backends.
    let res = call(&h, Method::DELETE, "/admin/runtime", &[], None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json(), json!({"revision": 4, "dropped": 3}));
    assert_eq!(
        listed(&h).await,
        BTreeMap::from([
            ("a".to_owned(), entry(1, false, "file")),
            ("b".to_owned(), entry(1, false, "file")),
            ("d".to_owned(), entry(1, false, "file")),
        ])
    );
    let text = h.admin_get("/metrics").await.text();
    assert_eq!(metric(&text, "rrlb_state_revision"), Some(4.0), "{text}");
    assert_eq!(metric(&text, "rrlb_fleet_members"), Some(1.0), "{text}");
}

#[tokio::test]
async fn a_drain_outlives_a_reload() {
    let (a, b) = (echo("a").await, echo("b").await);
    let toml = config(&[("a", a.url()), ("b", b.url())], "");
    let h = Harness::builder().file(toml.clone()).start().await;
    let res = patch(&h, "a", json!({"drain": true})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = call(&h, Method::POST, "/admin/reload", &[], None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(listed(&h).await["a"], entry(1, true, "file"));
    assert_eq!(h.hits(4).await, counts(&[("b", 4)]));
}

#[tokio::test]
async fn if_match_lets_exactly_one_of_concurrent_changes_through() {
    let (a, b) = (echo("a").await, echo("b").await);
    let h = Harness::builder()
        .file(config(&[("a", a.url()), ("b", b.url())], ""))
        .start()
        .await;
    let res = h.admin_get("/admin/backends").await;
    assert_eq!(etag(&res), "\"0\"");
    assert_eq!(etag(&h.admin_get("/admin/backends/a").await), "\"0\"");

    // A stale revision changes nothing.
    let res = call(
        &h,
        Method::PATCH,
        "/admin/backends/a",
        &[("if-match", "\"0\"")],
        Some(json!({"weight": 2})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(etag(&res), "\"1\"");
    let res = call(
        &h,
        Method::PATCH,
        "/admin/backends/a",
        &[("if-match", "\"0\"")],
        Some(json!({"weight": 9})),
    )
    .await;
    let body = refused(&res, 412);
    assert_eq!(body["revision"], 1);
    assert_eq!(etag(&res), "\"1\"");
    for (method, path, payload) in [
        (
            Method::POST,
            "/admin/backends",
            Some(json!({"url": "http://127.0.0.1:9", "name": "x"})),
        ),
        (Method::DELETE, "/admin/backends/b", None),
        (Method::DELETE, "/admin/runtime", None),
    ] {
        let res = call(&h, method.clone(), path, &[("if-match", "\"0\"")], payload).await;
        refused(&res, 412);
    }
    assert_eq!(listed(&h).await["a"].0, 2);
    assert_eq!(h.backend_names().await, ["a", "b"]);

    // Eight changes at once, all made against revision 1: one wins, seven are told to re-read.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let (client, url) = (h.client.clone(), h.admin_url("/admin/backends/b"));
        calls.spawn(async move {
            let headers = [("content-type", "application/json"), ("if-match", "\"1\"")];
            send(
                &client,
                Method::PATCH,
                &url,
                &headers,
                json!({"weight": 10 + i}).to_string(),
            )
            .await
        });
    }
    let answers = calls.join_all().await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        7,
        "{statuses:?}"
    );
    let winner = answers
        .iter()
        .find(|r| r.status == StatusCode::OK)
        .map(|r| r.json()["weight"].as_u64().expect("weight"))
        .expect("a winner");
    assert_eq!(
        listed(&h).await["b"].0,
        winner,
        "the store holds the winner"
    );
    let runtime = h.admin_get("/admin/runtime").await.json();
    assert_eq!(runtime["revision"], 2);
    assert_eq!(runtime["backends"]["b"]["weight"], winner);
}

#[tokio::test]
async fn a_change_the_store_cannot_keep_is_a_503_and_changes_nothing() {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).expect("mkdir");
    let h = Harness::builder()
        .file(config(
            &[("a", a.url())],
            &file_store(&state_dir.join("state.json")),
        ))
        .start()
        .await;
    let res = patch(&h, "a", json!({"weight": 3})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // The directory goes and a plain file takes its place: no write can succeed there (root or not).
    std::fs::remove_dir_all(&state_dir).expect("rm");
    std::fs::write(&state_dir, "not a directory").expect("write");
    let res = call(
        &h,
        Method::POST,
        "/admin/backends",
        &[],
        Some(json!({"url": b.url(), "name": "b"})),
    )
    .await;
    let body = refused(&res, 503);
    let reason = body["error"].as_str().expect("error");
    assert!(reason.contains("state.json"), "{reason}");
    let res = patch(&h, "a", json!({"weight": 7})).await;
    refused(&res, 503);
    let res = call(&h, Method::DELETE, "/admin/backends/a", &[], None).await;
    refused(&res, 503);

    assert_eq!(
        listed(&h).await,
        BTreeMap::from([("a".to_owned(), entry(3, false, "file"))])
    );
    assert_eq!(h.admin_get("/admin/runtime").await.json()["revision"], 1);
    let text = h.admin_get("/metrics").await.text();
    assert_eq!(
        metric(&text, "rrlb_state_errors_total{kind=\"write\"}"),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_keeps_changes_across_a_restart() {
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let path = dir.path().join("rrlb.toml");
    write_atomic(
        &path,
        &config(&[("a", a.url()), ("b", b.url())], &file_store(&state)),
    );

    let c_url = c.url();
    {
        let p = Process::spawn_with_config(&path).await;
        let admin = format!("http://{}", p.admin);
        let client = client();
        let json = [("content-type", "application/json")];
        let res = send(
            &client,
            Method::POST,
            &format!("{admin}/admin/backends"),
            &json,
            json!({"url": c_url, "name": "c"}).to_string(),
        )
        .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let res = send(
            &client,
            Method::PATCH,
            &format!("{admin}/admin/backends/a"),
            &json,
            json!({"drain": true}).to_string(),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let res = send(
            &client,
            Method::DELETE,
            &format!("{admin}/admin/backends/b"),
            &[],
            "",
        )
        .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
        // Acknowledged means on disk: the file already holds all three.
        let stored: Value =
            serde_json::from_slice(&std::fs::read(&state).expect("state file")).expect("JSON");
        assert_eq!(stored["revision"], 3);
        assert_eq!(stored["backends"].as_object().expect("backends").len(), 3);
    } // killed, as a crash would

    let mut p = Process::spawn_with_config(&path).await;
    let res = send(
        &client(),
        Method::GET,
        &format!("http://{}/admin/backends", p.admin),
        &[],
        "",
    )
    .await;
    assert_eq!(res.header("etag"), Some("\"3\""));
    let got: BTreeMap<String, (bool, String)> = res.json()["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["name"].as_str().expect("name").to_owned(),
                (
                    b["draining"].as_bool().expect("draining"),
                    b["origin"].as_str().expect("origin").to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("a".to_owned(), (true, "file".to_owned())),
            ("c".to_owned(), (false, "runtime".to_owned())),
        ])
    );
    let served = send(
        &client(),
        Method::GET,
        &format!("http://{}/", p.proxy),
        &[],
        "",
    )
    .await;
    assert_eq!(served.backend(), "c");

    // SIGHUP with a new file (b's weight changed, d added): the overlay stays on it (b still removed, a
    // still drained, c still there), d joins.
    let d = echo("d").await;
    write_atomic(
        &path,
        &config(
            &[("a", a.url()), ("b", b.url()), ("d", d.url())],
            &file_store(&state),
        ),
    );
    p.signal("HUP");
    p.wait_line("a SIGHUP reload", |l| {
        l.contains("configuration reloaded") && l.contains("SIGHUP")
    })
    .await;
    let res = send(
        &client(),
        Method::GET,
        &format!("http://{}/admin/backends", p.admin),
        &[],
        "",
    )
    .await;
    let names: Vec<&str> = res.json()["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| if b["draining"] == true { "drained" } else { "" })
        .collect();
    let listed: Vec<String> = res.json()["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(listed, ["a", "d", "c"], "{}", res.text());
    assert_eq!(names, ["drained", "", ""], "{}", res.text());
}

#[test]
fn a_state_file_that_does_not_parse_stops_the_start_naming_it_and_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let garbage =
        "{\"format\": 1, \"revision\": 2, \"backends\": {\"x\": {\"change\": \"explode\"}}}";
    std::fs::write(&state, garbage).expect("write");
    let path = dir.path().join("rrlb.toml");
    write_atomic(
        &path,
        &config(
            &[("a", "http://127.0.0.1:9".to_owned())],
            &file_store(&state),
        ),
    );
    let out = run_rrlb(&[
        "--config",
        path.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");
    assert!(stderr.contains("explode"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&state).expect("read"),
        garbage,
        "left as it was"
    );

    // `--check` says the same, and of a good file what it holds.
    let check = |path: &Path| run_rrlb(&["--check", "--config", path.to_str().expect("utf-8")]);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("explode"));
    std::fs::write(
        &state,
        r#"{"format": 1, "revision": 4, "backends": {"x": {"change": "remove"}}}"#,
    )
    .expect("write");
    let out = check(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "# state: {}: 1 runtime change(s) at revision 4",
            state.display()
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_fleet_without_a_shared_store_is_this_process() {
    let a = echo("a").await;
    let h = Harness::builder()
        .file(config(&[("a", a.url())], ""))
        .start()
        .await;
    let res = patch(&h, "a", json!({"weight": 2})).await;
    assert_eq!(res.status, StatusCode::OK);
    let res = h.admin_get("/admin/fleet").await;
    assert_eq!(etag(&res), "\"1\"");
    let fleet = res.json();
    assert_eq!(fleet["revision"], 1);
    let members = fleet["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{fleet}");
    let me = &members[0];
    assert_eq!(me["admin_listen"], h.admin.to_string());
    assert_eq!(me["listen"], h.proxy.to_string());
    assert_eq!(me["applied_revision"], 1);
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        me["id"]
            .as_str()
            .expect("id")
            .ends_with(&format!("-{}", h.admin.port())),
        "{me}"
    );
}
