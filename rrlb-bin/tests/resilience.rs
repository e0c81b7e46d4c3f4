//! Failing backends: crashed, slow, unhealthy, all gone. Ejection, retries, fair shares among the rest,
//! and recovery.

mod support;

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use support::*;

/// Fast active checks: three failures in a row eject, two passes bring back. (A crashed backend refuses
/// connections, so its probes fail at once; three in a row keep one probe that a busy machine delays past its
/// timeout from ejecting a healthy backend, which would upset the exact shares the tests assert.)
const FAST_HEALTH: &str = "[health]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 3\n";

async fn three(names: [&str; 3], extra: &str) -> Harness {
    let echoes = vec![
        echo(names[0]).await,
        echo(names[1]).await,
        echo(names[2]).await,
    ];
    let toml = format!(
        "{}{extra}",
        backends_toml(&[
            (names[0], &echoes[0].url(), 1),
            (names[1], &echoes[1].url(), 1),
            (names[2], &echoes[2].url(), 1),
        ])
    );
    Harness::builder().echoes(echoes).file(toml).start().await
}

/// 3. A crashed backend: no client sees an error (connect failures are retried elsewhere), it is
/// ejected, the other two share exactly, and once restarted on its address it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_is_ejected_without_client_errors_and_comes_back() {
    let mut h = three(["a", "b", "c"], FAST_HEALTH).await;
    // Warm up: every backend has pooled keep-alive connections.
    assert_eq!(h.hits(30).await, counts(&[("a", 10), ("b", 10), ("c", 10)]));

    let addr = h.kill(2).await;
    // hit() asserts 200 on every request: the dead backend's turns are retried on the others.
    let served = h.hits(60).await;
    assert!(
        !served.contains_key("c"),
        "a killed backend answered: {served:?}"
    );
    // Its turns were tried (connection refused) and retried on the others.
    let metrics = h.admin_get("/metrics").await.text();
    let retries = metric(&metrics, "rrlb_retries_total").expect("rrlb_retries_total");
    assert!(
        retries >= 1.0,
        "no retry: was the killed backend tried at all?\n{metrics}"
    );

    let c = h
        .wait_backend("c", "ejected", |b| b["healthy"] == false)
        .await;
    assert_eq!(c["healthy"], false, "{c}");
    let health = h.admin_get("/admin/health").await;
    assert_eq!(
        health.status,
        StatusCode::OK,
        "two backends are still eligible"
    );
    assert_eq!(health.json()["status"], "degraded");

    // With one of three out, the other two share exactly.
    assert_eq!(h.hits(40).await, counts(&[("a", 20), ("b", 20)]));

    // Restarted on the same address, it passes its checks, its breaker (if opened) closes through probes,
    // and it takes traffic again.
    h.restart(2, "c", addr).await;
    let hr = &h;
    eventually("c eligible again", || async move {
        hr.hit().await;
        let c = hr.backend("c").await?;
        (c["healthy"] == true && c["circuit"] == "closed").then_some(())
    })
    .await;
    assert_eq!(h.hits(30).await, counts(&[("a", 10), ("b", 10), ("c", 10)]));
    assert_eq!(h.admin_get("/admin/health").await.json()["status"], "ok");
}

/// 4. A slow backend: its requests time out with `504` (JSON, request id), its breaker opens after
/// consecutive failures so it gets nothing, and once fast again it is let back in by a half-open probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_backend_times_out_is_ejected_and_comes_back() {
    let extra = "[health]\nenabled = false\n\
                 [timeouts]\nrequest = \"2s\"\n\
                 [circuit_breaker]\nconsecutive_failures = 2\nopen_duration = \"3s\"\nhalf_open_max_calls = 1\n";
    let h = three(["a", "b", "c"], extra).await;
    h.echo(2).chaos().set_delay(Duration::from_secs(30));

    let mut timeouts = 0;
    for _ in 0..30 {
        let res = h.post("/", &json!({"slow": "maybe"})).await;
        if res.status == StatusCode::GATEWAY_TIMEOUT {
            assert_json_error(&res, 504);
            assert_eq!(
                res.backend(),
                "c",
                "the 504 names the backend that timed out"
            );
            timeouts += 1;
            if timeouts == 2 {
                break;
            }
        } else {
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            assert_ne!(res.backend(), "c");
        }
    }
    assert_eq!(timeouts, 2, "the slow backend never timed out");
    // The second consecutive failure opened its breaker before the 504 was sent.
    let c = h.backend("c").await.expect("c");
    assert_eq!(c["circuit"], "open", "{c}");

    // While open, it gets no requests and the other two share exactly.
    let before = h.request_counts().await["c"];
    assert_eq!(h.hits(10).await, counts(&[("a", 5), ("b", 5)]));
    assert_eq!(h.request_counts().await["c"], before);
    assert_eq!(
        h.backend("c").await.expect("c")["circuit"],
        "open",
        "the batch ran while it was open"
    );

    // Fast again: after the open period a probe goes through, succeeds, and the breaker closes.
    h.echo(2).chaos().set_delay(Duration::ZERO);
    let hr = &h;
    eventually("c serves again", || async move {
        (hr.hit().await == "c").then_some(())
    })
    .await;
    h.wait_backend("c", "breaker closed", |b| b["circuit"] == "closed")
        .await;
    assert_eq!(h.hits(30).await, counts(&[("a", 10), ("b", 10), ("c", 10)]));

    let metrics = h.admin_get("/metrics").await.text();
    assert!(
        metrics.contains("rrlb_requests_total{backend=\"c\",code=\"504\"} 2"),
        "{metrics}"
    );
    let m = h.admin_get("/admin/metrics").await.json();
    let c = m["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["name"] == "c")
        .cloned()
        .expect("c");
    assert_eq!(c["failures"], 2, "{c}");
}

/// With `on = ["timeout"]`, a slow backend's timeouts are retried on another backend: no client error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_retried_elsewhere_when_configured() {
    let extra = "[health]\nenabled = false\n\
                 [timeouts]\nrequest = \"2s\"\n\
                 [retries]\nattempts = 1\non = [\"connect-failure\", \"timeout\"]\n";
    let h = three(["a", "b", "c"], extra).await;
    h.echo(2).chaos().set_delay(Duration::from_secs(30));
    let served = h.hits(6).await;
    assert!(!served.contains_key("c"), "{served:?}");
    assert_eq!(served.values().sum::<u64>(), 6);
    // It was tried, timed out, and each of its turns was retried on another backend.
    assert!(h.request_counts().await["c"] >= 1);
    let metrics = h.admin_get("/metrics").await.text();
    let retries = metric(&metrics, "rrlb_retries_total").expect("rrlb_retries_total");
    assert!(retries >= 1.0, "{metrics}");
}

/// 5. Every backend failing its checks: `503` with `retry-after` and the JSON error, `/readyz` and
/// `/admin/health` say so; one recovering makes it `degraded` and serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_eligible_backend_gives_503_and_not_ready() {
    let h = three(["a", "b", "c"], FAST_HEALTH).await;
    assert_eq!(h.admin_get("/readyz").await.status, StatusCode::OK);
    let health = h.admin_get("/admin/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");

    for i in 0..3 {
        h.echo(i).chaos().set_healthy(false);
    }
    let hr = &h;
    eventually("not ready", || async move {
        (hr.admin_get("/readyz").await.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;

    let res = h.post("/", &json!({"anyone": "there?"})).await;
    assert_json_error(&res, 503);
    let retry: u64 = res
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(res.header("x-rrlb-backend").is_none());

    let health = h.admin_get("/admin/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = health.json();
    assert_eq!(body["status"], "down");
    let backends = body["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 3);
    for b in backends {
        assert_eq!(b["healthy"], false, "{b}");
        for key in ["name", "url", "circuit", "weight", "in_flight"] {
            assert!(b.get(key).is_some(), "{key} missing in {b}");
        }
    }
    assert_eq!(
        h.admin_get("/healthz").await.status,
        StatusCode::OK,
        "liveness does not depend on backends"
    );
    let metrics = h.admin_get("/metrics").await.text();
    assert!(
        metrics.contains("rrlb_backend_healthy{backend=\"a\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("rrlb_rejected_total{reason=\"no_backend\"}") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );

    // One recovers.
    h.echo(0).chaos().set_healthy(true);
    eventually("ready again", || async move {
        (hr.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    let health = h.admin_get("/admin/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "degraded");
    assert_eq!(h.hits(5).await, counts(&[("a", 5)]));
}

/// 5. Every backend crashed: connect failures first (`502`), then, once the checks eject them, `503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_backends_killed_gives_503() {
    let mut h = three(["a", "b", "c"], FAST_HEALTH).await;
    assert_eq!(h.hits(3).await.len(), 3);
    for i in 0..3 {
        h.kill(i).await;
    }
    let hr = &h;
    let res = eventually("503 once every backend is ejected", || async move {
        let res = hr.post("/", &json!({})).await;
        match res.status.as_u16() {
            503 => Some(res),
            502 => {
                assert_json_error(&res, 502);
                None
            }
            other => panic!("unexpected {other}: {}", res.text()),
        }
    })
    .await;
    assert_json_error(&res, 503);
    assert!(res.header("retry-after").is_some());
    assert_eq!(
        h.admin_get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.admin_get("/admin/health").await.json()["status"], "down");
}
