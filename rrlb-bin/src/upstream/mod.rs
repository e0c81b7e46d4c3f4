//! The upstream side of both request paths: one balancing service ([`ProxyService`], rrlb-tower's `Balance`
//! over [`RawUpstream`]) that sends HTTP/1.1 over connections kept in a per-thread pool, written and read by
//! the task that serves the client (no connection task, no channel, no second wake-up per request), its
//! answers framed by `h1::answer`. `http://` backends get plain TCP connections, `https://` ones TLS over TCP
//! (rustls), and everything else is the same: the head written as the forwarding core wrote it, the pool, the
//! answer rules. The fast path writes an answer's body to its client as bytes, the hyper path as a
//! [`RawBody`].
//!
//! - `mod.rs`: the request and answer types, [`RawError`], the [`RawUpstream`] service and the balancing
//!   service built over it ([`service`]).
//! - `pool.rs`: where a backend is ([`Target`](pool::Target)) and this thread's idle connections to it, with
//!   the checks a pooled connection passes before it is used again.
//! - `send.rs`: the HTTP/1.1 exchange: write the request, read the answer's head, and send again when a
//!   pooled connection turns out to have been closed while idle.
//! - `body.rs`: the answer's body after the head, for the fast path ([`UpstreamBody`]) and for hyper
//!   ([`RawBody`]).
//! - `tls.rs`: the TLS client settings of `https://` backends ([`UpstreamTlsSpec`], [`client_config`],
//!   [`BackendTls`]).
//! - `policy.rs`: what the balancer counts as a failure, and noting the serving backend ([`RawPolicy`]).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Method;
use rrlb_core::{AnyBalancer, Backend};
use rrlb_tower::trace::TraceParent;
use rrlb_tower::{Balance, BoxError, FailureKind, Routed};
use tower::Service;

use crate::h1::{self, answer};
use crate::telemetry::{ClientSpan, Telemetry, Trace};

mod body;
mod policy;
mod pool;
mod send;
mod tls;

pub(crate) use body::{RawBody, UpstreamBody};
pub(crate) use policy::RawPolicy;
#[cfg(test)]
pub(crate) use tls::AcceptAnyCertificate;
pub(crate) use tls::BackendProbe;
pub use tls::UpstreamTlsError;
pub(crate) use tls::{BackendTls, UpstreamTlsSpec, client_config};

/// A request, ready to be sent to whichever backend is picked: everything but the request line's method and
/// path prefix and the `host` header is already encoded. Cloning it (for a retry) takes two references.
#[derive(Debug, Clone)]
pub(crate) struct RawRequest {
    pub method: Method,
    /// `TARGET HTTP/1.1\r\n` followed by the header lines to forward (each ending in CRLF), without `host`
    /// and without the blank line that ends the head.
    pub rest: Bytes,
    /// The body (its `content-length` line is in `rest` when needed).
    pub body: Bytes,
    /// The request's trace: each attempt sends a `traceparent` naming a new child of its server span.
    pub trace: Trace,
}

impl RawRequest {
    /// A request whose head (`rest`, as `forward::Plan::write_h1` wrote it) gets its `content-length` line
    /// for `body` when the forwarding core says it needs one.
    pub(crate) fn new(method: Method, mut rest: Vec<u8>, body: Bytes, trace: Trace) -> Self {
        if h1::sends_length(&method, body.len() as u64) {
            h1::push_header(
                &mut rest,
                b"content-length",
                itoa::Buffer::new().format(body.len()).as_bytes(),
            );
        }
        Self {
            method,
            rest: rest.into(),
            body,
            trace,
        }
    }
}

/// A backend's answer: its head, rewritten for the client, and the start of its body.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    /// `HTTP/1.1 STATUS REASON\r\n`, the forwarded header lines and the framing line; without the blank line.
    pub head: crate::bufs::Buf,
    /// The body: the bytes read with the head, and the connection the rest comes from.
    pub(crate) body: UpstreamBody,
    /// Which backend answered and after how many attempts (set when the balancer returns it).
    pub served: Option<(Arc<Backend>, u32)>,
}

/// Why an attempt failed: what rrlb was doing, with the error that stopped it kept as the
/// [`source`](std::error::Error::source) (an I/O error), not flattened into the message.
#[derive(Debug)]
pub(crate) struct RawError {
    kind: FailureKind,
    detail: Detail,
}

#[derive(Debug)]
enum Detail {
    /// rrlb's own words, with no deeper cause.
    Message(Cow<'static, str>),
    /// An I/O error while doing the first part ("reading from the backend").
    Io(&'static str, std::io::Error),
    /// The backend's answer broke a rule of `h1::answer` (the rule is this level's message).
    Answer(answer::AnswerError),
    /// Another error, shown as its own with its causes (a backend URL that cannot be used).
    Client(BoxError),
}

impl RawError {
    fn new(kind: FailureKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: Detail::Message(message.into()),
        }
    }

    fn io(kind: FailureKind, what: &'static str, e: std::io::Error) -> Self {
        Self {
            kind,
            detail: Detail::Io(what, e),
        }
    }

    fn protocol(e: answer::AnswerError) -> Self {
        Self {
            kind: FailureKind::Other,
            detail: Detail::Answer(e),
        }
    }

    fn client(kind: FailureKind, e: BoxError) -> Self {
        Self {
            kind,
            detail: Detail::Client(e),
        }
    }
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Detail::Message(m) => f.write_str(m),
            Detail::Io(what, _) => f.write_str(what),
            Detail::Answer(e) => write!(f, "{e}"),
            Detail::Client(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RawError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.detail {
            Detail::Message(_) | Detail::Answer(_) => None,
            Detail::Io(_, e) => Some(e),
            Detail::Client(e) => e.source(),
        }
    }
}

/// Sends [`RawRequest`]s to their picked backends over this thread's pooled connections: plain TCP for
/// `http://` backends, TLS with each backend's settings ([`BackendTls`]) for `https://` ones.
#[derive(Debug, Clone)]
pub(crate) struct RawUpstream {
    connect_timeout: Duration,
    dial: pool::Dial,
    telemetry: Option<Telemetry>,
}

impl RawUpstream {
    /// Connects within `connect_timeout` (TLS handshake included), counting the connections it keeps open in
    /// `metrics`' upstream gauge and its TLS handshakes in `rrlb_upstream_tls_handshakes_total`; `tls` gives
    /// each `https://` backend its TLS client; with `telemetry`, each attempt of a sampled request is exported
    /// as a CLIENT span.
    pub(crate) fn new(
        connect_timeout: Duration,
        tls: Arc<BackendTls>,
        metrics: &Arc<crate::metrics::Metrics>,
        telemetry: Option<Telemetry>,
    ) -> Self {
        Self {
            connect_timeout,
            dial: pool::Dial {
                open: metrics.upstream_connections.clone(),
                tls,
                metrics: Arc::clone(metrics),
            },
            telemetry,
        }
    }
}

/// The future of a [`RawUpstream`] call.
pub(crate) type RawFuture = Pin<Box<dyn Future<Output = Result<RawResponse, RawError>> + Send>>;

impl Service<Routed<RawRequest>> for RawUpstream {
    type Response = RawResponse;
    type Error = RawError;
    type Future = RawFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, routed: Routed<RawRequest>) -> Self::Future {
        let Routed {
            backend,
            request,
            attempt,
        } = routed;
        // This attempt's span: its id is the parent the backend sees.
        let span = request.trace.server.child();
        if let Some(telemetry) = self
            .telemetry
            .as_ref()
            .filter(|_| span.is_sampled())
            .cloned()
        {
            let trace = request.trace;
            let method = request.method.clone();
            let start = SystemTime::now();
            let exchange = self.exchange(Arc::clone(&backend), request, span);
            return Box::pin(async move {
                let result = exchange.await;
                let client = ClientSpan {
                    trace: &trace,
                    span: span.parent_id(),
                    attempt,
                    backend: &backend,
                    method: &method,
                    start,
                    result: result.as_ref().map(|r| r.status).map_err(|e| e.kind),
                };
                telemetry.client(client, SystemTime::now());
                result
            });
        }
        self.exchange(backend, request, span)
    }
}

impl RawUpstream {
    /// One attempt: `request` to `backend`, with `span` as its `traceparent`.
    fn exchange(&self, backend: Arc<Backend>, request: RawRequest, span: TraceParent) -> RawFuture {
        let (target, idle) = match pool::checkout(&backend, &self.dial) {
            Ok(t) => t,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        Box::pin(send::send(
            backend,
            target,
            idle,
            (request, span),
            self.connect_timeout,
        ))
    }
}

/// The balancing service both request paths call.
pub(crate) type ProxyService = Balance<RawUpstream, AnyBalancer, RawPolicy>;

/// The balancing service for a backend set, its connect timeout, the TLS settings of its `https://` backends,
/// balancing settings and retry budget.
pub(crate) fn service(
    set: &rrlb_core::BackendSet<AnyBalancer>,
    connect_timeout: Duration,
    (tls, telemetry): (Arc<BackendTls>, Option<Telemetry>),
    config: rrlb_tower::BalanceConfig,
    budget: rrlb_tower::RetryBudget,
    metrics: &Arc<crate::metrics::Metrics>,
) -> ProxyService {
    Balance::new(
        RawUpstream::new(connect_timeout, tls, metrics, telemetry),
        set.clone(),
        RawPolicy {
            metrics: Arc::clone(metrics),
        },
        config,
    )
    .with_budget(budget)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_io_failure_keeps_the_io_error_as_its_source() {
        let e = RawError::io(
            FailureKind::Reset,
            "reading from the backend",
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        assert_eq!(e.to_string(), "reading from the backend");
        let io = e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            crate::logging::ErrorChain(&e).to_string(),
            format!("reading from the backend: {io}")
        );
    }
}
