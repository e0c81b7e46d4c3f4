//! The response future: one attempt at a time, timed, classified, recorded, retried elsewhere if allowed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use rrlb_core::{Backend, BackendSet, Balancer, Call, Outcome};
use tower::Service;

use crate::error::{BoxError, Error, FailureKind};
use crate::policy::{Policy, RetryOn};
use crate::service::{RetryBudget, Routed};

/// What a retry needs: a copy of the request, the backends already tried, and a handle on the service.
pub(crate) struct RetryState<S, B: Balancer, Req> {
    pub(crate) saved: Req,
    pub(crate) left: u32,
    pub(crate) retry_on: RetryOn,
    pub(crate) tried: Vec<Arc<Backend>>,
    pub(crate) inner: S,
    pub(crate) set: BackendSet<B>,
    pub(crate) budget: RetryBudget,
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Timed { #[pin] fut: tokio::time::Timeout<F> },
        Untimed { #[pin] fut: F },
        WaitReady,
        Done,
    }
}

pin_project! {
    /// The future of a [`Balance`](crate::Balance) call.
    pub struct ResponseFuture<S, B, P, Req>
    where
        S: Service<Routed<Req>>,
        B: Balancer,
    {
        #[pin]
        state: State<S::Future>,
        call: Option<Call>,
        policy: P,
        timeout: Option<Duration>,
        attempts: u32,
        retry: Option<RetryState<S, B, Req>>,
        failed: Option<Error>,
    }
}

fn attempt<F: Future>(fut: F, timeout: Option<Duration>) -> State<F> {
    match timeout {
        Some(t) => State::Timed {
            fut: tokio::time::timeout(t, fut),
        },
        None => State::Untimed { fut },
    }
}

impl<S, B, P, Req> ResponseFuture<S, B, P, Req>
where
    S: Service<Routed<Req>>,
    B: Balancer,
{
    pub(crate) fn new(
        fut: S::Future,
        call: Call,
        timeout: Option<Duration>,
        policy: P,
        retry: Option<RetryState<S, B, Req>>,
    ) -> Self {
        Self {
            state: attempt(fut, timeout),
            call: Some(call),
            policy,
            timeout,
            attempts: 0,
            retry,
            failed: None,
        }
    }

    pub(crate) fn failed(error: Error, policy: P) -> Self {
        Self {
            state: State::Done,
            call: None,
            policy,
            timeout: None,
            attempts: 0,
            retry: None,
            failed: Some(error),
        }
    }
}

impl<S, B, P, Req> Future for ResponseFuture<S, B, P, Req>
where
    S: Service<Routed<Req>>,
    S::Error: Into<BoxError>,
    B: Balancer,
    P: Policy<Req, S::Response, S::Error>,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let result = match this.state.as_mut().project() {
                StateProj::Timed { fut } => ready!(fut.poll(cx)).map_err(|_| ()),
                StateProj::Untimed { fut } => Ok(ready!(fut.poll(cx))),
                StateProj::WaitReady => {
                    let (Some(retry), Some(call)) = (this.retry.as_mut(), this.call.as_ref())
                    else {
                        this.state.set(State::Done);
                        continue;
                    };
                    if let Err(e) = ready!(retry.inner.poll_ready(cx)) {
                        this.call.take();
                        this.state.set(State::Done);
                        return Poll::Ready(Err(Error::inner(e.into())));
                    }
                    let Some(request) = this.policy.clone_request(&retry.saved) else {
                        this.state.set(State::Done);
                        continue;
                    };
                    let backend = Arc::clone(call.backend());
                    let fut = retry.inner.call(Routed { backend, request });
                    this.state.set(attempt(fut, *this.timeout));
                    continue;
                }
                StateProj::Done => {
                    let e = this
                        .failed
                        .take()
                        .unwrap_or_else(Error::polled_after_completion);
                    return Poll::Ready(Err(e));
                }
            };
            *this.attempts += 1;
            let attempts = *this.attempts;
            let Some(mut call) = this.call.take() else {
                this.state.set(State::Done);
                return Poll::Ready(Err(Error::polled_after_completion()));
            };
            let kind = match &result {
                Err(()) => Some(FailureKind::Timeout),
                Ok(Err(e)) => Some(this.policy.classify_error(e)),
                Ok(Ok(response)) => this.policy.classify_response(response),
            };
            // Recorded in place: the guard keeps the backend for what follows, without another `Arc` clone.
            call.complete(if kind.is_some() {
                Outcome::Failure
            } else {
                Outcome::Success
            });
            let backend = call.backend();

            if let (Some(kind), Some(retry)) = (kind, this.retry.as_mut())
                && retry.left > 0
                && retry.retry_on.contains(kind)
            {
                retry.tried.push(Arc::clone(backend));
                let tried: Vec<&str> = retry.tried.iter().map(|b| b.name()).collect();
                if retry.budget.withdraw()
                    && let Ok(next) = retry.set.pick_excluding(&tried)
                {
                    retry.left -= 1;
                    tracing::debug!(
                        backend = backend.name(),
                        next = next.backend().name(),
                        failure = kind.as_str(),
                        "retrying on another backend"
                    );
                    *this.call = Some(next);
                    this.state.set(State::WaitReady);
                    continue;
                }
            }

            this.state.set(State::Done);
            this.retry.take();
            return Poll::Ready(match result {
                Ok(Ok(mut response)) => {
                    this.policy.on_served(&mut response, backend, attempts);
                    Ok(response)
                }
                Ok(Err(e)) => Err(Error::attempt(
                    kind.unwrap_or(FailureKind::Other),
                    backend.name(),
                    attempts,
                    Some(e.into()),
                )),
                Err(()) => Err(Error::attempt(
                    FailureKind::Timeout,
                    backend.name(),
                    attempts,
                    None,
                )),
            });
        }
    }
}
