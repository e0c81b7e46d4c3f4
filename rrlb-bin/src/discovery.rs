//! Discovered backend groups: one [`rrlb_tower::discovery::Discovery`] task per `[[backends]]` entry whose
//! `discovery` is not `static`, over the process's one backend set.
//!
//! # Reloads
//! A group whose entry and `[discovery]` settings are unchanged keeps its task; a changed one gets a new task
//! (its members stay until the new task's first answer diffs them). The members of a group that survives a
//! reload with the same URL are carried into the reloaded backend list, so their statistics, health and
//! breakers survive; a group that is gone takes its members with it (calls in flight complete).

use std::collections::HashMap;

use rrlb_core::{AnyBalancer, BackendSet, BackendSpec};
use rrlb_tower::discovery::{DiscoveryStats, group_of};
use rrlb_tower::http::BackendUrl;

use crate::config::{BackendConfig, Config, Discovery as Source, DiscoveryConfig};

/// What makes a running group's task still right for a new configuration.
type Key = (BackendConfig, DiscoveryConfig);

/// The running discovery tasks and every group's counters (kept across reloads, so the counters only grow).
#[derive(Default)]
pub(crate) struct Groups {
    running: HashMap<String, Running>,
    stats: HashMap<String, DiscoveryStats>,
    #[cfg(feature = "dns")]
    resolver: Option<(
        Option<std::net::SocketAddr>,
        rrlb_tower::discovery::dns::DnsResolver,
    )>,
}

struct Running {
    key: Key,
    _task: rrlb_tower::discovery::Discovery,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver for discovery: {0}")]
pub struct DiscoveryError(#[source] rrlb_tower::discovery::DiscoveryError);

/// The configuration's discovered entries.
fn discovered(c: &Config) -> impl Iterator<Item = &BackendConfig> {
    c.backends.iter().filter(|b| !b.discovery.is_static())
}

/// The group `backend` (a backend's name) belongs to in `c`, and its source, if it is a discovered backend.
pub(crate) fn group<'a>(c: &'a Config, backend: &str) -> Option<(&'a str, Source)> {
    let group = group_of(backend)?;
    discovered(c)
        .find(|b| b.name == group)
        .map(|b| (b.name.as_str(), b.discovery))
}

/// The current members of the groups that survive from `old` to `new` with the same URL and source, as specs
/// for [`BackendSet::update`] (which keeps them as they are). Draining members are left out: they leave now.
pub(crate) fn kept_members(
    set: &BackendSet<AnyBalancer>,
    old: &Config,
    new: &Config,
) -> Vec<BackendSpec> {
    let survives = |group: &str| {
        let find = |c: &Config| discovered(c).find(|b| b.name == group).cloned();
        matches!((find(old), find(new)), (Some(o), Some(n)) if o.same_url(&n) && o.discovery == n.discovery)
    };
    set.load()
        .members()
        .iter()
        .filter(|m| !m.is_draining() && group_of(m.name()).is_some_and(survives))
        .map(|m| {
            let spec = match BackendUrl::of(m.backend()) {
                Ok(url) => url.into_owned().into_spec(m.name()),
                Err(_) => BackendSpec::new(m.name(), m.url()),
            };
            spec.with_weight(m.weight())
        })
        .collect()
}

impl Groups {
    /// Makes ready what `c`'s groups need (the resolver), so that [`apply`](Self::apply) cannot fail: on
    /// error nothing changed.
    pub(crate) fn prepare(&mut self, c: &Config) -> Result<(), DiscoveryError> {
        if discovered(c).next().is_none() {
            return Ok(());
        }
        self.resolver(&c.discovery).map(drop)
    }

    /// Starts, keeps or stops tasks so that every discovered entry of `c` has one. Call
    /// [`prepare`](Self::prepare) first: a group whose task cannot start (no usable resolver) is an error.
    pub(crate) fn apply(
        &mut self,
        c: &Config,
        set: &BackendSet<AnyBalancer>,
    ) -> Result<(), DiscoveryError> {
        self.prepare(c)?;
        let mut next = HashMap::new();
        for b in discovered(c) {
            let key = (b.clone(), c.discovery.clone());
            match self.running.remove(&b.name) {
                Some(r) if r.key == key => {
                    next.insert(b.name.clone(), r);
                }
                _ => {
                    let stats = self.stats.entry(b.name.clone()).or_default().clone();
                    let task = self.spawn(b, &c.discovery, set, stats)?;
                    next.insert(b.name.clone(), Running { key, _task: task });
                }
            }
        }
        // Tasks of groups that are gone stop here, when the old map drops.
        self.running = next;
        Ok(())
    }

    /// Every configured group with its counters.
    pub(crate) fn stats(&self) -> Vec<(String, DiscoveryStats)> {
        let mut v: Vec<_> = self
            .running
            .keys()
            .filter_map(|g| self.stats.get(g).map(|s| (g.clone(), s.clone())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[cfg(feature = "dns")]
    fn spawn(
        &mut self,
        b: &BackendConfig,
        d: &DiscoveryConfig,
        set: &BackendSet<AnyBalancer>,
        stats: DiscoveryStats,
    ) -> Result<rrlb_tower::discovery::Discovery, DiscoveryError> {
        use rrlb_tower::discovery::{Discovery, Group};

        let resolver = self.resolver(d)?;
        let group = Group::new(b.name.clone(), b.weight).with_url(b.url.clone());
        // A bracketed IPv6 literal is looked up without its brackets.
        let host = b
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let set = set.clone();
        Ok(match b.discovery {
            Source::DnsSrv => {
                Discovery::spawn_with_stats(set, group, resolver.watch_srv(host, d.refresh), stats)
            }
            Source::Dns | Source::Static => Discovery::spawn_with_stats(
                set,
                group,
                resolver.watch_addrs(host, b.port(), d.refresh),
                stats,
            ),
        })
    }

    /// The resolver `d` names, made once and kept while `d.resolver` stays.
    #[cfg(feature = "dns")]
    fn resolver(
        &mut self,
        d: &DiscoveryConfig,
    ) -> Result<rrlb_tower::discovery::dns::DnsResolver, DiscoveryError> {
        use rrlb_tower::discovery::dns::DnsResolver;
        if let Some((at, r)) = &self.resolver
            && *at == d.resolver
        {
            return Ok(r.clone());
        }
        let r = match d.resolver {
            Some(addr) => DnsResolver::nameserver(addr),
            None => DnsResolver::system(),
        }
        .map_err(DiscoveryError)?;
        self.resolver = Some((d.resolver, r.clone()));
        Ok(r)
    }

    #[cfg(not(feature = "dns"))]
    fn resolver(&mut self, _: &DiscoveryConfig) -> Result<(), DiscoveryError> {
        // Configuration validation refuses `dns` entries in a build without the feature.
        Err(DiscoveryError(
            rrlb_tower::discovery::DiscoveryError::lookup(
                "this rrlb was built without the `dns` feature",
            ),
        ))
    }

    #[cfg(not(feature = "dns"))]
    fn spawn(
        &mut self,
        _: &BackendConfig,
        _: &DiscoveryConfig,
        _: &BackendSet<AnyBalancer>,
        _: DiscoveryStats,
    ) -> Result<rrlb_tower::discovery::Discovery, DiscoveryError> {
        // Configuration validation refuses `dns` entries in a build without the feature.
        Err(DiscoveryError(
            rrlb_tower::discovery::DiscoveryError::lookup(
                "this rrlb was built without the `dns` feature",
            ),
        ))
    }
}
