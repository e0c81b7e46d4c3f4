//! Changes to the member list: adding, removing, reweighting, draining and replacing backends, new options or
//! balancer, and the periodic [`refresh`](BackendSet::refresh). Each change is a new snapshot, published under
//! the writer lock.

use std::sync::Arc;
use std::time::Instant;

#[cfg(doc)]
use super::Snapshot;
use super::build::Writer;
use super::{BackendSet, BackendSpec, SetError, SetOptions};
use crate::backend::{Backend, MAX_WEIGHT, MIN_WEIGHT, Member};
use crate::balancer::Balancer;

/// The backends that an update added and removed.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// let diff = set.update([BackendSpec::new("b", "http://127.0.0.1:8082"), BackendSpec::new("c", "http://127.0.0.1:8083")])?;
/// assert_eq!(diff.added.iter().map(|b| b.name()).collect::<Vec<_>>(), ["c"]);
/// assert_eq!(diff.removed.iter().map(|b| b.name()).collect::<Vec<_>>(), ["a"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct Diff {
    /// Backends that are new in the set.
    pub added: Vec<Arc<Backend>>,
    /// Backends that left the set (calls in flight to them still complete and are recorded).
    pub removed: Vec<Arc<Backend>>,
}

fn check_weight(name: &str, weight: u32) -> Result<(), SetError> {
    if (MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
        Ok(())
    } else {
        Err(SetError::InvalidWeight {
            name: name.to_owned(),
            weight,
        })
    }
}

impl<B: Balancer> BackendSet<B> {
    fn edit<T>(
        &self,
        f: impl FnOnce(&Writer, &mut Vec<Member>) -> Result<T, SetError>,
    ) -> Result<T, SetError> {
        let w = self.inner.lock();
        let cur = self.inner.current.load_full();
        let mut members = cur.members.clone();
        let out = f(&w, &mut members)?;
        self.inner.publish(&w, Arc::clone(&cur.balancer), members);
        Ok(out)
    }

    fn new_backend(&self, w: &Writer, spec: &BackendSpec) -> Arc<Backend> {
        let b = Arc::new(
            Backend::new(
                spec.name.as_str(),
                spec.url.as_str(),
                w.options.start_healthy,
                w.options.breaker,
                w.options.health,
            )
            .with_ext(spec.ext.clone()),
        );
        b.stats().ewma().set_decay(w.options.ewma_decay);
        b.set_owner(Some(self.inner.owner()));
        b.breaker()
            .set_ejection_limit(Some(Arc::clone(&self.inner.ejections)));
        b
    }

    /// Adds a backend; its name and URL must be new to the set.
    pub fn add(&self, spec: BackendSpec) -> Result<Arc<Backend>, SetError> {
        check_weight(&spec.name, spec.weight)?;
        self.edit(|w, members| {
            if let Some(m) = members
                .iter()
                .find(|m| m.backend.name() == spec.name || m.backend.url() == spec.url)
            {
                return Err(SetError::Duplicate {
                    name: m.backend.name().to_owned(),
                });
            }
            let backend = self.new_backend(w, &spec);
            members.push(Member::new(Arc::clone(&backend), spec.weight));
            Ok(backend)
        })
    }

    /// Removes a backend. Once this returns, no pick answers it; calls already in flight complete.
    pub fn remove(&self, name: &str) -> Result<Arc<Backend>, SetError> {
        let backend = self.edit(|_, members| {
            let i = position(members, name)?;
            Ok(members.remove(i).backend)
        })?;
        backend.detach();
        Ok(backend)
    }

    /// Changes a backend's weight.
    pub fn set_weight(&self, name: &str, weight: u32) -> Result<(), SetError> {
        check_weight(name, weight)?;
        self.edit(|_, members| {
            let i = position(members, name)?;
            members[i].weight = weight;
            Ok(())
        })
    }

    /// Starts (or, with `draining = false`, stops) draining a backend: it gets no new calls. With
    /// `remove_when_idle`, it is removed by [`refresh`](Self::refresh) (or right away) once nothing is in flight.
    pub fn drain(
        &self,
        name: &str,
        draining: bool,
        remove_when_idle: bool,
    ) -> Result<(), SetError> {
        let idle_removed = self.edit(|_, members| {
            let i = position(members, name)?;
            members[i].draining = draining;
            members[i].remove_when_idle = draining && remove_when_idle;
            if members[i].remove_when_idle && members[i].backend.stats().in_flight() == 0 {
                let m = members.remove(i);
                return Ok(Some(m.backend));
            }
            Ok(None)
        })?;
        if let Some(b) = idle_removed {
            b.detach();
        }
        Ok(())
    }

    /// Replaces the whole backend list at once (a reload). Backends whose name and URL both survive keep their
    /// `Arc` and so their statistics, health and breaker; their weight is updated and any drain is lifted.
    pub fn update(&self, specs: impl IntoIterator<Item = BackendSpec>) -> Result<Diff, SetError> {
        self.update_draining(specs, |_| false)
    }

    /// [`update`](Self::update), with the backends that `draining` names draining in the new list from the
    /// moment it is published (no pick in between sees them un-drained).
    pub fn update_draining(
        &self,
        specs: impl IntoIterator<Item = BackendSpec>,
        draining: impl Fn(&str) -> bool,
    ) -> Result<Diff, SetError> {
        let specs: Vec<BackendSpec> = specs.into_iter().collect();
        for (i, s) in specs.iter().enumerate() {
            check_weight(&s.name, s.weight)?;
            if specs[..i]
                .iter()
                .any(|o| o.name == s.name || o.url == s.url)
            {
                return Err(SetError::Duplicate {
                    name: s.name.clone(),
                });
            }
        }
        let diff = self.edit(|w, members| {
            let mut diff = Diff::default();
            let mut next = Vec::with_capacity(specs.len());
            for spec in &specs {
                let kept = members
                    .iter()
                    .find(|m| m.backend.name() == spec.name && m.backend.url() == spec.url);
                let mut member = match kept {
                    Some(m) => Member {
                        weight: spec.weight,
                        draining: false,
                        remove_when_idle: false,
                        ..m.clone()
                    },
                    None => {
                        let b = self.new_backend(w, spec);
                        diff.added.push(Arc::clone(&b));
                        Member::new(b, spec.weight)
                    }
                };
                member.draining = draining(&spec.name);
                next.push(member);
            }
            diff.removed = members
                .iter()
                .filter(|m| !next.iter().any(|n| Arc::ptr_eq(&n.backend, &m.backend)))
                .map(|m| Arc::clone(&m.backend))
                .collect();
            *members = next;
            Ok(diff)
        })?;
        for b in &diff.removed {
            b.detach();
        }
        Ok(diff)
    }

    /// Replaces the balancer (an algorithm change on reload); the backends and their state are kept.
    pub fn set_balancer(&self, balancer: B) {
        let w = self.inner.lock();
        let cur = self.inner.current.load_full();
        self.inner
            .publish(&w, Arc::new(balancer), cur.members.clone());
    }

    /// Replaces the set-wide options and applies the new breaker and health parameters to every backend
    /// (their state is kept; breakers' sliding windows restart).
    pub fn set_options(&self, options: SetOptions) {
        let mut w = self.inner.lock();
        let cur = self.inner.current.load_full();
        for m in &cur.members {
            if m.backend.breaker().params() != options.breaker {
                m.backend.breaker().set_params(options.breaker);
            }
            m.backend.health().set_params(options.health);
            m.backend.stats().ewma().set_decay(options.ewma_decay);
        }
        self.inner
            .ejections
            .set_max_percent(options.breaker.max_ejection_percent);
        w.options = options;
        self.inner
            .publish(&w, Arc::clone(&cur.balancer), cur.members.clone());
    }

    /// Housekeeping, to be called periodically (rrlb-tower does, and at [`next_deadline`](Snapshot::next_deadline)):
    /// open breakers whose period ended go half-open, idle draining backends marked for removal leave, and
    /// finished slow-start ramps are cleared. Returns `true` if a new snapshot was published.
    pub fn refresh(&self, now: Instant) -> bool {
        let w = self.inner.lock();
        let cur = self.inner.current.load_full();
        let mut changed = cur.slow_start.as_ref().is_some_and(|s| now >= s.deadline);
        for m in &cur.members {
            changed |= m.backend.breaker().refresh(now).is_some();
        }
        let (gone, members): (Vec<Member>, Vec<Member>) = cur
            .members
            .iter()
            .cloned()
            .partition(|m| m.remove_when_idle && m.backend.stats().in_flight() == 0);
        if changed || !gone.is_empty() {
            self.inner.publish(&w, Arc::clone(&cur.balancer), members);
            drop(w);
            for m in gone {
                m.backend.detach();
            }
            return true;
        }
        false
    }
}

fn position(members: &[Member], name: &str) -> Result<usize, SetError> {
    members
        .iter()
        .position(|m| m.backend.name() == name)
        .ok_or_else(|| SetError::NotFound {
            name: name.to_owned(),
        })
}
