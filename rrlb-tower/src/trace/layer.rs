//! The two layers that propagate a trace through a balanced HTTP client.

use std::task::{Context, Poll};

use http::header::{HeaderMap, HeaderValue};
use tower::{Layer, Service};

use super::{TRACEPARENT, TRACESTATE, TraceParent, continue_or_start};
use crate::balance::Routed;

/// Puts a valid `traceparent` on every request: the caller's when it has exactly one valid value, else a new
/// trace (sampled with probability `sample_ratio`), in which case a `tracestate` is dropped with it. Goes
/// *around* the balancer, so that every attempt of a request belongs to the same trace; the request's
/// [`TraceParent`] is also put in its extensions.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
/// use rrlb_tower::trace::{ChildSpanLayer, TraceContextLayer, TraceParent};
/// use rrlb_tower::{BalanceConfig, BalanceLayer, BasicPolicy, Routed};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("a", "http://10.0.0.1")])?;
/// // The "upstream" answers with the traceparent it was sent.
/// let upstream = service_fn(|r: Routed<http::Request<()>>| async move {
///     Ok::<_, std::convert::Infallible>(r.request.headers()["traceparent"].to_str().unwrap_or("").to_owned())
/// });
/// let client = ServiceBuilder::new()
///     .layer(TraceContextLayer::new(1.0))
///     .layer(BalanceLayer::new(set, BasicPolicy, BalanceConfig::default()))
///     .layer(ChildSpanLayer)
///     .service(upstream);
///
/// let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let sent = client.oneshot(http::Request::get("/").header("traceparent", caller).body(())?).await?;
/// let sent = TraceParent::parse(sent.as_bytes())?;
/// assert_eq!(sent.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_ne!(sent.parent_id().to_string(), "00f067aa0ba902b7"); // the attempt's span
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TraceContextLayer {
    sample_ratio: f64,
}

impl TraceContextLayer {
    /// New traces are sampled with probability `sample_ratio` (clamped to 0.0..=1.0).
    pub const fn new(sample_ratio: f64) -> Self {
        Self {
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
        }
    }
}

impl<S> Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> TraceContext<S> {
        TraceContext {
            inner,
            sample_ratio: self.sample_ratio,
        }
    }
}

/// The service of a [`TraceContextLayer`].
///
/// ```
/// use rrlb_tower::trace::{TraceContext, TraceContextLayer, TraceParent};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let echo = service_fn(|r: http::Request<()>| async move { Ok::<_, std::convert::Infallible>(r) });
/// let svc: TraceContext<_> = TraceContextLayer::new(0.0).layer(echo);
/// // An invalid traceparent starts a new trace, and the tracestate that went with it is dropped.
/// let request = http::Request::get("/").header("traceparent", "garbage").header("tracestate", "k=v").body(())?;
/// let seen = svc.oneshot(request).await?;
/// assert!(TraceParent::parse(seen.headers()["traceparent"].as_bytes()).is_ok());
/// assert!(seen.headers().get("tracestate").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TraceContext<S> {
    inner: S,
    sample_ratio: f64,
}

impl<S, B> Service<http::Request<B>> for TraceContext<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let headers = request.headers_mut();
        let (trace, continued) = continue_or_start(
            headers
                .get_all(TRACEPARENT)
                .iter()
                .map(HeaderValue::as_bytes),
            self.sample_ratio,
        );
        if !continued {
            headers.remove(TRACESTATE);
        }
        set_traceparent(headers, &trace);
        request.extensions_mut().insert(trace);
        self.inner.call(request)
    }
}

/// Gives each attempt its own span: the `traceparent` the backend gets keeps the request's trace id and flags
/// and names a new span id as its parent. Goes *inside* the balancer, around the upstream; the attempt's
/// [`TraceParent`] is put in the request's extensions as a [`ChildSpan`]. A request without a valid
/// `traceparent` (no [`TraceContextLayer`] outside) starts an unsampled trace.
///
/// ```
/// use rrlb_core::{Backend, BreakerParams, HealthParams};
/// use rrlb_tower::Routed;
/// use rrlb_tower::trace::{ChildSpan, ChildSpanLayer};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let upstream = service_fn(|r: Routed<http::Request<()>>| async move {
///     Ok::<_, std::convert::Infallible>(r.request.extensions().get::<ChildSpan>().copied())
/// });
/// let backend = Backend::new("a", "http://10.0.0.1", true, BreakerParams::default(), HealthParams::default());
/// let request = http::Request::get("/").body(())?;
/// let span = ChildSpanLayer.layer(upstream).oneshot(Routed { backend: backend.into(), request, attempt: 1 }).await?;
/// assert!(span.is_some_and(|s| !s.0.is_sampled()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildSpanLayer;

impl<S> Layer<S> for ChildSpanLayer {
    type Service = ChildSpanService<S>;

    fn layer(&self, inner: S) -> ChildSpanService<S> {
        ChildSpanService { inner }
    }
}

/// The `traceparent` one attempt sent, in the attempt's request extensions.
///
/// ```
/// use rrlb_tower::trace::{ChildSpan, TraceParent};
///
/// let span = ChildSpan(TraceParent::new_root(true));
/// assert!(span.0.is_sampled());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSpan(pub TraceParent);

/// The service of a [`ChildSpanLayer`].
///
/// ```
/// use rrlb_core::{Backend, BreakerParams, HealthParams};
/// use rrlb_tower::Routed;
/// use rrlb_tower::trace::{ChildSpanLayer, ChildSpanService, TraceParent};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let upstream = service_fn(|r: Routed<http::Request<()>>| async move {
///     Ok::<_, std::convert::Infallible>(r.request.headers()["traceparent"].as_bytes().to_vec())
/// });
/// let svc: ChildSpanService<_> = ChildSpanLayer.layer(upstream);
/// let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let request = http::Request::get("/").header("traceparent", caller).body(())?;
/// let backend = Backend::new("a", "http://10.0.0.1", true, BreakerParams::default(), HealthParams::default());
/// let sent = svc.oneshot(Routed { backend: backend.into(), request, attempt: 2 }).await?;
/// let sent = TraceParent::parse(&sent)?;
/// assert_eq!(sent.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChildSpanService<S> {
    inner: S,
}

impl<S, B> Service<Routed<http::Request<B>>> for ChildSpanService<S>
where
    S: Service<Routed<http::Request<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut routed: Routed<http::Request<B>>) -> Self::Future {
        let headers = routed.request.headers_mut();
        let (request_trace, _) = continue_or_start(
            headers
                .get_all(TRACEPARENT)
                .iter()
                .map(HeaderValue::as_bytes),
            0.0,
        );
        let span = request_trace.child();
        set_traceparent(headers, &span);
        routed.request.extensions_mut().insert(ChildSpan(span));
        self.inner.call(routed)
    }
}

fn set_traceparent(headers: &mut HeaderMap, trace: &TraceParent) {
    // Always 55 bytes of lower-case hex and '-': a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(&trace.encode()) {
        headers.insert(TRACEPARENT, value);
    }
}
