//! The immutable view a pick reads: [`Snapshot`], its accessors and the pick itself (one atomic load of the
//! snapshot by the caller, then the balancer; no allocation).

use std::sync::Arc;
use std::time::Instant;

#[cfg(doc)]
use super::BackendSet;
use super::slow_start::SlowStart;
use super::{Call, NoEligibleBackend};
use crate::backend::{Backend, Member};
use crate::balancer::Balancer;

/// One immutable view of the whole routable state.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081"), BackendSpec::new("b", "http://127.0.0.1:8082")],
/// )?;
/// let before = set.snapshot();
/// set.drain("a", true, false)?;
/// let after = set.load();
/// // A snapshot never changes: the old one still sees both backends eligible.
/// assert_eq!(before.eligible().len(), 2);
/// assert_eq!(after.eligible().len(), 1);
/// assert!(after.version() > before.version());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Snapshot<B: Balancer> {
    pub(super) balancer: Arc<B>,
    pub(super) plan: B::Plan,
    pub(super) members: Vec<Member>,
    pub(super) eligible: Vec<Member>,
    pub(super) probing: Vec<Arc<Backend>>,
    pub(super) panic: bool,
    pub(super) version: u64,
    pub(super) next_deadline: Option<Instant>,
    pub(super) slow_start: Option<SlowStart>,
}

impl<B: Balancer> Snapshot<B> {
    /// Every member, eligible or not, in configuration order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The members that get ordinary calls, in configuration order.
    pub fn eligible(&self) -> &[Member] {
        &self.eligible
    }

    /// Half-open backends that accept probe calls.
    pub fn probing(&self) -> &[Arc<Backend>] {
        &self.probing
    }

    /// Whether the panic threshold was crossed: every non-draining backend is in the eligible view.
    pub fn is_panic(&self) -> bool {
        self.panic
    }

    /// Increases by one with every published snapshot.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The balancer.
    pub fn balancer(&self) -> &B {
        &self.balancer
    }

    /// The balancer's plan for this snapshot.
    pub fn plan(&self) -> &B::Plan {
        &self.plan
    }

    /// The earliest end of an open breaker's period or of a slow-start ramp: when something may change.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (&self.slow_start, self.next_deadline) {
            (Some(s), Some(d)) => Some(d.min(s.deadline)),
            (Some(s), None) => Some(s.deadline),
            (None, d) => d,
        }
    }

    /// Whether some eligible backend is ramping up under slow start.
    pub fn is_ramping(&self) -> bool {
        self.slow_start.is_some()
    }

    /// The member with this name.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.backend.name() == name)
    }

    /// Picks a backend and starts a call to it: half-open probes first, then the balancer over the eligible
    /// view. See [`BackendSet::pick`].
    #[inline]
    pub fn pick(&self) -> Result<Call, NoEligibleBackend> {
        if !self.probing.is_empty()
            && let Some(b) = self
                .probing
                .iter()
                .find(|b| b.breaker().try_acquire_probe())
        {
            return Ok(Call::start(Arc::clone(b), true));
        }
        match self.select() {
            Some(m) => Ok(Call::start(Arc::clone(&m.backend), false)),
            None => Err(self.none_eligible()),
        }
    }

    /// Like [`pick`](Self::pick), but never a backend named in `exclude`. See [`BackendSet::pick_excluding`].
    pub fn pick_excluding(&self, exclude: &[&str]) -> Result<Call, NoEligibleBackend> {
        let allowed = |b: &Backend| !exclude.contains(&b.name());
        if let Some(b) = self
            .probing
            .iter()
            .find(|b| allowed(b) && b.breaker().try_acquire_probe())
        {
            return Ok(Call::start(Arc::clone(b), true));
        }
        let start = self
            .balancer
            .pick(&self.plan, &self.eligible)
            .ok_or_else(|| self.none_eligible())?;
        let n = self.eligible.len();
        (0..n)
            .map(|k| (start + k) % n)
            .filter_map(|i| self.eligible.get(i))
            .find(|m| allowed(&m.backend))
            .map(|m| Call::start(Arc::clone(&m.backend), false))
            .ok_or_else(|| self.none_eligible())
    }

    fn none_eligible(&self) -> NoEligibleBackend {
        NoEligibleBackend::new(self.members.len(), self.next_deadline)
    }

    /// Picks an eligible member with the balancer, without starting a call.
    #[inline]
    pub fn select(&self) -> Option<&Member> {
        let i = self.balancer.pick(&self.plan, &self.eligible)?;
        match &self.slow_start {
            None => self.eligible.get(i),
            Some(ramp) => self.admit(ramp, i),
        }
    }
}
