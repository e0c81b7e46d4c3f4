//! Discovery input: backend changes as a stream of `tower::discover::Change`s, the event-style counterpart of
//! [`Discovery`](super::Discovery)'s full address sets.

use futures_util::{Stream, StreamExt};
use rrlb_core::backend::{MAX_WEIGHT, MIN_WEIGHT};
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
                    // Replace only what `add` will accept: a refused replacement must not lose the
                    // backend it was meant to replace.
                    refuse_replacement(set, &spec)?;
                    set.remove(&spec.name)?;
                    set.add(spec).map(drop)
                }
                None => set.add(spec).map(drop),
            }
        }
        Change::Remove(name) => set.remove(&name).map(drop),
    }
}

/// Why [`BackendSet::add`] would refuse `spec` once the backend of the same name is gone.
fn refuse_replacement<B: Balancer>(
    set: &BackendSet<B>,
    spec: &BackendSpec,
) -> Result<(), SetError> {
    if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&spec.weight) {
        return Err(SetError::InvalidWeight {
            name: spec.name.clone(),
            weight: spec.weight,
        });
    }
    let snapshot = set.load();
    match snapshot
        .members()
        .iter()
        .find(|m| m.backend().name() != spec.name && m.backend().url() == spec.url)
    {
        Some(other) => Err(SetError::Duplicate {
            name: other.backend().name().to_owned(),
        }),
        None => Ok(()),
    }
}
