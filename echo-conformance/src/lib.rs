//! Helpers for the echo conformance suite (`tests/conformance.rs`).
//!
//! The four echo services (Rust, Go, Node.js, Java) promise the same behaviour,
//! `docs/echo-contract.md`. The suite proves it the only way that counts for a load balancer's
//! backends: each implementation is built once, started as a real process on `127.0.0.1` with
//! `PORT=0` (the port is read from its startup line), and spoken to over TCP. Processes are
//! killed on drop, so a failing case leaves nothing running.
//!
//! An implementation whose directory or toolchain (go, node, java + mvn) is missing is skipped
//! with a notice on stderr, unless `CI=true`, where that is a failure.
//!
//! ```no_run
//! use echo_conformance::{Implementation, Service};
//!
//! # async fn example() {
//! if let Some(launcher) = Implementation::Go.prepare() {
//!     let service = Service::start(Implementation::Go, launcher, &[("SERVICE_NAME", "blue")]).await;
//!     let reply = service.post("/anything", r#"{"a":1}"#).await;
//!     assert_eq!(reply.status, 200);
//! }
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod client;
mod implementation;
mod service;

pub use client::{
    KeepAlive, REQUEST_TIMEOUT, RawConnection, RawReader, Reply, chunked, exchange, request_head,
};
pub use implementation::{Implementation, Launcher};
pub use service::{EXIT_TIMEOUT, Exit, STARTUP_TIMEOUT, Service, run_to_exit};

/// Removed from every started process's environment before a case sets its own: the
/// contract's variables, and `NODE_OPTIONS`, which could change how node runs.
pub const CLEARED_VARIABLES: [&str; 6] = [
    "PORT",
    "HOST",
    "SERVICE_NAME",
    "ECHO_DELAY_MS",
    "ECHO_CHAOS",
    "NODE_OPTIONS",
];

/// The body limit of the contract: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
