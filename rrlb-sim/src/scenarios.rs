//! The three scenarios of `benches/README.md`: a heterogeneous fleet, one backend degrading mid-run, one
//! backend failing a fifth of its calls. Each is 60 s of virtual time at a load the fleet can carry, if it is
//! spread well.

use std::time::Duration;

use crate::model::{BackendModel, Change, Latency, Scenario};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Four backends shaped like rrlb's polyglot fleet: two fast (Rust, Go), one slower (Node, fewer workers), one
/// slow and heavy-tailed (Java under a CPU limit), at 1,000 requests/s. Round robin gives the slow one a
/// quarter of the traffic, which keeps it about 75 % busy. The weights (4, 3, 2, 1) are what an operator who
/// measured the members might configure for weighted round robin; the other algorithms ignore them.
pub fn heterogeneous() -> Scenario {
    Scenario::new(
        "heterogeneous",
        vec![
            BackendModel::new("rs", Latency::Exponential(ms(2))).weight(4),
            BackendModel::new("go", Latency::Exponential(ms(3))).weight(3),
            BackendModel::new("node", Latency::Exponential(ms(6)))
                .workers(4)
                .weight(2),
            BackendModel::new(
                "java",
                Latency::LogNormal {
                    median: ms(10),
                    sigma: 0.8,
                },
            )
            .workers(4),
        ],
        1_000.0,
    )
    .described("2 fast, 1 slower, 1 slow heavy-tailed backend at 1,000 req/s; weights 4/3/2/1")
}

/// Four equal backends (3 ms, 8 workers) at 1,500 requests/s; after 20 s one of them slows to a heavy-tailed
/// 30 ms median (a bad deploy, a noisy neighbour) without failing.
pub fn degrading() -> Scenario {
    let same = |name: &str| BackendModel::new(name, Latency::Exponential(ms(3)));
    Scenario::new(
        "degrading",
        vec![
            same("a"),
            same("b"),
            same("c"),
            same("d").changing(Change {
                at: Duration::from_secs(20),
                latency: Some(Latency::LogNormal {
                    median: ms(30),
                    sigma: 1.0,
                }),
                fail_rate: None,
            }),
        ],
        1_500.0,
    )
    .described("4 equal backends at 1,500 req/s; one slows to a 30 ms median after 20 s")
}

/// Four equal backends (3 ms) at 1,500 requests/s; one answers a fifth of its calls with an error (after the
/// same service time, like a `500`), not enough for the default breaker's 50 % failure rate.
pub fn failing() -> Scenario {
    let same = |name: &str| BackendModel::new(name, Latency::Exponential(ms(3)));
    Scenario::new(
        "failing",
        vec![same("a"), same("b"), same("c"), same("d").failing(0.2)],
        1_500.0,
    )
    .described("4 equal backends at 1,500 req/s; one fails 20 % of its calls")
}

/// The three, in the order above.
pub fn all() -> Vec<Scenario> {
    vec![heterogeneous(), degrading(), failing()]
}
