//! Service discovery end to end: an in-process DNS server (`discovery_support/dns.rs`) whose answers change
//! while an in-process rrlb follows them.
//!
//! Every socket is on `127.0.0.1`. Traffic is shown with `dns-srv`, whose records give each target its own
//! port, so several backends share `127.0.0.1`. A/AAAA handling (several addresses, IPv6 names, changes, an
//! empty answer) is shown on the backend list with health checks off: those addresses are never dialled.

mod support;

#[allow(dead_code)]
#[path = "discovery_support/dns.rs"]
mod dns;
#[path = "discovery_support/load.rs"]
mod load;
#[path = "discovery_support/members.rs"]
mod members;

use std::net::IpAddr;

use http::{Method, StatusCode};
use rrlb::config::{Cli, Config};
use serde_json::{Value, json};
use support::{Harness, TestBackend, eventually, metric, run_rrlb, send};

use self::dns::FakeDns;
use self::load::Load;
use self::members::{calls, member, sorted, sorted_names};

/// The SRV group's configuration: `weight` for records of weight 0, names re-resolved every 50 ms.
fn srv_config(dns: std::net::SocketAddr, weight: u32) -> String {
    format!(
        r#"
[[backends]]
name = "echo"
url = "http://_http._tcp.echo.test"
discovery = "dns-srv"
weight = {weight}

[discovery]
resolver = "{dns}"
refresh = "50ms"
"#
    )
}

async fn metrics_text(h: &Harness) -> String {
    h.admin_get("/metrics").await.text()
}

/// SRV targets join and leave under load: a new target gets traffic, a vanished one drains (its request in
/// flight completes, then it leaves), a failing resolver changes nothing, and not one request fails. Also:
/// SRV weights (0 = the group's), the `Host` header, the admin listing's `group`/`source`, `409` to changes by
/// name, the discovery metrics, and a reload that keeps the addresses that stay with their statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srv_targets_join_and_drain_under_load_without_a_failed_request() {
    let dns = FakeDns::start().await;
    dns.set_addrs("t.echo.test", &["127.0.0.1".parse().unwrap()]);
    let (a, b, c) = (
        TestBackend::start().await,
        TestBackend::start().await,
        TestBackend::start().await,
    );
    let (pa, pb, pc) = (a.addr().port(), b.addr().port(), c.addr().port());
    dns.set_srv(
        "_http._tcp.echo.test",
        &[(10, 0, pa, "t.echo.test"), (10, 3, pb, "t.echo.test")],
    );
    let h = Harness::builder()
        .file(srv_config(dns.addr, 2))
        .start()
        .await;

    eventually("both SRV targets listed", || async {
        (sorted_names(&h).await == sorted([member(pa), member(pb)])).then_some(())
    })
    .await;
    let listed = h.backend(&member(pb)).await.unwrap();
    assert_eq!(listed["group"], "echo");
    assert_eq!(listed["source"], "dns-srv");
    assert_eq!(listed["url"], format!("http://127.0.0.1:{pb}"));
    assert_eq!(listed["weight"], 3, "the record's weight");
    assert_eq!(
        h.backend(&member(pa)).await.unwrap()["weight"],
        2,
        "weight 0: the group's"
    );

    // The backend gets the URL's authority as `Host`.
    let res = send(&h.client, Method::GET, &h.url("/host"), &[], "").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.json()["headers"]["host"],
        json!(["_http._tcp.echo.test"])
    );

    // One request held on each target, so that a's drain is visible.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (h.client.clone(), h.url("/x/hold"));
            tokio::spawn(async move { send(&client, Method::GET, &url, &[], "").await })
        })
        .collect();
    a.wait_held(1).await;
    b.wait_held(1).await;

    let load = Load::start(&h, 4);
    load.more(50).await;

    // c appears, a vanishes.
    dns.set_srv(
        "_http._tcp.echo.test",
        &[(10, 3, pb, "t.echo.test"), (10, 0, pc, "t.echo.test")],
    );
    eventually("c gets traffic", || async {
        (load.served(&member(pc)) > 0).then_some(())
    })
    .await;
    h.wait_backend(&member(pa), "draining", |m| m["draining"] == true)
        .await;
    // Once only its held request is in flight, nothing new reaches it: its count of calls stays.
    let (count, _) = eventually("only the held request in flight", || async {
        let (requests, in_flight) = calls(&h, &member(pa)).await;
        (in_flight == 1).then_some((requests, in_flight))
    })
    .await;
    load.more(100).await;
    assert_eq!(
        calls(&h, &member(pa)).await,
        (count, 1),
        "a draining backend gets no new request"
    );
    // The held requests complete; then a leaves.
    a.release();
    b.release();
    for t in held {
        let res = t.await.unwrap();
        assert_eq!(res.status, StatusCode::OK);
    }
    eventually("a removed once idle", || async {
        (sorted_names(&h).await == sorted([member(pb), member(pc)])).then_some(())
    })
    .await;

    // The resolver fails: the group keeps its addresses and keeps serving.
    dns.set_failing(true);
    eventually("the failure is counted", || async {
        let text = metrics_text(&h).await;
        (metric(&text, "rrlb_discovery_errors_total{group=\"echo\"}")? >= 1.0).then_some(())
    })
    .await;
    load.more(100).await;
    assert_eq!(sorted_names(&h).await, sorted([member(pb), member(pc)]));
    let text = metrics_text(&h).await;
    assert_eq!(
        metric(&text, "rrlb_discovery_backends{group=\"echo\"}"),
        Some(2.0)
    );
    dns.set_failing(false);
    // The resolver goes away altogether (its sockets closed): lookups fail or time out; still serving.
    let errors = || async {
        let text = metrics_text(&h).await;
        metric(&text, "rrlb_discovery_errors_total{group=\"echo\"}").unwrap_or(0.0)
    };
    let before = errors().await;
    drop(dns);
    eventually("a lookup with no resolver fails and is counted", || async {
        (errors().await > before).then_some(())
    })
    .await;
    load.more(100).await;
    assert_eq!(sorted_names(&h).await, sorted([member(pb), member(pc)]));

    let failures = load.stop().await;
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    // Discovered backends follow their source: no PATCH or DELETE by name.
    for method in [Method::PATCH, Method::DELETE] {
        let res = h
            .admin_call(
                method.clone(),
                &format!("/admin/backends/{}", support::pct(&member(pc))),
                None,
                Some(&json!({"weight": 7})),
            )
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{method}: {}", res.text());
        let body: Value = res.json();
        assert!(
            body["error"].as_str().unwrap().contains("discovered"),
            "{body}"
        );
        assert_eq!(
            (body["group"].clone(), body["source"].clone()),
            (json!("echo"), json!("dns-srv"))
        );
    }

    // A reload that changes the group's weight keeps the addresses that stay, statistics and all.
    let before = h.request_counts().await[&member(pc)];
    assert!(before > 0);
    // It also points at a new resolver (the old one is gone) with the same records.
    let dns = FakeDns::start().await;
    dns.set_addrs("t.echo.test", &["127.0.0.1".parse().unwrap()]);
    dns.set_srv(
        "_http._tcp.echo.test",
        &[(10, 3, pb, "t.echo.test"), (10, 0, pc, "t.echo.test")],
    );
    h.write_config(&srv_config(dns.addr, 5));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    h.wait_backend(&member(pc), "the new group weight", |m| m["weight"] == 5)
        .await;
    assert!(h.request_counts().await[&member(pc)] >= before);
    assert_eq!(h.backend(&member(pb)).await.unwrap()["weight"], 3);
}

/// `dns`: every A and AAAA address is a backend named `<group>/<ip>:<port>` (IPv6 in brackets) at the URL's
/// port; a change of the answer adds and removes; an empty answer keeps the set and is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_aaaa_records_name_backends_and_an_empty_answer_keeps_them() {
    let dns = FakeDns::start().await;
    let ips: Vec<IpAddr> = ["192.0.2.10", "192.0.2.11", "2001:db8::1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    dns.set_addrs("web.test", &ips);
    // Health checks off: these addresses are only listed, never dialled.
    let config = format!(
        r#"
[[backends]]
name = "web"
url = "http://web.test:8081/api"
discovery = "dns"
weight = 4

[discovery]
resolver = "{}"
refresh = "50ms"

[health]
enabled = false
"#,
        dns.addr
    );
    let h = Harness::builder().file(config).start().await;
    let want = [
        "web/192.0.2.10:8081",
        "web/192.0.2.11:8081",
        "web/[2001:db8::1]:8081",
    ];
    eventually("every address listed", || async {
        (sorted_names(&h).await == want).then_some(())
    })
    .await;
    let v6 = h.backend("web/[2001:db8::1]:8081").await.unwrap();
    assert_eq!(v6["url"], "http://[2001:db8::1]:8081/api");
    assert_eq!(
        (
            v6["group"].clone(),
            v6["source"].clone(),
            v6["weight"].clone()
        ),
        (json!("web"), json!("dns"), json!(4))
    );
    let res = h
        .admin_get(&format!(
            "/admin/backends/{}",
            support::pct("web/192.0.2.10:8081")
        ))
        .await;
    assert_eq!(res.json()["group"], "web");

    // A-only now, one address: the others leave (nothing in flight, so at once).
    dns.set_addrs("web.test", &[ips[1]]);
    eventually("only the remaining address", || async {
        (sorted_names(&h).await == ["web/192.0.2.11:8081"]).then_some(())
    })
    .await;

    // An empty answer keeps the last good set and is counted.
    let errors = |text: &str| metric(text, "rrlb_discovery_errors_total{group=\"web\"}");
    assert_eq!(errors(&metrics_text(&h).await), Some(0.0));
    dns.set_addrs("web.test", &[]);
    eventually("the empty answer is counted", || async {
        (errors(&metrics_text(&h).await)? >= 1.0).then_some(())
    })
    .await;
    let queries = dns.queries();
    eventually("asked again", || async {
        (dns.queries() > queries + 2).then_some(())
    })
    .await;
    assert_eq!(sorted_names(&h).await, ["web/192.0.2.11:8081"]);
    assert_eq!(
        metric(
            &metrics_text(&h).await,
            "rrlb_discovery_backends{group=\"web\"}"
        ),
        Some(1.0)
    );

    // A reload without the group takes its members and its series away; a static backend stays one.
    h.write_config(&format!(
        "[[backends]]\nname = \"solo\"\nurl = \"http://192.0.2.99:8081\"\n\n\
         [discovery]\nresolver = \"{}\"\n\n[health]\nenabled = false\n",
        dns.addr
    ));
    let res = h
        .admin_call(Method::POST, "/admin/reload", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(h.backend_names().await, ["solo"]);
    let solo = h.backend("solo").await.unwrap();
    assert!(
        solo.get("group").is_none() && solo.get("source").is_none(),
        "{solo}"
    );
    let text = metrics_text(&h).await;
    assert_eq!(
        metric(&text, "rrlb_discovery_backends{group=\"web\"}"),
        None
    );
}

/// SRV weights share the traffic: with `weighted-round-robin`, targets of weight 1 and 3 get exactly a
/// quarter and three quarters of the requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_weights_share_the_traffic() {
    let dns = FakeDns::start().await;
    dns.set_addrs("t.echo.test", &["127.0.0.1".parse().unwrap()]);
    let (light, heavy) = (TestBackend::start().await, TestBackend::start().await);
    let (pl, ph) = (light.addr().port(), heavy.addr().port());
    dns.set_srv(
        "_http._tcp.echo.test",
        &[(0, 1, pl, "t.echo.test"), (0, 3, ph, "t.echo.test")],
    );
    let config = format!(
        "algorithm = \"weighted-round-robin\"\n{}",
        srv_config(dns.addr, 1)
    );
    let h = Harness::builder().file(config).start().await;
    eventually("both targets listed", || async {
        (sorted_names(&h).await == sorted([member(pl), member(ph)])).then_some(())
    })
    .await;
    let counts = h.hits(40).await;
    assert_eq!(
        counts,
        support::counts(&[(&member(pl), 10), (&member(ph), 30)])
    );
}

fn parse(text: &str) -> Result<Config, String> {
    Config::from_toml_str("rrlb.toml", text, &Cli::default()).map_err(|e| e.to_string())
}

/// The `discovery` key and the `[discovery]` section: defaults, refusals that name file, key and value, and
/// `--check` printing them back.
#[test]
fn discovery_configuration_is_validated_and_printed() {
    let c = parse(
        "[[backends]]\nurl = \"http://echo-go:8081\"\ndiscovery = \"dns\"\n\
         [[backends]]\nurl = \"http://static:80\"\n",
    )
    .unwrap();
    assert_eq!(
        c.backends[0].name, "echo-go",
        "a group's default name is the host"
    );
    assert_eq!(c.backends[0].discovery.as_str(), "dns");
    assert!(c.backends[1].discovery.is_static());
    assert_eq!(c.discovery.resolver, None);
    assert_eq!(c.discovery.refresh, std::time::Duration::from_secs(5));

    let e = parse("[[backends]]\nurl = \"http://a\"\ndiscovery = \"consul\"\n").unwrap_err();
    assert!(
        e.contains("rrlb.toml") && e.contains("discovery") && e.contains("consul"),
        "{e}"
    );
    let e = parse("[discovery]\nresolver = \"localhost:53\"\n").unwrap_err();
    assert!(
        e.contains("discovery.resolver") && e.contains("not an IP:PORT"),
        "{e}"
    );
    let e = parse("[discovery]\nrefresh = \"0s\"\n").unwrap_err();
    assert!(
        e.contains("discovery.refresh") && e.contains("greater than 0"),
        "{e}"
    );
    let e = parse("[discovery]\nrefresh = \"10ms\"\n").unwrap_err();
    assert!(
        e.contains("discovery.refresh") && e.contains("at least 50ms"),
        "{e}"
    );
    let e = parse("[discovery]\nttl = \"1s\"\n").unwrap_err();
    assert!(e.contains("ttl"), "{e}");
    let e = parse("[[backends]]\nurl = \"http://a\"\nname = \"a/b\"\ndiscovery = \"dns\"\n")
        .unwrap_err();
    assert!(e.contains("backends[0].name"), "{e}");

    // Kubernetes: `port_name` belongs to it alone; the API URL is checked; the source needs its feature.
    let e = parse("[[backends]]\nurl = \"http://a\"\ndiscovery = \"dns\"\nport_name = \"http\"\n")
        .unwrap_err();
    assert!(
        e.contains("backends[0].port_name") && e.contains("kubernetes"),
        "{e}"
    );
    let e = parse(
        "[[backends]]\nurl = \"http://a\"\ndiscovery = \"kubernetes\"\nport_name = \"HTTP\"\n",
    )
    .unwrap_err();
    assert!(e.contains("port name"), "{e}");
    let e = parse("[discovery]\nkubernetes_api = \"127.0.0.1:8001\"\n").unwrap_err();
    assert!(e.contains("discovery.kubernetes_api"), "{e}");
    let k8s = parse(
        "[[backends]]\nurl = \"http://echo.prod:8081\"\ndiscovery = \"kubernetes\"\nport_name = \"http\"\n\
         [discovery]\nkubernetes_api = \"http://127.0.0.1:8001\"\n",
    );
    if cfg!(feature = "kubernetes") {
        let k8s = k8s.unwrap();
        assert_eq!(k8s.backends[0].name, "echo.prod");
        assert_eq!(k8s.backends[0].port_name.as_deref(), Some("http"));
        assert_eq!(
            k8s.discovery.kubernetes_api.as_deref(),
            Some("http://127.0.0.1:8001")
        );
        // The host names a Service and at most its namespace: a cluster-domain name is refused.
        for host in ["echo.prod.svc.cluster.local", "Echo", "echo.-prod"] {
            let e = parse(&format!(
                "[[backends]]\nurl = \"http://{host}:8081\"\ndiscovery = \"kubernetes\"\n"
            ))
            .unwrap_err();
            assert!(
                e.contains("backends[0].url") && e.contains("<service>.<namespace>"),
                "{host}: {e}"
            );
        }
    } else {
        let e = k8s.unwrap_err();
        assert!(
            e.contains("backends[0].discovery") && e.contains("`kubernetes` feature"),
            "{e}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rrlb.toml");
    std::fs::write(
        &path,
        "[[backends]]\nurl = \"http://_http._tcp.echo\"\nname = \"echo\"\ndiscovery = \"dns-srv\"\n\
         [discovery]\nresolver = \"127.0.0.1:5353\"\nrefresh = \"2s\"\n",
    )
    .unwrap();
    let out = run_rrlb(&["--config", path.to_str().unwrap(), "--check"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("discovery = \"dns-srv\""), "{printed}");
    assert!(
        printed.contains("resolver = \"127.0.0.1:5353\""),
        "{printed}"
    );
    assert!(printed.contains("refresh = \"2s\""), "{printed}");
    let again = Config::from_toml_str("printed.toml", &printed, &Cli::default()).unwrap();
    assert_eq!(
        again.backends,
        parse(&std::fs::read_to_string(&path).unwrap())
            .unwrap()
            .backends
    );
}
