//! Each thread's cache of handles on the per-backend series, so that counting a request neither allocates
//! nor locks.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::Metrics;

/// Each thread's handles on the per-backend series, so that counting a request neither allocates label
/// strings nor hashes and locks the families' maps: a short list scanned by backend name and code. The
/// series of the families and the handles are the same objects (`prometheus_client` metrics are shared
/// handles), so the exposition sees every count.
#[derive(Default)]
pub(super) struct Handles {
    owner: u64,
    /// The instance's `generation` these handles were made in.
    generation: u64,
    pub(super) total: Arc<AtomicU64>,
    /// `rrlb_requests_total` series by backend and status code.
    pub(super) requests: Vec<((Box<str>, u16), Counter)>,
    /// `rrlb_request_duration_seconds` series by backend (the code slot is unused: 0).
    pub(super) durations: Vec<((Box<str>, u16), Histogram)>,
    /// `rrlb_upstream_errors_total` series by backend and kind (its slot in `error_kind`).
    pub(super) errors: Vec<((Box<str>, u16), Counter)>,
}

/// Beyond this many series a thread's cache starts over (backends come and go; codes are few).
pub(super) const MAX_HANDLES: usize = 256;

/// The cached handle for (`backend`, `code`), made with `make` on a miss.
pub(super) fn cached<'a, T>(
    list: &'a mut Vec<((Box<str>, u16), T)>,
    backend: &str,
    code: u16,
    make: impl FnOnce() -> T,
) -> &'a T {
    let found = list
        .iter()
        .position(|((b, c), _)| *c == code && &**b == backend);
    let i = match found {
        Some(i) => i,
        None => {
            if list.len() >= MAX_HANDLES {
                list.clear();
            }
            list.push(((backend.into(), code), make()));
            list.len() - 1
        }
    };
    &list[i].1
}

thread_local! {
    pub(super) static HANDLES: RefCell<Handles> = RefCell::new(Handles::default());
}

pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Metrics {
    /// Makes this thread's handle cache this instance's (it serves one instance at a time), and drops its
    /// handles on series that were removed since they were made.
    pub(super) fn own(&self, h: &mut Handles) {
        let generation = self.generation.load(Relaxed);
        if h.owner != self.id {
            let total = Arc::new(AtomicU64::new(0));
            self.totals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&total));
            *h = Handles {
                owner: self.id,
                generation,
                total,
                ..Handles::default()
            };
        } else if h.generation != generation {
            h.generation = generation;
            h.requests.clear();
            h.durations.clear();
            h.errors.clear();
        }
    }
}
