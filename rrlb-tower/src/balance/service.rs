//! The balancing [`Service`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rrlb_core::{Backend, BackendSet, Balancer, Picker};
use tower::Service;

use super::future::{ResponseFuture, RetryState};
use crate::budget::RetryBudget;
use crate::error::{BoxError, Error};
use crate::policy::{Policy, RetryOn};

/// A request on its way to the backend that was picked for it: what the inner service receives.
///
/// ```
/// use rrlb_core::{Backend, BreakerParams, HealthParams};
/// use rrlb_tower::Routed;
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), std::convert::Infallible> {
/// // What a `Balance` hands its inner service: the request and where it goes.
/// let backend = Backend::new("a", "http://10.0.0.1:8080", true, BreakerParams::default(), HealthParams::default());
/// let inner = service_fn(|r: Routed<&'static str>| async move { Ok::<_, std::convert::Infallible>(format!("{} to {}", r.request, r.backend.url())) });
/// let answer = inner.oneshot(Routed { backend: backend.into(), request: "GET /", attempt: 1 }).await?;
/// assert_eq!(answer, "GET / to http://10.0.0.1:8080");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Routed<R> {
    /// The picked backend (for an HTTP upstream: where to send the request).
    pub backend: Arc<Backend>,
    /// The request.
    pub request: R,
    /// Which attempt of the call this is: 1 for the first, 2 for the first retry, and so on.
    pub attempt: u32,
}

/// Per-attempt timeout and retry settings.
///
/// ```
/// use std::time::Duration;
/// use rrlb_tower::{BalanceConfig, RetryOn};
///
/// // Up to three attempts in all, on timeouts and refused connections, 250 ms each.
/// let config = BalanceConfig {
///     timeout: Some(Duration::from_millis(250)),
///     retries: 2,
///     retry_on: RetryOn::CONNECT_FAILURE | RetryOn::TIMEOUT,
/// };
/// assert_ne!(config, BalanceConfig::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceConfig {
    /// Timeout of each attempt (`None`: no timeout), counted from the attempt's first poll; the timer is only
    /// set if the attempt does not complete on that poll. Default 2 s.
    pub timeout: Option<Duration>,
    /// Extra attempts after the first, each on a backend not tried yet. Default 2.
    pub retries: u32,
    /// Which failures are retried. Default: connection failures only.
    pub retry_on: RetryOn,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        Self {
            timeout: Some(Duration::from_secs(2)),
            retries: 2,
            retry_on: RetryOn::CONNECT_FAILURE,
        }
    }
}

/// Balances requests over a [`BackendSet`], calling the inner service with each request [`Routed`] to the
/// picked backend.
///
/// Picking takes no lock and the set is shared, so `Balance` is cheap to clone (a few reference counts; each
/// clone picks through its own cached snapshot, a [`Picker`]) and needs no `tower::buffer::Buffer` in front of
/// it: give every task its clone. Each call:
///
/// 1. picks a backend (half-open probes first, then the balancer) or fails with
///    [`Error::is_no_eligible_backend`];
/// 2. calls the inner service under the per-attempt timeout;
/// 3. classifies the result with the [`Policy`] and records it on the backend (statistics, latency histogram,
///    circuit breaker) — or, if the response future is dropped first, records the call as cancelled;
/// 4. on a failure the policy's [`RetryOn`] covers, if the [`RetryBudget`] allows, retries on a backend that
///    was not tried yet.
///
/// ```
/// use std::time::Duration;
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
/// use rrlb_tower::{Balance, BalanceConfig, BasicPolicy, Routed};
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("slow", "http://10.0.0.1")])?;
/// let inner = service_fn(|_: Routed<()>| async {
///     tokio::time::sleep(Duration::from_secs(10)).await;
///     Ok::<_, std::convert::Infallible>(())
/// });
/// let config = BalanceConfig { timeout: Some(Duration::from_secs(1)), ..BalanceConfig::default() };
/// let error = Balance::new(inner, set, BasicPolicy, config).oneshot(()).await.unwrap_err();
/// assert!(error.is_timeout());
/// assert_eq!(error.backend(), Some("slow"));
/// # Ok(())
/// # }
/// ```
pub struct Balance<S, B: Balancer, P> {
    pub(crate) inner: S,
    /// The set and the retry budget, behind one `Arc`: a call that may be retried takes one reference to both.
    pub(crate) shared: Arc<Shared<B>>,
    /// Each clone picks through its own cached snapshot (see [`Picker`]).
    pub(crate) picker: Picker<B>,
    pub(crate) policy: P,
    pub(crate) config: BalanceConfig,
}

/// What every attempt of a call may need again: where to pick a backend for a retry, and whether it may.
#[derive(Debug)]
pub(crate) struct Shared<B: Balancer> {
    pub(crate) set: BackendSet<B>,
    pub(crate) budget: RetryBudget,
}

impl<S: Clone, B: Balancer, P: Clone> Clone for Balance<S, B, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            picker: self.picker.clone(),
            policy: self.policy.clone(),
            config: self.config,
        }
    }
}

impl<S, B: Balancer, P> std::fmt::Debug for Balance<S, B, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balance")
            .field("set", &self.shared.set)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B: Balancer, P> Balance<S, B, P> {
    /// Balances over `set`, calling `inner`, classifying with `policy`.
    pub fn new(inner: S, set: BackendSet<B>, policy: P, config: BalanceConfig) -> Self {
        Self {
            inner,
            picker: set.picker(),
            shared: Arc::new(Shared {
                set,
                budget: RetryBudget::default(),
            }),
            policy,
            config,
        }
    }

    /// The same service with another retry budget.
    pub fn with_budget(mut self, budget: RetryBudget) -> Self {
        self.shared = Arc::new(Shared {
            set: self.shared.set.clone(),
            budget,
        });
        self
    }

    /// The backend set.
    pub fn set(&self) -> &BackendSet<B> {
        &self.shared.set
    }

    /// The timeout and retry settings.
    pub fn config(&self) -> BalanceConfig {
        self.config
    }
}

impl<S, B, P, Req> Service<Req> for Balance<S, B, P>
where
    S: Service<Routed<Req>> + Clone,
    S::Error: Into<BoxError>,
    B: Balancer,
    P: Policy<Req, S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S, B, P, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::inner(e.into()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // A service that never retries has no use for the budget: skip its clock read and count.
        let may_retry = self.config.retries > 0 && !self.config.retry_on.is_empty();
        if may_retry {
            self.shared.budget.deposit();
        }
        let call = match self.picker.pick() {
            Ok(call) => call,
            Err(e) => {
                return ResponseFuture::failed(Error::no_eligible(e, 0, None), self.policy.clone());
            }
        };
        let retry = if may_retry {
            self.policy.clone_request(&request).map(|saved| RetryState {
                saved,
                left: self.config.retries,
                retry_on: self.config.retry_on,
                tried: Box::default(),
                inner: self.inner.clone(),
                shared: Arc::clone(&self.shared),
            })
        } else {
            None
        };
        let backend = Arc::clone(call.backend());
        let fut = self.inner.call(Routed {
            backend,
            request,
            attempt: 1,
        });
        ResponseFuture::new(fut, call, self.config.timeout, self.policy.clone(), retry)
    }
}
