//! [`Picker`]: picks through a snapshot cached by its owner instead of loading the shared one each time.

use std::sync::Arc;

use arc_swap::ArcSwap;
use arc_swap::cache::Cache;

#[cfg(doc)]
use super::BackendSet;
use super::build::Inner;
use super::snapshot::Snapshot;
use super::{Call, NoEligibleBackend};
use crate::balancer::Balancer;

/// Picks from a [`BackendSet`] through a snapshot it caches: where [`BackendSet::pick`] loads the current
/// snapshot from the shared `ArcSwap` (a few atomic operations to protect it), a `Picker` compares one pointer
/// with the one it holds and reloads only when a new snapshot was published since its last pick.
///
/// It needs `&mut self`, so each task or each clone of a service keeps its own (clones are independent). A
/// change published before a pick starts is always seen by that pick, as with [`BackendSet::pick`]. The cost:
/// a picker keeps the snapshot of its last pick, and so the backends of that snapshot, alive until its next
/// pick or its drop.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// set.add(BackendSpec::new("a", "http://127.0.0.1:8081"))?;
/// let mut picker = set.picker();
/// picker.pick()?.success();
/// set.add(BackendSpec::new("b", "http://127.0.0.1:8082"))?;
/// assert_eq!(picker.pick()?.backend().name(), "b");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Picker<B: Balancer> {
    pub(super) cache: Cache<Current<B>, Arc<Snapshot<B>>>,
}

impl<B: Balancer> Clone for Picker<B> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
        }
    }
}

impl<B: Balancer> std::fmt::Debug for Picker<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picker").finish_non_exhaustive()
    }
}

impl<B: Balancer> Picker<B> {
    /// Picks a backend and starts a call to it, like [`BackendSet::pick`].
    #[inline]
    pub fn pick(&mut self) -> Result<Call, NoEligibleBackend> {
        self.cache.load().pick()
    }

    /// The current snapshot (refreshed if a newer one was published).
    #[inline]
    pub fn snapshot(&mut self) -> &Arc<Snapshot<B>> {
        self.cache.load()
    }
}

/// The set's `ArcSwap`, held by a [`Picker`]'s cache.
pub(super) struct Current<B: Balancer>(pub(super) Arc<Inner<B>>);

impl<B: Balancer> Clone for Current<B> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<B: Balancer> std::ops::Deref for Current<B> {
    type Target = ArcSwap<Snapshot<B>>;

    fn deref(&self) -> &Self::Target {
        &self.0.current
    }
}
