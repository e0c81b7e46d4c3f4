//! # rrlb-sim
//!
//! Which balancing algorithm should a fleet use? This crate answers with a deterministic discrete-event
//! simulation: requests arrive as a Poisson process in virtual time, rrlb-core's real [`BackendSet`] (balancer,
//! circuit breakers, slow start, the peak-EWMA estimates) picks a backend for each, and modelled backends serve
//! them with a fixed number of workers and a FIFO queue, with latency distributions that can be fast, slow,
//! heavy-tailed, change mid-run or fail a share of calls. No network, no threads, no wall clock: the same
//! seed gives the same numbers on any machine, in well under a second per run.
//!
//! ```
//! use std::time::Duration;
//! use rrlb_core::Algorithm;
//! use rrlb_sim::{BackendModel, Latency, Scenario, run};
//!
//! let ms = Duration::from_millis;
//! let mut scenario = Scenario::new(
//!     "one slow",
//!     vec![
//!         BackendModel::new("fast-1", Latency::Exponential(ms(2))),
//!         BackendModel::new("fast-2", Latency::Exponential(ms(2))),
//!         BackendModel::new("slow", Latency::Exponential(ms(40))).workers(2),
//!     ],
//!     300.0,
//! );
//! scenario.duration = Duration::from_secs(10);
//! let rr = run(&scenario, Algorithm::RoundRobin);
//! let ewma = run(&scenario, Algorithm::PeakEwma);
//! assert!(ewma.p99 < rr.p99 / 4, "round robin {:?}, peak-ewma {:?}", rr.p99, ewma.p99);
//! assert!(ewma.share("slow") < 0.1);
//! ```
//!
//! [`scenarios`] holds the three that `cargo bench -p rrlb-core --bench algorithms` reports; `examples/compare.rs`
//! runs one described on its command line.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod model;
mod report;
mod rng;
pub mod scenarios;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rrlb_core::{Algorithm, AnyBalancer, BackendSet, BackendSpec, Call, Outcome};

pub use crate::model::{BackendModel, Change, Latency, Scenario};
pub use crate::report::{Report, csv, markdown_table};
use crate::rng::Rng;

/// How often the simulated housekeeping runs [`BackendSet::refresh`] (open breakers go half-open, ramps end).
const REFRESH_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The next request arrives.
    Arrival,
    /// Backend `.0` finishes request `.1`.
    Done(usize, usize),
    /// Housekeeping.
    Refresh,
}

/// The future events, in time order (ties in the order they were scheduled).
#[derive(Default)]
struct Events {
    heap: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
}

impl Events {
    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, event)));
    }

    fn pop(&mut self) -> Option<(u64, Event)> {
        self.heap.pop().map(|Reverse((at, _, e))| (at, e))
    }
}

/// A request that a backend holds, queued or in service.
struct Pending {
    call: Call,
    arrived: u64,
}

/// A backend's queue: requests in service and waiting.
#[derive(Default)]
struct Queue {
    busy: u32,
    waiting: VecDeque<usize>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `scenario` with `algorithm` and reports what the clients saw.
pub fn run(scenario: &Scenario, algorithm: Algorithm) -> Report {
    let base = Instant::now();
    let virtual_ns = Arc::new(AtomicU64::new(0));
    let clock = Arc::clone(&virtual_ns);
    let set = BackendSet::with_clock(
        AnyBalancer::with_seed(algorithm, scenario.seed ^ 0xA5A5),
        scenario.options,
        move || base + Duration::from_nanos(clock.load(Ordering::Relaxed)),
    );
    let specs = scenario.backends.iter().enumerate().map(|(i, b)| {
        BackendSpec::new(b.name.as_str(), format!("sim://{i}"))
            .with_weight(b.weight.clamp(1, 10_000))
            .with_ext(i)
    });
    if let Err(e) = set.update(specs) {
        return Report::invalid(scenario, algorithm, &e.to_string());
    }

    let mut rng = Rng::new(scenario.seed);
    let mut events = Events::default();
    let end = nanos(scenario.duration);
    let mean_gap = 1.0 / scenario.arrival_rate.max(1e-9);
    events.push(0, Event::Arrival);
    events.push(nanos(REFRESH_EVERY), Event::Refresh);

    let mut queues: Vec<Queue> = scenario.backends.iter().map(|_| Queue::default()).collect();
    let mut pending: Vec<Option<Pending>> = Vec::new();
    let mut report = Report::new(scenario, algorithm);

    // Starts serving request `req` at backend `b` at time `now`: draws its service time from the model in force.
    let serve = |b: usize, req: usize, now: u64, rng: &mut Rng, events: &mut Events| {
        let (latency, _) = scenario.backends[b].at(Duration::from_nanos(now));
        events.push(now + nanos(latency.sample(rng)), Event::Done(b, req));
    };

    while let Some((now, event)) = events.pop() {
        if now > end && event == Event::Arrival {
            continue; // no new arrivals after the end; requests in flight still complete
        }
        virtual_ns.store(now, Ordering::Relaxed);
        let instant = base + Duration::from_nanos(now);
        match event {
            Event::Arrival => {
                let gap = rng.exponential(mean_gap);
                events.push(now + (gap * 1e9) as u64, Event::Arrival);
                let call = match set.pick() {
                    Ok(call) => call,
                    Err(_) => {
                        report.unroutable += 1;
                        continue;
                    }
                };
                let Some(&b) = call.backend().ext::<usize>() else {
                    continue;
                };
                report.picks[b] += 1;
                let req = pending.len();
                pending.push(Some(Pending { call, arrived: now }));
                let q = &mut queues[b];
                if q.busy < scenario.backends[b].workers {
                    q.busy += 1;
                    serve(b, req, now, &mut rng, &mut events);
                } else {
                    q.waiting.push_back(req);
                }
            }
            Event::Done(b, req) => {
                if let Some(p) = pending.get_mut(req).and_then(Option::take) {
                    let (_, fail_rate) = scenario.backends[b].at(Duration::from_nanos(now));
                    let failed = rng.unit() < fail_rate;
                    let latency = Duration::from_nanos(now - p.arrived);
                    let outcome = if failed {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    p.call.finish_with_latency(outcome, latency, instant);
                    report.record(latency, failed);
                }
                let q = &mut queues[b];
                match q.waiting.pop_front() {
                    Some(next) => serve(b, next, now, &mut rng, &mut events),
                    None => q.busy = q.busy.saturating_sub(1),
                }
            }
            Event::Refresh => {
                set.refresh(instant);
                if now <= end {
                    events.push(now + nanos(REFRESH_EVERY), Event::Refresh);
                }
            }
        }
    }
    report.ejections_skipped = set.ejections().skipped();
    report.finish(scenario);
    report
}

/// Runs `scenario` with every built-in algorithm, in [`Algorithm::ALL`] order.
pub fn compare(scenario: &Scenario) -> Vec<Report> {
    Algorithm::ALL.iter().map(|&a| run(scenario, a)).collect()
}
