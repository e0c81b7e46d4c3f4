//! `rrlb`: an HTTP reverse proxy and load balancer, thin over `rrlb-tower` and `rrlb-core`.
//!
//! This library holds what the `rrlb` binary is made of, so that it can be tested and fuzzed without starting
//! a process: [`config`] (command line, environment and TOML file, validated into one [`config::Config`]),
//! the proxy (`fast`, the HTTP/1.1 fast path, and `proxy`, the hyper path for HTTP/1.0 and h2c, both over
//! one forwarding core and `upstream`), the admin API, metrics, and [`run`], which serves both listeners
//! until shut down. Only what the binary, the integration tests and the fuzz targets use is public; the rest is
//! crate-private, and the fuzz targets reach the wire-format state machines through a hidden `testing` module.
//!
//! ```
//! use rrlb::config::{Cli, Config};
//!
//! let cli = Cli::try_parse_from_env(["rrlb", "--backend", "http://127.0.0.1:8081=2"], [("RRLB_LOG", "debug")])?;
//! let config = Config::load(&cli)?;
//! assert_eq!(config.backends.len(), 1);
//! assert_eq!(config.log.level.as_str(), "debug");
//! println!("{}", config.to_toml_string()); // what `rrlb --check` prints
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Serving, as `main` does (with listeners on ephemeral ports and a shutdown signal of your own):
//!
//! ```no_run
//! use rrlb::config::{Cli, Config};
//! use rrlb::{Listeners, run};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cli = Cli::try_parse_from_env(["rrlb", "-b", "http://127.0.0.1:8081", "--listen", "127.0.0.1:0"], [("", "")])?;
//! let config = Config::load(&cli)?;
//! let listeners = Listeners::bind(&config).await?;
//! run(listeners, config, None, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod access_log;
mod admin;
mod admin_token;
mod app;
mod apply;
mod bufs;
pub mod config;
pub mod demo;
mod discovery;
mod fast;
mod forward;
mod h1;
pub mod logging;
mod metrics;
mod per_thread;
mod proxy;
mod server;
mod state;
mod telemetry;
mod tls;
mod upstream;

/// What the fuzz targets and the integration tests reach of the crate-private code: the HTTP/1 wire-format
/// state machines (without sockets) and the admin API's parsers and route table. Not a stable API: hidden from
/// the docs, and always compiled, since both the fuzz crate and `tests/` link the ordinary build (a
/// `cfg(fuzzing)` or a feature would leave one of them out).
#[doc(hidden)]
pub mod testing;

pub use crate::apply::{ApplyError, Reloader, check_state, check_tls};
pub use crate::discovery::DiscoveryStartError;
pub use crate::server::{Listeners, RunError, healthcheck, run, run_on_workers};
pub use crate::state::StateError;
pub use crate::telemetry::TelemetryError;
pub use crate::tls::TlsError;
pub use crate::upstream::UpstreamTlsError;
