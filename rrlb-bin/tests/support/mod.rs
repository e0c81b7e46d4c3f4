//! Shared test support: real servers on `127.0.0.1:0`, always stopped.
//!
//! - [`Harness`]: an in-process rrlb (`rrlb::run` on its own task) with the echo backends it balances over;
//!   dropping it stops everything, also when a test fails.
//! - [`TestBackend`]: a tiny hyper backend that answers with what it received (method, path, headers, body
//!   length), records every request (to tell that one never reached it) and can hold requests at `/hold` until
//!   released: a deterministic "request in flight".
//! - [`Process`]: the real `rrlb` binary as a child process, killed on drop.
//! - An HTTP client ([`send`], [`Resp`]) and bounded polling ([`eventually`]).
//! - [`scripted`]: raw-TCP backends that write what the test scripts ([`scripted::RawBackend`],
//!   [`scripted::read_request`]).
//! - [`wire`]: a raw HTTP/1 client that reads answers strictly ([`wire::Conn`], [`wire::Read`]).
//! - [`tls`]: certificates made with rcgen and a TLS echo backend ([`tls::Pki`], [`tls::TlsEcho`]).
//! - `etcd` (feature `etcd`): a real single-member etcd for the fleet tests.
//!
//! Synchronisation is by signals (a held request counter, log lines, admin state) through bounded polls;
//! the only deadlines are safety bounds that turn a hang into a failure.

#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod scripted;
pub mod tls;
pub mod wire;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use echo_rs::{Config as EchoConfig, EchoServer};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rrlb::config::{Cli, Config};
use rrlb::{Listeners, RunError};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Safety bound for any single wait in the tests: a hang becomes a failure, never a timing assertion.
pub const HANG: Duration = Duration::from_secs(30);
/// Pause between two looks at a polled condition.
pub const POLL: Duration = Duration::from_millis(20);
/// Most looks at a polled condition (`POLL` × this ≈ 20 s, far above what any condition needs).
pub const MAX_POLLS: usize = 1000;

// ---------------------------------------------------------------------------------------------------------
// HTTP client

/// A pooled HTTP/1.1 client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new pooled client.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A fully read response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?} (status {})", self.text(), self.status)
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-rrlb-backend`, required.
    pub fn backend(&self) -> &str {
        self.header("x-rrlb-backend")
            .unwrap_or_else(|| panic!("no x-rrlb-backend in {:?}: {}", self.headers, self.text()))
    }
}

/// Sends a request and reads the whole answer; `Err` on a transport error.
pub async fn try_send(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Resp, String> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    let fut = async {
        let res = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok(Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(HANG, fut)
        .await
        .unwrap_or_else(|_| Err(format!("no answer to {url} within {HANG:?}")))
}

/// Like [`try_send`], panicking on a transport error.
pub async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    try_send(client, method.clone(), url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Polls `check` until it returns `Some`, at most [`MAX_POLLS`] times; panics with `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..MAX_POLLS {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("gave up waiting for: {what}");
}

/// Tallies of a list of names.
pub fn tally<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for n in names {
        *out.entry(n.to_owned()).or_insert(0) += 1;
    }
    out
}

/// `BTreeMap` literal helper: `counts(&[("a", 1)])`.
pub fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Checks rrlb's JSON error shape and that `request_id` matches the `x-request-id` header; returns the body.
pub fn assert_json_error(res: &Resp, status: u16) -> Value {
    assert_eq!(
        res.status.as_u16(),
        status,
        "unexpected answer: {}",
        res.text()
    );
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "no error message: {body}"
    );
    let id = body["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request_id: {body}"));
    assert!(!id.is_empty());
    assert_eq!(
        res.header("x-request-id"),
        Some(id),
        "request_id differs from x-request-id"
    );
    body
}

/// The value of the first sample in a Prometheus exposition whose line starts with `series` (a name with
/// its labels as rrlb writes them, e.g. `rrlb_requests_total{backend="a",code="200"}`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `s` looks like a UUID v4 (`8-4-4-4-12` lowercase hex, version nibble 4, variant 8..b).
pub fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && parts[2].starts_with('4')
        && parts[3].starts_with(['8', '9', 'a', 'b'])
}

/// Percent-encodes every non-alphanumeric byte (for `{name}` = a backend URL).
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Echo backends

/// An echo server named `name` with its chaos routes on, on an ephemeral port.
pub async fn echo(name: &str) -> EchoServer {
    EchoServer::start("127.0.0.1:0", EchoConfig::new(name).with_chaos_routes(true))
        .await
        .unwrap_or_else(|e| panic!("echo server {name}: {e}"))
}

/// An echo server named `name` on `addr` (to bring a killed backend back on its address).
pub async fn echo_at(name: &str, addr: SocketAddr) -> EchoServer {
    // The port was ours a moment ago; give the kernel a few tries should it still be settling.
    for _ in 0..50 {
        match EchoServer::start(addr, EchoConfig::new(name).with_chaos_routes(true)).await {
            Ok(s) => return s,
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
    panic!("cannot restart echo server {name} on {addr}");
}

/// `[[backends]]` entries, one per `(name, url, weight)`.
pub fn backends_toml(backends: &[(&str, &str, u32)]) -> String {
    backends
        .iter()
        .map(|(name, url, weight)| {
            format!("[[backends]]\nname = \"{name}\"\nurl = \"{url}\"\nweight = {weight}\n\n")
        })
        .collect()
}

/// A free port on 127.0.0.1 (bound, then released). Only for child processes, which must be told a port.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr")
}

/// Writes `text` to `path` atomically (a temporary file in the same directory, then a rename), so that a
/// watcher never reads half a file.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

// ---------------------------------------------------------------------------------------------------------
// In-process rrlb

/// Builds a [`Harness`].
#[derive(Default)]
pub struct HarnessBuilder {
    echoes: Vec<EchoServer>,
    file: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl HarnessBuilder {
    /// Echo servers the harness owns (and stops).
    pub fn echoes(mut self, echoes: Vec<EchoServer>) -> Self {
        self.echoes = echoes;
        self
    }

    /// A TOML configuration file (written to a temporary directory and given with `--config`, which also
    /// enables reloading).
    pub fn file(mut self, toml: impl Into<String>) -> Self {
        self.file = Some(toml.into());
        self
    }

    /// Command-line arguments (after the program name).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| (*s).to_owned()));
        self
    }

    /// An environment variable as rrlb would read it.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Loads the configuration, binds both listeners on `127.0.0.1:0`, spawns `rrlb::run`, and waits until
    /// the admin listener answers.
    pub async fn start(self) -> Harness {
        init_logging();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut argv = vec!["rrlb".to_owned()];
        let config_path = self.file.as_ref().map(|text| {
            let path = dir.path().join("rrlb.toml");
            write_atomic(&path, text);
            argv.push("--config".to_owned());
            argv.push(path.display().to_string());
            path
        });
        // Unless the test sets a request timeout, a generous one: on a loaded machine a fast backend may
        // take a second to answer, and that must not become a 504 in a test about something else.
        let sets_timeout = self.args.iter().any(|a| a == "--timeout")
            || self.env.iter().any(|(k, _)| k == "RRLB_TIMEOUT")
            || self
                .file
                .as_deref()
                .is_some_and(|f| f.lines().any(|l| l.trim_start().starts_with("request")));
        let mut env = self.env;
        if !sets_timeout {
            env.push(("RRLB_TIMEOUT".to_owned(), "30s".to_owned()));
        }
        argv.extend(self.args);
        let cli = Cli::try_parse_from_env(argv, env)
            .unwrap_or_else(|e| panic!("bad test arguments: {e}"));
        // The access log goes to a file of the test's own (on stdout, which the test harness does not
        // capture for other threads, it would flood the output), unless the test chose a path.
        let access_log = dir.path().join("access.log").display().to_string();
        let own_log = move |mut c: Config| {
            if c.access_log.path == "stdout" {
                c.access_log.path.clone_from(&access_log);
            }
            c
        };
        let config = Config::load(&cli).unwrap_or_else(|e| panic!("bad test configuration: {e}"));
        let config = own_log.clone()(config);
        let reloader: Option<rrlb::Reloader> = cli
            .config
            .is_some()
            .then(|| Box::new(move || Config::reload(&cli).map(&own_log)) as rrlb::Reloader);
        let listeners = Listeners {
            proxy: TcpListener::bind("127.0.0.1:0").await.expect("bind proxy"),
            admin: TcpListener::bind("127.0.0.1:0").await.expect("bind admin"),
        };
        let proxy = listeners.proxy.local_addr().expect("proxy addr");
        let admin = listeners.admin.local_addr().expect("admin addr");
        let (shutdown, rx) = oneshot::channel::<()>();
        let run = rrlb::run(listeners, config, reloader, async move {
            let _ = rx.await;
        });
        let task = tokio::spawn(run);
        let h = Harness {
            proxy,
            admin,
            client: client(),
            echoes: self.echoes.into_iter().map(Some).collect(),
            config_path,
            _dir: dir,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        match try_send(
            &h.client,
            Method::GET,
            &h.admin_url("/healthz"),
            &[],
            Bytes::new(),
        )
        .await
        {
            Ok(r) if r.status == StatusCode::OK => h,
            other => panic!("rrlb did not start: {other:?}"),
        }
    }
}

/// Installs a log subscriber when `RRLB_TEST_LOG` is set (e.g. `RRLB_TEST_LOG=debug`), to debug a test.
fn init_logging() {
    if let Ok(level) = std::env::var("RRLB_TEST_LOG") {
        let _ = tracing_subscriber_init(&level);
    }
}

fn tracing_subscriber_init(level: &str) -> Option<()> {
    let config = rrlb::logging::LogConfig {
        format: rrlb::logging::LogFormat::Text,
        level: level.parse().ok()?,
    };
    rrlb::logging::init(&config);
    Some(())
}

/// An in-process rrlb with its backends; dropping it stops all of them.
pub struct Harness {
    /// The proxy listener.
    pub proxy: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// A pooled client.
    pub client: HttpClient,
    echoes: Vec<Option<EchoServer>>,
    /// The configuration file, when started with one.
    pub config_path: Option<PathBuf>,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // The echo servers stop when dropped (killed); the rest ends with the test's runtime.
    }
}

impl Harness {
    /// A builder.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder::default()
    }

    /// The access log's file (unless the test's configuration chose another path).
    pub fn access_log(&self) -> PathBuf {
        self._dir.path().join("access.log")
    }

    /// `http://<proxy><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// `http://<admin><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The `i`th echo server (panics if it was killed).
    pub fn echo(&self, i: usize) -> &EchoServer {
        self.echoes[i].as_ref().expect("echo server was killed")
    }

    /// Kills the `i`th echo server like a crash; returns its address.
    pub async fn kill(&mut self, i: usize) -> SocketAddr {
        let server = self.echoes[i].take().expect("echo server already killed");
        let addr = server.local_addr();
        server.kill().await;
        addr
    }

    /// Starts a new echo server named `name` on the `i`th's (killed) address.
    pub async fn restart(&mut self, i: usize, name: &str, addr: SocketAddr) {
        assert!(self.echoes[i].is_none(), "echo server {i} is running");
        self.echoes[i] = Some(echo_at(name, addr).await);
    }

    /// `POST <path>` on the proxy with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        send(
            &self.client,
            Method::POST,
            &self.url(path),
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    /// `POST /` with a small JSON body; asserts `200` and returns the serving backend's name.
    pub async fn hit(&self) -> String {
        let res = self.post("/", &json!({"hello": "rrlb"})).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "proxy answered {}: {}",
            res.status,
            res.text()
        );
        res.backend().to_owned()
    }

    /// `n` sequential [`hit`](Self::hit)s, tallied by backend.
    pub async fn hits(&self, n: usize) -> BTreeMap<String, u64> {
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(self.hit().await);
        }
        tally(names.iter().map(String::as_str))
    }

    /// An admin call; `token` becomes `authorization: Bearer <token>`.
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        send(&self.client, method, &self.admin_url(path), &headers, body).await
    }

    /// `GET` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Resp {
        self.admin_call(Method::GET, path, None, None).await
    }

    /// `GET /admin/backends`' list.
    pub async fn backends(&self) -> Vec<Value> {
        let res = self.admin_get("/admin/backends").await;
        assert_eq!(res.status, StatusCode::OK);
        res.json()["backends"]
            .as_array()
            .cloned()
            .expect("backends array")
    }

    /// The names in `GET /admin/backends`, in order.
    pub async fn backend_names(&self) -> Vec<String> {
        self.backends()
            .await
            .iter()
            .map(|b| b["name"].as_str().expect("name").to_owned())
            .collect()
    }

    /// One backend from `GET /admin/backends`.
    pub async fn backend(&self, name: &str) -> Option<Value> {
        self.backends()
            .await
            .into_iter()
            .find(|b| b["name"] == name)
    }

    /// `GET /admin/metrics`' `request_counts`.
    pub async fn request_counts(&self) -> BTreeMap<String, u64> {
        let m = self.admin_get("/admin/metrics").await.json();
        m["request_counts"]
            .as_object()
            .expect("request_counts")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
            .collect()
    }

    /// Polls until backend `name` satisfies `pred` (on its `/admin/backends` entry).
    pub async fn wait_backend(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let pred = &pred;
        eventually(&format!("backend {name}: {what}"), || async move {
            self.backend(name).await.filter(|b| pred(b))
        })
        .await
    }

    /// Rewrites the configuration file (atomically).
    pub fn write_config(&self, toml: &str) {
        write_atomic(
            self.config_path
                .as_deref()
                .expect("started without --config"),
            toml,
        );
    }

    /// Triggers the graceful shutdown (like SIGTERM).
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `rrlb::run` to return (after [`shutdown`](Self::shutdown)).
    pub async fn join(&mut self) -> Result<(), RunError> {
        let task = self.task.take().expect("already joined");
        tokio::time::timeout(HANG, task)
            .await
            .expect("rrlb::run did not return")
            .expect("rrlb::run panicked")
    }
}

// ---------------------------------------------------------------------------------------------------------
// A backend that shows what it received, and can hold requests

/// A hyper backend: `GET /health` is `200`; any other request is answered `200` with
/// `{"method","path","headers":{name:[values]},"body_len"}` and `x-test-backend: 1`, after being held until
/// [`release`] when its path ends in `/hold`. Every request is recorded as `METHOD path?query` ([`received`]).
/// Stopped, with its connections, when dropped.
///
/// [`release`]: TestBackend::release
/// [`received`]: TestBackend::received
pub struct TestBackend {
    addr: SocketAddr,
    gate: watch::Sender<bool>,
    held: watch::Receiver<usize>,
    received: Received,
    task: JoinHandle<()>,
}

/// The requests a [`TestBackend`] received, as `METHOD path?query`, in order; a handle that stays valid after
/// the backend stopped.
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    fn push(&self, request: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request);
    }

    /// Every request so far.
    pub fn list(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestBackend {
    /// Starts on an ephemeral port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test backend");
        Self::on(listener)
    }

    /// Starts on `listener`.
    pub fn on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("addr");
        let (gate, gate_rx) = watch::channel(false);
        let (held_tx, held) = watch::channel(0usize);
        let held_tx = Arc::new(held_tx);
        let received = Received::default();
        let log = received.clone();
        let task = tokio::spawn(async move {
            // Dropped (aborting every connection) when this task is aborted.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                while connections.try_join_next().is_some() {}
                let gate = gate_rx.clone();
                let held = Arc::clone(&held_tx);
                let log = log.clone();
                connections.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let gate = gate.clone();
                        let held = Arc::clone(&held);
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(req, gate, &held, &log).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            gate,
            held,
            received,
            task,
        }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far (and from then on: the handle follows the backend).
    pub fn received(&self) -> Received {
        self.received.clone()
    }

    /// Lets every held request (and every future one) through.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// Waits until `n` requests have arrived at `/hold` in total.
    pub async fn wait_held(&self, n: usize) {
        let mut rx = self.held.clone();
        tokio::time::timeout(HANG, rx.wait_for(|h| *h >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} held requests never arrived"))
            .expect("test backend gone");
    }
}

async fn answer(
    req: Request<Incoming>,
    mut gate: watch::Receiver<bool>,
    held: &watch::Sender<usize>,
    received: &Received,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    received.push(format!("{method} {pq}"));
    let path = req.uri().path().to_owned();
    if path == "/health" {
        return Response::new(Full::new(Bytes::from_static(b"{\"status\":\"ok\"}")));
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let body_len = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    if path.ends_with("/hold") {
        held.send_modify(|h| *h += 1);
        let _ = gate.wait_for(|open| *open).await;
    }
    let body = json!({"method": method, "path": pq, "headers": headers, "body_len": body_len});
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut().insert(
        HeaderName::from_static("x-test-backend"),
        HeaderValue::from_static("1"),
    );
    res
}

// ---------------------------------------------------------------------------------------------------------
// The real binary

/// The `rrlb` binary.
pub fn rrlb_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rrlb"));
    // Nothing from the test's own environment (RRLB_*, RUST_LOG) leaks in.
    cmd.env_clear();
    cmd
}

/// Runs `rrlb args…` to completion (for `--check`, start-up refusals, `--healthcheck`).
pub fn run_rrlb(args: &[&str]) -> std::process::Output {
    rrlb_bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rrlb")
}

/// A running `rrlb` process; killed on drop. Its stderr lines are collected as they come.
pub struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The proxy listener, from the start-up log line.
    pub proxy: SocketAddr,
    /// The admin listener, from the start-up log line.
    pub admin: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Spawns `rrlb args…` and waits for its `rrlb is serving proxy_addr=… admin_addr=…` line.
    pub async fn spawn(args: &[&str]) -> Self {
        let mut child = rrlb_bin()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rrlb");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        let mut p = Self {
            child,
            lines,
            proxy: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = p
            .wait_line("the start-up line", |l| l.contains("rrlb is serving"))
            .await;
        p.proxy = field_addr(&line, "proxy_addr=");
        p.admin = field_addr(&line, "admin_addr=");
        p
    }

    /// Spawns `rrlb --config PATH` with both listeners on `127.0.0.1:0`.
    pub async fn spawn_with_config(path: &Path) -> Self {
        let path = path.to_str().expect("utf-8");
        Self::spawn(&[
            "--config",
            path,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join("\n")
    }

    /// Waits for a stderr line matching `pred`; panics (with the stderr so far) if the process exits first.
    pub async fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        for _ in 0..MAX_POLLS {
            let found = self
                .lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|l| pred(l))
                .cloned();
            if let Some(l) = found {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread drain what is left.
                tokio::time::sleep(POLL).await;
                panic!("rrlb exited ({status}) before {what}:\n{}", self.stderr());
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("no {what} in rrlb's stderr:\n{}", self.stderr());
    }

    /// Sends a signal by name (`TERM`, `HUP`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        for _ in 0..MAX_POLLS {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("rrlb did not exit:\n{}", self.stderr());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The `IP:PORT` after `key` in a log line.
fn field_addr(line: &str, key: &str) -> SocketAddr {
    let rest = line
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {line:?}"));
    let value = rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches('"');
    value
        .parse()
        .unwrap_or_else(|e| panic!("bad address {value:?} in {line:?}: {e}"))
}
