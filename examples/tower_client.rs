//! A balanced HTTP client: `rrlb-tower`'s `Balance` over a pooled hyper client.
//!
//! Starts three echo-rs backends in-process on `127.0.0.1:0`, sends 30 JSON requests through the
//! balancer and prints which backend answered each (the `x-echo-service` header) and the
//! distribution. Run with `cargo run --example tower_client`.

use std::collections::BTreeMap;

use bytes::Bytes;
use echo_rs::{Config, EchoServer};
use http::Request;
use http_body_util::{BodyExt, Full};
use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
use rrlb_tower::http::{HttpPolicy, HttpUpstream, UpstreamConfig};
use rrlb_tower::{BalanceConfig, BalanceLayer, Served};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Three backends, each named in the `x-echo-service` header of its answers.
    let mut servers = Vec::new();
    for name in ["echo-1", "echo-2", "echo-3"] {
        servers.push(EchoServer::start("127.0.0.1:0", Config::new(name)).await?);
    }
    let specs = ["echo-1", "echo-2", "echo-3"]
        .iter()
        .zip(&servers)
        .map(|(name, server)| BackendSpec::new(*name, server.url()));
    let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), specs)?;

    // The balancer in front of a pooled hyper client. The default config: a 2 s timeout per
    // attempt, and up to two retries of connection failures on other backends.
    let client = ServiceBuilder::new()
        .layer(BalanceLayer::new(
            set.clone(),
            HttpPolicy,
            BalanceConfig::default(),
        ))
        .service(HttpUpstream::new(UpstreamConfig::default()));

    let mut distribution = BTreeMap::new();
    for i in 0..30 {
        // Only the path: the upstream puts the picked backend's scheme and address in front.
        let request = Request::post("/echo")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(r#"{{"request":{i}}}"#))))?;
        let response = client.clone().oneshot(request).await?;
        let service = response.headers()["x-echo-service"].to_str()?.to_owned();
        // HttpPolicy also notes the serving backend in the response's extensions.
        let attempts = response
            .extensions()
            .get::<Served>()
            .map_or(0, |s| s.attempts);
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "{i:>2}: {service} (attempts: {attempts}) echoed {}",
            String::from_utf8_lossy(&body)
        );
        *distribution.entry(service).or_insert(0) += 1;
    }

    println!("\ndistribution by x-echo-service:");
    for (service, count) in &distribution {
        let backend = set.get(service).ok_or("a configured backend")?;
        let latency = backend.stats().snapshot().latency_p50;
        println!("  {service}: {count} requests (p50 {latency:.1?})");
    }

    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}
