//! Service discovery: groups of backends whose addresses are found and followed at run time.
//!
//! # The model
//! A *source* yields, for one group, the group's **whole** current address set, again and again: a DNS name
//! re-resolved every `refresh`, a Kubernetes watch, a file, anything (any
//! `Stream<Item = Result<Vec<Endpoint>, DiscoveryError>>`). [`Discovery::spawn`] turns each set into changes on
//! a [`BackendSet`] by diffing it with the group's members: a new address is added, a vanished one drains (no
//! new calls; calls in flight complete) and leaves once idle, one that comes back before then stops draining.
//! Full sets rather than add/remove events make a source trivial to write and make a lost event harmless:
//! the next set repairs everything.
//!
//! # Why a failure never empties a group
//! A failed lookup, an error from a control plane, a timeout or an empty answer says nothing about the
//! backends, only about the path to the answer; emptying the group would turn a DNS hiccup into an outage. So
//! the last good set stays, the error is logged and counted ([`DiscoveryStats::errors`]), and the source
//! retries ([`periodic`] backs off while failures last).
//!
//! # Names
//! A discovered backend is named `<group>/<ip>:<port>` (`echo/[::1]:8081` for IPv6): a `/` never appears in a
//! configured name, so the name says which group owns it, and a group's diff touches only its own members.
//!
//! # Priorities (DNS SRV)
//! [`Endpoint::priority`] follows RFC 2782: the lowest value is used; a higher one joins only while none of the
//! lower ones is eligible (healthy, breaker not open). The lower ones stay in the set meanwhile, so their
//! health checks see them come back, and the higher ones drain again then.
//!
//! ```
//! use futures_util::stream;
//! use rrlb_core::{BackendSet, RoundRobin, SetOptions};
//! use rrlb_tower::discovery::{self, Discovery, Endpoint, Group};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
//! let updates = stream::iter([
//!     Ok(vec![Endpoint::new("10.0.0.1:80".parse()?), Endpoint::new("10.0.0.2:80".parse()?)]),
//!     Err(discovery::DiscoveryError::Empty), // ignored: the last good set stays
//!     Ok(vec![Endpoint::new("10.0.0.2:80".parse()?)]),
//! ]);
//! let task = Discovery::spawn(set.clone(), Group::new("web", 1), updates);
//! task.finished().await;
//! let names: Vec<String> = set.load().members().iter().map(|m| m.name().to_owned()).collect();
//! assert_eq!(names, ["web/10.0.0.2:80"]);
//! assert_eq!(task.stats().errors(), 1);
//! # Ok(())
//! # }
//! ```

pub(crate) mod changes;
#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
mod sync;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::future::{Either, select};
use futures_util::{Stream, StreamExt};
use rrlb_core::{BackendSet, BackendSpec, Balancer};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use self::sync::{SyncReport, sync};
use crate::BoxError;

/// How often a group with several SRV priority levels re-checks which levels it uses (RFC 2782: a higher
/// level serves while no member of a lower one is eligible), between answers of its source.
pub const PRIORITY_RECHECK: Duration = Duration::from_secs(1);

/// Whether `endpoints` span more than one priority level.
fn several_priorities(endpoints: &[Endpoint]) -> bool {
    endpoints
        .first()
        .is_some_and(|first| endpoints.iter().any(|e| e.priority != first.priority))
}

/// One address a source found.
///
/// ```
/// use rrlb_tower::discovery::Endpoint;
///
/// let plain = Endpoint::new("10.0.0.1:8080".parse()?);
/// assert_eq!((plain.weight, plain.priority), (None, 0)); // the group's weight, no priority
/// // What a DNS SRV record `10 3 8080 b.example.` gives once resolved:
/// let srv = Endpoint { weight: Some(3), priority: 10, ..Endpoint::new("10.0.0.2:8080".parse()?) };
/// assert!(srv.priority > plain.priority);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its weight; `None` means the group's weight (a DNS SRV weight of 0 is `None`).
    pub weight: Option<u32>,
    /// Its priority (DNS SRV): lower is preferred. 0 for every source without priorities.
    pub priority: u16,
}

impl Endpoint {
    /// An endpoint with the group's weight and priority 0.
    pub const fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            weight: None,
            priority: 0,
        }
    }
}

/// Why a source has no new address set.
///
/// ```
/// use rrlb_tower::discovery::DiscoveryError;
///
/// let refused = DiscoveryError::lookup(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert!(refused.to_string().starts_with("lookup failed"));
/// assert!(std::error::Error::source(&refused).is_some());
/// assert!(DiscoveryError::Empty.is_empty());
/// assert!(DiscoveryError::Timeout.is_timeout());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The answer had no address (the last good set stays).
    Empty,
    /// The lookup or the watch did not answer in time.
    Timeout,
    /// The lookup or the watch failed.
    Lookup(BoxError),
}

impl DiscoveryError {
    /// A failed lookup.
    pub fn lookup(e: impl Into<BoxError>) -> Self {
        Self::Lookup(e.into())
    }

    /// Whether the answer was empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    /// Whether the lookup timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout)
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the answer has no address"),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Lookup(e) => write!(f, "lookup failed: {e}"),
        }
    }
}

impl std::error::Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Lookup(e) => Some(&**e),
            _ => None,
        }
    }
}

/// What a source yields: a group's whole address set, or why there is none this time.
///
/// ```
/// use rrlb_tower::discovery::{DiscoveryError, Endpoint, Update};
///
/// /// A source that reads addresses from lines of text (a file, say).
/// fn parse(text: &str) -> Update {
///     let endpoints = text
///         .lines()
///         .filter(|l| !l.trim().is_empty())
///         .map(|l| l.trim().parse().map(Endpoint::new).map_err(DiscoveryError::lookup))
///         .collect::<Result<Vec<_>, _>>()?;
///     Ok(endpoints)
/// }
/// assert_eq!(parse("10.0.0.1:80\n10.0.0.2:80\n").map(|e| e.len()).ok(), Some(2));
/// assert!(parse("not an address").is_err());
/// ```
pub type Update = Result<Vec<Endpoint>, DiscoveryError>;

type MakeSpec = dyn Fn(String, SocketAddr, u32) -> BackendSpec + Send + Sync;

/// A group of discovered backends: its name, the weight of its members, and how a member's spec is made.
///
/// ```
/// use rrlb_tower::discovery::{Group, group_of};
///
/// let group = Group::new("echo", 2);
/// let name = group.member_name("10.0.0.7:8081".parse()?);
/// assert_eq!(name, "echo/10.0.0.7:8081");
/// assert!(group.owns(&name));
/// assert_eq!(group_of(&name), Some("echo"));
/// assert_eq!(group.member_name("[::1]:8081".parse()?), "echo/[::1]:8081");
/// assert_eq!(group.weight(), 2);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone)]
pub struct Group {
    name: String,
    weight: u32,
    make: Arc<MakeSpec>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

impl Group {
    /// A group named `name` whose members have weight `weight` (unless their endpoint has its own) and the
    /// URL `http://<ip>:<port>`.
    pub fn new(name: impl Into<String>, weight: u32) -> Self {
        Self {
            name: name.into(),
            weight,
            make: Arc::new(|name, addr, weight| {
                BackendSpec::new(name, format!("http://{addr}")).with_weight(weight)
            }),
        }
    }

    /// The same group, its members made by `make(name, addr, weight)`.
    pub fn with_spec(
        mut self,
        make: impl Fn(String, SocketAddr, u32) -> BackendSpec + Send + Sync + 'static,
    ) -> Self {
        self.make = Arc::new(make);
        self
    }

    /// The same group, its members being `url` reached at their address ([`BackendUrl::at`]: same scheme,
    /// prefix and `host` header).
    ///
    /// [`BackendUrl::at`]: crate::http::BackendUrl::at
    #[cfg(feature = "http")]
    pub fn with_url(self, url: crate::http::BackendUrl) -> Self {
        self.with_spec(move |name, addr, weight| url.at(addr).into_spec(name).with_weight(weight))
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weight of members whose endpoint has none.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The name of the member at `addr`: `<group>/<ip>:<port>`.
    pub fn member_name(&self, addr: SocketAddr) -> String {
        format!("{}/{addr}", self.name)
    }

    /// Whether `backend` (a backend's name) is a member of this group.
    pub fn owns(&self, backend: &str) -> bool {
        group_of(backend) == Some(self.name.as_str())
    }

    fn spec(&self, ep: &Endpoint) -> BackendSpec {
        let weight = ep.weight.unwrap_or(self.weight).clamp(
            rrlb_core::backend::MIN_WEIGHT,
            rrlb_core::backend::MAX_WEIGHT,
        );
        (self.make)(self.member_name(ep.addr), ep.addr, weight)
    }
}

/// The group a discovered backend's name belongs to (`web` for `web/10.0.0.1:80`); `None` for a name without
/// a `/`, which no discovered backend has.
pub fn group_of(backend: &str) -> Option<&str> {
    backend.split_once('/').map(|(group, _)| group)
}

/// A group's counters, shared with whoever reports them (they survive a restarted [`Discovery`] when passed to
/// [`Discovery::spawn_with_stats`]).
///
/// ```
/// use rrlb_core::{BackendSet, RoundRobin, SetOptions};
/// use rrlb_tower::discovery::{Discovery, DiscoveryError, Group};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// let updates = futures_util::stream::iter([Err(DiscoveryError::Timeout), Err(DiscoveryError::Empty)]);
/// let task = Discovery::spawn(set, Group::new("web", 1), updates);
/// task.finished().await;
/// let stats = task.stats().clone(); // shared: a metrics exporter can keep a clone
/// assert_eq!((stats.updates(), stats.errors()), (0, 2));
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct DiscoveryStats(Arc<StatsInner>);

#[derive(Debug, Default)]
struct StatsInner {
    errors: AtomicU64,
    updates: AtomicU64,
}

impl DiscoveryStats {
    /// Failed lookups, errors, timeouts and empty answers so far.
    pub fn errors(&self) -> u64 {
        self.0.errors.load(Relaxed)
    }

    /// Address sets applied so far.
    pub fn updates(&self) -> u64 {
        self.0.updates.load(Relaxed)
    }
}

/// A running discovery task for one group; dropping it stops the task (the group's members stay as they are).
///
/// ```
/// use rrlb_core::{BackendSet, RoundRobin, SetOptions};
/// use rrlb_tower::discovery::{Discovery, Endpoint, Group, fixed};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// let source = fixed(vec![Endpoint::new("10.0.0.1:80".parse()?)]);
/// let task = Discovery::spawn(set.clone(), Group::new("web", 1), source);
/// task.finished().await; // a fixed source ends after its one set
/// assert_eq!(set.pick()?.backend().name(), "web/10.0.0.1:80");
/// assert_eq!(task.stats().updates(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Discovery {
    task: JoinHandle<()>,
    stats: DiscoveryStats,
    done: watch::Receiver<bool>,
    resync: Arc<Notify>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    /// Spawns a task that applies every address set of `source` to the `group`'s members in `set`.
    pub fn spawn<B, S>(set: BackendSet<B>, group: Group, source: S) -> Self
    where
        B: Balancer + 'static,
        S: Stream<Item = Update> + Send + 'static,
    {
        Self::spawn_with_stats(set, group, source, DiscoveryStats::default())
    }

    /// Like [`spawn`](Self::spawn), counting into `stats`.
    pub fn spawn_with_stats<B, S>(
        set: BackendSet<B>,
        group: Group,
        source: S,
        stats: DiscoveryStats,
    ) -> Self
    where
        B: Balancer + 'static,
        S: Stream<Item = Update> + Send + 'static,
    {
        let (done_tx, done) = watch::channel(false);
        let resync = Arc::new(Notify::new());
        let wanted = Arc::clone(&resync);
        let counters = stats.clone();
        let task = tokio::spawn(async move {
            let mut source = std::pin::pin!(source);
            // The last good set, applied again on `resync`.
            let mut last: Option<Vec<Endpoint>> = None;
            loop {
                // With several SRV priority levels, which levels are in use depends on the members'
                // eligibility, which changes between answers: it is checked again every PRIORITY_RECHECK.
                let levels = last.as_deref().is_some_and(several_priorities);
                let recheck = async move {
                    if levels {
                        tokio::time::sleep(PRIORITY_RECHECK).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                let notified = std::pin::pin!(wanted.notified());
                let recheck = std::pin::pin!(recheck);
                let wake = select(notified, recheck);
                let update = match select(std::pin::pin!(source.next()), wake).await {
                    Either::Left((Some(update), _)) => update,
                    Either::Left((None, _)) => break,
                    Either::Right((Either::Left(((), _)), _)) => match &last {
                        Some(endpoints) => Ok(endpoints.clone()),
                        None => continue,
                    },
                    Either::Right((Either::Right(((), _)), _)) => {
                        if let Some(endpoints) = &last {
                            sync(&set, &group, endpoints);
                        }
                        continue;
                    }
                };
                match update {
                    Ok(endpoints) if !endpoints.is_empty() => {
                        let report = sync(&set, &group, &endpoints);
                        counters.0.updates.fetch_add(1, Relaxed);
                        if report.refused > 0 {
                            counters.0.errors.fetch_add(1, Relaxed);
                        }
                        last = Some(endpoints);
                    }
                    Ok(_) => fail(&group, &counters, &DiscoveryError::Empty),
                    Err(e) => fail(&group, &counters, &e),
                }
            }
            let _ = done_tx.send(true);
        });
        Self {
            task,
            stats,
            done,
            resync,
        }
    }

    /// Applies the last good address set again, now: after the set was changed by someone else (a reload
    /// that replaced the backend list), so that a watch-based source, whose next answer may be far away,
    /// does not leave the group short meanwhile.
    pub fn resync(&self) {
        self.resync.notify_one();
    }

    /// The group's counters.
    pub fn stats(&self) -> &DiscoveryStats {
        &self.stats
    }

    /// Waits until the source has ended (a periodic source never does).
    pub async fn finished(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

fn fail(group: &Group, stats: &DiscoveryStats, e: &DiscoveryError) {
    stats.0.errors.fetch_add(1, Relaxed);
    tracing::warn!(group = group.name(), error = %e, "discovery failed; the group keeps its last good addresses");
}

/// A source that yields `endpoints` once: a fixed group, or a test's.
pub fn fixed(endpoints: Vec<Endpoint>) -> impl Stream<Item = Update> + Send + 'static {
    futures_util::stream::iter([Ok(endpoints)])
}

/// A source that calls `lookup` now and then every `refresh`, each call bounded by `timeout`. While lookups
/// fail (an error, a timeout or an empty answer) the wait doubles, up to 8 × `refresh`, so that a resolver that
/// is down is not hammered; the first success brings it back to `refresh`.
pub fn periodic<F, Fut>(
    refresh: Duration,
    timeout: Duration,
    lookup: F,
) -> impl Stream<Item = Update> + Send + 'static
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Update> + Send,
{
    let state = (lookup, 0u32, true);
    futures_util::stream::unfold(state, move |(mut lookup, failures, first)| async move {
        if !first {
            let factor = 1u32 << failures.min(3);
            tokio::time::sleep(refresh.saturating_mul(factor)).await;
        }
        let update = match tokio::time::timeout(timeout, lookup()).await {
            Ok(Ok(endpoints)) if endpoints.is_empty() => Err(DiscoveryError::Empty),
            Ok(update) => update,
            Err(_) => Err(DiscoveryError::Timeout),
        };
        let failures = if update.is_ok() { 0 } else { failures + 1 };
        Some((update, (lookup, failures, false)))
    })
}

#[cfg(test)]
mod tests;
