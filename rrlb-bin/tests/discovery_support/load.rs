//! A bounded background load for the discovery tests: it counts answers by backend and every failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};

use crate::support::{Harness, eventually, try_send};

/// A bounded background load: `workers` clients sending `GET /` one after another until stopped (at most
/// `MAX_PER_WORKER` each), counting answers by backend and every failure (a transport error or a status other
/// than `200`).
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<BTreeMap<String, u64>>>,
    failures: Arc<Mutex<Vec<String>>>,
    total: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const MAX_PER_WORKER: usize = 20_000;

impl Load {
    pub(crate) fn start(h: &Harness, workers: usize) -> Self {
        let mut load = Self {
            stop: Arc::default(),
            served: Arc::default(),
            failures: Arc::default(),
            total: Arc::default(),
            tasks: Vec::new(),
        };
        load.tasks = (0..workers)
            .map(|_| {
                let (stop, served, failures, total) = (
                    Arc::clone(&load.stop),
                    Arc::clone(&load.served),
                    Arc::clone(&load.failures),
                    Arc::clone(&load.total),
                );
                let (client, url) = (crate::support::client(), h.url("/load"));
                tokio::spawn(async move {
                    for _ in 0..MAX_PER_WORKER {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match try_send(&client, Method::GET, &url, &[], "").await {
                            Ok(r) if r.status == StatusCode::OK => {
                                *served
                                    .lock()
                                    .unwrap()
                                    .entry(r.backend().to_owned())
                                    .or_default() += 1;
                            }
                            Ok(r) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{}: {}", r.status, r.text()))
                            }
                            Err(e) => failures.lock().unwrap().push(e),
                        }
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        load
    }

    pub(crate) fn served(&self, backend: &str) -> u64 {
        self.served
            .lock()
            .unwrap()
            .get(backend)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `n` more requests were answered.
    pub(crate) async fn more(&self, n: u64) {
        let from = self.total.load(Ordering::Relaxed);
        eventually(&format!("{n} more requests answered"), || async {
            (self.total.load(Ordering::Relaxed) >= from + n).then_some(())
        })
        .await;
    }

    /// Stops the workers; returns the failures.
    pub(crate) async fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.await.expect("load worker panicked");
        }
        self.failures.lock().unwrap().clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
