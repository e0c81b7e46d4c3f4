//! Hot reload: `POST /admin/reload`, the file watcher, refused files, surviving state, and no failed
//! request while the configuration changes under load.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use serde_json::json;

use support::*;

const QUIET: &str = "[health]\nenabled = false\n";

/// 7. A good reload adds and removes backends, answers the effective config (without the token), and the
/// surviving backend keeps its counters; a bad one is refused with the key named and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_applies_good_files_and_refuses_bad_ones() {
    let echoes = vec![echo("a").await, echo("b").await, echo("c").await];
    let urls: Vec<String> = echoes.iter().map(|e| e.url()).collect();
    let token = "[admin]\ntoken = \"reload-t0ken\"\n";
    // The file sets the request timeout, so no flag or variable overrides it (and it is validated).
    let patient = "[timeouts]\nrequest = \"30s\"\n";
    let v1 = format!(
        "{}{QUIET}{patient}{token}",
        backends_toml(&[("a", &urls[0], 1), ("b", &urls[1], 1)])
    );
    let h = Harness::builder().echoes(echoes).file(v1).start().await;
    let t = Some("reload-t0ken");

    assert_eq!(h.hits(10).await, counts(&[("a", 5), ("b", 5)]));

    // b survives, a leaves, c arrives; the algorithm and a timeout change too.
    let v2 = format!(
        "algorithm = \"least-request\"\n{}{QUIET}[timeouts]\nrequest = \"20s\"\nconnect = \"750ms\"\n{token}",
        backends_toml(&[("b", &urls[1], 1), ("c", &urls[2], 2)])
    );
    h.write_config(&v2);
    let res = h.admin_call(Method::POST, "/admin/reload", t, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let effective = res.json();
    assert_eq!(effective["algorithm"], "least-request");
    assert_eq!(effective["timeouts"]["request"], "20s");
    assert_eq!(effective["timeouts"]["connect"], "750ms");
    let names: Vec<&str> = effective["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["b", "c"]);
    assert!(
        effective["admin"].get("token").is_none(),
        "token in {effective}"
    );
    assert!(!res.text().contains("reload-t0ken"));

    assert_eq!(h.backend_names().await, ["b", "c"]);
    assert_eq!(h.backend("c").await.expect("c")["weight"], 2);
    assert_eq!(
        h.request_counts().await,
        counts(&[("b", 5), ("c", 0)]),
        "b's statistics survive the reload"
    );
    let served = h.hits(10).await;
    assert_eq!(served.values().sum::<u64>(), 10);
    assert!(served.keys().all(|k| k == "b" || k == "c"), "{served:?}");

    // Refused files: the error names the key; the running configuration stays.
    let bad_files = [
        (
            format!("{}{token}", backends_toml(&[("b", &urls[1], 0)])),
            "backends[0].weight",
        ),
        (
            format!(
                "bogus_key = 1\n{}{token}",
                backends_toml(&[("b", &urls[1], 1)])
            ),
            "bogus_key",
        ),
        (
            format!(
                "{}[health]\nintervall = \"1s\"\n{token}",
                backends_toml(&[("b", &urls[1], 1)])
            ),
            "intervall",
        ),
        (
            format!(
                "{}[timeouts]\nrequest = \"2 parsecs\"\n{token}",
                backends_toml(&[("b", &urls[1], 1)])
            ),
            "timeouts.request",
        ),
        (
            format!("{}{token}", backends_toml(&[("b", "ftp://127.0.0.1:1", 1)])),
            "url",
        ),
        ("this is not toml = = =".to_owned(), "rrlb.toml"),
    ];
    for (text, key) in &bad_files {
        h.write_config(text);
        let res = h.admin_call(Method::POST, "/admin/reload", t, None).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{text}\n=> {}",
            res.text()
        );
        let error = res.json()["error"].as_str().expect("error").to_owned();
        assert!(error.contains(key), "{key:?} not named in {error:?}");
        assert_eq!(
            h.backend_names().await,
            ["b", "c"],
            "a refused file changed the backends"
        );
        let served = h.hits(4).await;
        assert!(served.keys().all(|k| k == "b" || k == "c"), "{served:?}");
    }
    // The token of the running configuration still applies (the bad files had no say).
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // Back to a good file: applied.
    let v3 = format!(
        "{}{QUIET}{patient}{token}",
        backends_toml(&[("c", &urls[2], 1)])
    );
    h.write_config(&v3);
    let res = h.admin_call(Method::POST, "/admin/reload", t, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(h.backend_names().await, ["c"]);
    assert_eq!(h.hits(3).await, counts(&[("c", 3)]));
}

/// 7. Rewriting the file (in place, as an editor does) is picked up by the watcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_are_picked_up_by_the_watcher() {
    let echoes = vec![echo("a").await, echo("b").await];
    let urls: Vec<String> = echoes.iter().map(|e| e.url()).collect();
    let h = Harness::builder()
        .echoes(echoes)
        .file(format!("{}{QUIET}", backends_toml(&[("a", &urls[0], 1)])))
        .start()
        .await;
    assert_eq!(h.hits(4).await, counts(&[("a", 4)]));
    let path = h.config_path.clone().expect("config path");

    std::fs::write(
        &path,
        format!(
            "{}{QUIET}",
            backends_toml(&[("a", &urls[0], 1), ("b", &urls[1], 3)])
        ),
    )
    .expect("rewrite");
    let hr = &h;
    eventually("the watcher applies the new file", || async move {
        (hr.backend_names().await == ["a", "b"]).then_some(())
    })
    .await;
    assert_eq!(h.backend("b").await.expect("b")["weight"], 3);
    assert_eq!(h.request_counts().await["a"], 4, "a keeps its counters");
    assert_eq!(h.hits(4).await, counts(&[("a", 2), ("b", 2)]));

    // A broken file is ignored by the watcher; the next good one applies.
    std::fs::write(
        &path,
        "[[backends]]\nurl = \"http://127.0.0.1:1\"\nweight = 0\n",
    )
    .expect("rewrite");
    std::fs::write(
        &path,
        format!("{}{QUIET}", backends_toml(&[("b", &urls[1], 1)])),
    )
    .expect("rewrite");
    eventually("the watcher applies the last good file", || async move {
        (hr.backend_names().await == ["b"]).then_some(())
    })
    .await;
    assert_eq!(h.hits(4).await, counts(&[("b", 4)]));

    // Replaced by a rename (as ConfigMaps and atomic writers do).
    h.write_config(&format!("{}{QUIET}", backends_toml(&[("a", &urls[0], 1)])));
    eventually("the watcher sees a renamed-in file", || async move {
        (hr.backend_names().await == ["a"]).then_some(())
    })
    .await;
}

/// 7. Under continuous traffic, good and bad reloads (admin call and file), algorithm changes, admin adds,
/// drains and deletes: not one request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_the_configuration_changes() {
    let echoes = vec![
        echo("a").await,
        echo("b").await,
        echo("c").await,
        echo("d").await,
    ];
    let urls: Vec<String> = echoes.iter().map(|e| e.url()).collect();
    let health = "[health]\ninterval = \"100ms\"\ntimeout = \"100ms\"\n";
    let file = |backends: &[(&str, &str, u32)], top: &str, extra: &str| {
        format!("{top}{}{health}{extra}", backends_toml(backends))
    };
    let h = Harness::builder()
        .echoes(echoes)
        .file(file(&[("a", &urls[0], 1), ("b", &urls[1], 1)], "", ""))
        .start()
        .await;

    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let (progress_tx, progress) = tokio::sync::watch::channel(0u64);
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for k in 0..2 {
        let (client, url, done, ok, progress_tx) = (
            h.client.clone(),
            h.url("/load"),
            Arc::clone(&done),
            Arc::clone(&ok),
            progress_tx.clone(),
        );
        let failures = Arc::clone(&failures);
        clients.push(tokio::spawn(async move {
            let fail = |what: String| {
                failures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(what)
            };
            for i in 0..20_000u64 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let body = json!({"client": k, "i": i}).to_string();
                match try_send(
                    &client,
                    Method::POST,
                    &url,
                    &[("content-type", "application/json")],
                    body.clone(),
                )
                .await
                {
                    Ok(res) if res.status == StatusCode::OK && res.body == body.as_bytes() => {
                        let n = ok.fetch_add(1, Ordering::Relaxed) + 1;
                        progress_tx.send_replace(n);
                    }
                    Ok(res) => fail(format!("{} {}", res.status, res.text())),
                    Err(e) => fail(e),
                }
            }
        }));
    }
    // Wait until the clients have made `more` successful requests since the last step.
    let mut seen = 0u64;
    let mut step = async |what: &str| {
        let mut rx = progress.clone();
        let target = seen + 20;
        tokio::time::timeout(HANG, rx.wait_for(|n| *n >= target))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "traffic stalled after {what}: {:?}",
                    failures.lock().map(|f| f[..f.len().min(5)].to_vec())
                )
            })
            .expect("clients gone");
        seen = *rx.borrow();
    };
    step("start").await;

    let reload = |expect: StatusCode| {
        let h = &h;
        async move {
            let res = h
                .admin_call(Method::POST, "/admin/reload", None, None)
                .await;
            assert_eq!(res.status, expect, "{}", res.text());
        }
    };

    for round in 0..3 {
        // Admin changes, on the state the watcher applied last (so no file reload is pending that would
        // undo them): add d, drain b, delete a.
        let res = h
            .admin_call(
                Method::POST,
                "/admin/backends",
                None,
                Some(&json!({"url": urls[3], "name": "d"})),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        step("adding d").await;
        let res = h
            .admin_call(
                Method::PATCH,
                "/admin/backends/b",
                None,
                Some(&json!({"drain": true})),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        step("draining b").await;
        let res = h
            .admin_call(Method::DELETE, "/admin/backends/a", None, None)
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
        step("deleting a").await;
        assert_eq!(h.backend_names().await, ["b", "d"]);
        // The admin changes outlive reloads (the runtime overlay): dropped, the file's backends are back.
        let res = h
            .admin_call(Method::DELETE, "/admin/runtime", None, None)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        step("dropping the runtime changes").await;

        // Good: a, b and c, weighted.
        h.write_config(&file(
            &[("a", &urls[0], 1), ("b", &urls[1], 2), ("c", &urls[2], 1)],
            "algorithm = \"weighted-round-robin\"\n",
            "",
        ));
        reload(StatusCode::OK).await;
        step("adding c").await;
        // Bad: refused, the running configuration keeps serving. (The watcher may apply any of these files
        // as well; it reads the newest, so the outcome is the same.)
        h.write_config(&file(&[("a", &urls[0], 0)], "", ""));
        reload(StatusCode::BAD_REQUEST).await;
        step("a refused reload").await;
        h.write_config(&file(&[("a", &urls[0], 1)], "unknown_key = true\n", ""));
        reload(StatusCode::BAD_REQUEST).await;
        step("an unknown key").await;
        // Good: remove a, least-request, a new connect timeout (so a new upstream pool).
        h.write_config(&file(
            &[("b", &urls[1], 1), ("c", &urls[2], 1)],
            "algorithm = \"least-request\"\n",
            &format!("[timeouts]\nconnect = \"{}ms\"\n", 400 + round),
        ));
        reload(StatusCode::OK).await;
        step("removing a").await;

        // Good, through the watcher only: back to a and b, round robin. (The comment makes the text new to
        // the watcher, which skips a file whose content it has already read.)
        h.write_config(&file(
            &[("a", &urls[0], 1), ("b", &urls[1], 1)],
            &format!("# round {round}\n"),
            "",
        ));
        let hr = &h;
        eventually("the watcher reloads", || async move {
            (hr.backend_names().await == ["a", "b"]).then_some(())
        })
        .await;
        step("the watcher's reload").await;
    }

    done.store(true, Ordering::Relaxed);
    for c in clients {
        tokio::time::timeout(HANG, c)
            .await
            .expect("client hang")
            .expect("client task");
    }
    let failures = failures.lock().expect("failures").clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let total = ok.load(Ordering::Relaxed);
    assert!(total >= 20 * 24, "only {total} requests");
    let metrics = h.admin_get("/admin/metrics").await.json();
    assert!(metrics["total_requests"].as_u64().expect("total") >= total);
}

/// A reload can move the access log: lines before it stay in the old file, lines after it go to the new one;
/// a file rrlb cannot open is refused and the running log stays. Turning the log off stops the lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_or_stops_the_access_log() {
    let echoes = vec![echo("a").await];
    let url = echoes[0].url();
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let config = |log: &str| {
        format!(
            "{}{QUIET}[access_log]\n{log}\n",
            backends_toml(&[("a", &url, 1)])
        )
    };
    let path = |p: &std::path::Path| format!("path = {:?}", p.display().to_string());
    let mut h = Harness::builder()
        .echoes(echoes)
        .file(config(&path(&first)))
        .start()
        .await;
    assert_eq!(h.hits(2).await, counts(&[("a", 2)]));

    h.write_config(&config(&path(&second)));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(h.hits(3).await, counts(&[("a", 3)]));

    h.write_config(&config(&path(&dir.path().join("no/such/dir/x.log"))));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert!(res.text().contains("access log"), "{}", res.text());
    assert_eq!(h.hits(1).await, counts(&[("a", 1)]));

    h.write_config(&config(&format!("{}\nenabled = false", path(&second))));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(h.hits(5).await, counts(&[("a", 5)]));

    h.shutdown();
    h.join().await.expect("rrlb ended with an error");
    let lines = |p: &std::path::Path| std::fs::read_to_string(p).expect("read").lines().count();
    // A request's line is written when rrlb is done with it, which may be a moment after the client has the
    // answer: the last lines before a reload may land after it. Every line is in one of the files, none
    // after the log was turned off.
    let (before, after) = (lines(&first), lines(&second));
    assert!(before <= 2 && before + after == 6, "{before} + {after}");
}
