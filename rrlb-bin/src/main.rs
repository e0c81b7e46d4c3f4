//! `rrlb`: read the configuration, start logging, bind, serve until SIGTERM/SIGINT.

use std::process::ExitCode;

use rrlb::config::{Cli, Config};
use rrlb::logging::ErrorChain;
use rrlb::{Listeners, demo, healthcheck, logging, run_on_workers};

// mimalloc is built with its `no_thp` option (see the `mimalloc` feature in Cargo.toml): no transparent huge pages
// for its arena, which otherwise nearly doubles the peak RSS under load. On hosts with THP set to `always`, also set
// MIMALLOC_ALLOW_THP=0 in the environment to turn THP off for the process.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::from_process();
    let mut config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rrlb: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.healthcheck {
        return if healthcheck(config.admin_listen) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if cli.check {
        print!("{}", config.to_toml_string());
        // Certificates and keys are checked as a start would check them; only what they are is printed.
        // So is the runtime state's file, when there is one.
        return match rrlb::check_tls(&config).and_then(|tls| Ok((tls, rrlb::check_state(&config)?)))
        {
            Ok((tls, state)) => {
                print!("{tls}{state}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rrlb: {}", logging::ErrorChain(&e));
                ExitCode::from(2)
            }
        };
    }
    logging::init(&config.log);
    // One thread for the admin API, health checks and reloads; the proxy runs on its own per-core workers.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rrlb: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _demo_servers = if cli.demo {
            match demo::start().await {
                Ok((servers, backends)) => {
                    config.backends.extend(backends);
                    Some(servers)
                }
                Err(e) => {
                    eprintln!("rrlb: cannot start the demo backends: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        let listeners = match Listeners::bind(&config).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rrlb: {e}");
                return ExitCode::FAILURE;
            }
        };
        if cli.demo
            && let (Ok(p), Ok(a)) = (listeners.proxy.local_addr(), listeners.admin.local_addr())
        {
            println!("{}", demo::banner(p, a, &config.backends));
        }
        let reloader: Option<rrlb::Reloader> = config
            .source
            .is_some()
            .then(|| Box::new(move || Config::reload(&cli)) as rrlb::Reloader);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        match run_on_workers(listeners, config, reloader, shutdown_signal(), workers).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rrlb: {}", ErrorChain(&e));
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not when the future is first polled, so
/// a signal sent as soon as "rrlb is serving" is logged stops rrlb gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers =
            signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
        async move {
            match handlers {
                Ok((mut term, mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
