//! Runtime state: what the admin API changed (backends added, removed, re-weighted, drained), kept as an
//! [`Overlay`] on the base set that the configuration file and discovery define, in a [`Store`] that `[state]`
//! chooses (memory, or a file that survives restarts). A reload re-applies the overlay to the new base; the
//! request path never reads the store (the backend set is what it reads, as before).
//!
//! - [`overlay`]: the rules (pure): how a change is recorded, how a base and an overlay make the effective set.
//! - [`store`]: where the overlay is kept, and how a file is written so that a crash cannot tear it.
//! - [`State`]: the overlay in force and its store; a change is acknowledged once the store holds it.

#[cfg(feature = "etcd")]
pub(crate) mod etcd;
pub(crate) mod overlay;
pub(crate) mod store;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

pub(crate) use self::overlay::{Overlay, Resolved};
pub use self::store::StateError;
pub(crate) use self::store::Store;
use crate::config::{StateConfig, StoreKind};

/// What the state tells the configuration's owner (`crate::apply`), which republishes the backend set and
/// counts into the metrics (the state sits below both).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "etcd"), allow(dead_code))] // only a fleet's store sends notes
pub(crate) enum Note {
    /// A change made elsewhere (another replica, or by hand in the store) is in force: publish the set anew.
    Applied(u64),
    /// A stored value that is not a valid change was skipped (its key, and why).
    Invalid(String, String),
    /// The live replicas now.
    Members(usize),
    /// The store cannot be reached; the last applied state keeps serving.
    Unavailable,
}

/// What the state's owner and a store's background task share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The overlay in force.
    pub(crate) current: ArcSwap<Overlay>,
    /// This replica, once its listeners are bound.
    pub(crate) me: OnceLock<Member>,
    /// Whether the state was read from the store at least once (a local store: from the start).
    pub(crate) synced: AtomicBool,
    /// The revision in force, for waiters.
    pub(crate) applied: watch::Sender<u64>,
    /// To the state's owner.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) notes: mpsc::UnboundedSender<Note>,
}

impl Shared {
    /// Puts `overlay` in force (its revision to the waiters).
    pub(crate) fn put(&self, overlay: Overlay) {
        let revision = overlay.revision;
        self.current.store(Arc::new(overlay));
        self.applied.send_replace(revision);
    }

    /// Tells the owner `note` (nothing when it is gone).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn note(&self, note: Note) {
        let _ = self.notes.send(note);
    }
}

/// Where the overlay lives: this process (memory, file) or the fleet's etcd.
#[derive(Debug)]
enum Kind {
    Local(Store),
    #[cfg(feature = "etcd")]
    Etcd(Arc<etcd::Etcd>),
}

/// The overlay in force and the store that keeps it. Changes are serialised by the caller (the configuration's
/// apply lock), so that a reload and an admin change never interleave.
#[derive(Debug)]
pub(crate) struct State {
    kind: Kind,
    shared: Arc<Shared>,
}

/// A replica, as `GET /admin/fleet` lists it (and as the fleet's store keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Member {
    /// `<hostname>-<admin port>`: unique among the replicas (a pod's hostname is its name; two processes on one
    /// host cannot share a port).
    pub(crate) id: String,
    /// rrlb's version.
    pub(crate) version: String,
    /// The proxy listener's address.
    pub(crate) listen: SocketAddr,
    /// The admin listener's address.
    pub(crate) admin_listen: SocketAddr,
}

/// A replica and what it has applied, as `GET /admin/fleet` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberStatus {
    /// The replica.
    #[serde(flatten)]
    pub(crate) member: Member,
    /// The revision of the runtime state it has in force.
    pub(crate) applied_revision: u64,
    /// When it last said so (RFC 3339).
    pub(crate) last_seen: String,
}

impl Member {
    /// This process, serving on `listen` and `admin_listen`.
    pub(crate) fn this_process(listen: SocketAddr, admin_listen: SocketAddr) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "rrlb".to_owned());
        Self {
            id: format!("{host}-{}", admin_listen.port()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            listen,
            admin_listen,
        }
    }

    /// This replica's status now, at `revision`.
    pub(crate) fn status(&self, revision: u64) -> MemberStatus {
        MemberStatus {
            member: self.clone(),
            applied_revision: revision,
            last_seen: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        }
    }
}

impl State {
    /// Opens `[state]`'s store: a local one is read now; the fleet's is read by [`start`](Self::start)'s task,
    /// and until then the state is not synced (`/readyz` says not ready). The notes go to `notes`.
    pub(crate) fn open(
        c: &StateConfig,
        notes: mpsc::UnboundedSender<Note>,
    ) -> Result<Self, StateError> {
        let (kind, overlay, synced) = match c.store {
            StoreKind::Memory | StoreKind::File => {
                let (store, overlay) = Store::open(c)?;
                (Kind::Local(store), overlay, true)
            }
            #[cfg(feature = "etcd")]
            StoreKind::Etcd => (
                Kind::Etcd(Arc::new(etcd::Etcd::new(c.etcd.clone()))),
                Overlay::default(),
                false,
            ),
            #[cfg(not(feature = "etcd"))]
            StoreKind::Etcd => return Err(StateError::NoEtcd),
        };
        let (applied, _) = watch::channel(overlay.revision);
        Ok(Self {
            kind,
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(overlay),
                me: OnceLock::new(),
                synced: AtomicBool::new(synced),
                applied,
                notes,
            }),
        })
    }

    /// Says which replica this is, once its listeners are bound, and starts following the fleet's store
    /// (sync, watch, membership) when there is one. Must be called inside a tokio runtime.
    pub(crate) fn start(&self, me: Member) -> Option<tokio::task::JoinHandle<()>> {
        let _ = self.shared.me.set(me);
        match &self.kind {
            Kind::Local(_) => None,
            #[cfg(feature = "etcd")]
            Kind::Etcd(etcd) => Some(tokio::spawn(etcd::follow(
                Arc::clone(etcd),
                Arc::clone(&self.shared),
            ))),
        }
    }

    /// This replica, once started.
    pub(crate) fn me(&self) -> Option<&Member> {
        self.shared.me.get()
    }

    /// Whether the state was read from its store at least once.
    pub(crate) fn is_synced(&self) -> bool {
        self.shared.synced.load(Ordering::Acquire)
    }

    /// Whether the state is shared by a fleet (changes are applied through the store's watch).
    pub(crate) fn is_shared(&self) -> bool {
        !matches!(self.kind, Kind::Local(_))
    }

    /// The overlay in force.
    pub(crate) fn overlay(&self) -> Arc<Overlay> {
        self.shared.current.load_full()
    }

    /// The revision in force (the admin answers' `etag`).
    pub(crate) fn revision(&self) -> u64 {
        self.shared.current.load().revision
    }

    /// Where the overlay is kept, as `/admin/runtime` says it.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Local(store) => store.describe(),
            #[cfg(feature = "etcd")]
            Kind::Etcd(etcd) => etcd.describe(),
        }
    }

    /// The replicas sharing the state and what each applied (a local store: this process).
    pub(crate) async fn members(&self) -> Result<Vec<MemberStatus>, StateError> {
        match &self.kind {
            Kind::Local(_) => Ok(self
                .me()
                .map(|m| m.status(self.revision()))
                .into_iter()
                .collect()),
            #[cfg(feature = "etcd")]
            Kind::Etcd(etcd) => etcd.members().await,
        }
    }

    /// Keeps `next` durably, then puts it in force; only if the state is at a revision `expect` accepts (a fleet's store compares in its transaction: another replica may have
    /// changed it). On error nothing changed.
    pub(crate) async fn save(
        &self,
        next: Overlay,
        expect: &IfMatch,
    ) -> Result<Arc<Overlay>, StateError> {
        let current = self.revision();
        if let IfMatch::Revisions(r) = expect
            && r.is_empty()
        {
            return Err(StateError::Stale { current });
        }
        match &self.kind {
            Kind::Local(store) => {
                if !expect.holds(current) {
                    return Err(StateError::Stale { current });
                }
                let store = store.clone();
                let next = Arc::new(next);
                let saving = Arc::clone(&next);
                let describe = store.describe();
                match tokio::task::spawn_blocking(move || store.save(&saving)).await {
                    Ok(result) => result?,
                    Err(e) => {
                        return Err(StateError::Write {
                            path: std::path::PathBuf::from(describe),
                            source: std::io::Error::other(e),
                        });
                    }
                }
                self.shared.put((*next).clone());
                Ok(next)
            }
            #[cfg(feature = "etcd")]
            Kind::Etcd(etcd) => {
                let revision = etcd.save(&self.overlay(), &next, expect.newest()).await?;
                // Answered once this replica's watch has applied it: what the caller reads next is in force.
                let mut applied = self.shared.applied.subscribe();
                let waited =
                    tokio::time::timeout(etcd.timeout(), applied.wait_for(|r| *r >= revision))
                        .await;
                if !matches!(waited, Ok(Ok(_))) {
                    return Err(StateError::Unavailable(format!(
                        "the change was committed at revision {revision} but this replica has not seen it \
                         back from etcd yet"
                    )));
                }
                Ok(self.overlay())
            }
        }
    }
}

/// An `if-match` precondition: any revision (`*`, or no header), or one of those it names. Tags that are not
/// a revision never match; weak tags compare like strong ones (a revision is exact either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfMatch {
    /// No precondition.
    Any,
    /// One of these revisions.
    Revisions(Vec<u64>),
}

impl IfMatch {
    /// The precondition of an `if-match` header (`None`: no header).
    pub(crate) fn parse(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::Any;
        };
        let tags: Vec<&str> = header.split(',').map(str::trim).collect();
        if tags.contains(&"*") {
            return Self::Any;
        }
        Self::Revisions(
            tags.iter()
                .filter_map(|t| t.trim_start_matches("W/").trim_matches('"').parse().ok())
                .collect(),
        )
    }

    /// Whether the state at `revision` meets it.
    pub(crate) fn holds(&self, revision: u64) -> bool {
        match self {
            Self::Any => true,
            Self::Revisions(r) => r.contains(&revision),
        }
    }

    /// The newest revision it names (a fleet's store compares against it in its transaction).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn newest(&self) -> Option<u64> {
        match self {
            Self::Any => None,
            Self::Revisions(r) => Some(r.iter().copied().max().unwrap_or(0)),
        }
    }
}

/// The `etag` header value of `revision`.
pub(crate) fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_holds_for_the_revision_a_list_or_a_star() {
        for header in ["\"7\"", "W/\"7\"", "\"3\", \"7\"", "*", " \"7\" "] {
            assert!(IfMatch::parse(Some(header)).holds(7), "{header}");
        }
        assert!(!IfMatch::parse(Some("\"6\"")).holds(7));
        assert!(!IfMatch::parse(Some("garbage")).holds(7));
        assert!(IfMatch::parse(None).holds(7));
        assert_eq!(IfMatch::parse(Some("\"3\", \"7\"")).newest(), Some(7));
        assert_eq!(IfMatch::parse(Some("*")).newest(), None);
        assert_eq!(etag(7), "\"7\"");
    }
}
