//! `rrlb --demo`: three in-process echo backends with 5, 15 and 25 ms of added latency.

use std::io;
use std::time::Duration;

use echo_rs::{Config as EchoConfig, EchoServer};

use crate::config::BackendConfig;

/// The demo backends: name and added latency.
pub const DEMO_BACKENDS: [(&str, u64); 3] =
    [("echo-fast", 5), ("echo-medium", 15), ("echo-slow", 25)];

/// Starts the demo backends on `127.0.0.1` (ephemeral ports); keep the servers alive while serving.
pub async fn start() -> io::Result<(Vec<EchoServer>, Vec<BackendConfig>)> {
    let mut servers = Vec::new();
    let mut backends = Vec::new();
    for (name, ms) in DEMO_BACKENDS {
        let config = EchoConfig::new(name)
            .with_delay(Duration::from_millis(ms))
            .with_chaos_routes(true);
        let server = EchoServer::start("127.0.0.1:0", config).await?;
        let url = format!("http://{}", server.local_addr());
        let backend = BackendConfig::new(&url, None, Some(name))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        servers.push(server);
        backends.push(backend);
    }
    Ok((servers, backends))
}

/// What to try, printed at start.
pub fn banner(
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    backends: &[BackendConfig],
) -> String {
    let host = |a: std::net::SocketAddr| crate::server::healthcheck_addr(a);
    let p = host(proxy);
    let a = host(admin);
    let mut out = String::from("\nrrlb demo: balancing over three in-process echo backends\n");
    for (b, (_, ms)) in backends.iter().zip(DEMO_BACKENDS) {
        out.push_str(&format!(
            "  {:<12} {}  (+{ms} ms)\n",
            b.name,
            b.url_string()
        ));
    }
    out.push_str(&format!(
        "\nTry:\n  curl -s -i -X POST http://{p}/hello -H 'content-type: application/json' -d '{{\"hello\":\"rrlb\"}}'\n  \
         for i in $(seq 9); do curl -s -o /dev/null -w '%{{http_code}} ' -D - -X POST http://{p}/ -d '{{}}' | grep -i x-rrlb-backend; done\n  \
         curl -s http://{a}/admin/metrics\n  curl -s http://{a}/admin/health\n  curl -s http://{a}/metrics\n\
         Make one slow (it gets ejected by the slow-call breaker):\n  \
         curl -s -X POST {}/_chaos -d '{{\"delay_ms\":1500}}'\n\
         Stop with Ctrl-C.\n",
        backends.last().map(BackendConfig::url_string).unwrap_or_default()
    ));
    out
}
