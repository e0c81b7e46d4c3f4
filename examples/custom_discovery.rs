//! A user-written discovery source: a "registry" that pushes a group's whole address set whenever it
//! changes (a stand-in for Consul, etcd, a file watcher…), driving a `BackendSet` through rrlb-tower's
//! `Discovery`. Three echo-rs backends run in-process; the registry announces two, then all three, then
//! only the third, and requests after each change show who serves. Run with
//! `cargo run --example custom_discovery`.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use bytes::Bytes;
use echo_rs::{Config, EchoServer};
use futures_util::{Stream, StreamExt, stream};
use http::Request;
use http_body_util::Full;
use rrlb_core::{BackendSet, RoundRobin, SetOptions};
use rrlb_tower::discovery::{Discovery, Endpoint, Group, Update};
use rrlb_tower::http::{HttpPolicy, HttpUpstream, UpstreamConfig};
use rrlb_tower::{BalanceConfig, BalanceLayer};
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};

/// The source: every message of the registry is the group's whole address set. Any
/// `Stream<Item = Result<Vec<Endpoint>, DiscoveryError>>` is a source; an error or an empty set would keep
/// the last good one.
fn registry_source(mut rx: mpsc::Receiver<Vec<SocketAddr>>) -> impl Stream<Item = Update> + Send {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|addrs| Ok(addrs.into_iter().map(Endpoint::new).collect()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut servers = Vec::new();
    for name in ["echo-1", "echo-2", "echo-3"] {
        servers.push(EchoServer::start("127.0.0.1:0", Config::new(name)).await?);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(EchoServer::local_addr).collect();

    let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
    let (registry, rx) = mpsc::channel(1);
    // Members are named `echo/<ip>:<port>`, reached at `http://<ip>:<port>`.
    let discovery = Discovery::spawn(set.clone(), Group::new("echo", 1), registry_source(rx));
    let client = ServiceBuilder::new()
        .layer(BalanceLayer::new(
            set.clone(),
            HttpPolicy,
            BalanceConfig::default(),
        ))
        .service(HttpUpstream::new(UpstreamConfig::default()));

    for (announced, expected) in [
        (vec![addrs[0], addrs[1]], &["echo-1", "echo-2"][..]),
        (addrs.clone(), &["echo-1", "echo-2", "echo-3"][..]),
        (vec![addrs[2]], &["echo-3"][..]),
    ] {
        let version = discovery.stats().updates();
        registry.send(announced).await?;
        // Wait (at most 10 s) until the task has applied it.
        let applied = async {
            while discovery.stats().updates() == version {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), applied).await?;
        let mut served = BTreeSet::new();
        for _ in 0..6 {
            let request = Request::get("/").body(Full::new(Bytes::new()))?;
            let response = client.clone().oneshot(request).await?;
            served.insert(response.headers()["x-echo-service"].to_str()?.to_owned());
        }
        let members: Vec<String> = set
            .load()
            .members()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        println!("members {members:?}\n  served by {served:?}");
        assert_eq!(
            served.iter().map(String::as_str).collect::<Vec<_>>(),
            expected
        );
    }
    println!("discovery errors: {}", discovery.stats().errors());

    drop(discovery);
    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}
