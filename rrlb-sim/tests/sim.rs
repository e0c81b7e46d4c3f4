//! The simulation is deterministic and shows what the algorithms are for.

use std::time::Duration;

use rrlb_core::Algorithm;
use rrlb_sim::{Scenario, markdown_table, run, scenarios};

fn short(mut s: Scenario) -> Scenario {
    s.duration = Duration::from_secs(30);
    s
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let mut s = scenarios::heterogeneous();
    s.duration = Duration::from_secs(5);
    for a in Algorithm::ALL {
        assert_eq!(run(&s, a), run(&s, a), "{a}");
    }
    let mut other = s.clone();
    other.seed = 2;
    assert_ne!(run(&s, Algorithm::Random), run(&other, Algorithm::Random));
}

#[test]
fn peak_ewma_cuts_the_tail_where_a_backend_is_slow() {
    for s in [
        short(scenarios::heterogeneous()),
        short(scenarios::degrading()),
    ] {
        let rr = run(&s, Algorithm::RoundRobin);
        let ewma = run(&s, Algorithm::PeakEwma);
        let table = markdown_table(&[rr.clone(), ewma.clone()]);
        assert!(ewma.p99 * 2 < rr.p99, "{}\n{table}", s.name);
        let slowest = &s.backends.last().expect("backends").name;
        assert!(
            ewma.share(slowest) < rr.share(slowest),
            "{}\n{table}",
            s.name
        );
    }
}

#[test]
fn round_robins_split_exactly_and_the_report_adds_up() {
    let s = short(scenarios::heterogeneous());
    let rr = run(&s, Algorithm::RoundRobin);
    let wrr = run(&s, Algorithm::WeightedRoundRobin);
    for (name, _) in &rr.backends {
        assert!((rr.share(name) - 0.25).abs() < 0.001, "{name}");
    }
    for (name, weight) in [("rs", 4.0), ("go", 3.0), ("node", 2.0), ("java", 1.0)] {
        assert!((wrr.share(name) - weight / 10.0).abs() < 0.001, "{name}");
    }
    let expected = s.arrival_rate * s.duration.as_secs_f64();
    let requests = rr.requests as f64;
    assert!(
        (requests - expected).abs() < expected * 0.03,
        "{requests} of ~{expected}"
    );
    assert_eq!(rr.error_rate(), 0.0);
    assert!(rr.p50 <= rr.p99 && rr.p99 <= rr.p999);
}

#[test]
fn failures_are_counted_as_errors() {
    let s = short(scenarios::failing());
    let r = run(&s, Algorithm::RoundRobin);
    let share_d = r.share("d");
    assert!(r.failed > 0);
    // Errors come only from d, at 20 % of what it answered.
    let expected = share_d * 0.2;
    assert!(
        (r.error_rate() - expected).abs() < 0.003,
        "{} vs {expected}",
        r.error_rate()
    );
}
