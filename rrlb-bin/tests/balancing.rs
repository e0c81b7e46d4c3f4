//! Latency-aware balancing, slow start and the ejection limit, end to end: peak-EWMA keeps a slow backend's
//! share small, a backend added through the admin API ramps up, and `max_ejection_percent` caps how many
//! failing backends are ejected.

mod support;

use std::time::Duration;

use echo_rs::{Config as EchoConfig, EchoServer};
use http::{Method, StatusCode};
use serde_json::json;

use support::*;

/// Backend `name`'s entry in `GET /admin/metrics`.
async fn metrics_of(h: &Harness, name: &str) -> serde_json::Value {
    let m = h.admin_get("/admin/metrics").await.json();
    m["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name).cloned())
        .unwrap_or_else(|| panic!("{name} in /admin/metrics: {m}"))
}

/// Health checks off: only what the test does moves backends in and out.
const NO_HEALTH: &str = "[health]\nenabled = false\n";

/// 4. With `peak-ewma`, a backend that answers 100 ms slower than three others gets under 10 % of 200
/// sequential requests (round robin would give it 25 %).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_gives_a_slow_backend_under_a_tenth_of_the_traffic() {
    let slow = EchoServer::start(
        "127.0.0.1:0",
        EchoConfig::new("slow").with_delay(Duration::from_millis(100)),
    )
    .await
    .expect("slow echo");
    let echoes = vec![echo("a").await, echo("b").await, echo("c").await, slow];
    // A long decay: the estimate checked at the end must not depend on how long the requests took.
    let toml = format!(
        "algorithm = \"peak-ewma\"\n[balancer]\newma_decay = \"10m\"\n{NO_HEALTH}{}",
        backends_toml(&[
            ("a", &echoes[0].url(), 1),
            ("b", &echoes[1].url(), 1),
            ("c", &echoes[2].url(), 1),
            ("slow", &echoes[3].url(), 1),
        ])
    );
    let h = Harness::builder().echoes(echoes).file(toml).start().await;
    let served = h.hits(200).await;
    let slow = served.get("slow").copied().unwrap_or(0);
    assert!(slow < 20, "slow backend got {slow} of 200: {served:?}");
    let ewma = metrics_of(&h, "slow").await["ewma_ms"].as_f64();
    assert!(ewma.is_some_and(|ms| ms >= 50.0), "its estimate: {ewma:?}");
    assert_eq!(served.values().sum::<u64>(), 200);
    for fast in ["a", "b", "c"] {
        assert!(served.get(fast).copied().unwrap_or(0) > 30, "{served:?}");
    }
}

/// 5. A backend added through the admin API starts at a fraction of its share and reaches all of it once the
/// slow-start window has passed (round robin: exactly a quarter of each batch of 40 then).
///
/// The window is 10 minutes, so the early share does not depend on how fast the machine sends the requests;
/// a reload then shortens it to one second, which the ramp under way follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_added_through_the_admin_api_ramps_up_over_the_slow_start_window() {
    let echoes = vec![echo("a").await, echo("b").await, echo("c").await];
    let d = echo("d").await;
    let mut urls: Vec<(&str, String)> = ["a", "b", "c"]
        .into_iter()
        .zip(echoes.iter().map(|e| e.url()))
        .collect();
    let config = |window: &str, with_d: bool, urls: &[(&str, String)]| {
        let mut list: Vec<(&str, &str, u32)> =
            urls.iter().map(|(n, u)| (*n, u.as_str(), 1)).collect();
        if !with_d {
            list.retain(|(n, _, _)| *n != "d");
        }
        format!(
            "{NO_HEALTH}[slow_start]\nwindow = \"{window}\"\n{}",
            backends_toml(&list)
        )
    };
    urls.push(("d", d.url()));
    let h = Harness::builder()
        .echoes(echoes)
        .file(config("10m", false, &urls))
        .start()
        .await;
    let added = h
        .admin_call(
            Method::POST,
            "/admin/backends",
            None,
            Some(&json!({"url": d.url(), "name": "d"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());

    assert_eq!(metrics_of(&h, "d").await["slow_start"], true);

    // Right after the add its share is 10 % of a quarter and rising: far below the 25 it gets later.
    let first = h.hits(100).await;
    let early = first.get("d").copied().unwrap_or(0);
    assert!(
        early < 15,
        "d got {early} of 100 right after it was added: {first:?}"
    );

    // Once its window has passed (the admin API says so), it is one of four in the rotation again: exactly a
    // quarter of every batch of 40.
    h.write_config(&config("1s", true, &urls));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let hr = &h;
    eventually("d's ramp to end", || async move {
        (metrics_of(hr, "d").await["slow_start"] == false).then_some(())
    })
    .await;
    assert_eq!(h.hits(40).await.get("d"), Some(&10));
    assert_eq!(h.hits(40).await.get("d"), Some(&10));
    drop(d);
}

/// 6. Three of four backends fail every call; with `max_ejection_percent = 50`, two are ejected, the third
/// stays in (and its refused ejections are counted in `rrlb_ejections_skipped_total`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifty_percent_limit_three_failing_backends_of_four_leave_at_most_two_ejected() {
    let echoes = vec![
        echo("ok").await,
        echo("bad1").await,
        echo("bad2").await,
        echo("bad3").await,
    ];
    for e in &echoes[1..] {
        e.chaos().set_fail_rate(1.0).expect("fail rate");
    }
    let toml = format!(
        "{NO_HEALTH}[retries]\nattempts = 0\n[circuit_breaker]\nconsecutive_failures = 2\nopen_duration = \"1m\"\nmax_ejection_percent = 50\n{}",
        backends_toml(&[
            ("ok", &echoes[0].url(), 1),
            ("bad1", &echoes[1].url(), 1),
            ("bad2", &echoes[2].url(), 1),
            ("bad3", &echoes[3].url(), 1),
        ])
    );
    let h = Harness::builder().echoes(echoes).file(toml).start().await;
    let mut failed = 0;
    for _ in 0..60 {
        let res = h.post("/", &json!({"n": 1})).await;
        if res.status != StatusCode::OK {
            failed += 1;
        }
    }
    let circuits: Vec<String> = h
        .backends()
        .await
        .iter()
        .map(|b| b["circuit"].as_str().unwrap_or("?").to_owned())
        .collect();
    let ejected = circuits.iter().filter(|c| *c != "closed").count();
    assert_eq!(ejected, 2, "{circuits:?}");
    assert_eq!(h.backend("ok").await.expect("ok")["circuit"], "closed");
    let metrics = h.admin_get("/metrics").await.text();
    let skipped = metric(&metrics, "rrlb_ejections_skipped_total").expect("metric");
    assert!(skipped >= 1.0, "{metrics}");
    assert!(failed > 0, "the failing backends answered 500s");
}

/// 7. A reload switches to `peak-ewma` with its settings and the new limit; a file with a bad slow-start window
/// is refused, naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_switches_to_peak_ewma_and_a_bad_window_is_refused() {
    let echoes = vec![echo("a").await, echo("b").await];
    let backends = backends_toml(&[("a", &echoes[0].url(), 1), ("b", &echoes[1].url(), 1)]);
    let h = Harness::builder()
        .echoes(echoes)
        .file(format!("{NO_HEALTH}{backends}"))
        .start()
        .await;
    assert_eq!(h.hits(4).await, counts(&[("a", 2), ("b", 2)]));

    h.write_config(&format!(
        "algorithm = \"peak-ewma\"\n{NO_HEALTH}[balancer]\newma_decay = \"2s\"\n[slow_start]\nwindow = \"30s\"\n[circuit_breaker]\nmax_ejection_percent = 50\n{backends}"
    ));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let effective = res.json();
    assert_eq!(effective["algorithm"], "peak-ewma");
    assert_eq!(effective["balancer"]["ewma_decay"], "2s");
    assert_eq!(effective["slow_start"]["window"], "30s");
    assert_eq!(effective["circuit_breaker"]["max_ejection_percent"], 50);
    assert_eq!(h.hits(10).await.values().sum::<u64>(), 10);

    h.write_config(&format!(
        "algorithm = \"round-robin\"\n{NO_HEALTH}[slow_start]\nwindow = \"-1s\"\n{backends}"
    ));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert!(res.text().contains("slow_start.window"), "{}", res.text());
    assert_eq!(h.hits(4).await.values().sum::<u64>(), 4, "still serving");
}
