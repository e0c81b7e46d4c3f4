//! A fleet of replicas sharing their runtime state through a real etcd (`[state] store = "etcd"`, feature
//! `etcd`): a change through one replica reaches the others, `if-match` holds across replicas, the proxy keeps
//! serving without etcd (changes are refused meanwhile) and catches up when it is back, a value written by hand
//! that is not a valid change is skipped and counted, and a replica is not ready before it has read the state.

#![cfg(feature = "etcd")]

mod support;

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use support::etcd::{Etcd, EtcdTls};
use support::tls::Pki;
use support::*;

/// One file backend `a` at `a_url`, health checks off, and the state in `etcd` under `prefix`.
fn config(a_url: &str, etcd: &Etcd, prefix: &str) -> String {
    format!(
        "[[backends]]\nname = \"a\"\nurl = \"{a_url}\"\n\n[health]\nenabled = false\n\n\
         [state]\nstore = \"etcd\"\n\n[state.etcd]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\n\
         dial_timeout = \"500ms\"\n",
        etcd.url()
    )
}

async fn replica(a_url: &str, etcd: &Etcd, prefix: &str) -> Harness {
    let h = Harness::builder()
        .file(config(a_url, etcd, prefix))
        .start()
        .await;
    wait_ready(&h).await;
    h
}

async fn wait_ready(h: &Harness) {
    eventually("the replica is ready", || async {
        (h.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
}

/// Each backend's (draining, origin) by name.
async fn listed(h: &Harness) -> BTreeMap<String, (bool, String)> {
    h.backends()
        .await
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
        .collect()
}

async fn until_listed(h: &Harness, what: &str, want: BTreeMap<String, (bool, String)>) {
    let want = &want;
    eventually(
        what,
        || async move { (listed(h).await == *want).then_some(()) },
    )
    .await;
}

fn entry(name: &str, draining: bool, origin: &str) -> (String, (bool, String)) {
    (name.to_owned(), (draining, origin.to_owned()))
}

async fn call(
    h: &Harness,
    method: Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(tag) = if_match {
        headers.push(("if-match", tag));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    send(&h.client, method, &h.admin_url(path), &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_replica_reaches_the_other() {
    let etcd = Etcd::start().await;
    let (a, c) = (echo("a").await, echo("c").await);
    let one = replica(&a.url(), &etcd, "/rrlb/reach").await;
    let two = replica(&a.url(), &etcd, "/rrlb/reach").await;

    let res = call(
        &one,
        Method::POST,
        "/admin/backends",
        None,
        Some(json!({"url": c.url(), "name": "c"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let revision = res.header("etag").expect("etag").to_owned();
    // Answered once in force on the replica that took it.
    assert_eq!(
        listed(&one).await,
        BTreeMap::from([entry("a", false, "file"), entry("c", false, "runtime")])
    );
    until_listed(
        &two,
        "the other replica has c",
        BTreeMap::from([entry("a", false, "file"), entry("c", false, "runtime")]),
    )
    .await;
    assert_eq!(
        two.admin_get("/admin/backends").await.header("etag"),
        Some(revision.as_str())
    );
    let served = two.hits(4).await;
    assert_eq!(served, counts(&[("a", 2), ("c", 2)]));

    let res = call(
        &two,
        Method::PATCH,
        "/admin/backends/a",
        None,
        Some(json!({"drain": true})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    until_listed(
        &one,
        "the drain reaches the first replica",
        BTreeMap::from([entry("a", true, "file"), entry("c", false, "runtime")]),
    )
    .await;
    let res = call(&one, Method::DELETE, "/admin/backends/c", None, None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    until_listed(
        &two,
        "the removal reaches the second replica",
        BTreeMap::from([entry("a", true, "file")]),
    )
    .await;

    // Both replicas are in the fleet, at the same revision.
    let revision = one.admin_get("/admin/runtime").await.json()["revision"].clone();
    let one_ref = &one;
    let revision_ref = &revision;
    let fleet = eventually(
        "both replicas report the same applied revision",
        || async move {
            let fleet = one_ref.admin_get("/admin/fleet").await.json();
            let members = fleet["members"].as_array()?.clone();
            (members.len() == 2
                && members
                    .iter()
                    .all(|m| m["applied_revision"] == *revision_ref))
            .then_some(fleet)
        },
    )
    .await;
    let admins: Vec<String> = fleet["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["admin_listen"].as_str().expect("admin_listen").to_owned())
        .collect();
    assert!(
        admins.contains(&one.admin.to_string()) && admins.contains(&two.admin.to_string()),
        "{fleet}"
    );
    let text = two.admin_get("/metrics").await.text();
    assert_eq!(
        metric(&text, "rrlb_state_revision"),
        revision.as_f64(),
        "{text}"
    );
}

/// Eight PATCHes at once, four through each replica, all made against the same revision: etcd's transaction
/// lets exactly one through; the store holds the winner on both replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_against_one_revision_one_wins_across_replicas() {
    let etcd = Etcd::start().await;
    let a = echo("a").await;
    let one = replica(&a.url(), &etcd, "/rrlb/race").await;
    let two = replica(&a.url(), &etcd, "/rrlb/race").await;
    let tag = one
        .admin_get("/admin/backends")
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let h = if i % 2 == 0 { &one } else { &two };
        let (client, url, tag) = (
            h.client.clone(),
            h.admin_url("/admin/backends/a"),
            tag.clone(),
        );
        calls.spawn(async move {
            let headers = [
                ("content-type", "application/json"),
                ("if-match", tag.as_str()),
            ];
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
        .map(|r| r.json()["weight"].clone())
        .expect("a winner");
    let winner = &winner;
    for h in [&one, &two] {
        eventually("the winner on every replica", || async move {
            (h.backend("a").await?["weight"] == *winner).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_if_match_is_refused_on_any_replica() {
    let etcd = Etcd::start().await;
    let a = echo("a").await;
    let one = replica(&a.url(), &etcd, "/rrlb/if-match").await;
    let two = replica(&a.url(), &etcd, "/rrlb/if-match").await;
    let read = one.admin_get("/admin/backends").await;
    let tag = read.header("etag").expect("etag").to_owned();

    let res = call(
        &one,
        Method::PATCH,
        "/admin/backends/a",
        Some(&tag),
        Some(json!({"weight": 2})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // The same view, on the other replica: refused by etcd's comparison, whether or not it has seen the change.
    let res = call(
        &two,
        Method::PATCH,
        "/admin/backends/a",
        Some(&tag),
        Some(json!({"weight": 9})),
    )
    .await;
    assert_eq!(
        res.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        res.text()
    );
    let fresh = res.header("etag").expect("etag").to_owned();
    let two_ref = &two;
    eventually("the second replica has the change", || async move {
        (two_ref.backend("a").await?["weight"] == 2).then_some(())
    })
    .await;
    let fresh = two
        .admin_get("/admin/backends")
        .await
        .header("etag")
        .map(str::to_owned)
        .unwrap_or(fresh);
    let res = call(
        &two,
        Method::PATCH,
        "/admin/backends/a",
        Some(&fresh),
        Some(json!({"weight": 3})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let one_ref = &one;
    eventually("the winner everywhere", || async move {
        (one_ref.backend("a").await?["weight"] == 3).then_some(())
    })
    .await;
}

/// Load on both replicas: `per_client` POSTs from each of two clients per replica, every answer checked; the
/// count of good answers so far is published on `progress`. Returns the failures.
fn load(
    replicas: &[&Harness],
    per_client: u64,
    progress: tokio::sync::watch::Sender<u64>,
) -> tokio::task::JoinSet<Vec<String>> {
    let progress = std::sync::Arc::new(progress);
    let mut tasks = tokio::task::JoinSet::new();
    for h in replicas {
        for k in 0..2u64 {
            let (client, url, progress) = (
                h.client.clone(),
                h.url("/load"),
                std::sync::Arc::clone(&progress),
            );
            tasks.spawn(async move {
                let mut failures = Vec::new();
                for i in 0..per_client {
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
                            progress.send_modify(|n| *n += 1);
                        }
                        Ok(res) => failures.push(format!("{} {}", res.status, res.text())),
                        Err(e) => failures.push(e),
                    }
                }
                failures
            });
        }
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_the_proxy_serves_on_and_catches_up_when_it_is_back() {
    let mut etcd = Etcd::start().await;
    let (a, c, d) = (echo("a").await, echo("c").await, echo("d").await);
    let one = replica(&a.url(), &etcd, "/rrlb/outage").await;
    let two = replica(&a.url(), &etcd, "/rrlb/outage").await;
    let res = call(
        &one,
        Method::POST,
        "/admin/backends",
        None,
        Some(json!({"url": c.url(), "name": "c"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let both = BTreeMap::from([entry("a", false, "file"), entry("c", false, "runtime")]);
    until_listed(&two, "the second replica has c", both.clone()).await;

    // etcd goes away under load on both replicas: not one request fails.
    let (progress, mut seen) = tokio::sync::watch::channel(0u64);
    let clients = load(&[&one, &two], 300, progress);
    tokio::time::timeout(HANG, seen.wait_for(|n| *n >= 100))
        .await
        .expect("load in time")
        .expect("load");
    etcd.stop();
    let failures: Vec<String> = clients.join_all().await.into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(*seen.borrow(), 4 * 300);
    assert_eq!(two.hits(4).await, counts(&[("a", 2), ("c", 2)]));
    let one_ref = &one;
    let res = eventually("changes are refused while etcd is away", || async move {
        let res = call(
            one_ref,
            Method::PATCH,
            "/admin/backends/a",
            None,
            Some(json!({"weight": 5})),
        )
        .await;
        (res.status == StatusCode::SERVICE_UNAVAILABLE).then_some(res)
    })
    .await;
    assert!(
        res.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("unavailable")),
        "{}",
        res.text()
    );
    assert_eq!(listed(&one).await, both);

    // Back, with a change made by hand meanwhile: both replicas apply it.
    etcd.resume().await;
    etcd.put(
        "/rrlb/outage/backends/d",
        &json!({"change": "define", "url": d.url(), "weight": 1}).to_string(),
    );
    let all = BTreeMap::from([
        entry("a", false, "file"),
        entry("c", false, "runtime"),
        entry("d", false, "runtime"),
    ]);
    until_listed(
        &one,
        "the change made by hand reaches the first replica",
        all.clone(),
    )
    .await;
    until_listed(
        &two,
        "the change made by hand reaches the second replica",
        all,
    )
    .await;
    let res = call(
        &two,
        Method::PATCH,
        "/admin/backends/a",
        None,
        Some(json!({"weight": 5})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_is_not_a_change_is_skipped_and_counted() {
    let etcd = Etcd::start().await;
    let (a, d) = (echo("a").await, echo("d").await);
    let h = replica(&a.url(), &etcd, "/rrlb/invalid").await;
    etcd.put("/rrlb/invalid/backends/broken", "{not json");
    etcd.put(
        "/rrlb/invalid/backends/zero",
        r#"{"change": "modify", "weight": 0}"#,
    );
    let h_ref = &h;
    eventually("both are counted", || async move {
        let text = h_ref.admin_get("/metrics").await.text();
        (metric(&text, "rrlb_state_errors_total{kind=\"invalid_value\"}") == Some(2.0))
            .then_some(())
    })
    .await;
    assert_eq!(
        listed(&h).await,
        BTreeMap::from([entry("a", false, "file")])
    );
    // The replica lives on, and a good value after them is applied.
    etcd.put(
        "/rrlb/invalid/backends/d",
        &json!({"change": "define", "url": d.url(), "weight": 1}).to_string(),
    );
    until_listed(
        &h,
        "the good value",
        BTreeMap::from([entry("a", false, "file"), entry("d", false, "runtime")]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_not_ready_before_it_has_read_the_state() {
    let mut etcd = Etcd::stopped();
    let (a, d) = (echo("a").await, echo("d").await);
    let h = Harness::builder()
        .file(config(&a.url(), &etcd, "/rrlb/ready"))
        .start()
        .await;
    let res = h.admin_get("/readyz").await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    etcd.resume().await;
    etcd.put(
        "/rrlb/ready/backends/d",
        &json!({"change": "define", "url": d.url(), "weight": 1}).to_string(),
    );
    wait_ready(&h).await;
    until_listed(
        &h,
        "the state read",
        BTreeMap::from([entry("a", false, "file"), entry("d", false, "runtime")]),
    )
    .await;
}

/// 100 changes through one replica, each followed until the other has applied it: every one arrives (the
/// assertion), and how long it took is printed (p50/p99 for `benches/README.md`; not asserted: speed is the
/// benchmark's business).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_changes_each_reach_the_other_replica() {
    let etcd = Etcd::start().await;
    let a = echo("a").await;
    let one = replica(&a.url(), &etcd, "/rrlb/converge").await;
    let two = replica(&a.url(), &etcd, "/rrlb/converge").await;
    let mut took = Vec::with_capacity(100);
    for i in 0..100u64 {
        let weight = 1 + i % 7;
        let res = call(
            &one,
            Method::PATCH,
            "/admin/backends/a",
            None,
            Some(json!({"weight": weight})),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let revision: u64 = res
            .header("etag")
            .and_then(|t| t.trim_matches('"').parse().ok())
            .expect("a numeric etag");
        let start = std::time::Instant::now();
        let mut seen = false;
        for _ in 0..20_000 {
            let now = two.admin_get("/admin/runtime").await.json()["revision"]
                .as_u64()
                .unwrap_or(0);
            if now >= revision {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(
            seen,
            "change {i} (revision {revision}) never reached the second replica"
        );
        took.push(start.elapsed());
    }
    took.sort();
    eprintln!(
        "convergence over {} changes: p50 {:?}, p99 {:?}, max {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() * 99 / 100],
        took[took.len() - 1]
    );
    assert_eq!(two.backend("a").await.expect("a")["weight"], 1 + 99 % 7);
}

/// etcd over TLS with client certificates (`--client-cert-auth`): the replica connects with `[state.etcd] ca`,
/// `cert` and `key`; without the client certificate it never reads the state (not ready).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let server = pki.issue(&["127.0.0.1", "localhost"]);
    let client_pair = pki.issue_named("rrlb", &[]);
    let etcd = Etcd::start_tls(EtcdTls {
        server_cert: server.cert_file.clone(),
        server_key: server.key_file.clone(),
        ca: pki.ca_file.clone(),
        client_cert: client_pair.cert_file.clone(),
        client_key: client_pair.key_file.clone(),
    })
    .await;
    let (a, d) = (echo("a").await, echo("d").await);
    etcd.put(
        "/rrlb/tls/backends/d",
        &json!({"change": "define", "url": d.url(), "weight": 1}).to_string(),
    );
    let files = format!(
        "ca = {:?}\ncert = {:?}\nkey = {:?}\n",
        pki.ca_file.display().to_string(),
        client_pair.cert_file.display().to_string(),
        client_pair.key_file.display().to_string()
    );
    let h = Harness::builder()
        .file(format!("{}{files}", config(&a.url(), &etcd, "/rrlb/tls")))
        .start()
        .await;
    wait_ready(&h).await;
    until_listed(
        &h,
        "the state read over TLS",
        BTreeMap::from([entry("a", false, "file"), entry("d", false, "runtime")]),
    )
    .await;

    // Without the client certificate etcd refuses the handshake: never synced, never ready.
    let without = format!("ca = {:?}\n", pki.ca_file.display().to_string());
    let refused = Harness::builder()
        .file(format!("{}{without}", config(&a.url(), &etcd, "/rrlb/tls")))
        .start()
        .await;
    // It tried, and failed (the follower counts every failed connection)...
    let refused_ref = &refused;
    eventually("a refused connection is counted", || async move {
        let text = refused_ref.admin_get("/metrics").await.text();
        (metric(&text, "rrlb_state_errors_total{kind=\"unavailable\"}").unwrap_or(0.0) >= 1.0)
            .then_some(())
    })
    .await;
    // ...while etcd answers the replica that has one...
    let res = call(
        &h,
        Method::PATCH,
        "/admin/backends/a",
        None,
        Some(json!({"weight": 2})),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // ...and the replica without a client certificate has read nothing.
    let res = refused.admin_get("/readyz").await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    let res = call(
        &refused,
        Method::PATCH,
        "/admin/backends/a",
        None,
        Some(json!({"weight": 3})),
    )
    .await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
}
