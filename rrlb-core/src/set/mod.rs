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

mod call;
mod error;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::cache::Cache;
use arc_swap::{ArcSwap, Guard};

pub use self::call::{Call, Outcome};
pub use self::error::{NoEligibleBackend, SetError};
use crate::backend::{Backend, Extension, MAX_WEIGHT, MIN_WEIGHT, Member, Owner};
use crate::balancer::Balancer;
use crate::balancer::rng::SharedRng;
use crate::breaker::{BreakerParams, CircuitState, EjectionLimit};
use crate::health::HealthParams;

/// What a backend is configured as: name, address, weight.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// /// Whatever the embedder wants to keep with a backend, e.g. a parsed address.
/// struct Port(u16);
///
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// set.add(BackendSpec::new("a", "http://127.0.0.1:8081").with_weight(2).with_ext(Port(8081)))?;
/// let call = set.pick()?;
/// assert_eq!(call.backend().ext::<Port>().map(|p| p.0), Some(8081));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// Unique name in the set.
    pub name: String,
    /// Address (unique in the set).
    pub url: String,
    /// Weight, 1..=10000.
    pub weight: u32,
    /// A value the backend carries for its user, e.g. its parsed address (see [`Extension`]).
    pub ext: Extension,
}

impl BackendSpec {
    /// A spec with weight 1.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            weight: 1,
            ext: Extension::default(),
        }
    }

    /// The same spec with another weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same spec, its backend carrying `value` (read back with [`Backend::ext`]).
    pub fn with_ext<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.ext = Extension::new(value);
        self
    }
}

/// Set-wide settings.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// // New backends wait for their first passing health checks before they get traffic.
/// let options = SetOptions { start_healthy: false, ..SetOptions::default() };
/// let set = BackendSet::with_backends(RoundRobin::new(), options, [BackendSpec::new("a", "http://127.0.0.1:8081")])?;
/// assert!(set.pick().is_err());
/// let a = set.get("a").ok_or("a is in the set")?;
/// a.backend().record_health_check(true);
/// a.backend().record_health_check(true);
/// assert!(set.pick().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetOptions {
    /// Circuit-breaker parameters for every backend.
    pub breaker: BreakerParams,
    /// Health rise/fall thresholds for every backend.
    pub health: HealthParams,
    /// Whether a newly added backend starts healthy (`true`, the default) or waits for its first passing checks.
    pub start_healthy: bool,
    /// Panic threshold in percent (0 = off, the default): when fewer than this share of the non-draining
    /// backends is eligible, balance over all of them, as Envoy does, rather than overload the few.
    pub panic_threshold: u8,
    /// The time constant of every backend's [peak-EWMA latency estimate](crate::backend::LatencyEwma), which
    /// [`PeakEwma`](crate::PeakEwma) balances on (default 10 s).
    pub ewma_decay: Duration,
    /// Slow start (zero = off, the default): how long a backend that becomes eligible takes to ramp from 10 % of
    /// its share to all of it. It applies to a backend that becomes eligible (added, healthy again, breaker
    /// closed, undrained) while others already are, with every algorithm; the initial backends do not ramp.
    pub slow_start: Duration,
}

impl Default for SetOptions {
    fn default() -> Self {
        Self {
            breaker: BreakerParams::default(),
            health: HealthParams::default(),
            start_healthy: true,
            panic_threshold: 0,
            ewma_decay: crate::backend::DEFAULT_DECAY,
            slow_start: Duration::ZERO,
        }
    }
}

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
    balancer: Arc<B>,
    plan: B::Plan,
    members: Vec<Member>,
    eligible: Vec<Member>,
    probing: Vec<Arc<Backend>>,
    panic: bool,
    version: u64,
    next_deadline: Option<Instant>,
    slow_start: Option<SlowStart>,
}

/// What a pick needs while some eligible backend ramps up.
struct SlowStart {
    window: Duration,
    /// The earliest end of a ramp.
    deadline: Instant,
    clock: Clock,
    rng: Arc<SharedRng>,
}

impl std::fmt::Debug for SlowStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowStart")
            .field("window", &self.window)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The set's source of time (writers and ramping picks only): `Instant::now`, or a virtual clock.
type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Draws before a pick gives up refusing ramping backends and takes the last one drawn.
const RAMP_DRAWS: usize = 16;
/// The share a backend starts its ramp with.
const RAMP_FLOOR: f64 = 0.1;

/// The share of its full traffic that a backend ramping since `elapsed` gets: 10 % rising linearly to 100 %.
fn ramp_share(elapsed: Duration, window: Duration) -> f64 {
    if elapsed >= window || window.is_zero() {
        return 1.0;
    }
    RAMP_FLOOR + (1.0 - RAMP_FLOOR) * (elapsed.as_secs_f64() / window.as_secs_f64())
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

    /// Slow start's admission: a pick of a ramping backend stands with the probability of its ramp share.
    fn admit(&self, ramp: &SlowStart, first: usize) -> Option<&Member> {
        let now = (ramp.clock)();
        let mut i = first;
        for _ in 0..RAMP_DRAWS {
            let m = self.eligible.get(i)?;
            let share = m.ramp_from.map_or(1.0, |from| {
                ramp_share(now.saturating_duration_since(from), ramp.window)
            });
            if share >= 1.0 || unit(ramp.rng.next_u64()) < share {
                return Some(m);
            }
            i = self.balancer.pick(&self.plan, &self.eligible)?;
        }
        self.eligible.get(i)
    }
}

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
    cache: Cache<Current<B>, Arc<Snapshot<B>>>,
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
struct Current<B: Balancer>(Arc<Inner<B>>);

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

/// A uniform draw in `[0, 1)` from 53 random bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

struct Inner<B: Balancer> {
    current: ArcSwap<Snapshot<B>>,
    writer: Mutex<Writer>,
    clock: Clock,
    ramp_rng: Arc<SharedRng>,
    ejections: Arc<EjectionLimit>,
    /// The `Weak<dyn Owner>` handed to backends; set once at construction.
    me: Weak<Inner<B>>,
}

struct Writer {
    options: SetOptions,
}

impl<B: Balancer> Owner for Inner<B> {
    fn eligibility_changed(&self) {
        let w = self.lock();
        let cur = self.current.load_full();
        self.publish(&w, Arc::clone(&cur.balancer), cur.members.clone());
    }
}

impl<B: Balancer> Inner<B> {
    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn owner(&self) -> Weak<dyn Owner> {
        self.me.clone()
    }

    /// Builds and stores a snapshot from these members; the caller holds the writer lock.
    fn publish(&self, w: &Writer, balancer: Arc<B>, members: Vec<Member>) {
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
struct Context<'a> {
    now: Instant,
    clock: &'a Clock,
    rng: &'a Arc<SharedRng>,
}

/// Starts, carries on or ends each member's slow-start ramp; returns the earliest end of a ramp in progress.
fn ramp(members: &mut [Member], window: Duration, now: Instant) -> Option<Instant> {
    // Slow start protects a backend from a share the others built up; with none eligible before there is none.
    let others_were_eligible = members.iter().any(|m| m.was_eligible);
    let mut deadline: Option<Instant> = None;
    for m in members.iter_mut() {
        let eligible = !m.draining && m.backend.is_eligible();
        if !eligible || window.is_zero() {
            m.ramp_from = None;
        } else if !m.was_eligible && others_were_eligible {
            m.ramp_from = Some(now);
        }
        if let Some(from) = m.ramp_from {
            let end = from + window;
            if now >= end {
                m.ramp_from = None;
            } else {
                deadline = Some(deadline.map_or(end, |d| d.min(end)));
            }
        }
        m.was_eligible = eligible;
    }
    deadline
}

fn build<B: Balancer>(
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
                let member = match kept {
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

#[cfg(test)]
mod tests;
