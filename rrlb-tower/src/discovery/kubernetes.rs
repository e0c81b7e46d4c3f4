//! The Kubernetes source (feature `kubernetes`): the `discovery.k8s.io/v1` EndpointSlices of one Service
//! (label `kubernetes.io/service-name`), watched with [kube]'s watcher.
//!
//! Each answer is the union of the Service's slices: every address of an endpoint that is ready (a missing
//! `ready` condition counts as ready, as the API defines it) and not terminating, at the selected port.
//! A terminating pod's endpoint leaves the set, so its backend drains: new requests go elsewhere, the ones in
//! flight complete. That is what makes a rolling update lose nothing. A watch error is an error update (the
//! last good set stays); the watcher re-lists and re-watches with kube's default backoff.
//!
//! ```no_run
//! use rrlb_tower::discovery::kubernetes::{self, Port};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let _rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # let _g = _rt.enter();
//! // `kubectl proxy`'s address; `None` is the in-cluster configuration.
//! let client = kubernetes::client(Some("http://127.0.0.1:8001"))?;
//! let source = kubernetes::watch_endpoint_slices(client, Some("default"), "echo-go", Port::Number(8081));
//! # drop(source);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
pub use kube::Client;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};

use super::{DiscoveryError, Endpoint, Update};

/// Which port of the endpoints is the backends'.
///
/// ```
/// use rrlb_tower::discovery::kubernetes::Port;
///
/// // `port = 8080` in a backend URL, or `port_name = "http"`: the Service port's name.
/// let by_number = Port::Number(8080);
/// let by_name = Port::Name("http".to_owned());
/// assert_ne!(by_number, by_name);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Port {
    /// This port number.
    Number(u16),
    /// The slice's port of this name (a Service port's `name`); a slice without it contributes nothing.
    Name(String),
}

/// A client for the API server at `api` (`http://127.0.0.1:8001` for `kubectl proxy`), or, with `None`, the
/// in-cluster configuration (the pod's service account). Must be called inside a tokio runtime.
pub fn client(api: Option<&str>) -> Result<Client, DiscoveryError> {
    let config = match api {
        Some(url) => {
            let uri = url.parse::<http::Uri>().map_err(DiscoveryError::lookup)?;
            kube::Config::new(uri)
        }
        None => kube::Config::incluster().map_err(DiscoveryError::lookup)?,
    };
    Client::try_from(config).map_err(DiscoveryError::lookup)
}

/// The addresses of `service`'s EndpointSlices in `namespace` (`None`: the client's default namespace), as
/// a source for [`Discovery::spawn`](super::Discovery::spawn): one full set after the initial list and after
/// every change.
pub fn watch_endpoint_slices(
    client: Client,
    namespace: Option<&str>,
    service: &str,
    port: Port,
) -> impl Stream<Item = Update> + Send + 'static {
    let api: Api<EndpointSlice> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::default_namespaced(client),
    };
    let config =
        watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    let mut slices: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Vec<Endpoint>>> = None;
    watcher::watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let update = match event {
                Ok(Event::Init) => {
                    listing = Some(BTreeMap::new());
                    None
                }
                Ok(Event::InitApply(s)) => {
                    if let Some(l) = &mut listing {
                        l.insert(s.name_any(), endpoints(&s, &port));
                    }
                    None
                }
                Ok(Event::InitDone) => {
                    if let Some(l) = listing.take() {
                        slices = l;
                    }
                    Some(Ok(union(&slices)))
                }
                Ok(Event::Apply(s)) => {
                    slices.insert(s.name_any(), endpoints(&s, &port));
                    Some(Ok(union(&slices)))
                }
                Ok(Event::Delete(s)) => {
                    slices.remove(&s.name_any());
                    Some(Ok(union(&slices)))
                }
                Err(e) => Some(Err(DiscoveryError::lookup(e))),
            };
            std::future::ready(update)
        })
}

fn union(slices: &BTreeMap<String, Vec<Endpoint>>) -> Vec<Endpoint> {
    let mut all: Vec<Endpoint> = slices.values().flatten().copied().collect();
    all.sort_by_key(|e| e.addr);
    all.dedup_by_key(|e| e.addr);
    all
}

/// The ready, not terminating addresses of one slice at `port`.
fn endpoints(slice: &EndpointSlice, port: &Port) -> Vec<Endpoint> {
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return Vec::new();
    }
    let port = match port {
        Port::Number(n) => Some(*n),
        Port::Name(name) => slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok()),
    };
    let Some(port) = port else {
        return Vec::new();
    };
    slice
        .endpoints
        .iter()
        .filter(|e| {
            let c = e.conditions.as_ref();
            c.and_then(|c| c.ready).unwrap_or(true)
                && !c.and_then(|c| c.terminating).unwrap_or(false)
        })
        .flat_map(|e| e.addresses.iter())
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| Endpoint::new(SocketAddr::new(ip, port)))
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::{
        Endpoint as K8sEndpoint, EndpointConditions, EndpointPort,
    };

    use super::*;

    fn ep(ip: &str, ready: Option<bool>, terminating: Option<bool>) -> K8sEndpoint {
        K8sEndpoint {
            addresses: vec![ip.to_owned()],
            conditions: Some(EndpointConditions {
                ready,
                serving: None,
                terminating,
            }),
            ..K8sEndpoint::default()
        }
    }

    #[test]
    fn ready_endpoints_at_the_named_port() {
        let slice = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: vec![
                ep("10.0.0.1", Some(true), None),
                ep("10.0.0.2", None, None),
                ep("10.0.0.3", Some(false), Some(true)),
                ep("10.0.0.4", Some(true), Some(true)),
                ep("not-an-ip", Some(true), None),
            ],
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8081),
                ..EndpointPort::default()
            }]),
            ..EndpointSlice::default()
        };
        let addrs = |port: &Port| -> Vec<String> {
            endpoints(&slice, port)
                .iter()
                .map(|e| e.addr.to_string())
                .collect()
        };
        assert_eq!(
            addrs(&Port::Name("http".into())),
            ["10.0.0.1:8081", "10.0.0.2:8081"]
        );
        assert_eq!(
            addrs(&Port::Number(9000)),
            ["10.0.0.1:9000", "10.0.0.2:9000"]
        );
        assert!(addrs(&Port::Name("grpc".into())).is_empty());
        let fqdn = EndpointSlice {
            address_type: "FQDN".into(),
            ..slice.clone()
        };
        assert!(endpoints(&fqdn, &Port::Number(80)).is_empty());
    }
}
