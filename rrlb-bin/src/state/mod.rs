//! Runtime state: what the admin API changed (backends added, removed, re-weighted, drained), kept as an
//! [`Overlay`] on the base set that the configuration file and discovery define, in a [`Store`] that `[state]`
//! chooses (memory, or a file that survives restarts). A reload re-applies the overlay to the new base; the
//! request path never reads the store (the backend set is what it reads, as before).
//!
//! - [`overlay`]: the rules (pure): how a change is recorded, how a base and an overlay make the effective set.
//! - [`store`]: where the overlay is kept, and how a file is written so that a crash cannot tear it.
//! - [`State`]: the overlay in force and its store; a change is acknowledged once the store holds it.

pub(crate) mod overlay;
pub(crate) mod store;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

pub(crate) use self::overlay::{Overlay, Resolved};
pub use self::store::StateError;
pub(crate) use self::store::Store;
use crate::config::StateConfig;

/// The overlay in force and the store that keeps it. Changes are serialised by the caller (the configuration's
/// apply lock), so that a reload and an admin change never interleave.
#[derive(Debug)]
pub(crate) struct State {
    store: Store,
    current: ArcSwap<Overlay>,
    me: OnceLock<Member>,
}

/// A replica, as `GET /admin/fleet` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// `<hostname>-<pid>`: unique among the replicas (a pod's hostname is its name).
    pub(crate) id: String,
    /// rrlb's version.
    pub(crate) version: &'static str,
    /// The proxy listener's address.
    pub(crate) listen: SocketAddr,
    /// The admin listener's address.
    pub(crate) admin_listen: SocketAddr,
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
            id: format!("{host}-{}", std::process::id()),
            version: env!("CARGO_PKG_VERSION"),
            listen,
            admin_listen,
        }
    }
}

impl State {
    /// Opens `[state]`'s store and reads the overlay it holds.
    pub(crate) fn open(c: &StateConfig) -> Result<Self, StateError> {
        let (store, overlay) = Store::open(c)?;
        Ok(Self {
            store,
            current: ArcSwap::from_pointee(overlay),
            me: OnceLock::new(),
        })
    }

    /// Says which replica this is, once its listeners are bound.
    pub(crate) fn introduce(&self, me: Member) {
        let _ = self.me.set(me);
    }

    /// This replica, once introduced.
    pub(crate) fn me(&self) -> Option<&Member> {
        self.me.get()
    }

    /// The overlay in force.
    pub(crate) fn overlay(&self) -> Arc<Overlay> {
        self.current.load_full()
    }

    /// The revision in force (the admin answers' `etag`).
    pub(crate) fn revision(&self) -> u64 {
        self.current.load().revision
    }

    /// Where the overlay is kept, as `/admin/runtime` says it.
    pub(crate) fn describe(&self) -> String {
        self.store.describe()
    }

    /// Keeps `next` durably, then puts it in force. On error nothing changed.
    pub(crate) async fn save(&self, next: Overlay) -> Result<Arc<Overlay>, StateError> {
        let store = self.store.clone();
        let next = Arc::new(next);
        let saving = Arc::clone(&next);
        match tokio::task::spawn_blocking(move || store.save(&saving)).await {
            Ok(result) => result?,
            Err(e) => {
                return Err(StateError::Write {
                    path: std::path::PathBuf::from(self.store.describe()),
                    source: std::io::Error::other(e),
                });
            }
        }
        self.current.store(Arc::clone(&next));
        Ok(next)
    }
}

/// An `if-match` precondition against the revision in force: `None` when it holds (or there is none), else
/// the revision it named. `*` matches any revision; a list matches if any entry does; weak tags compare like
/// strong ones (a revision is exact either way).
pub(crate) fn precondition_failed(if_match: Option<&str>, revision: u64) -> Option<String> {
    let header = if_match?.trim();
    let current = revision.to_string();
    let held = header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == current);
    (!held).then(|| header.to_owned())
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
            assert_eq!(precondition_failed(Some(header), 7), None, "{header}");
        }
        assert_eq!(
            precondition_failed(Some("\"6\""), 7).as_deref(),
            Some("\"6\"")
        );
        assert_eq!(
            precondition_failed(Some("garbage"), 7).as_deref(),
            Some("garbage")
        );
        assert_eq!(precondition_failed(None, 7), None);
        assert_eq!(etag(7), "\"7\"");
    }
}
