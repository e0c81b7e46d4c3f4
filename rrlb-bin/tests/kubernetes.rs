//! The `kubernetes` source end to end (feature `kubernetes`): an in-process rrlb follows the EndpointSlices
//! that a fake API server (`discovery_support/kube_api.rs`, on `127.0.0.1`) serves, through a rolling update
//! under load. Every endpoint is `127.0.0.1`, each slice with its own port (named `http`).
#![cfg(feature = "kubernetes")]

mod support;

#[path = "discovery_support/kube_api.rs"]
mod kube_api;
#[path = "discovery_support/load.rs"]
mod load;
#[path = "discovery_support/members.rs"]
mod members;

use http::{Method, StatusCode};
use serde_json::json;
use support::{Harness, TestBackend, eventually, metric, send};

use self::kube_api::{FakeKubeApi, slice};
use self::load::Load;
use self::members::{calls, member, sorted, sorted_names};

/// A rolling update: a new pod's endpoint becomes ready and gets traffic, an old one turns `terminating` and
/// drains (its request in flight completes), then its slice is deleted and it leaves; not one request of the
/// background load fails. An API server that fails keeps the group as it is, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_update_loses_no_request() {
    let (old, stay, new) = (
        TestBackend::start().await,
        TestBackend::start().await,
        TestBackend::start().await,
    );
    let (po, ps, pn) = (old.addr().port(), stay.addr().port(), new.addr().port());
    let api = FakeKubeApi::start(vec![
        slice("echo-old", "echo", po, &[("127.0.0.1", true, false)]),
        slice("echo-stay", "echo", ps, &[("127.0.0.1", true, false)]),
    ])
    .await;
    let config = format!(
        r#"
[[backends]]
name = "echo"
url = "http://echo.test:8080"
discovery = "kubernetes"
port_name = "http"

[discovery]
kubernetes_api = "http://{}"
"#,
        api.addr
    );
    let h = Harness::builder().file(config.clone()).start().await;
    eventually("the ready endpoints listed", || async {
        (sorted_names(&h).await == sorted([member(po), member(ps)])).then_some(())
    })
    .await;
    let listed = h.backend(&member(po)).await.unwrap();
    assert_eq!(
        (listed["group"].clone(), listed["source"].clone()),
        (json!("echo"), json!("kubernetes"))
    );
    // A watch, not polling.
    eventually("a watch is open", || async {
        api.requests()
            .iter()
            .any(|r| r.contains("watch=true"))
            .then_some(())
    })
    .await;
    let res = send(&h.client, Method::GET, &h.url("/host"), &[], "").await;
    assert_eq!(res.json()["headers"]["host"], json!(["echo.test:8080"]));

    // A request held on each old pod.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (h.client.clone(), h.url("/x/hold"));
            tokio::spawn(async move { send(&client, Method::GET, &url, &[], "").await })
        })
        .collect();
    old.wait_held(1).await;
    stay.wait_held(1).await;
    let load = Load::start(&h, 4);
    load.more(50).await;

    // The new pod is ready.
    api.apply(slice("echo-new", "echo", pn, &[("127.0.0.1", true, false)]));
    eventually("the new pod gets traffic", || async {
        (load.served(&member(pn)) > 0).then_some(())
    })
    .await;
    // The old one is terminating: it drains.
    api.apply(slice("echo-old", "echo", po, &[("127.0.0.1", false, true)]));
    h.wait_backend(&member(po), "draining", |m| m["draining"] == true)
        .await;
    // Once only its held request is in flight, nothing new reaches it: its count of calls stays.
    let (count, _) = eventually("only the held request in flight", || async {
        let (requests, in_flight) = calls(&h, &member(po)).await;
        (in_flight == 1).then_some((requests, in_flight))
    })
    .await;
    load.more(100).await;
    assert_eq!(
        calls(&h, &member(po)).await,
        (count, 1),
        "a draining backend gets no new request"
    );
    old.release();
    stay.release();
    for t in held {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
    api.delete("echo-old");
    eventually("the old pod leaves", || async {
        (sorted_names(&h).await == sorted([member(ps), member(pn)])).then_some(())
    })
    .await;

    // The API server fails: the group stays as it is, and the failure is counted.
    api.set_failing(true);
    eventually("the failure is counted", || async {
        let text = h.admin_get("/metrics").await.text();
        (metric(&text, "rrlb_discovery_errors_total{group=\"echo\"}")? >= 1.0).then_some(())
    })
    .await;
    load.more(100).await;
    assert_eq!(sorted_names(&h).await, sorted([member(ps), member(pn)]));
    api.set_failing(false);

    let failures = load.stop().await;
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    // A reload that changes the group's weight keeps its pods (statistics and all) and re-lists.
    let before = h.request_counts().await[&member(pn)];
    h.write_config(&config.replace("port_name = \"http\"", "port_name = \"http\"\nweight = 4"));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(sorted_names(&h).await, sorted([member(ps), member(pn)]));
    h.wait_backend(&member(ps), "the new weight", |m| m["weight"] == 4)
        .await;
    assert!(h.request_counts().await[&member(pn)] >= before);
}
