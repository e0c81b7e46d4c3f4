//! A per-thread copy of a published `tower::Service`: each serving thread calls its own clone, made again only
//! when a new service is published (a reload), so a request takes no reference on state that every thread
//! shares. Generic: nothing here knows what the service does.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tower::{Service, ServiceExt};

/// A thread's copy of a published service, and the `Arc` it was copied from.
pub(crate) type LocalService<S> = RefCell<Option<(Arc<S>, S)>>;

/// Calls this thread's copy (in `key`) of the `published` service, made again when a reload published
/// a new one: `Balance::call` takes `&mut self`, and cloning the service per request would take and drop
/// references on the set, its snapshot and the retry budget that every worker thread shares. Not an
/// `async fn`: the caller awaits the service's own future, so its state holds that future and not also a copy
/// of the request and a fallback path.
pub(crate) fn call_local<S, R>(
    key: &'static std::thread::LocalKey<LocalService<S>>,
    published: &arc_swap::ArcSwap<S>,
    req: R,
) -> Sending<S, R>
where
    S: Service<R> + Clone,
{
    key.with_borrow_mut(|slot| {
        let current = published.load();
        if !matches!(slot, Some((published, _)) if Arc::ptr_eq(published, &current)) {
            *slot = Some((Arc::clone(&current), S::clone(&current)));
        }
        let Some((_, svc)) = slot.as_mut() else {
            return Sending::Right(Box::pin(S::clone(&current).oneshot(req)));
        };
        // rrlb's upstreams are always ready; should that ever change, fall back to waiting on a clone.
        match svc.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Sending::Left(svc.call(req)),
            _ => Sending::Right(Box::pin(svc.clone().oneshot(req))),
        }
    })
}

/// [`call_local`]'s future: the service's, or (never in practice) a boxed wait for a clone to be ready.
pub(crate) type Sending<S, R> =
    futures_util::future::Either<<S as Service<R>>::Future, Pin<Box<tower::util::Oneshot<S, R>>>>;
