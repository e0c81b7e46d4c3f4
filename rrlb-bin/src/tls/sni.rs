//! Choosing the certificate by SNI: one immutable table behind one `ArcSwap`, so a rotation is one pointer
//! store and a handshake reads one pointer (the same shape as rrlb-core's backend snapshot, ADR 0001).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::info::CertInfo;
use super::load::{Loaded, Pair};

/// The pairs of one load, indexed by name, with what is shown of them.
pub(super) struct Table {
    default: Arc<CertifiedKey>,
    /// `a.example.com` → its pair.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` → the pair of `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    infos: Vec<CertInfo>,
}

impl Table {
    /// Indexes the SNI pairs' DNS names (the first pair listed wins a name two list), then the default's, so
    /// a name the default also covers goes to the pair listed for it.
    pub(super) fn new(loaded: &Loaded) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for pair in loaded.sni.iter().chain(std::iter::once(&loaded.default)) {
            index(pair, &mut exact, &mut wildcard);
        }
        Self {
            default: Arc::clone(&loaded.default.key),
            exact,
            wildcard,
            infos: loaded.infos(),
        }
    }

    /// The pair for a client's SNI name: an exact DNS SAN, else a `*.` wildcard SAN covering its first
    /// label (`*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`), else the
    /// default. No SNI (or an IP address, which SNI cannot carry) gets the default.
    pub(super) fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }

    pub(super) fn infos(&self) -> &[CertInfo] {
        &self.infos
    }
}

fn index(
    pair: &Pair,
    exact: &mut HashMap<String, Arc<CertifiedKey>>,
    wildcard: &mut HashMap<String, Arc<CertifiedKey>>,
) {
    for name in &pair.dns_names {
        let name = name.strip_suffix('.').unwrap_or(name);
        let (map, key) = match name.strip_prefix("*.") {
            Some(parent) => (&mut *wildcard, parent),
            None => (&mut *exact, name),
        };
        map.entry(key.to_owned())
            .or_insert_with(|| Arc::clone(&pair.key));
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// rustls's certificate resolver over the current [`Table`].
#[derive(Debug)]
pub(super) struct Resolver {
    pub(super) table: ArcSwap<Table>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.table.load().pick(hello.server_name())))
    }
}
