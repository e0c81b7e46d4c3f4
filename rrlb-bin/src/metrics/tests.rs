use rrlb_core::{Algorithm, AnyBalancer, BackendSet, SetOptions};
use rrlb_tower::FailureKind;

use super::Metrics;
use super::cache::MAX_HANDLES;

fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(series))
}

#[test]
fn each_instance_counts_its_own_requests_through_the_thread_cache() {
    let set = BackendSet::new(
        AnyBalancer::new(Algorithm::RoundRobin),
        SetOptions::default(),
    );
    let a = Metrics::new();
    let b = Metrics::new();
    for _ in 0..3 {
        a.observe(Some("x"), 200, 0.001, 0);
    }
    b.observe(Some("x"), 200, 0.001, 0);
    a.observe(Some("x"), 503, 0.002, 1);
    a.observe(None, 502, 0.002, 0);
    assert_eq!((a.total_requests(), b.total_requests()), (5, 1));
    let (a, b) = (a.render(&set), b.render(&set));
    assert_eq!(
        line(&a, "rrlb_requests_total{backend=\"x\",code=\"200\"}"),
        Some("rrlb_requests_total{backend=\"x\",code=\"200\"} 3")
    );
    assert_eq!(
        line(&a, "rrlb_requests_total{backend=\"x\",code=\"503\"}"),
        Some("rrlb_requests_total{backend=\"x\",code=\"503\"} 1")
    );
    assert_eq!(
        line(&a, "rrlb_requests_total{backend=\"none\",code=\"502\"}"),
        Some("rrlb_requests_total{backend=\"none\",code=\"502\"} 1")
    );
    assert_eq!(
        line(&a, "rrlb_request_duration_seconds_count{backend=\"x\"}"),
        Some("rrlb_request_duration_seconds_count{backend=\"x\"} 4")
    );
    assert_eq!(line(&a, "rrlb_retries_total"), Some("rrlb_retries_total 1"));
    assert_eq!(
        line(&b, "rrlb_requests_total{backend=\"x\",code=\"200\"}"),
        Some("rrlb_requests_total{backend=\"x\",code=\"200\"} 1")
    );
}

#[test]
fn the_thread_cache_starts_over_when_full_without_losing_counts() {
    let set = BackendSet::new(
        AnyBalancer::new(Algorithm::RoundRobin),
        SetOptions::default(),
    );
    // "y" is in the set: its series are kept from render to render.
    set.add(rrlb_core::BackendSpec::new("y", "http://127.0.0.1:1"))
        .ok();
    let m = Metrics::new();
    for round in 0..2 {
        for code in 0..(MAX_HANDLES as u16 + 10) {
            m.observe(Some("y"), 100 + code, 0.001, 0);
        }
        let text = m.render(&set);
        let want = format!(
            "rrlb_requests_total{{backend=\"y\",code=\"100\"}} {}",
            round + 1
        );
        assert_eq!(
            line(&text, "rrlb_requests_total{backend=\"y\",code=\"100\"}"),
            Some(want.as_str())
        );
    }
}

#[test]
fn a_gone_backends_series_are_shown_once_more_then_removed() {
    let set = BackendSet::new(
        AnyBalancer::new(Algorithm::RoundRobin),
        SetOptions::default(),
    );
    set.add(rrlb_core::BackendSpec::new("stays", "http://127.0.0.1:1"))
        .ok();
    let m = Metrics::new();
    for backend in ["stays", "gone"] {
        m.observe(Some(backend), 200, 0.001, 0);
        m.upstream_error(backend, FailureKind::Connect);
        m.health_check(backend, true);
    }
    m.observe(None, 503, 0.001, 0);
    let has = |text: &str, backend: &str| {
        let label = format!("backend=\"{backend}\"");
        [
            "rrlb_requests_total{",
            "rrlb_request_duration_seconds_count{",
            "rrlb_upstream_errors_total{",
            "rrlb_health_checks_total{",
        ]
        .iter()
        .filter(|metric| {
            text.lines()
                .any(|l| l.starts_with(**metric) && l.contains(&label))
        })
        .count()
    };
    // The first render after "gone" left still shows its final counts.
    let first = m.render(&set);
    assert_eq!((has(&first, "stays"), has(&first, "gone")), (4, 4));
    let second = m.render(&set);
    assert_eq!((has(&second, "stays"), has(&second, "gone")), (4, 0));
    assert_eq!(has(&second, "none"), 2, "the no-backend series stay");
    // A backend of that name that comes back counts from zero, through fresh handles.
    m.observe(Some("gone"), 200, 0.001, 0);
    let third = m.render(&set);
    assert_eq!(
        line(&third, "rrlb_requests_total{backend=\"gone\",code=\"200\"}"),
        Some("rrlb_requests_total{backend=\"gone\",code=\"200\"} 1")
    );
    assert_eq!(
        line(
            &third,
            "rrlb_requests_total{backend=\"stays\",code=\"200\"}"
        ),
        Some("rrlb_requests_total{backend=\"stays\",code=\"200\"} 1")
    );
}

/// `rrlb_connections{side="upstream"}` is the pool's count (plain and TLS connections alike), and TLS
/// handshakes are counted per backend.
#[test]
fn upstream_connections_and_tls_handshakes_are_exported() {
    let set = BackendSet::new(
        AnyBalancer::new(Algorithm::RoundRobin),
        SetOptions::default(),
    );
    let m = Metrics::new();
    m.upstream_connections.inc();
    m.upstream_connections.inc();
    m.upstream_tls_handshake("a");
    m.upstream_tls_handshake("a");
    let text = m.render(&set);
    assert_eq!(
        line(&text, "rrlb_connections{side=\"upstream\"}"),
        Some("rrlb_connections{side=\"upstream\"} 2")
    );
    assert_eq!(
        line(&text, "rrlb_upstream_tls_handshakes_total{backend=\"a\"}"),
        Some("rrlb_upstream_tls_handshakes_total{backend=\"a\"} 2")
    );
}

#[test]
fn the_total_sums_every_thread() {
    let m = Metrics::new();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..100 {
                    m.observe(Some("z"), 200, 0.001, 0);
                }
            });
        }
    });
    m.observe(Some("z"), 200, 0.001, 0);
    assert_eq!(m.total_requests(), 301);
}
