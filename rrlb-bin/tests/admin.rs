//! The admin API: backends CRUD, drain, the bearer token, health and readiness.

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use support::*;

/// Two echo backends `a` and `b`, no active checks.
async fn two(extra_args: &[&str]) -> Harness {
    let echoes = vec![echo("a").await, echo("b").await];
    let toml = format!(
        "{}[health]\nenabled = false\n",
        backends_toml(&[("a", &echoes[0].url(), 1), ("b", &echoes[1].url(), 1)])
    );
    Harness::builder()
        .echoes(echoes)
        .file(toml)
        .args(extra_args)
        .start()
        .await
}

fn error_of(res: &Resp) -> String {
    res.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {}", res.text()))
        .to_owned()
}

/// 6. List, add, refuse duplicates and invalid input, change weight, drain, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_can_be_listed_added_changed_drained_and_deleted() {
    let h = two(&[]).await;
    let c = echo("c").await;

    let list = h.backends().await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "a");
    for key in ["name", "url", "weight", "healthy", "circuit", "in_flight"] {
        assert!(list[0].get(key).is_some(), "{key} missing in {}", list[0]);
    }
    assert_eq!(list[0]["weight"], 1);
    assert_eq!(list[0]["circuit"], "closed");

    // Add: 201 with the backend, and it takes its turn at once.
    let res = h
        .admin_call(
            Method::POST,
            "/admin/backends",
            None,
            Some(&json!({"url": c.url(), "weight": 2, "name": "c"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let added = res.json();
    assert_eq!(added["name"], "c");
    assert_eq!(added["weight"], 2);
    assert!(
        added["url"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&c.url()),
        "{added}"
    );
    assert_eq!(res.header("location"), Some("/admin/backends/c"));
    assert_eq!(h.backend_names().await, ["a", "b", "c"]);
    assert_eq!(h.hits(9).await, counts(&[("a", 3), ("b", 3), ("c", 3)]));

    // Duplicates: same name, or same URL under another name.
    for dup in [
        json!({"url": "http://127.0.0.1:9/", "name": "c"}),
        json!({"url": c.url(), "name": "c2"}),
    ] {
        let res = h
            .admin_call(Method::POST, "/admin/backends", None, Some(&dup))
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{dup}: {}", res.text());
        assert!(!error_of(&res).is_empty());
    }
    // Invalid.
    for bad in [
        json!({"url": "ftp://127.0.0.1:21"}),
        json!({"url": "127.0.0.1:8081"}),
        json!({"url": "http://127.0.0.1:9", "weight": 0}),
        json!({"url": "http://127.0.0.1:9", "weight": 10001}),
        json!({"url": "http://127.0.0.1:9", "weight": "heavy"}),
        json!({"url": "http://127.0.0.1:9", "colour": "red"}),
        json!({"weight": 1}),
        json!([1, 2]),
    ] {
        let res = h
            .admin_call(Method::POST, "/admin/backends", None, Some(&bad))
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}: {}", res.text());
        assert!(!error_of(&res).is_empty());
    }
    let res = send(
        &h.client,
        Method::POST,
        &h.admin_url("/admin/backends"),
        &[],
        "{not json",
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.backend_names().await,
        ["a", "b", "c"],
        "refused calls changed nothing"
    );

    // PATCH weight; bad weights refused.
    let res = h
        .admin_call(
            Method::PATCH,
            "/admin/backends/c",
            None,
            Some(&json!({"weight": 7})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["weight"], 7);
    assert_eq!(h.backend("c").await.expect("c")["weight"], 7);
    for bad in [
        json!({"weight": 0}),
        json!({"weight": -1}),
        json!({}),
        json!({"remove": true}),
        json!({"drain": "yes"}),
    ] {
        let res = h
            .admin_call(Method::PATCH, "/admin/backends/c", None, Some(&bad))
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}: {}", res.text());
    }
    let res = h
        .admin_call(
            Method::PATCH,
            "/admin/backends/nope",
            None,
            Some(&json!({"weight": 2})),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    // Drain: no new requests; undrain: back in turn.
    let res = h
        .admin_call(
            Method::PATCH,
            "/admin/backends/c",
            None,
            Some(&json!({"drain": true})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["draining"], true);
    assert_eq!(h.hits(10).await, counts(&[("a", 5), ("b", 5)]));
    assert_eq!(
        h.admin_get("/admin/health").await.json()["status"],
        "ok",
        "a drained backend is not a failure"
    );
    let res = h
        .admin_call(
            Method::PATCH,
            "/admin/backends/c",
            None,
            Some(&json!({"drain": false})),
        )
        .await;
    assert_eq!(res.json()["draining"], false);
    assert_eq!(h.hits(9).await, counts(&[("a", 3), ("b", 3), ("c", 3)]));

    // {name} also accepts the percent-encoded URL.
    let url_a = h.backend("a").await.expect("a")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let res = h
        .admin_get(&format!("/admin/backends/{}", pct(&url_a)))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["name"], "a");
    let res = h
        .admin_call(
            Method::PATCH,
            &format!("/admin/backends/{}", pct(&c.url())),
            None,
            Some(&json!({"weight": 3})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["name"], "c");
    assert_eq!(res.json()["weight"], 3);

    // DELETE: 204, then 404; its traffic goes to the others.
    let res = h
        .admin_call(Method::DELETE, "/admin/backends/c", None, None)
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());
    let res = h
        .admin_call(Method::DELETE, "/admin/backends/c", None, None)
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(!error_of(&res).is_empty());
    assert_eq!(
        h.admin_get("/admin/backends/c").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.backend_names().await, ["a", "b"]);
    assert_eq!(h.hits(10).await, counts(&[("a", 5), ("b", 5)]));

    // Deleted by its encoded URL.
    let res = h
        .admin_call(
            Method::DELETE,
            &format!("/admin/backends/{}", pct(&url_a)),
            None,
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(h.backend_names().await, ["b"]);
    drop(c);
}

/// 6. Drain with `remove`: the backend gets no new requests, the one in flight completes, then it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_remove_waits_for_the_request_in_flight() {
    let a = echo("a").await;
    let gate = TestBackend::start().await;
    let toml = format!(
        "{}[health]\nenabled = false\n",
        backends_toml(&[("a", &a.url(), 1), ("g", &gate.url(), 1)])
    );
    let h = Harness::builder().echoes(vec![a]).file(toml).start().await;

    // Two requests: round robin sends one to each; the gated one stays in flight.
    let mut pending = Vec::new();
    for _ in 0..2 {
        let client = h.client.clone();
        let url = h.url("/x/hold");
        pending.push(tokio::spawn(async move {
            send(
                &client,
                Method::POST,
                &url,
                &[("content-type", "application/json")],
                "{\"held\":true}",
            )
            .await
        }));
    }
    gate.wait_held(1).await;
    h.wait_backend("g", "one request in flight", |b| b["in_flight"] == 1)
        .await;

    let res = h
        .admin_call(
            Method::PATCH,
            "/admin/backends/g",
            None,
            Some(&json!({"drain": true, "remove": true})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["draining"], true);
    let g = h.backend("g").await.expect("busy: still listed");
    assert_eq!(g["draining"], true);
    assert_eq!(g["in_flight"], 1);

    // No new requests reach it.
    assert_eq!(h.hits(6).await, counts(&[("a", 6)]));

    gate.release();
    let mut served = Vec::new();
    for p in pending {
        let res = tokio::time::timeout(HANG, p)
            .await
            .expect("hang")
            .expect("task");
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        served.push(res.backend().to_owned());
    }
    served.sort();
    assert_eq!(served, ["a", "g"]);
    let hr = &h;
    eventually("g removed once idle", || async move {
        (!hr.backend_names().await.contains(&"g".to_owned())).then_some(())
    })
    .await;
    assert_eq!(h.backend_names().await, ["a"]);
}

/// 6. `DELETE` while a request is in flight: `204` at once, and the request still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_lets_the_request_in_flight_complete() {
    let gate = TestBackend::start().await;
    let h = Harness::builder().args(&["-b", &gate.url()]).start().await;
    let name = h.backend_names().await.remove(0);

    let client = h.client.clone();
    let url = h.url("/hold");
    let pending = tokio::spawn(async move { send(&client, Method::GET, &url, &[], "").await });
    gate.wait_held(1).await;

    let res = h
        .admin_call(
            Method::DELETE,
            &format!("/admin/backends/{name}"),
            None,
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(h.backends().await.is_empty());
    // Nothing left to route to.
    let res = h.post("/", &json!({})).await;
    assert_json_error(&res, 503);

    gate.release();
    let res = tokio::time::timeout(HANG, pending)
        .await
        .expect("hang")
        .expect("task");
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.backend(), name);
}

/// 6. With a token, every mutating call needs `authorization: Bearer <token>`; reads do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_mutating_calls() {
    let h = two(&["--admin-token", "s3cret-T0ken"]).await;
    let c = echo("c").await;
    let add = json!({"url": c.url(), "name": "c"});

    let mutations: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "/admin/backends", Some(add.clone())),
        (
            Method::PATCH,
            "/admin/backends/a",
            Some(json!({"weight": 2})),
        ),
        (Method::DELETE, "/admin/backends/a", None),
        (Method::POST, "/admin/reload", None),
    ];
    for (method, path, body) in &mutations {
        for token in [
            None,
            Some("wrong"),
            Some("s3cret-T0ke"),
            Some("s3cret-T0ken2"),
        ] {
            let res = h
                .admin_call(method.clone(), path, token, body.as_ref())
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}: {}",
                res.text()
            );
            assert!(!error_of(&res).is_empty());
            assert!(
                res.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer"))
            );
        }
        // Not a bearer credential at all.
        let res = send(
            &h.client,
            method.clone(),
            &h.admin_url(path),
            &[("authorization", "Basic czNjcmV0LVQwa2Vu")],
            body.as_ref().map(Value::to_string).unwrap_or_default(),
        )
        .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        h.backend_names().await,
        ["a", "b"],
        "no refused call changed anything"
    );

    // Reads need no token.
    for path in [
        "/admin/backends",
        "/admin/backends/a",
        "/admin/health",
        "/admin/metrics",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert_eq!(h.admin_get(path).await.status, StatusCode::OK, "{path}");
    }

    // With the token, they go through.
    let t = Some("s3cret-T0ken");
    let res = h
        .admin_call(Method::POST, "/admin/backends", t, Some(&add))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let res = h
        .admin_call(
            Method::PATCH,
            "/admin/backends/a",
            t,
            Some(&json!({"weight": 2})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let res = h
        .admin_call(Method::DELETE, "/admin/backends/a", t, None)
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    // Reload needs a file; this one has it, so the token is what mattered.
    let res = h.admin_call(Method::POST, "/admin/reload", t, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(
        !res.text().contains("s3cret-T0ken"),
        "the effective config leaks the token"
    );
    drop(c);
}

/// Health, readiness and routing of unknown admin paths and methods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_unknown_paths() {
    let h = two(&[]).await;
    let res = h.admin_get("/healthz").await;
    assert_eq!(res.status, StatusCode::OK);
    let res = h.admin_get("/readyz").await;
    assert_eq!(res.status, StatusCode::OK);
    let res = h.admin_get("/admin/health").await;
    assert_eq!(res.status, StatusCode::OK);
    let body = res.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["backends"].as_array().map(Vec::len), Some(2));

    let res = h.admin_get("/admin/nothing-here").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(!error_of(&res).is_empty());
    let res = h
        .admin_call(Method::DELETE, "/admin/health", None, None)
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.header("allow").is_some());
    let res = h
        .admin_call(Method::PUT, "/admin/backends", None, Some(&json!({})))
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);

    // Reload without a configuration file: 400 and nothing changes.
    let e = echo("x").await;
    let cli_only = Harness::builder().args(&["-b", &e.url()]).start().await;
    let res = cli_only
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&res).contains("config"), "{}", res.text());
    assert_eq!(cli_only.backends().await.len(), 1);
}

/// The route table's answers: `allow` names exactly the methods the table has for the path, a wrong method is a
/// `405` before the token is asked for, the collection is served with a trailing slash, `HEAD` where `GET` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_and_the_gate_follow_the_route_table() {
    let h = two(&["--admin-token", "s3cret-T0ken"]).await;
    for (method, path, allow) in [
        (Method::POST, "/healthz", "GET"),
        (Method::DELETE, "/readyz", "GET"),
        (Method::PUT, "/metrics", "GET"),
        (Method::POST, "/admin/health", "GET"),
        (Method::PATCH, "/admin/metrics", "GET"),
        (Method::PUT, "/admin/backends", "GET, POST"),
        (Method::DELETE, "/admin/backends/", "GET, POST"),
        (Method::POST, "/admin/backends/a", "GET, PATCH, DELETE"),
        (
            Method::PUT,
            "/admin/backends/echo%2F10.0.0.1",
            "GET, PATCH, DELETE",
        ),
        (Method::GET, "/admin/reload", "POST"),
        (Method::OPTIONS, "/admin/reload", "POST"),
    ] {
        // No token: the method is wrong whoever asks, so no 401.
        let res = h.admin_call(method.clone(), path, None, None).await;
        assert_eq!(
            res.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            res.text()
        );
        assert_eq!(res.header("allow"), Some(allow), "{method} {path}");
        assert!(!error_of(&res).is_empty());
    }

    let res = h.admin_get("/admin/backends/").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["backends"].as_array().map(Vec::len), Some(2));
    let res = h
        .admin_call(Method::POST, "/admin/backends/", None, Some(&json!({})))
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    for path in ["/healthz/", "/admin", "/admin/backendsx", "/dashboard"] {
        let res = h.admin_get(path).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            error_of(&res),
            format!("no such admin endpoint: {path}"),
            "{path}"
        );
    }
    let res = h
        .admin_call(Method::HEAD, "/admin/backends/a", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text().is_empty(), "HEAD has no body");
    // A `{name}` may be the backend's percent-encoded URL.
    let url = h.backends().await[0]["url"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    let encoded: String = url
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let res = h.admin_get(&format!("/admin/backends/{encoded}")).await;
    assert_eq!(res.status, StatusCode::OK, "{encoded}: {}", res.text());
    assert_eq!(res.json()["name"], "a");
}
