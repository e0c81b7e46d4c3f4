//! What a request reads on its way to a backend, shared by both request paths and the admin API: the backend
//! set, the balancing service, the configuration in force, the rate limiter, metrics, the access log and span
//! export. Each is an `ArcSwap` (or is swapped inside), so a reload (`crate::apply`) replaces it with one
//! pointer store and a request loads it with one pointer load. Nothing here changes a configuration.

use std::cell::RefCell;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rrlb_core::{AnyBalancer, BackendSet};

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::per_thread::{LocalService, Sending, call_local};
use crate::telemetry::Telemetry;
use crate::tls::TlsListener;
use crate::upstream::{ProxyService, RawRequest};

/// A per-client-IP rate limiter (`limits.rate_per_client`).
pub(crate) type ClientLimiter = governor::RateLimiter<
    std::net::IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<std::net::IpAddr>,
    governor::clock::DefaultClock,
>;

/// Everything the listeners share.
pub(crate) struct App {
    /// The backend set (one for the life of the process; reloads update it in place).
    pub(crate) set: BackendSet<AnyBalancer>,
    /// The balancing service of both request paths, replaced when timeouts or retries change.
    pub(crate) service: ArcSwap<ProxyService>,
    /// The configuration in force.
    pub(crate) config: ArcSwap<Config>,
    /// The per-client rate limiter, when `limits.rate_per_client` is set.
    pub(crate) limiter: ArcSwap<Option<ClientLimiter>>,
    /// Prometheus metrics and the admin API's counters.
    pub(crate) metrics: Arc<Metrics>,
    /// The access log (its writer thread runs for as long as the state).
    pub(crate) access_log: AccessLog,
    /// Span export, when `tracing.otlp_endpoint` is set.
    pub(crate) telemetry: ArcSwap<Option<Telemetry>>,
    /// The proxy listener's TLS, when `[tls]` is set (its certificates rotate inside it).
    pub(crate) tls: ArcSwap<Option<Arc<TlsListener>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("set", &self.set)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// This thread's copy of the balancing service (see [`call_local`]).
    static SERVICE: LocalService<ProxyService> = const { RefCell::new(None) };
}

impl App {
    /// Whether at least one backend can take a request now.
    pub(crate) fn is_ready(&self) -> bool {
        let snap = self.set.load();
        !snap.eligible().is_empty() || !snap.probing().is_empty()
    }

    /// Sends a request through this thread's copy of the balancing service (see [`call_local`]).
    pub(crate) fn call(&self, request: RawRequest) -> Sending<ProxyService, RawRequest> {
        call_local(&SERVICE, &self.service, request)
    }
}

/// One serving thread's handle on the [`App`]: every request takes a reference on it, and a reference count
/// that only one thread writes stays in that core's cache (the `App`'s own count is shared by all threads).
#[derive(Debug, Clone)]
pub(crate) struct Local(pub Arc<App>);

impl std::ops::Deref for Local {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}
