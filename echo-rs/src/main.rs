//! `echo-rs`: the echo service binary. Configuration comes from the environment (`PORT`,
//! `HOST`, `SERVICE_NAME`, `ECHO_DELAY_MS`, `ECHO_CHAOS`); see the library docs.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use echo_rs::Config;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

const USAGE: &str = "\
usage: echo-rs [--healthcheck]

Serves the echo contract (docs/echo-contract.md). Environment: PORT (8084), HOST (0.0.0.0),
SERVICE_NAME (echo-rs), ECHO_DELAY_MS (0), ECHO_CHAOS (1 enables /_chaos).

  --healthcheck   GET /health on the configured port; exit 0 when it answers 200, else 1
";

fn main() -> ExitCode {
    let mut healthcheck = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--healthcheck" => healthcheck = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("echo-rs: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("echo-rs: {err}");
            // Docker reserves health-check exit code 2: a failed check is always 1.
            return ExitCode::from(if healthcheck { 1 } else { 2 });
        }
    };
    if healthcheck {
        return probe(config.listen);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime.and_then(|runtime| runtime.block_on(run(config))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo-rs: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> io::Result<()> {
    // Install the handlers before announcing readiness, so an early SIGTERM still drains.
    let terminate = signal(SignalKind::terminate())?;
    let interrupt = signal(SignalKind::interrupt())?;
    let listener = TcpListener::bind(config.listen).await.map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot listen on {}: {err}", config.listen),
        )
    })?;
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "{} listening on {}",
        config.service_name,
        listener.local_addr()?
    )?;
    stdout.flush()?;
    drop(stdout);
    echo_rs::serve(listener, config, shutdown_signal(terminate, interrupt)).await
}

async fn shutdown_signal(mut terminate: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    eprintln!("echo-rs: shutting down, finishing in-flight requests");
}

fn probe(listen: SocketAddr) -> ExitCode {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    match echo_rs::probe_health(SocketAddr::new(ip, listen.port()), Duration::from_secs(3)) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("echo-rs: /health answered {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("echo-rs: /health probe failed: {err}");
            ExitCode::FAILURE
        }
    }
}
