//! The backend set: the whole routable state in one immutable [`Snapshot`] behind one [`ArcSwap`].
//!
//! # Why one snapshot
//! Backends, weights, drain flags, who is eligible, the half-open backends awaiting probes and the balancer's
//! precomputed plan all change together, so they are published together: readers `load()` one pointer and see
//! a consistent world; writers (reconfiguration, admin calls, health flips, breaker transitions) build a new
//! snapshot under a writer mutex and `store()` it. Readers never wait for writers.
//!
//! # Why rebuild instead of skipping
//! When a backend becomes ineligible the eligible view is rebuilt without it. Skipping ineligible backends at
//! pick time would hand the skipped backend's turns to its neighbour, which would then take double traffic;
//! rebuilding keeps round robin exactly fair (and weighted round robin exactly proportional) among the rest.
//!
//! # Half-open probes
//! A backend whose breaker is half-open is not in the eligible view. It is listed in the snapshot's probe list,
//! and a pick first offers the call to it as a probe, up to the breaker's `half_open_max_calls`; the other
//! backends' shares are untouched. When the list is empty (the normal case) this costs one length check.
//!
//! # Slow start
//! With [`SetOptions::slow_start`] set, a backend that becomes eligible while others already were (added,
//! healthy again, its breaker closed, undrained) gets a share that ramps linearly from 10 % to 100 % of what the
//! balancer gives it over the window (Envoy's `slow_start_config`, HAProxy's `slowstart`). A pick that lands on
//! a ramping backend is admitted with that probability, otherwise the balancer picks again: for the random and
//! two-choice algorithms the result is their own distribution with the ramping backend's share scaled down,
//! for the round robins the refused turn passes to the next in the rotation, which gives the same shares. When
//! no backend ramps (the normal case) this costs one branch; while one does, a clock read and a random draw.
//! [`Snapshot::next_deadline`] includes the end of each ramp, so [`BackendSet::refresh`] clears it on time.

mod build;
mod call;
mod error;
mod options;
mod picker;
mod slow_start;
mod snapshot;
mod update;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::cache::Cache;
use arc_swap::{ArcSwap, Guard};

use self::build::{Context, Inner, Writer, build};
pub use self::call::{Call, Outcome};
pub use self::error::{NoEligibleBackend, SetError};
pub use self::options::{BackendSpec, SetOptions};
use self::picker::Current;
pub use self::picker::Picker;
use self::slow_start::Clock;
pub use self::snapshot::Snapshot;
pub use self::update::Diff;
use crate::backend::Member;
use crate::balancer::Balancer;
use crate::balancer::rng::SharedRng;
#[cfg(doc)]
use crate::breaker::BreakerParams;
use crate::breaker::EjectionLimit;

/// A set of backends and the balancer that picks among them. Cheap to clone (all clones share the set).
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// set.add(BackendSpec::new("a", "http://127.0.0.1:8081"))?;
/// set.add(BackendSpec::new("b", "http://127.0.0.1:8082"))?;
/// let call = set.pick()?;
/// assert_eq!(call.backend().name(), "a");
/// call.success();
/// assert_eq!(set.pick()?.backend().name(), "b");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BackendSet<B: Balancer> {
    inner: Arc<Inner<B>>,
}

impl<B: Balancer> Clone for BackendSet<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: Balancer> std::fmt::Debug for BackendSet<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snap = self.inner.current.load();
        f.debug_struct("BackendSet")
            .field("version", &snap.version)
            .field("members", &snap.members.len())
            .field("eligible", &snap.eligible.len())
            .finish()
    }
}

impl<B: Balancer> BackendSet<B> {
    /// An empty set.
    pub fn new(balancer: B, options: SetOptions) -> Self {
        Self::with_clock(balancer, options, Instant::now)
    }

    /// An empty set that reads the time from `clock` (slow start's ramps; `Instant::now` for [`new`](Self::new)),
    /// so that a simulation or a test can run it in virtual time.
    pub fn with_clock(
        balancer: B,
        options: SetOptions,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> Self {
        let clock: Clock = Arc::new(clock);
        let rng = Arc::new(SharedRng::with_seed(0x5105_7A27_5EED_0001));
        let context = Context {
            now: clock(),
            clock: &clock,
            rng: &rng,
        };
        let first = build(Arc::new(balancer), Vec::new(), options, 0, &context);
        let inner = Arc::new_cyclic(|me| Inner {
            current: ArcSwap::from_pointee(first),
            writer: Mutex::new(Writer { options }),
            clock,
            ramp_rng: rng,
            ejections: Arc::new(EjectionLimit::new(options.breaker.max_ejection_percent)),
            me: me.clone(),
        });
        Self { inner }
    }

    /// The set's [ejection limit](BreakerParams::max_ejection_percent): how many breakers eject now, and how many
    /// ejections it refused.
    pub fn ejections(&self) -> &EjectionLimit {
        &self.inner.ejections
    }

    /// A set holding these backends.
    pub fn with_backends(
        balancer: B,
        options: SetOptions,
        specs: impl IntoIterator<Item = BackendSpec>,
    ) -> Result<Self, SetError> {
        let set = Self::new(balancer, options);
        set.update(specs)?;
        Ok(set)
    }

    /// The current snapshot, for a short look (cheap; does not keep old snapshots alive for long).
    #[inline]
    pub fn load(&self) -> Guard<Arc<Snapshot<B>>> {
        self.inner.current.load()
    }

    /// The current snapshot, to keep.
    pub fn snapshot(&self) -> Arc<Snapshot<B>> {
        self.inner.current.load_full()
    }

    /// The set-wide options.
    pub fn options(&self) -> SetOptions {
        self.inner.lock().options
    }

    /// Picks a backend and starts a call to it: the returned [`Call`] counts the call in flight until it is
    /// given an outcome or dropped.
    #[inline]
    pub fn pick(&self) -> Result<Call, NoEligibleBackend> {
        self.inner.current.load().pick()
    }

    /// Like [`pick`](Self::pick), but never returns a backend named in `exclude` (used to retry elsewhere).
    ///
    /// The balancer is asked first; if it answers an excluded backend the eligible members are scanned from a
    /// position that rotates with that answer, so retries spread over the remaining backends.
    pub fn pick_excluding(&self, exclude: &[&str]) -> Result<Call, NoEligibleBackend> {
        self.inner.current.load().pick_excluding(exclude)
    }

    /// A [`Picker`]: picks through a snapshot cached by its owner, for one task or one service clone.
    pub fn picker(&self) -> Picker<B> {
        Picker {
            cache: Cache::new(Current(Arc::clone(&self.inner))),
        }
    }

    /// Calls `f` with the picked member without starting a call: the bare cost of choosing.
    #[inline]
    pub fn select<R>(&self, f: impl FnOnce(&Member) -> R) -> Option<R> {
        self.inner.current.load().select().map(f)
    }

    /// The member with this name.
    pub fn get(&self, name: &str) -> Option<Member> {
        self.inner.current.load().get(name).cloned()
    }
}

#[cfg(test)]
mod tests;
