//! Discovery input: backend changes as a stream of `tower::discover::Change`s.

use futures_util::{Stream, StreamExt};
use rrlb_core::{BackendSet, BackendSpec, Balancer, SetError};
use tower::discover::Change;

/// Applies a stream of changes to `set` until the stream ends: `Insert(name, spec)` adds the backend (or, if a
/// backend of that name exists with the same URL, updates its weight), `Remove(name)` removes it.
///
/// A change that the set refuses (a duplicate URL, an out-of-range weight, an unknown name to remove) is
/// logged and skipped; the stream goes on. Returns the number of changes applied.
pub async fn apply_changes<B, S>(set: &BackendSet<B>, changes: S) -> usize
where
    B: Balancer,
    S: Stream<Item = Change<String, BackendSpec>>,
{
    let mut changes = std::pin::pin!(changes);
    let mut applied = 0;
    while let Some(change) = changes.next().await {
        match apply(set, change) {
            Ok(()) => applied += 1,
            Err(e) => tracing::warn!(error = %e, "discovery change refused"),
        }
    }
    applied
}

fn apply<B: Balancer>(
    set: &BackendSet<B>,
    change: Change<String, BackendSpec>,
) -> Result<(), SetError> {
    match change {
        Change::Insert(name, mut spec) => {
            spec.name = name;
            match set.get(&spec.name) {
                Some(m) if m.backend().url() == spec.url => set.set_weight(&spec.name, spec.weight),
                Some(_) => {
                    set.remove(&spec.name)?;
                    set.add(spec).map(drop)
                }
                None => set.add(spec).map(drop),
            }
        }
        Change::Remove(name) => set.remove(&name).map(drop),
    }
}
