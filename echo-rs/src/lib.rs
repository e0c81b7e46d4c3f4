//! The Rust echo service of the rrlb fleet, as a library and as the `echo-rs` binary.
//!
//! An echo service answers `POST <any path>` with the JSON body it was sent, `GET /health`
//! with its name and health, and, when asked to, misbehaves on purpose (added latency,
//! injected `500`s, a failing health check). The four implementations (Rust, Go, Node.js,
//! Java) follow one contract, `docs/echo-contract.md`, checked by the `echo-conformance`
//! crate; they are the load balancer's test backends.
//!
//! This crate is also embedded in-process: tests start an [`EchoServer`] on `127.0.0.1:0`,
//! steer it through its [`Chaos`] handle, [`kill`](EchoServer::kill) it like a crashed
//! backend and start another on the same address; `rrlb --demo` runs three of them.
//!
//! ```
//! use echo_rs::{Config, EchoServer};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = EchoServer::start("127.0.0.1:0", Config::new("demo")).await?;
//!
//! let mut stream = tokio::net::TcpStream::connect(server.local_addr()).await?;
//! stream
//!     .write_all(b"POST /anything HTTP/1.1\r\nhost: demo\r\ncontent-length: 9\r\nconnection: close\r\n\r\n{\"a\":[1]}")
//!     .await?;
//! let mut answer = String::new();
//! stream.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200 OK"));
//! assert!(answer.contains("x-echo-service: demo"));
//! assert!(answer.ends_with("\r\n\r\n{\"a\":[1]}"));
//!
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The HTTP surface, in short (every response carries `x-echo-service: <name>` and
//! `content-type: application/json`):
//!
//! | request | answer |
//! | --- | --- |
//! | `POST <any path>` with valid JSON | `200`, the body bytes unchanged, after the configured delay; `500` for the injected share of failures |
//! | `POST` with invalid or empty JSON | `400 {"error":"invalid JSON: ..."}` |
//! | `POST` with more than [`MAX_BODY_BYTES`] | `413 {"error":"body exceeds 1048576 bytes"}` |
//! | other methods on echo paths | `405` with `allow: POST` |
//! | `GET /health` | `200 {"status":"ok","service":"<name>"}`, or `503` with `"unhealthy"` |
//! | `GET`, `POST`, `DELETE /_chaos` (with [`Config::chaos_routes`]) | show, change, reset the [`ChaosSettings`] |
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod chaos;
mod config;
mod healthcheck;
mod server;
mod service;

pub use chaos::{Chaos, ChaosError, ChaosSettings};
pub use config::{
    Config, ConfigError, DEFAULT_DRAIN_TIMEOUT, DEFAULT_PORT, DEFAULT_SERVICE_NAME, MAX_DELAY_MS,
};
pub use healthcheck::probe_health;
pub use server::{EchoServer, serve};

/// The largest request body accepted: 1 MiB. Exactly this many bytes are accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
