//! DNS sources (feature `dns`): every A/AAAA address of a name, or the targets of its SRV records, re-resolved
//! every `refresh` with [hickory-resolver](hickory_resolver).
//!
//! The resolver keeps no cache: a record's TTL never makes re-resolution slower than `refresh` (and a TTL of
//! 0, as compose's and Kubernetes' DNS servers may give, never makes it faster).
//!
//! ```no_run
//! use std::time::Duration;
//! use rrlb_tower::discovery::dns::DnsResolver;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = DnsResolver::nameserver("127.0.0.1:5353".parse()?)?;
//! // Every A/AAAA address of echo-go, port 8081, looked up every 5 s: a source for `Discovery::spawn`.
//! let source = resolver.watch_addrs("echo-go", 8081, Duration::from_secs(5));
//! # drop(source);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::Stream;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use super::{DiscoveryError, Endpoint, Update, periodic};

/// How long one lookup (all its attempts, and for SRV the targets' lookups) may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A DNS resolver for discovery: the system's (resolv.conf) or one nameserver over UDP and TCP. Cheap to clone;
/// clones share connections.
///
/// ```
/// use std::time::Duration;
/// use rrlb_core::{BackendSet, RoundRobin, SetOptions};
/// use rrlb_tower::discovery::dns::DnsResolver;
/// use rrlb_tower::discovery::{Discovery, Group};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Every A/AAAA address of `echo.internal` (asked of one nameserver; `DnsResolver::system()` reads
/// // /etc/resolv.conf) is a backend on port 8081, re-resolved every 5 s.
/// let resolver = DnsResolver::nameserver("127.0.0.1:5353".parse()?)?;
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// let source = resolver.watch_addrs("echo.internal", 8081, Duration::from_secs(5));
/// let task = Discovery::spawn(set.clone(), Group::new("echo", 1), source);
/// # drop(task);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DnsResolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver").finish_non_exhaustive()
    }
}

fn options(mut opts: ResolverOpts) -> ResolverOpts {
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    // A UDP answer cut short (many addresses) is asked again over TCP.
    opts.try_tcp_on_error = true;
    opts
}

impl DnsResolver {
    /// The system's resolver configuration (`/etc/resolv.conf`: nameservers, search domains, `ndots`).
    pub fn system() -> Result<Self, DiscoveryError> {
        let mut builder = TokioResolver::builder_tokio().map_err(DiscoveryError::lookup)?;
        let opts = options(builder.options_mut().clone());
        let inner = builder
            .with_options(opts)
            .build()
            .map_err(DiscoveryError::lookup)?;
        Ok(Self { inner })
    }

    /// One nameserver at `addr`, asked over UDP and TCP; names are looked up as given (no search domains).
    pub fn nameserver(addr: SocketAddr) -> Result<Self, DiscoveryError> {
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for c in &mut ns.connections {
            c.port = addr.port();
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let inner = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options(ResolverOpts::default()))
            .build()
            .map_err(DiscoveryError::lookup)?;
        Ok(Self { inner })
    }

    /// Every A and AAAA address of `host`, each with `port`. A name with only A (or only AAAA) records is
    /// not an error; a name with neither is [`DiscoveryError::Empty`].
    pub async fn lookup_addrs(&self, host: &str, port: u16) -> Update {
        let ips = self.inner.lookup_ip(host).await.map_err(error)?;
        let addrs: BTreeSet<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        Ok(addrs.into_iter().map(Endpoint::new).collect())
    }

    /// The targets of `name`'s SRV records: each target's addresses with the record's port, weight (0: the
    /// group's) and priority. A target with no address is left out; a target whose lookup fails (a resolver
    /// error, a timeout) fails the whole answer, so that a flaky resolver never drains a healthy target.
    pub async fn lookup_srv(&self, name: &str) -> Update {
        let lookup = self.inner.srv_lookup(name).await.map_err(error)?;
        let mut out = Vec::new();
        for record in lookup.answers() {
            let RData::SRV(srv) = &record.data else {
                continue;
            };
            let target = srv.target.to_ascii();
            let ips = match self.inner.lookup_ip(target.as_str()).await {
                Ok(ips) => ips,
                // A target that has no address does not sink the others.
                Err(e) if e.is_no_records_found() => {
                    tracing::warn!(target, error = %e, "SRV target has no address");
                    continue;
                }
                // A failing lookup says nothing about the target: an answer without it would drain a backend
                // that may be fine, so the whole answer fails and the last good set stays.
                Err(e) => return Err(DiscoveryError::lookup(e)),
            };
            for ip in ips.iter() {
                out.push(Endpoint {
                    addr: SocketAddr::new(ip, srv.port),
                    weight: (srv.weight != 0).then_some(u32::from(srv.weight)),
                    priority: srv.priority,
                });
            }
        }
        out.sort_by_key(|ep| (ep.priority, ep.addr));
        out.dedup_by_key(|ep| ep.addr);
        Ok(out)
    }

    /// [`lookup_addrs`](Self::lookup_addrs) now and every `refresh`: a source for
    /// [`Discovery::spawn`](super::Discovery::spawn).
    pub fn watch_addrs(
        &self,
        host: impl Into<String>,
        port: u16,
        refresh: Duration,
    ) -> impl Stream<Item = Update> + Send + 'static {
        let (me, host) = (self.clone(), host.into());
        periodic(refresh, LOOKUP_TIMEOUT, move || {
            let (me, host) = (me.clone(), host.clone());
            async move { me.lookup_addrs(&host, port).await }
        })
    }

    /// [`lookup_srv`](Self::lookup_srv) now and every `refresh`.
    pub fn watch_srv(
        &self,
        name: impl Into<String>,
        refresh: Duration,
    ) -> impl Stream<Item = Update> + Send + 'static {
        let (me, name) = (self.clone(), name.into());
        periodic(refresh, LOOKUP_TIMEOUT, move || {
            let (me, name) = (me.clone(), name.clone());
            async move { me.lookup_srv(&name).await }
        })
    }
}

fn error(e: NetError) -> DiscoveryError {
    if e.is_no_records_found() {
        DiscoveryError::Empty
    } else {
        DiscoveryError::lookup(e)
    }
}
