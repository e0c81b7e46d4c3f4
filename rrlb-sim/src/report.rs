//! What a run reports: client latency percentiles, error rate, each backend's share; as a table and as CSV.

use std::fmt::Write as _;
use std::time::Duration;

use rrlb_core::Algorithm;

use crate::model::Scenario;

/// What the clients of one run saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Requests that arrived.
    pub requests: u64,
    /// Requests answered with an error by their backend.
    pub failed: u64,
    /// Requests that found no eligible backend.
    pub unroutable: u64,
    /// Median latency of answered requests (queueing included).
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Mean latency.
    pub mean: Duration,
    /// Each backend's name and the requests it was given, in the scenario's order.
    pub backends: Vec<(String, u64)>,
    /// Breaker openings refused by the ejection limit.
    pub ejections_skipped: u64,
    /// Set when the scenario could not run (its backends were refused).
    pub error: Option<String>,
    pub(crate) picks: Vec<u64>,
    latencies: Vec<u64>,
}

impl Report {
    pub(crate) fn new(scenario: &Scenario, algorithm: Algorithm) -> Self {
        Self {
            scenario: scenario.name.clone(),
            algorithm,
            requests: 0,
            failed: 0,
            unroutable: 0,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            p999: Duration::ZERO,
            mean: Duration::ZERO,
            backends: Vec::new(),
            ejections_skipped: 0,
            error: None,
            picks: vec![0; scenario.backends.len()],
            latencies: Vec::new(),
        }
    }

    pub(crate) fn invalid(scenario: &Scenario, algorithm: Algorithm, error: &str) -> Self {
        let mut r = Self::new(scenario, algorithm);
        r.error = Some(error.to_owned());
        r.finish_names(scenario);
        r
    }

    pub(crate) fn record(&mut self, latency: Duration, failed: bool) {
        self.latencies
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        if failed {
            self.failed += 1;
        }
    }

    fn finish_names(&mut self, scenario: &Scenario) {
        self.backends = scenario
            .backends
            .iter()
            .zip(&self.picks)
            .map(|(b, &n)| (b.name.clone(), n))
            .collect();
    }

    pub(crate) fn finish(&mut self, scenario: &Scenario) {
        self.finish_names(scenario);
        self.latencies.sort_unstable();
        let at = |q: f64| -> Duration {
            let n = self.latencies.len();
            if n == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            Duration::from_nanos(self.latencies[rank - 1])
        };
        self.p50 = at(0.50);
        self.p99 = at(0.99);
        self.p999 = at(0.999);
        let n = self.latencies.len() as u128;
        let sum: u128 = self.latencies.iter().map(|&x| u128::from(x)).sum();
        self.mean = Duration::from_nanos(
            sum.checked_div(n)
                .map_or(0, |m| u64::try_from(m).unwrap_or(u64::MAX)),
        );
        self.requests = self.picks.iter().sum::<u64>() + self.unroutable;
        self.latencies = Vec::new();
    }

    /// Failed and unroutable requests as a share of all requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            (self.failed + self.unroutable) as f64 / self.requests as f64
        }
    }

    /// The share of requests that backend `name` was given (0 if unknown).
    pub fn share(&self, name: &str) -> f64 {
        let total: u64 = self.backends.iter().map(|(_, n)| n).sum();
        match self.backends.iter().find(|(n, _)| n == name) {
            Some((_, n)) if total > 0 => *n as f64 / total as f64,
            _ => 0.0,
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// A Markdown table of the reports of one scenario: one row per algorithm.
pub fn markdown_table(reports: &[Report]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = reports
        .first()
        .map(|r| r.backends.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    let _ = write!(out, "| algorithm | p50 ms | p99 ms | p99.9 ms | errors |");
    for n in &names {
        let _ = write!(out, " {n} |");
    }
    out.push('\n');
    out.push_str("| --- | ---: | ---: | ---: | ---: |");
    for _ in &names {
        out.push_str(" ---: |");
    }
    out.push('\n');
    for r in reports {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {:.2} % |",
            r.algorithm,
            ms(r.p50),
            ms(r.p99),
            ms(r.p999),
            r.error_rate() * 100.0
        );
        for (name, _) in &r.backends {
            let _ = write!(out, " {:.1} % |", r.share(name) * 100.0);
        }
        out.push('\n');
    }
    out
}

/// The reports as CSV, one row per (scenario, algorithm, backend), with the run's figures repeated on each.
pub fn csv(reports: &[Report]) -> String {
    let mut out = String::from(
        "scenario,algorithm,p50_ms,p99_ms,p999_ms,mean_ms,error_rate,requests,ejections_skipped,backend,share\n",
    );
    for r in reports {
        for (name, _) in &r.backends {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{:.5},{},{},{},{:.5}",
                r.scenario,
                r.algorithm,
                ms(r.p50),
                ms(r.p99),
                ms(r.p999),
                ms(r.mean),
                r.error_rate(),
                r.requests,
                r.ejections_skipped,
                name,
                r.share(name)
            );
        }
    }
    out
}
