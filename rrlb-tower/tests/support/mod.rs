//! Shared helpers for rrlb-tower's integration tests: backend sets, a scripted policy for
//! `tower-test` mocks, fleets of in-process echo servers that are always stopped, and a bounded
//! wait on a condition.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use echo_rs::{Chaos, Config, EchoServer};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use rrlb_core::{
    Backend, BackendSet, BackendSpec, Balancer, BreakerParams, HealthParams, SetOptions,
};
use rrlb_tower::http::HttpRequest;
use rrlb_tower::{BoxError, FailureKind, Policy, Served};

/// A set of backends named `names`, at made-up addresses (mocks never connect).
pub(crate) fn set_of<B: Balancer>(
    balancer: B,
    options: SetOptions,
    names: &[&str],
) -> BackendSet<B> {
    BackendSet::with_backends(
        balancer,
        options,
        names
            .iter()
            .enumerate()
            .map(|(i, name)| BackendSpec::new(*name, format!("http://10.0.0.{}:80", i + 1))),
    )
    .expect("a valid backend list")
}

/// Options whose breaker trips on nothing: outcomes are counted, no backend is ejected.
pub(crate) fn never_trip() -> SetOptions {
    SetOptions {
        breaker: BreakerParams {
            consecutive_failures: 0,
            failure_rate: 0.0,
            slow_call_rate: 0.0,
            ..BreakerParams::default()
        },
        ..SetOptions::default()
    }
}

/// Options whose breaker opens after `n` failures in a row and stays open for a minute.
pub(crate) fn trip_after(n: u32) -> SetOptions {
    SetOptions {
        breaker: BreakerParams {
            consecutive_failures: n,
            failure_rate: 0.0,
            slow_call_rate: 0.0,
            open_duration: Duration::from_secs(60),
            max_open_duration: Duration::from_secs(60),
            ..BreakerParams::default()
        },
        health: HealthParams {
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        },
        ..SetOptions::default()
    }
}

/// The error a mock inner service answers with; [`ScriptedPolicy`] classifies it as its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail(pub(crate) FailureKind);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scripted {} failure", self.0.as_str())
    }
}

impl std::error::Error for Fail {}

/// A policy for mocks answering a status code (`u16`): 5xx is a failure, a [`Fail`] error is its
/// kind, anything else `Other`; it records every [`Served`] it is given.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScriptedPolicy {
    served: Arc<Mutex<Vec<(String, u32)>>>,
    failures: Arc<Mutex<Vec<(String, FailureKind)>>>,
}

impl ScriptedPolicy {
    /// `(backend, attempts)` of every answer returned so far.
    pub(crate) fn served(&self) -> Vec<(String, u32)> {
        self.served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `(backend, kind)` of every failed attempt so far (`Policy::on_failure`).
    pub(crate) fn failures(&self) -> Vec<(String, FailureKind)> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<Req: Clone> Policy<Req, u16, BoxError> for ScriptedPolicy {
    fn classify_response(&self, status: &u16) -> Option<FailureKind> {
        (*status >= 500).then_some(FailureKind::Status5xx)
    }

    fn classify_error(&self, error: &BoxError) -> FailureKind {
        error
            .downcast_ref::<Fail>()
            .map_or(FailureKind::Other, |f| f.0)
    }

    fn clone_request(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }

    fn on_served(&self, _status: &mut u16, backend: &Arc<Backend>, attempts: u32) {
        self.served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((backend.name().to_owned(), attempts));
    }

    fn on_failure(&self, backend: &Arc<Backend>, kind: FailureKind) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((backend.name().to_owned(), kind));
    }
}

/// A scripted health probe's state: the verdict per backend and the number of probes made.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeScript {
    inner: Arc<Mutex<Script>>,
}

#[derive(Debug, Default)]
struct Script {
    /// Backends pass unless listed here as failing.
    verdicts: HashMap<String, bool>,
    probes: HashMap<String, u32>,
}

impl ProbeScript {
    /// Makes the probes of `name` pass or fail from now on.
    pub(crate) fn set(&self, name: &str, passes: bool) {
        self.lock().verdicts.insert(name.to_owned(), passes);
    }

    /// Probes made of `name` so far.
    pub(crate) fn count(&self, name: &str) -> u32 {
        self.lock().probes.get(name).copied().unwrap_or(0)
    }

    /// Records one probe of `name` and answers its scripted verdict.
    pub(crate) fn probe(&self, name: &str) -> bool {
        let mut script = self.lock();
        *script.probes.entry(name.to_owned()).or_insert(0) += 1;
        script.verdicts.get(name).copied().unwrap_or(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits, checking every 10 ms, until `condition` holds; `false` if it still does not after `limit`.
pub(crate) async fn until(mut condition: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// In-process echo servers. Dropping the fleet (a test that failed half-way) kills every server
/// still running, since dropping an [`EchoServer`] kills it; [`Fleet::stop`] does it and waits.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    servers: Vec<(String, SocketAddr, Option<EchoServer>)>,
}

impl Fleet {
    /// Starts one echo server per name on `127.0.0.1:0`.
    pub(crate) async fn start(names: &[&str]) -> Fleet {
        let mut fleet = Fleet::default();
        for name in names {
            let server = EchoServer::start("127.0.0.1:0", Config::new(*name))
                .await
                .expect("start an echo server");
            fleet
                .servers
                .push(((*name).to_owned(), server.local_addr(), Some(server)));
        }
        fleet
    }

    /// The servers as backends: named like their `x-echo-service`, at their URLs.
    pub(crate) fn specs(&self) -> Vec<BackendSpec> {
        self.servers
            .iter()
            .map(|(name, addr, _)| BackendSpec::new(name.as_str(), format!("http://{addr}")))
            .collect()
    }

    fn slot(&mut self, name: &str) -> &mut (String, SocketAddr, Option<EchoServer>) {
        self.servers
            .iter_mut()
            .find(|(n, _, _)| n == name)
            .expect("a server of that name")
    }

    /// The fault-injection handle of a running server.
    pub(crate) fn chaos(&mut self, name: &str) -> Chaos {
        self.slot(name)
            .2
            .as_ref()
            .expect("the server is running")
            .chaos()
            .clone()
    }

    /// Kills a server like a crashed process; its address is free when this returns.
    pub(crate) async fn kill(&mut self, name: &str) {
        if let Some(server) = self.slot(name).2.take() {
            server.kill().await;
        }
    }

    /// Starts a server of the same name on the address of a killed one.
    pub(crate) async fn restart(&mut self, name: &str) {
        let slot = self.slot(name);
        assert!(slot.2.is_none(), "{name} is still running");
        let server = EchoServer::start(slot.1, Config::new(name))
            .await
            .expect("restart on the same address");
        slot.2 = Some(server);
    }

    /// Kills every server still running and waits until their sockets are closed.
    pub(crate) async fn stop(mut self) {
        for (_, _, server) in &mut self.servers {
            if let Some(server) = server.take() {
                server.kill().await;
            }
        }
    }
}

/// A JSON `POST /echo` (relative: the upstream puts the backend's address in front).
pub(crate) fn post(n: usize) -> HttpRequest {
    Request::post("/echo")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(format!("{{\"n\":{n}}}"))))
        .expect("a valid request")
}

/// An answer with its body read: status, `x-echo-service`, the [`Served`] extension, body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) service: String,
    pub(crate) served: Option<Served>,
    pub(crate) body: Bytes,
}

/// Reads a whole response (so that its connection goes back to the pool).
pub(crate) async fn read(response: Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a complete body").to_bytes();
    Answer {
        status: parts.status.as_u16(),
        service: parts
            .headers
            .get("x-echo-service")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        served: parts.extensions.get::<Served>().cloned(),
        body,
    }
}
