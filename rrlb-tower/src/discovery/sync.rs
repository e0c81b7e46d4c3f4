//! One address set applied to a group's members: the diff.

use std::collections::BTreeMap;

use rrlb_core::{BackendSet, Balancer, Snapshot};

use super::{Endpoint, Group};

/// What one [`sync`] changed.
///
/// ```
/// use rrlb_core::{BackendSet, RoundRobin, SetOptions};
/// use rrlb_tower::discovery::{Endpoint, Group, sync};
///
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// let group = Group::new("web", 1);
/// let (a, b) = (Endpoint::new("10.0.0.1:80".parse()?), Endpoint::new("10.0.0.2:80".parse()?));
/// let report = sync(&set, &group, &[a, b]);
/// assert_eq!((report.added, report.drained), (2, 0));
/// // "a" vanished: with nothing in flight it drains and leaves at once.
/// let report = sync(&set, &group, &[b]);
/// assert_eq!((report.added, report.drained), (0, 1));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Members added.
    pub added: usize,
    /// Members that started draining (their address vanished, or a lower SRV priority took over).
    pub drained: usize,
    /// Draining members whose address came back: they serve again, their state intact.
    pub restored: usize,
    /// Addresses the set refused (e.g. the same URL as another backend): logged, not added.
    pub refused: usize,
}

/// Makes the `group`'s members in `set` the addresses of `endpoints` (after [priority](Endpoint::priority)
/// selection): adds the new ones, drains the vanished ones (removed once idle), stops draining the ones that
/// came back and updates weights. Members of other groups and configured backends are not touched. An endpoint
/// listed twice counts once (its first listing).
///
/// Callers should not pass an empty list (it would drain the whole group); [`Discovery`](super::Discovery)
/// never does.
pub fn sync<B: Balancer>(set: &BackendSet<B>, group: &Group, endpoints: &[Endpoint]) -> SyncReport {
    let snap = set.snapshot();
    let wanted = by_priority(&snap, set.options().start_healthy, group, endpoints);
    let mut report = SyncReport::default();
    for ep in wanted.values() {
        let spec = group.spec(ep);
        match snap.get(&spec.name) {
            Some(m) => {
                // Draining and already removed meanwhile (it became idle): then it is new again.
                if m.is_draining() && set.drain(&spec.name, false, false).is_err() {
                    add(set, spec, &mut report);
                    continue;
                }
                if m.is_draining() {
                    report.restored += 1;
                }
                if m.weight() != spec.weight {
                    let _ = set.set_weight(&spec.name, spec.weight);
                }
            }
            None => add(set, spec, &mut report),
        }
    }
    let names: std::collections::HashSet<String> = wanted
        .values()
        .map(|ep| group.member_name(ep.addr))
        .collect();
    for m in snap.members() {
        let name = m.name();
        let gone = group.owns(name) && !names.contains(name);
        if gone
            && !(m.is_draining() && m.removes_when_idle())
            && set.drain(name, true, true).is_ok()
        {
            report.drained += 1;
            tracing::info!(
                group = group.name(),
                backend = name,
                "discovered address gone; draining it"
            );
        }
    }
    report
}

fn add<B: Balancer>(set: &BackendSet<B>, spec: rrlb_core::BackendSpec, report: &mut SyncReport) {
    let name = spec.name.clone();
    match set.add(spec) {
        Ok(_) => {
            report.added += 1;
            tracing::info!(backend = name, "discovered address added");
        }
        Err(e) => {
            report.refused += 1;
            tracing::warn!(backend = name, error = %e, "discovered address refused");
        }
    }
}

/// The endpoints in use, keyed by `ip:port`: every priority level up to and including the first (lowest
/// value) that has an eligible member (every level when none has). A member not yet in the set counts as
/// eligible when new backends start healthy.
fn by_priority<B: Balancer>(
    snap: &Snapshot<B>,
    start_healthy: bool,
    group: &Group,
    endpoints: &[Endpoint],
) -> BTreeMap<String, Endpoint> {
    let mut levels: BTreeMap<u16, Vec<&Endpoint>> = BTreeMap::new();
    for ep in endpoints {
        levels.entry(ep.priority).or_default().push(ep);
    }
    let eligible = |ep: &Endpoint| {
        let name = group.member_name(ep.addr);
        match snap.get(&name) {
            Some(m) => !m.is_draining() && snap.eligible().iter().any(|e| e.name() == name),
            None => start_healthy,
        }
    };
    let mut wanted = BTreeMap::new();
    for level in levels.values() {
        for ep in level {
            wanted.entry(ep.addr.to_string()).or_insert(**ep);
        }
        // A draining member is not eligible, so a level that is only coming back waits for its next sync.
        if level.iter().any(|ep| eligible(ep))
            || level.iter().any(|ep| is_restorable(snap, group, ep))
        {
            break;
        }
    }
    wanted
}

/// A draining member of this level that would serve again if kept (healthy, breaker not open).
fn is_restorable<B: Balancer>(snap: &Snapshot<B>, group: &Group, ep: &Endpoint) -> bool {
    snap.get(&group.member_name(ep.addr))
        .is_some_and(|m| m.is_draining() && m.is_eligible())
}
