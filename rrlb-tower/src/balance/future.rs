//! The response future: one attempt at a time, timed, classified, recorded, retried elsewhere if allowed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use rrlb_core::{Backend, Balancer, Call, Outcome};
use tower::Service;

use super::service::{Routed, Shared};
use crate::error::{BoxError, Error, FailureKind};
use crate::policy::{Policy, RetryOn};

/// What a retry needs: a copy of the request, the backends already tried, and a handle on the service.
pub(crate) struct RetryState<S, B: Balancer, Req> {
    pub(crate) saved: Req,
    pub(crate) left: u32,
    pub(crate) retry_on: RetryOn,
    /// A boxed slice (two words, no allocation while empty): it grows only when a retry happens.
    pub(crate) tried: Box<[Arc<Backend>]>,
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<B>>,
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Attempt { #[pin] fut: F },
        WaitReady,
        Failed { error: Option<Error> },
        Done,
    }
}

/// The per-attempt timeout, armed lazily: an attempt that completes on its first poll (an always-ready inner
/// service, a cached answer) never touches the timer wheel. The deadline counts from the attempt's first poll,
/// which is when an attempt starts doing anything. Two words, so that the future stays small to move.
struct Timer {
    /// The timeout in nanoseconds; 0: none.
    timeout_ns: u64,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Timer {
    fn new(timeout: Option<Duration>) -> Self {
        Self {
            // A timeout too long for u64 nanoseconds (over 584 years) is as good as none; a zero one fires at
            // once, as tokio's does.
            timeout_ns: timeout.map_or(0, |t| match u64::try_from(t.as_nanos()) {
                Ok(ns) => ns.max(1),
                Err(_) => 0,
            }),
            sleep: None,
        }
    }

    /// A new attempt starts: its deadline is set when it first has to wait.
    fn disarm(&mut self) {
        self.sleep = None;
    }

    /// Ready when the current attempt's time is up (never, without a timeout).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.timeout_ns == 0 {
            return Poll::Pending;
        }
        let timeout = Duration::from_nanos(self.timeout_ns);
        self.sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
    }
}

pin_project! {
    /// The future of a [`Balance`](crate::Balance) call.
    ///
    /// ```
    /// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
    /// use rrlb_tower::{Balance, BalanceConfig, BasicPolicy, ResponseFuture, Routed};
    /// use tower::{Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("a", "http://10.0.0.1")])?;
    /// let inner = service_fn(|r: Routed<u32>| async move { Ok::<_, std::convert::Infallible>(r.request * 2) });
    /// let mut balance = Balance::new(inner, set, BasicPolicy, BalanceConfig::default());
    /// balance.ready().await?;
    /// let future: ResponseFuture<_, _, _, u32> = balance.call(21);
    /// // Dropping the future before it completes records the call as cancelled; awaiting it records the outcome.
    /// assert_eq!(future.await?, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseFuture<S, B, P, Req>
    where
        S: Service<Routed<Req>>,
        B: Balancer,
    {
        #[pin]
        state: State<S::Future>,
        call: Option<Call>,
        timer: Timer,
        policy: P,
        attempts: u32,
        retry: Option<RetryState<S, B, Req>>,
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
            state: State::Attempt { fut },
            call: Some(call),
            timer: Timer::new(timeout),
            policy,
            attempts: 0,
            retry,
        }
    }

    pub(crate) fn failed(error: Error, policy: P) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            call: None,
            timer: Timer::new(None),
            policy,
            attempts: 0,
            retry: None,
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
                StateProj::Attempt { fut } => match fut.poll(cx) {
                    Poll::Ready(result) => Ok(result),
                    Poll::Pending => {
                        ready!(this.timer.poll_expired(cx));
                        Err(())
                    }
                },
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
                    let attempt = *this.attempts + 1;
                    let fut = retry.inner.call(Routed {
                        backend,
                        request,
                        attempt,
                    });
                    this.timer.disarm();
                    this.state.set(State::Attempt { fut });
                    continue;
                }
                StateProj::Failed { error } => {
                    let e = error.take().unwrap_or_else(Error::polled_after_completion);
                    this.state.set(State::Done);
                    return Poll::Ready(Err(e));
                }
                StateProj::Done => return Poll::Ready(Err(Error::polled_after_completion())),
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
            if let Some(kind) = kind {
                this.policy.on_failure(backend, kind);
            }

            if let (Some(kind), Some(retry)) = (kind, this.retry.as_mut())
                && retry.left > 0
                && retry.retry_on.contains(kind)
            {
                let mut tried = std::mem::take(&mut retry.tried).into_vec();
                tried.push(Arc::clone(backend));
                retry.tried = tried.into_boxed_slice();
                let tried: Vec<&str> = retry.tried.iter().map(|b| b.name()).collect();
                if retry.shared.budget.withdraw()
                    && let Ok(next) = retry.shared.set.pick_excluding(&tried)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_convert_to_nanoseconds_with_zero_meaning_none() {
        assert_eq!(Timer::new(None).timeout_ns, 0);
        assert_eq!(
            Timer::new(Some(Duration::from_secs(2))).timeout_ns,
            2_000_000_000
        );
        // Zero fires at once (one nanosecond), it does not turn the timeout off.
        assert_eq!(Timer::new(Some(Duration::ZERO)).timeout_ns, 1);
        // Beyond u64 nanoseconds (584 years): no timeout, not an instant one.
        assert_eq!(Timer::new(Some(Duration::MAX)).timeout_ns, 0);
    }
}
