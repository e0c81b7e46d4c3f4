//! The fleet's store: the runtime state in etcd (v3 API, `etcd-client`), shared by every replica that names
//! the same `[state.etcd]` cluster and prefix.
//!
//! Layout under the prefix:
//! - `<prefix>/backends/<name>`: one key per backend the admin API changed, its value the [`Change`] as JSON
//!   (what the file store keeps per name).
//! - `<prefix>/backends/` (the empty name): a marker every change writes, so that a change that only deletes
//!   keys still moves the state's revision on.
//! - `<prefix>/members/<id>`: one key per live replica (its addresses, version and applied revision), attached
//!   to a lease that dies with the replica.
//!
//! The state's revision is the newest `mod_revision` among the `backends/` keys: the same on every replica that
//! has applied the same changes. A change is one transaction (its puts, its deletes and the marker); with
//! `if-match` it also compares that no key of the state changed after the revision named (`mod_revision` over
//! the whole range), so a change made against a stale view is refused even when this replica has not seen the
//! newer one yet.
//!
//! [`follow`] keeps each replica in step: connect, read the whole state, watch from the revision after it,
//! apply every event; on any error (etcd unreachable, the watch cancelled or compacted) it reconnects with
//! backoff and reads the whole state again. Meanwhile the last applied state keeps serving; changes through
//! the admin API are refused (`503`) while no connection is up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp,
    WatchOptions,
};

use super::overlay::{Change, Overlay};
use super::store::{StateError, check_change};
use super::{MemberStatus, Note, Shared};
use crate::config::EtcdConfig;

/// The members' lease: a replica that stops renewing it leaves the fleet after this long.
const LEASE_TTL_SECONDS: i64 = 10;
/// How often a replica renews its lease and republishes its status.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A connection to the fleet's etcd, once [`follow`] has one.
pub(crate) struct Etcd {
    config: EtcdConfig,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("store", &self.describe())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(e.to_string())
}

impl Etcd {
    /// Not connected yet: [`follow`] connects.
    pub(crate) fn new(config: EtcdConfig) -> Self {
        Self {
            config,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// `etcd <endpoints> <prefix>`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "etcd {} {}",
            self.config.endpoints.join(","),
            self.config.prefix
        )
    }

    /// The bound on one request to etcd (and on waiting to see a change come back).
    pub(crate) fn timeout(&self) -> Duration {
        self.config.dial_timeout.max(Duration::from_millis(500)) * 2
    }

    fn backends(&self) -> String {
        format!("{}/backends/", self.config.prefix)
    }

    fn members_prefix(&self) -> String {
        format!("{}/members/", self.config.prefix)
    }

    async fn connected(&self) -> Result<Client, StateError> {
        self.client
            .lock()
            .await
            .clone()
            .ok_or_else(|| unavailable("not connected to etcd (reconnecting)"))
    }

    /// Writes the difference between `current` and `next` (and the marker) in one transaction; with `newest`,
    /// only if no key of the state changed after that revision. The revision the change made.
    pub(crate) async fn save(
        &self,
        current: &Overlay,
        next: &Overlay,
        newest: Option<u64>,
    ) -> Result<u64, StateError> {
        let mut client = self.connected().await?;
        let prefix = self.backends();
        let mut ops = Vec::new();
        if next.backends.is_empty() {
            // Everything goes, also what this replica has not seen yet; the marker (the empty name) stays.
            ops.push(TxnOp::delete(
                format!("{prefix}\0"),
                Some(DeleteOptions::new().with_range(range_end(&prefix))),
            ));
        } else {
            for (name, change) in &next.backends {
                if current.backends.get(name) != Some(change) {
                    let value = serde_json::to_vec(change).map_err(unavailable)?;
                    ops.push(TxnOp::put(format!("{prefix}{name}"), value, None));
                }
            }
            for name in current.backends.keys() {
                if !next.backends.contains_key(name) {
                    ops.push(TxnOp::delete(format!("{prefix}{name}"), None));
                }
            }
        }
        ops.push(TxnOp::put(prefix.clone(), "", None));
        let mut txn = Txn::new();
        if let Some(newest) = newest {
            let bound = i64::try_from(newest).unwrap_or(i64::MAX).saturating_add(1);
            txn = txn.when([
                Compare::mod_revision(prefix.clone(), CompareOp::Less, bound).with_prefix(),
            ]);
        }
        let answer = tokio::time::timeout(self.timeout(), client.txn(txn.and_then(ops)))
            .await
            .map_err(|_| unavailable("etcd did not answer in time"))?
            .map_err(unavailable)?;
        if !answer.succeeded() {
            return Err(StateError::Stale {
                current: current.revision,
            });
        }
        let revision = answer.header().map(|h| h.revision()).unwrap_or(0);
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    /// The live replicas, as each last published itself.
    pub(crate) async fn members(&self) -> Result<Vec<MemberStatus>, StateError> {
        let mut client = self.connected().await?;
        let answer = tokio::time::timeout(
            self.timeout(),
            client.get(self.members_prefix(), Some(GetOptions::new().with_prefix())),
        )
        .await
        .map_err(|_| unavailable("etcd did not answer in time"))?
        .map_err(unavailable)?;
        Ok(answer
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect())
    }
}

/// The first key after every key that starts with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Applies one stored value (`None`: deleted) of `key` to `overlay`; an invalid value is skipped (and the
/// entry dropped), logged with its key and noted.
fn apply(overlay: &mut Overlay, prefix: &str, key: &[u8], value: Option<&[u8]>, shared: &Shared) {
    let Some(name) = std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix(prefix))
    else {
        return;
    };
    if name.is_empty() {
        return; // the marker
    }
    let Some(value) = value else {
        overlay.backends.remove(name);
        return;
    };
    let parsed = serde_json::from_slice::<Change>(value)
        .map_err(|e| e.to_string())
        .and_then(|c| check_change(name, &c).map(|()| c));
    match parsed {
        Ok(change) => {
            overlay.backends.insert(name.to_owned(), change);
        }
        Err(reason) => {
            let key = format!("{prefix}{name}");
            tracing::warn!(
                key,
                reason,
                "an etcd value that is not a valid runtime change is skipped"
            );
            overlay.backends.remove(name);
            shared.note(Note::Invalid(key, reason));
        }
    }
}

/// Follows the fleet's state for as long as the process runs: connect, read, watch, renew membership; on any
/// error reconnect with backoff and read the whole state again.
pub(crate) async fn follow(etcd: Arc<Etcd>, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut lost = false;
    loop {
        match session(&etcd, &shared, &mut backoff).await {
            Ok(()) => {}
            Err(e) => {
                *etcd.client.lock().await = None;
                shared.note(Note::Unavailable);
                if !lost {
                    tracing::warn!(error = %e, store = %etcd.describe(), "lost the fleet's state store; the last applied state keeps serving and admin changes are refused until it is back");
                    lost = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if shared.synced.load(Ordering::Acquire) && !lost {
            lost = false;
        }
    }
}

/// One connection: everything read, then every event applied, until an error.
async fn session(
    etcd: &Etcd,
    shared: &Shared,
    backoff: &mut Duration,
) -> Result<(), etcd_client::Error> {
    let c = &etcd.config;
    let mut options = ConnectOptions::new()
        .with_connect_timeout(c.dial_timeout)
        .with_timeout(etcd.timeout())
        .with_keep_alive(HEARTBEAT, etcd.timeout());
    if !c.username.is_empty() {
        options = options.with_user(c.username.clone(), c.password.clone());
    }
    if let Some(tls) = tls_options(c)? {
        options = options.with_tls(tls);
    }
    let mut client = Client::connect(&c.endpoints, Some(options)).await?;
    let prefix = etcd.backends();

    // The whole state, then everything after it.
    let answer = client
        .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    let mut overlay = Overlay::default();
    let mut revision = 0;
    for kv in answer.kvs() {
        revision = revision.max(kv.mod_revision());
        apply(&mut overlay, &prefix, kv.key(), Some(kv.value()), shared);
    }
    overlay.revision = u64::try_from(revision).unwrap_or(0);
    let read_at = answer.header().map(|h| h.revision()).unwrap_or(0);
    shared.put(overlay);
    shared.synced.store(true, Ordering::Release);
    shared.note(Note::Applied(u64::try_from(revision).unwrap_or(0)));
    *etcd.client.lock().await = Some(client.clone());
    *backoff = Duration::from_millis(100);
    tracing::info!(store = %etcd.describe(), revision, "runtime state read from etcd; following it");

    // Membership: a key under a lease that ends with this replica.
    let lease = client.lease_grant(LEASE_TTL_SECONDS, None).await?.id();
    let (mut keeper, mut renewals) = client.lease_keep_alive(lease).await?;
    publish_member(&mut client, etcd, shared, lease).await?;

    let mut events = client
        .watch(
            prefix.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(read_at + 1),
            ),
        )
        .await?;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            message = events.message() => {
                let Some(answer) = message? else {
                    return Err(etcd_client::Error::WatchError("the watch ended".into()));
                };
                if answer.canceled() || answer.compact_revision() > 0 {
                    // Compacted past what this replica has: read the whole state again.
                    return Err(etcd_client::Error::WatchError(format!(
                        "watch cancelled (compacted at {}): {}",
                        answer.compact_revision(),
                        answer.cancel_reason()
                    )));
                }
                if answer.events().is_empty() {
                    continue;
                }
                let mut next = (*shared.current.load_full()).clone();
                for event in answer.events() {
                    let Some(kv) = event.kv() else { continue };
                    let value = (event.event_type() == EventType::Put).then(|| kv.value());
                    apply(&mut next, &prefix, kv.key(), value, shared);
                    next.revision = next.revision.max(u64::try_from(kv.mod_revision()).unwrap_or(0));
                }
                let revision = next.revision;
                shared.put(next);
                shared.note(Note::Applied(revision));
                publish_member(&mut client, etcd, shared, lease).await?;
            }
            renewal = renewals.message() => {
                if renewal?.is_none_or(|r| r.ttl() <= 0) {
                    return Err(etcd_client::Error::LeaseKeepAliveError("the lease expired".into()));
                }
            }
            _ = heartbeat.tick() => {
                keeper.keep_alive().await?;
                publish_member(&mut client, etcd, shared, lease).await?;
                let live = client
                    .get(etcd.members_prefix(), Some(GetOptions::new().with_prefix().with_count_only()))
                    .await?
                    .count();
                shared.note(Note::Members(usize::try_from(live).unwrap_or(0)));
            }
        }
    }
}

/// The TLS settings of `https://` endpoints, read from their files at every connection (so a rotated
/// certificate is used at the next reconnect); `None` for `http://`.
fn tls_options(c: &EtcdConfig) -> Result<Option<etcd_client::TlsOptions>, etcd_client::Error> {
    if !c.endpoints.iter().any(|e| e.starts_with("https://")) {
        return Ok(None);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            etcd_client::Error::InvalidArgs(format!("cannot read {}: {e}", path.display()))
        })
    };
    let mut tls = etcd_client::TlsOptions::new();
    if let Some(ca) = &c.ca {
        tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&c.cert, &c.key) {
        tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}

/// Writes this replica's status (and applied revision) under its lease.
async fn publish_member(
    client: &mut Client,
    etcd: &Etcd,
    shared: &Shared,
    lease: i64,
) -> Result<(), etcd_client::Error> {
    let Some(me) = shared.me.get() else {
        return Ok(());
    };
    let status = me.status(shared.current.load().revision);
    let value =
        serde_json::to_vec(&status).map_err(|e| etcd_client::Error::InvalidArgs(e.to_string()))?;
    client
        .put(
            format!("{}{}", etcd.members_prefix(), me.id),
            value,
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_end_of_a_prefix_is_its_successor() {
        assert_eq!(
            range_end("/rrlb/x/backends/"),
            b"/rrlb/x/backends0".to_vec()
        );
        assert_eq!(range_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
