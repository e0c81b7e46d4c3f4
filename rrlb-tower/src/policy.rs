//! How outcomes are classified, which failures are retried, and how a request is copied for a retry.

use std::sync::Arc;

use rrlb_core::Backend;

use crate::error::FailureKind;

/// The set of failure kinds that are retried on another backend.
///
/// ```
/// use rrlb_tower::{FailureKind, RetryOn};
///
/// let retry_on = RetryOn::CONNECT_FAILURE | RetryOn::TIMEOUT;
/// assert!(retry_on.contains(FailureKind::Timeout));
/// assert!(!retry_on.contains(FailureKind::Reset));
/// assert!(RetryOn::NONE.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryOn(u8);

impl RetryOn {
    /// Nothing is retried.
    pub const NONE: RetryOn = RetryOn(0);
    /// Connection failures (nothing reached the backend): rrlb's default.
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1);
    /// Per-attempt timeouts.
    pub const TIMEOUT: RetryOn = RetryOn(2);
    /// Connections reset before a complete answer.
    pub const RESET: RetryOn = RetryOn(4);
    /// 5xx answers.
    pub const STATUS_5XX: RetryOn = RetryOn(8);

    /// Whether failures of this kind are retried.
    pub const fn contains(self, kind: FailureKind) -> bool {
        let bit = match kind {
            FailureKind::Connect => 1,
            FailureKind::Timeout => 2,
            FailureKind::Reset => 4,
            FailureKind::Status5xx => 8,
            FailureKind::Other => 0,
        };
        self.0 & bit != 0
    }

    /// Whether nothing is retried.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets together.
    pub const fn union(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }
}

impl Default for RetryOn {
    fn default() -> Self {
        RetryOn::CONNECT_FAILURE
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = RetryOn;

    fn bitor(self, rhs: RetryOn) -> RetryOn {
        self.union(rhs)
    }
}

/// Which backend answered, and after how many attempts; what [`HttpPolicy`](crate::http::HttpPolicy) puts in a response's extensions.
///
/// ```
/// use std::sync::Arc;
/// use rrlb_core::{Backend, BreakerParams, HealthParams};
/// use rrlb_tower::Served;
///
/// /// What a proxy logs from a response's extensions (with the `http` feature, `HttpPolicy` puts it there).
/// fn describe(served: Option<&Served>) -> String {
///     match served {
///         Some(s) if s.attempts > 1 => format!("{} after {} attempts", s.backend.name(), s.attempts),
///         Some(s) => s.backend.name().to_owned(),
///         None => "-".to_owned(),
///     }
/// }
/// let backend = Arc::new(Backend::new("b", "http://10.0.0.2", true, BreakerParams::default(), HealthParams::default()));
/// assert_eq!(describe(Some(&Served { backend, attempts: 2 })), "b after 2 attempts");
/// ```
#[derive(Debug, Clone)]
pub struct Served {
    /// The backend whose answer is returned.
    pub backend: Arc<Backend>,
    /// Attempts made, this one included (1 = no retry).
    pub attempts: u32,
}

/// Classifies outcomes and copies requests for retries. [`HttpPolicy`](crate::http::HttpPolicy) is the HTTP one.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
/// use rrlb_tower::{Balance, BalanceConfig, FailureKind, Policy, RetryOn, Routed};
/// use tower::{ServiceExt, service_fn};
///
/// /// Answers are status codes; 5xx are failures and are retried; requests are `Copy`.
/// #[derive(Clone)]
/// struct StatusPolicy;
///
/// impl Policy<u32, u16, std::convert::Infallible> for StatusPolicy {
///     fn classify_response(&self, status: &u16) -> Option<FailureKind> {
///         (*status >= 500).then_some(FailureKind::Status5xx)
///     }
///     fn classify_error(&self, _: &std::convert::Infallible) -> FailureKind {
///         FailureKind::Other
///     }
///     fn clone_request(&self, request: &u32) -> Option<u32> {
///         Some(*request)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("broken", "http://10.0.0.1"), BackendSpec::new("fine", "http://10.0.0.2")],
/// )?;
/// let inner = service_fn(|r: Routed<u32>| async move { Ok(if r.backend.name() == "broken" { 503 } else { 200 }) });
/// let config = BalanceConfig { retry_on: RetryOn::STATUS_5XX, ..BalanceConfig::default() };
/// assert_eq!(Balance::new(inner, set, StatusPolicy, config).oneshot(7).await?, 200);
/// # Ok(())
/// # }
/// ```
pub trait Policy<Req, Res, E>: Clone + Send + Sync + 'static {
    /// `None` if the answer counts as a success, else the kind of failure (it is still returned to the caller
    /// when it is not retried).
    fn classify_response(&self, response: &Res) -> Option<FailureKind>;

    /// The kind of an inner service's error.
    fn classify_error(&self, error: &E) -> FailureKind;

    /// A copy of the request for a retry, or `None` if it cannot be copied (it is then not retried).
    fn clone_request(&self, request: &Req) -> Option<Req>;

    /// Called with the answer that is returned, the backend that gave it and the attempts made (1 = no
    /// retry), e.g. to note a [`Served`] in the response's extensions.
    fn on_served(&self, _response: &mut Res, _backend: &Arc<Backend>, _attempts: u32) {}

    /// Called once for every failed attempt, retried or not, with the backend tried and the kind of failure
    /// (a [`Timeout`](FailureKind::Timeout) included, which never reaches
    /// [`classify_error`](Policy::classify_error)), e.g. to count failures per backend and kind.
    fn on_failure(&self, _backend: &Arc<Backend>, _kind: FailureKind) {}
}

/// A policy for any service: every `Ok` is a success, every `Err` a failure of kind
/// [`Other`](FailureKind::Other) unless `classify` says otherwise, and requests are copied with `Clone`.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
/// use rrlb_tower::{Balance, BalanceConfig, BasicPolicy, Routed};
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("a", "http://10.0.0.1")])?;
/// // Every inner error is a failure of kind `Other`, which is not retried.
/// let inner = service_fn(|_: Routed<()>| async { Err::<(), _>("refused") });
/// let error = Balance::new(inner, set.clone(), BasicPolicy, BalanceConfig::default()).oneshot(()).await.unwrap_err();
/// assert_eq!(error.attempts(), 1);
/// assert_eq!(set.get("a").ok_or("a is in the set")?.stats().snapshot().failures, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BasicPolicy;

impl<Req, Res, E> Policy<Req, Res, E> for BasicPolicy
where
    Req: Clone,
{
    fn classify_response(&self, _response: &Res) -> Option<FailureKind> {
        None
    }

    fn classify_error(&self, _error: &E) -> FailureKind {
        FailureKind::Other
    }

    fn clone_request(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}
