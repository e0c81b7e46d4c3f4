//! Active health checks and passive ejection, watched live.
//!
//! Three echo-rs backends in-process, a `HealthChecker` probing `GET /health` every 100 ms and a
//! `Maintenance` task for the breakers. While a client keeps sending requests, one backend is
//! made unhealthy and then healthy again, and another is killed and restarted on the same
//! address; the example prints when each is ejected and restored. Run with
//! `cargo run --example health_checked`.

use std::time::Duration;

use bytes::Bytes;
use echo_rs::{Config, EchoServer};
use http::Request;
use http_body_util::{BodyExt, Full};
use rrlb_core::{BackendSet, BackendSpec, BreakerParams, HealthParams, RoundRobin, SetOptions};
use rrlb_tower::http::{HttpPolicy, HttpProbe, HttpUpstream, UpstreamConfig};
use rrlb_tower::{Balance, BalanceConfig, HealthCheckConfig, HealthChecker, Maintenance, RetryOn};
use tokio::time::Instant;
use tower::ServiceExt;

type Client = Balance<HttpUpstream, RoundRobin, HttpPolicy>;

/// Sends requests every 10 ms until `done` holds (at most 10 s); prints the set whenever a
/// backend's health or circuit changes. Returns how long it took.
async fn traffic_until(
    client: &Client,
    set: &BackendSet<RoundRobin>,
    done: impl Fn(&BackendSet<RoundRobin>) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut shown = describe(set);
    loop {
        let now = describe(set);
        if now != shown {
            println!("  {:>5} ms  {now}", start.elapsed().as_millis());
            shown = now;
        }
        if done(set) || start.elapsed() > Duration::from_secs(10) {
            return start.elapsed();
        }
        let request = Request::post("/echo").body(Full::new(Bytes::from_static(b"{}")));
        match client
            .clone()
            .oneshot(request.expect("a valid request"))
            .await
        {
            Ok(response) => {
                let _ = response.into_body().collect().await;
            }
            Err(e) => {
                // rrlb-tower's error says what failed; its source says why.
                let mut line = format!("  client error: {e}");
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    line.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                println!("{line}");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// "a: healthy/closed  b: ..." for every backend.
fn describe(set: &BackendSet<RoundRobin>) -> String {
    set.load()
        .members()
        .iter()
        .map(|m| {
            let health = if m.is_healthy() {
                "healthy"
            } else {
                "UNHEALTHY"
            };
            format!("{}: {health}/{}", m.name(), m.circuit())
        })
        .collect::<Vec<_>>()
        .join("  ")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let names = ["echo-1", "echo-2", "echo-3"];
    let mut servers = Vec::new();
    for name in names {
        servers.push(EchoServer::start("127.0.0.1:0", Config::new(name)).await?);
    }
    let specs: Vec<BackendSpec> = names
        .iter()
        .zip(&servers)
        .map(|(name, server)| BackendSpec::new(*name, server.url()))
        .collect();
    let options = SetOptions {
        // Out after 2 failed checks, back after 2 passing ones.
        health: HealthParams {
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        },
        // Ejected after 3 failed calls in a row, for 1 s (doubling if it fails again).
        breaker: BreakerParams {
            consecutive_failures: 3,
            open_duration: Duration::from_secs(1),
            ..BreakerParams::default()
        },
        ..SetOptions::default()
    };
    let set = BackendSet::with_backends(RoundRobin::new(), options, specs)?;

    let _health = HealthChecker::spawn(
        set.clone(),
        HttpProbe::new("/health", Duration::from_millis(200)),
        HealthCheckConfig {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(200),
            jitter: 0.1,
        },
    );
    let _maintenance = Maintenance::spawn(set.clone(), Duration::from_millis(100));
    let config = BalanceConfig {
        // Echo requests are safe to repeat, so connections reset by a dying backend are retried
        // too (a keep-alive connection pooled before a crash fails that way).
        retry_on: RetryOn::CONNECT_FAILURE | RetryOn::RESET,
        ..BalanceConfig::default()
    };
    let client = Balance::new(
        HttpUpstream::new(UpstreamConfig::default()),
        set.clone(),
        HttpPolicy,
        config,
    );
    println!("start:     {}", describe(&set));

    println!("\necho-2's /health starts answering 503 (its echoes still work):");
    servers[1].chaos().set_healthy(false);
    let unhealthy = |s: &BackendSet<RoundRobin>| s.get("echo-2").is_some_and(|m| !m.is_healthy());
    let took = traffic_until(&client, &set, unhealthy).await;
    println!("  => echo-2 ejected by the health checks after {took:.0?}");

    println!("\necho-2's /health recovers:");
    servers[1].chaos().set_healthy(true);
    let eligible = |name: &'static str| {
        move |s: &BackendSet<RoundRobin>| s.get(name).is_some_and(|m| m.is_eligible())
    };
    let took = traffic_until(&client, &set, eligible("echo-2")).await;
    println!("  => echo-2 restored after {took:.0?}");

    println!("\necho-3 crashes:");
    let address = servers[2].local_addr();
    servers.pop().ok_or("three servers")?.kill().await;
    let ejected = |s: &BackendSet<RoundRobin>| s.get("echo-3").is_some_and(|m| !m.is_eligible());
    let took = traffic_until(&client, &set, ejected).await;
    println!("  => echo-3 ejected after {took:.0?}; requests kept succeeding on the others");

    println!("\necho-3 restarts on the same address ({address}):");
    servers.push(EchoServer::start(address, Config::new("echo-3")).await?);
    let took = traffic_until(&client, &set, eligible("echo-3")).await;
    println!("  => echo-3 restored after {took:.0?}");

    println!("\nrequests per backend:");
    for member in set.load().members() {
        let s = member.stats().snapshot();
        println!(
            "  {}: {} requests, {} failures, {} cancelled",
            member.name(),
            s.requests,
            s.failures,
            s.cancelled
        );
    }
    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}
