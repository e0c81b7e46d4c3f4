//! Building and publishing snapshots: the shared state behind a set ([`Inner`]: the current snapshot and the
//! writer lock), and [`build`], which turns a member list into a [`Snapshot`]: the eligible view, the half-open
//! backends to probe, the panic threshold, the balancer's plan and the next deadline.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::SetOptions;
use super::slow_start::{Clock, SlowStart, ramp};
use super::snapshot::Snapshot;
use crate::backend::{Backend, Member, Owner};
use crate::balancer::Balancer;
use crate::balancer::rng::SharedRng;
use crate::breaker::{CircuitState, EjectionLimit};

/// What every clone of a [`BackendSet`](super::BackendSet) shares: the published snapshot and the writer side.
pub(super) struct Inner<B: Balancer> {
    pub(super) current: ArcSwap<Snapshot<B>>,
    pub(super) writer: Mutex<Writer>,
    pub(super) clock: Clock,
    pub(super) ramp_rng: Arc<SharedRng>,
    pub(super) ejections: Arc<EjectionLimit>,
    /// The `Weak<dyn Owner>` handed to backends; set once at construction.
    pub(super) me: Weak<Inner<B>>,
}

/// The state held under the writer lock.
pub(super) struct Writer {
    pub(super) options: SetOptions,
}

impl<B: Balancer> Owner for Inner<B> {
    fn eligibility_changed(&self) {
        let w = self.lock();
        let cur = self.current.load_full();
        self.publish(&w, Arc::clone(&cur.balancer), cur.members.clone());
    }
}

impl<B: Balancer> Inner<B> {
    pub(super) fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn owner(&self) -> Weak<dyn Owner> {
        self.me.clone()
    }

    /// Builds and stores a snapshot from these members; the caller holds the writer lock.
    pub(super) fn publish(&self, w: &Writer, balancer: Arc<B>, members: Vec<Member>) {
        let version = self.current.load().version + 1;
        self.ejections.set_members(members.len());
        let context = Context {
            now: (self.clock)(),
            clock: &self.clock,
            rng: &self.ramp_rng,
        };
        self.current.store(Arc::new(build(
            balancer, members, w.options, version, &context,
        )));
    }
}

/// What a snapshot build reads besides the members.
pub(super) struct Context<'a> {
    pub(super) now: Instant,
    pub(super) clock: &'a Clock,
    pub(super) rng: &'a Arc<SharedRng>,
}

/// Builds the snapshot for these members: ramps, eligible view, probes, panic threshold, plan, next deadline.
pub(super) fn build<B: Balancer>(
    balancer: Arc<B>,
    mut members: Vec<Member>,
    options: SetOptions,
    version: u64,
    context: &Context<'_>,
) -> Snapshot<B> {
    let ramp_deadline = ramp(&mut members, options.slow_start, context.now);
    let mut eligible: Vec<Member> = members
        .iter()
        .filter(|m| !m.draining && m.backend.is_eligible())
        .cloned()
        .collect();
    let probing: Vec<Arc<Backend>> = members
        .iter()
        .filter(|m| {
            !m.draining && m.backend.is_healthy() && m.backend.circuit() == CircuitState::HalfOpen
        })
        .map(|m| Arc::clone(&m.backend))
        .collect();
    let active = members.iter().filter(|m| !m.draining).count();
    let threshold = usize::from(options.panic_threshold.min(100));
    let panic = threshold > 0 && active > 0 && eligible.len() * 100 < threshold * active;
    if panic {
        eligible = members.iter().filter(|m| !m.draining).cloned().collect();
    }
    let next_deadline = members
        .iter()
        .filter_map(|m| m.backend.breaker().open_until())
        .min();
    let plan = balancer.plan(&eligible);
    let slow_start = ramp_deadline.filter(|_| !panic).map(|deadline| SlowStart {
        window: options.slow_start,
        deadline,
        clock: Arc::clone(context.clock),
        rng: Arc::clone(context.rng),
    });
    Snapshot {
        balancer,
        plan,
        members,
        eligible,
        probing,
        panic,
        version,
        next_deadline,
        slow_start,
    }
}
