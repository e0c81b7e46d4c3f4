//! Discovered backend groups: one [`rrlb_tower::discovery::Discovery`] task per `[[backends]]` entry whose
//! `discovery` is not `static`, over the process's one backend set.
//!
//! # Reloads
//! A group whose entry and `[discovery]` settings are unchanged keeps its task; a changed one gets a new task
//! (its members stay until the new task's first answer diffs them). The members of a group that survives a
//! reload with the same URL are carried into the reloaded backend list, so their statistics, health and
//! breakers survive; a group that is gone takes its members with it (calls in flight complete).

use std::collections::HashMap;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rrlb_core::{AnyBalancer, BackendSet, BackendSpec};
use rrlb_tower::discovery::{Discovery, DiscoveryStats, Group, Update, group_of};
use rrlb_tower::http::BackendUrl;

use crate::config::{BackendConfig, Config, Discovery as Source, DiscoveryConfig};

/// What makes a running group's task still right for a new configuration.
type Key = (BackendConfig, DiscoveryConfig);

/// The running discovery tasks and every group's counters (kept across reloads, so the counters only grow).
#[derive(Default)]
pub(crate) struct Groups {
    running: HashMap<String, Running>,
    stats: HashMap<String, DiscoveryStats>,
    /// The DNS resolver, and the `discovery.resolver` it was made for.
    #[cfg(feature = "dns")]
    resolver: Option<(Option<std::net::SocketAddr>, dns::DnsResolver)>,
    /// The Kubernetes client, and the `discovery.kubernetes_api` it was made for.
    #[cfg(feature = "kubernetes")]
    kube: Option<(Option<String>, kubernetes::Client)>,
}

#[cfg(feature = "dns")]
use rrlb_tower::discovery::dns;
#[cfg(feature = "kubernetes")]
use rrlb_tower::discovery::kubernetes;

struct Running {
    key: Key,
    task: Discovery,
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
#[error("cannot set up {what} for discovery: {source}")]
pub struct DiscoveryStartError {
    what: &'static str,
    #[source]
    source: rrlb_tower::discovery::DiscoveryError,
}

impl DiscoveryStartError {
    #[cfg_attr(not(any(feature = "dns", feature = "kubernetes")), allow(dead_code))]
    fn new(what: &'static str, source: rrlb_tower::discovery::DiscoveryError) -> Self {
        Self { what, source }
    }

    /// A source this build does not have (configuration validation refuses such entries first).
    #[cfg_attr(all(feature = "dns", feature = "kubernetes"), allow(dead_code))]
    fn missing(feature: &'static str) -> Self {
        let e = rrlb_tower::discovery::DiscoveryError::lookup(format!(
            "this rrlb was built without the `{feature}` feature"
        ));
        Self::new("the source", e)
    }
}

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
    /// Makes ready what `c`'s groups need (a resolver, an API client), so that [`apply`](Self::apply) cannot
    /// fail: on error nothing changed.
    pub(crate) fn prepare(&mut self, c: &Config) -> Result<(), DiscoveryStartError> {
        for b in discovered(c) {
            match b.discovery {
                Source::Static => {}
                #[cfg(feature = "dns")]
                Source::Dns | Source::DnsSrv => drop(self.resolver(&c.discovery)?),
                #[cfg(feature = "kubernetes")]
                Source::Kubernetes => drop(self.kube(&c.discovery)?),
                #[allow(unreachable_patterns)]
                _ => return Err(DiscoveryStartError::missing(b.discovery.as_str())),
            }
        }
        Ok(())
    }

    /// Starts, keeps or stops tasks so that every discovered entry of `c` has one. Call
    /// [`prepare`](Self::prepare) first: a group whose task cannot start (no usable resolver) is an error.
    pub(crate) fn apply(
        &mut self,
        c: &Config,
        set: &BackendSet<AnyBalancer>,
    ) -> Result<(), DiscoveryStartError> {
        self.prepare(c)?;
        let mut next = HashMap::new();
        for b in discovered(c) {
            let key = (b.clone(), c.discovery.clone());
            match self.running.remove(&b.name) {
                Some(r) if r.key == key => {
                    // The reload's backend list may have missed a member the task added meanwhile.
                    r.task.resync();
                    next.insert(b.name.clone(), r);
                }
                _ => {
                    let stats = self.stats.entry(b.name.clone()).or_default().clone();
                    let group = Group::new(b.name.clone(), b.weight).with_url(b.url.clone());
                    let source = self.source(b, &c.discovery)?;
                    let task = Discovery::spawn_with_stats(set.clone(), group, source, stats);
                    next.insert(b.name.clone(), Running { key, task });
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

    /// The entry's source of address sets.
    #[cfg_attr(
        not(any(feature = "dns", feature = "kubernetes")),
        allow(unused_variables)
    )]
    fn source(
        &mut self,
        b: &BackendConfig,
        d: &DiscoveryConfig,
    ) -> Result<BoxStream<'static, Update>, DiscoveryStartError> {
        // A bracketed IPv6 literal is looked up without its brackets.
        let host = b.host().trim_start_matches('[').trim_end_matches(']');
        match b.discovery {
            // Never asked for: static entries have no task.
            Source::Static => Ok(futures_util::stream::empty().boxed()),
            #[cfg(feature = "dns")]
            Source::Dns => Ok(self
                .resolver(d)?
                .watch_addrs(host, b.port(), d.refresh)
                .boxed()),
            #[cfg(feature = "dns")]
            Source::DnsSrv => Ok(self.resolver(d)?.watch_srv(host, d.refresh).boxed()),
            #[cfg(feature = "kubernetes")]
            Source::Kubernetes => {
                let (service, namespace) = match host.split_once('.') {
                    Some((service, namespace)) => (service, Some(namespace)),
                    None => (host, None),
                };
                let port = match &b.port_name {
                    Some(name) => kubernetes::Port::Name(name.clone()),
                    None => kubernetes::Port::Number(b.port()),
                };
                let client = self.kube(d)?;
                Ok(kubernetes::watch_endpoint_slices(client, namespace, service, port).boxed())
            }
            #[allow(unreachable_patterns)]
            _ => Err(DiscoveryStartError::missing(b.discovery.as_str())),
        }
    }

    /// The resolver `d` names, made once and kept while `d.resolver` stays.
    #[cfg(feature = "dns")]
    fn resolver(&mut self, d: &DiscoveryConfig) -> Result<dns::DnsResolver, DiscoveryStartError> {
        if let Some((at, r)) = &self.resolver
            && *at == d.resolver
        {
            return Ok(r.clone());
        }
        let r = match d.resolver {
            Some(addr) => dns::DnsResolver::nameserver(addr),
            None => dns::DnsResolver::system(),
        }
        .map_err(|e| DiscoveryStartError::new("the DNS resolver", e))?;
        self.resolver = Some((d.resolver, r.clone()));
        Ok(r)
    }

    /// The Kubernetes client `d` names, made once and kept while `d.kubernetes_api` stays.
    #[cfg(feature = "kubernetes")]
    fn kube(&mut self, d: &DiscoveryConfig) -> Result<kubernetes::Client, DiscoveryStartError> {
        if let Some((at, c)) = &self.kube
            && *at == d.kubernetes_api
        {
            return Ok(c.clone());
        }
        let c = kubernetes::client(d.kubernetes_api.as_deref())
            .map_err(|e| DiscoveryStartError::new("the Kubernetes API client", e))?;
        self.kube = Some((d.kubernetes_api.clone(), c.clone()));
        Ok(c)
    }
}
