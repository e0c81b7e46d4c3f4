//! What is simulated: backends with latency distributions, failures and a change mid-run, and the load.

use std::time::Duration;

use rrlb_core::SetOptions;

use crate::rng::Rng;

/// How long a backend takes to serve one request once a worker has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Exponentially distributed with this mean (a memoryless service, as in M/M/c).
    Exponential(Duration),
    /// Log-normally distributed with this median and shape `sigma` (heavy-tailed: `sigma = 1` puts the p99
    /// at about ten times the median).
    LogNormal {
        /// The median.
        median: Duration,
        /// The standard deviation of the logarithm.
        sigma: f64,
    },
}

impl Latency {
    /// One draw.
    pub(crate) fn sample(self, rng: &mut Rng) -> Duration {
        let secs = match self {
            Latency::Fixed(d) => d.as_secs_f64(),
            Latency::Exponential(mean) => rng.exponential(mean.as_secs_f64()),
            Latency::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * rng.normal()).exp()
            }
        };
        Duration::from_secs_f64(secs.clamp(0.0, 3_600.0))
    }
}

/// A change of behaviour at a point of the run (a deploy gone wrong, a noisy neighbour).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// When, from the start of the run.
    pub at: Duration,
    /// The latency from then on, if it changes.
    pub latency: Option<Latency>,
    /// The failure rate from then on, if it changes.
    pub fail_rate: Option<f64>,
}

/// One simulated backend: `workers` requests served at once, the rest wait in a FIFO queue.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendModel {
    /// Its name in the reports.
    pub name: String,
    /// Its weight (used by weighted round robin).
    pub weight: u32,
    /// Requests served in parallel.
    pub workers: u32,
    /// The service time of one request.
    pub latency: Latency,
    /// The share of requests answered with an error (after their service time, like a `500`).
    pub fail_rate: f64,
    /// A change mid-run.
    pub change: Option<Change>,
}

impl BackendModel {
    /// A backend with weight 1, 8 workers and no failures.
    pub fn new(name: impl Into<String>, latency: Latency) -> Self {
        Self {
            name: name.into(),
            weight: 1,
            workers: 8,
            latency,
            fail_rate: 0.0,
            change: None,
        }
    }

    /// With `workers` parallel workers.
    pub fn workers(mut self, workers: u32) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// With this weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Failing this share of requests.
    pub fn failing(mut self, fail_rate: f64) -> Self {
        self.fail_rate = fail_rate.clamp(0.0, 1.0);
        self
    }

    /// Changing at some point of the run.
    pub fn changing(mut self, change: Change) -> Self {
        self.change = Some(change);
        self
    }

    /// The latency and failure rate in force `elapsed` into the run.
    pub(crate) fn at(&self, elapsed: Duration) -> (Latency, f64) {
        match self.change {
            Some(c) if elapsed >= c.at => (
                c.latency.unwrap_or(self.latency),
                c.fail_rate.unwrap_or(self.fail_rate),
            ),
            _ => (self.latency, self.fail_rate),
        }
    }
}

/// A whole experiment: the backends, the load, and the engine's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// A short name (file names, table titles).
    pub name: String,
    /// One line on what it shows.
    pub description: String,
    /// The backends.
    pub backends: Vec<BackendModel>,
    /// Requests per second, arriving as a Poisson process.
    pub arrival_rate: f64,
    /// Length of the run in virtual time.
    pub duration: Duration,
    /// Seed of every random draw (arrivals, service times, failures, the balancers' own).
    pub seed: u64,
    /// The set's settings: breaker, slow start, EWMA decay.
    pub options: SetOptions,
}

impl Scenario {
    /// A scenario of these backends at `arrival_rate` requests/s for 60 s, seed 1, default settings.
    pub fn new(name: impl Into<String>, backends: Vec<BackendModel>, arrival_rate: f64) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            backends,
            arrival_rate,
            duration: Duration::from_secs(60),
            seed: 1,
            options: SetOptions::default(),
        }
    }

    /// With a description.
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}
