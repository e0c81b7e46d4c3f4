//! Adversarial HTTP/1 on both of rrlb's paths, black-box: backends that misbehave on the wire, and clients that
//! send ambiguous or malformed requests.
//!
//! Every backend-side case runs on the fast path (a raw HTTP/1.1 client) and on the hyper path (a raw HTTP/1.0
//! client, which rrlb hands to hyper's server), each in plaintext and over TLS. A scripted raw backend writes the
//! misbehaviour (extra answers, bytes after a bodiless answer, conflicting framing, malformed heads, broken
//! chunked bodies); after each case the client must have received at most one well-framed final answer, later
//! clients on new connections must each get exactly their own answer (a desynchronised pooled backend connection
//! would hand them someone else's), and the marker `POISON`, which every smuggled byte carries, must never reach a
//! client. Each backend-side case has its own backend and its own rrlb, which runs on a one-thread runtime as each
//! of the binary's per-core workers does: the later clients are served from the pool that holds the case's
//! backend connection, so a poisoned one is always the next one used. Client-side cases check what a recording
//! backend received (or that it received nothing). Cases run a few at a time; failures are collected over the
//! whole table and reported together, each naming its case, its path, and whether TLS was on.
//!
//! TLS (one parameter of the same cases, not copies of them):
//! - Backend-side cases run in four setups: each path with plain TCP on both hops (client to rrlb, rrlb to the
//!   backend), and each path with TLS on both hops: the client over TLS to rrlb's listener (ALPN `http/1.1`; an
//!   HTTP/1.0 client there is hyper's as in plaintext) and the scripted backend serving the same bytes as an
//!   `https://` backend (tokio-rustls, a certificate of the test's CA, which rrlb trusts). So a TLS backend that
//!   leaves bytes on a pooled connection (bytes after a complete answer, written at once or late) is shown never
//!   to reach a later client. Not the whole cross product (TLS on one hop only): it would double the backend-side
//!   cases again (each with its own rrlb and handshakes) for little, as the two hops are separate code in rrlb
//!   (the listener's stream on one side, the upstream pool's on the other), each exercised by every case here.
//! - Over TLS, a body delimited by the close (HTTP/1.0 on the hyper path) is whole only when a close_notify ends
//!   it: a whole one must end with it, one cut short without it.
//! - Every client-side case runs on a plain listener and on a TLS one (its own rrlb and recording backend),
//!   `x-forwarded-proto` being `https` on the TLS one. On the TLS listener the ClientHello-shaped bytes of the
//!   garbage case arrive inside the session: there too, not HTTP, a JSON 400 (plaintext on a TLS port is
//!   `tls.rs`'s).
//!
//! Sources:
//! - RFC 9112 (HTTP/1.1): §2.2 (bare CR, bare LF), §2.3 (version), §3.2 (Host: 400 when missing, repeated or
//!   invalid; empty allowed), §3.2.2 (absolute-form), §4 (status line), §5.1 (no whitespace before the colon),
//!   §5.2 (obs-fold), §6.1 (Transfer-Encoding; 501 for an unknown coding), §6.3 (message body length: CL + TE,
//!   invalid CL, 502 for a proxy that receives an invalid response framing), §7.1 (chunked: size, extensions,
//!   trailer section, overflow), §9.2 (data with no outstanding request is not a valid response), §9.3.2
//!   (pipelining), §11.2 (request smuggling); RFC 9110 §5.5 (no CTLs in field values), §6.5.1 (fields not
//!   allowed in trailers), §7.8 (no unsolicited 101), §8.6 (Content-Length), §9.3.2 (HEAD), §9.3.6 (CONNECT),
//!   §10.1.1 (Expect, 417), §15.3.5 (204), §15.4.5 (304), §15.5.9 (408); RFC 6585 §5 (431).
//! - PortSwigger research by James Kettle: "HTTP Desync Attacks: Request Smuggling Reborn" (2019: CL.TE, TE.CL,
//!   TE.TE with obfuscated `transfer-encoding`), "HTTP/2: The Sequel is Always Worse" (2021: response queue
//!   poisoning, where one extra answer shifts every later one), "Browser-Powered Desync Attacks" (2022).
//! - The HTTP Garden (Kallus, Anantharaman, Locasto, Smith, "The HTTP Garden: Discovering Parsing
//!   Vulnerabilities in HTTP/1.1 Implementations by Differential Fuzzing of Request Streams", arXiv:2405.17737,
//!   and github.com/narfindustries/http-garden): bare LF in chunk lines and trailers, chunk-size integer
//!   overflow, whitespace before the colon, obs-fold, control characters in field values, forbidden trailer
//!   fields, `transfer-encoding` lists that do not end in `chunked`.
//!
//! Not observable black-box in plaintext (so not asserted there): on the hyper path an HTTP/1.0 client gets a
//! streamed body delimited by the close, so a body cut short by rrlb cannot be told from a whole one; those cases
//! check only that what arrived is a prefix of the valid part and carries no smuggled byte (over TLS, also the
//! missing close_notify, above).

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use support::scripted::{RawBackend, RawRequest, chunked, long_body, read_request};
use support::tls::{Pair, Pki};
use support::wire::{Answer, Conn, Head, Read, WAIT, describe, parse_head, show};
use support::*;

/// What every smuggled or refused byte sequence carries; no client may ever receive it.
const MARKER: &[u8] = b"POISON";
/// Cases run at once (each with its own rrlb and backend), so that hanging cases cost one `WAIT`, not one each.
const PARALLEL: usize = 8;
/// Later clients after every backend-side case, each on a new connection.
const LATER_CLIENTS: usize = 3;

// ---------------------------------------------------------------------------------------------------------
// Running a table of cases

type CaseFuture = Pin<Box<dyn Future<Output = Vec<String>> + Send>>;

/// A task aborted when dropped.
struct Task<T>(JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn case(
    name: impl Into<String>,
    f: impl Future<Output = Vec<String>> + Send + 'static,
) -> (String, CaseFuture) {
    (name.into(), Box::pin(f))
}

/// Runs every case (a few at a time), collects every failure (a case's own list, or its panic), and fails with
/// the whole list.
async fn run_all(what: &str, cases: Vec<(String, CaseFuture)>) {
    let total = cases.len();
    let limit = Arc::new(Semaphore::new(PARALLEL));
    let mut set = JoinSet::new();
    for (name, f) in cases {
        let limit = Arc::clone(&limit);
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut task = Task(tokio::spawn(f));
            let outcome = match (&mut task.0).await {
                Ok(failures) => failures,
                Err(e) => vec![format!("panicked: {}", panic_text(e))],
            };
            (name, outcome)
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = set.join_next().await {
        let (name, outcome) = done.expect("a case runner panicked");
        failures.extend(outcome.into_iter().map(|f| format!("{name}: {f}")));
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{what}: {} failure(s) in {total} case(s):\n  - {}",
        failures.len(),
        failures.join("\n  - ")
    );
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(no message)".to_owned()),
        Err(e) => e.to_string(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A failure when `MARKER` is in `seen` (all a case's clients received).
fn no_marker(seen: &[u8]) -> Option<String> {
    find(seen, MARKER).map(|at| {
        let from = at.saturating_sub(120);
        let to = (at + 60).min(seen.len());
        format!("POISON reached a client: …{}…", show(&seen[from..to]))
    })
}

// ---------------------------------------------------------------------------------------------------------
// The two paths, plain or TLS, and a raw client

/// How a client reaches rrlb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// HTTP/1.1: the fast path.
    Http11,
    /// HTTP/1.0: handed to hyper's server.
    Http10,
}

const WIRES: [Wire; 2] = [Wire::Http11, Wire::Http10];

impl Wire {
    fn name(self) -> &'static str {
        match self {
            Wire::Http11 => "fast path, HTTP/1.1",
            Wire::Http10 => "hyper path, HTTP/1.0",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Wire::Http11 => "HTTP/1.1",
            Wire::Http10 => "HTTP/1.0",
        }
    }

    /// `METHOD path VERSION`, `host: a`, no body.
    fn request(self, method: &str, path: &str) -> Vec<u8> {
        format!("{method} {path} {}\r\nhost: a\r\n\r\n", self.version()).into_bytes()
    }

    /// What keeps an HTTP/1.0 connection open for a pipelined request (nothing on HTTP/1.1).
    fn keep_alive(self) -> &'static str {
        match self {
            Wire::Http11 => "",
            Wire::Http10 => "connection: keep-alive\r\n",
        }
    }
}

/// Whether a hop (a client's connection to rrlb, or rrlb's to its backend) is plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Plain,
    Tls,
}

const LINKS: [Link; 2] = [Link::Plain, Link::Tls];

impl Link {
    /// The `x-forwarded-proto` rrlb sets for a client on this link, and the other value (a spoofed one).
    fn protos(self) -> (&'static str, &'static str) {
        match self {
            Link::Plain => ("http", "https"),
            Link::Tls => ("https", "http"),
        }
    }
}

/// How a client reaches rrlb: the path (by its HTTP version), over plain TCP or over TLS (ALPN `http/1.1`: an
/// HTTP/1.1 client is the fast path's, an HTTP/1.0 one hyper's, as on a plain listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Client {
    wire: Wire,
    link: Link,
}

impl Client {
    fn name(self) -> String {
        let link = match self.link {
            Link::Plain => "plain TCP",
            Link::Tls => "TLS",
        };
        format!("{}, {link}", self.wire.name())
    }
}

/// The certificates of a test: a private CA, and one certificate for `127.0.0.1` and `localhost` that rrlb's
/// TLS listener and every `https://` backend serve (rrlb verifies a backend's against the IP address in its
/// URL, a client rrlb's against `localhost`). Its files are removed when dropped.
struct Certs {
    pki: Pki,
    server: Pair,
}

impl Certs {
    fn new() -> Arc<Self> {
        let pki = Pki::new();
        let server = pki.issue(&["127.0.0.1", "localhost"]);
        Arc::new(Self { pki, server })
    }

    /// rrlb's configuration for `link` as its listener (the `[tls]` table, or nothing for plain TCP).
    fn listener_toml(&self, link: Link) -> String {
        match link {
            Link::Plain => String::new(),
            Link::Tls => format!(
                "[tls]\ncert = {:?}\nkey = {:?}\n",
                self.server.cert_file.display().to_string(),
                self.server.key_file.display().to_string()
            ),
        }
    }

    /// rrlb's configuration for `link` to its backends (`[upstream_tls]` trusting the CA, or nothing).
    fn upstream_toml(&self, link: Link) -> String {
        match link {
            Link::Plain => String::new(),
            Link::Tls => format!(
                "[upstream_tls]\nca = {:?}\n",
                self.pki.ca_file.display().to_string()
            ),
        }
    }

    /// A new client connection to rrlb at `proxy` over `link` (over TLS: a fresh session, ALPN `http/1.1`).
    async fn open(&self, proxy: SocketAddr, link: Link) -> Conn {
        match link {
            Link::Plain => Conn::open(proxy).await,
            Link::Tls => {
                let config = self.pki.client_config(&["http/1.1"], None);
                Conn::new(
                    support::tls::connect(proxy, "localhost", config).await,
                    WAIT,
                )
            }
        }
    }
}

/// rrlb's JSON error: the status, `content-type: application/json`, `{"error": non-empty, "request_id": the
/// x-request-id header}`.
fn json_error(a: &Answer, status: u16) -> Result<(), String> {
    if a.status != status {
        return Err(format!("expected {status}, got {}", a.describe()));
    }
    if a.header("content-type").as_deref() != Some("application/json") {
        return Err(format!("not rrlb's JSON error: {}", a.describe()));
    }
    let body: Value = serde_json::from_slice(&a.body)
        .map_err(|e| format!("the body is not JSON ({e}): {}", a.describe()))?;
    let error_ok = body["error"].as_str().is_some_and(|e| !e.is_empty());
    let id = body["request_id"].as_str().unwrap_or_default();
    if !error_ok || id.is_empty() || a.header("x-request-id").as_deref() != Some(id) {
        return Err(format!(
            "not rrlb's JSON error (error, request_id = x-request-id): {}",
            a.describe()
        ));
    }
    Ok(())
}

/// An answer with rrlb's JSON error `status`.
fn expect_json(r: &Read, status: u16) -> Result<(), String> {
    match r {
        Read::Answer(a) => json_error(a, status),
        other => Err(format!(
            "expected rrlb's JSON {status}, got {}",
            describe(other)
        )),
    }
}

/// An answer with `status` (any body).
fn expect_status(r: &Read, status: u16) -> Result<&Answer, String> {
    match r {
        Read::Answer(a) if a.status == status => Ok(a),
        other => Err(format!("expected {status}, got {}", describe(other))),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The scripted backend

/// One step of a scripted answer.
#[derive(Debug, Clone)]
enum Step {
    Write(Vec<u8>),
    /// Waits until the test has its client's answer (`Scripted::late_bytes_written`).
    AwaitGo,
    /// Tells the test that everything before was written.
    Signal,
    /// Closes the connection.
    Close,
}

/// A raw backend (plain TCP, or raw bytes over TLS: an `https://` backend): `/health` and `/good/…` are answered
/// properly (`x-path` and body `good <path>`), a request for `/case/…` runs the script; the connection then
/// serves the next request unless the script closed it. Stopped (with its connections) when dropped.
struct Scripted {
    backend: RawBackend,
    go: Arc<Notify>,
    written: mpsc::UnboundedReceiver<()>,
}

impl Scripted {
    /// Over TLS it serves `certs`' certificate.
    async fn start(script: Vec<Step>, link: Link, certs: &Certs) -> Self {
        let go = Arc::new(Notify::new());
        let (tx, written) = mpsc::unbounded_channel();
        let script = Arc::new(script);
        let notify = Arc::clone(&go);
        // With Nagle's algorithm a small write waits in the backend's kernel while an earlier one is not yet
        // acknowledged, and rrlb's side may delay that acknowledgement until it sends again: bytes the script
        // wrote late would then reach rrlb only after its next request, as that request's answer (seen over
        // TLS, whose handshake leaves the connection delaying its acknowledgements). No proxy can tell those
        // from a real answer, so every write is sent at once: what the script wrote is on rrlb's socket by the
        // time it signals.
        let backend = match link {
            Link::Plain => {
                RawBackend::start(move |stream| {
                    let _ = stream.set_nodelay(true);
                    serve_script(stream, Arc::clone(&script), Arc::clone(&notify), tx.clone())
                })
                .await
            }
            Link::Tls => {
                RawBackend::start_tls(&certs.server, move |stream| {
                    let _ = stream.get_ref().0.set_nodelay(true);
                    serve_script(stream, Arc::clone(&script), Arc::clone(&notify), tx.clone())
                })
                .await
            }
        };
        Self {
            backend,
            go,
            written,
        }
    }

    fn url(&self) -> String {
        self.backend.url()
    }

    /// Lets the script go on past its `AwaitGo`, and waits for its `Signal`; `false` if it never came.
    async fn late_bytes_written(&mut self) -> bool {
        self.go.notify_one();
        matches!(
            tokio::time::timeout(WAIT, self.written.recv()).await,
            Ok(Some(()))
        )
    }
}

/// A good answer for `path`.
fn good(path: &str) -> Vec<u8> {
    let body = format!("good {path}");
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-path: {path}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes `bytes` and flushes them (TLS holds what is written until flushed); `false` when rrlb went away.
async fn put<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> bool {
    stream.write_all(bytes).await.is_ok() && stream.flush().await.is_ok()
}

async fn serve_script<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    script: Arc<Vec<Step>>,
    go: Arc<Notify>,
    written: mpsc::UnboundedSender<()>,
) {
    let mut buf = Vec::new();
    while let Some(RawRequest { path, .. }) = read_request(&mut stream, &mut buf).await {
        let answer = if path == "/health" {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec()
        } else if path.starts_with("/good/") {
            good(&path)
        } else if path.starts_with("/case/") {
            for step in script.iter() {
                match step {
                    // A write error (rrlb went away) shows as the end of the next read.
                    Step::Write(bytes) => {
                        put(&mut stream, bytes).await;
                    }
                    Step::AwaitGo => go.notified().await,
                    Step::Signal => {
                        let _ = written.send(());
                    }
                    // A clean close: over TLS with its close_notify, so that an answer delimited by the close
                    // is whole (without it, rustls reports a truncation).
                    Step::Close => {
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            }
            continue;
        } else {
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nx-path: {path}\r\n\r\n")
                .into_bytes()
        };
        if !put(&mut stream, &answer).await {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Backend-side cases

/// What the client of a backend-side case must get.
#[derive(Debug, Clone)]
enum Expect {
    /// Exactly this status and body.
    Answer { status: u16, body: Vec<u8> },
    /// rrlb's JSON 502, and nothing of the backend's answer (its heads carry `x-scripted: bad`).
    BadGateway,
    /// rrlb's JSON 502, or the backend's 200 cut short and the connection closed, with a body that is a prefix
    /// of `valid` (the part before the error).
    BadGatewayOrCut { valid: &'static [u8] },
}

struct Case {
    name: &'static str,
    method: &'static str,
    script: Vec<Step>,
    expect: Expect,
}

impl Case {
    fn late(&self) -> bool {
        self.script.iter().any(|s| matches!(s, Step::AwaitGo))
    }
}

fn w(bytes: impl AsRef<[u8]>) -> Step {
    Step::Write(bytes.as_ref().to_vec())
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A complete second answer, as a smuggler would plant it.
const SMUGGLED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON";
const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const CHUNKED_HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

fn ok(status: u16, body: &[u8]) -> Expect {
    Expect::Answer {
        status,
        body: body.to_vec(),
    }
}

fn get(name: &'static str, script: Vec<Step>, expect: Expect) -> Case {
    Case {
        name,
        method: "GET",
        script,
        expect,
    }
}

/// rrlb's header-read timeout in these tests: far above `WAIT`, so that a connection rrlb should have closed but
/// left open is seen open (its idle head timeout would otherwise close it at the moment the test gives up).
const HEADER_READ: &str = "header_read = \"60s\"\n";

/// How a backend-side case runs: its client, and rrlb's hop to the scripted backend.
#[derive(Debug, Clone, Copy)]
struct Setup {
    client: Client,
    backend: Link,
}

impl Setup {
    fn name(self) -> String {
        let backend = match self.backend {
            Link::Plain => "http backend",
            Link::Tls => "https backend",
        };
        format!("{}, {backend}", self.client.name())
    }
}

/// The setups every backend-side case runs in: each path in plaintext, and each path with TLS on both hops
/// (not the whole cross product; see the module doc).
const SETUPS: [Setup; 4] = [
    on_both_hops(Wire::Http11, Link::Plain),
    on_both_hops(Wire::Http10, Link::Plain),
    on_both_hops(Wire::Http11, Link::Tls),
    on_both_hops(Wire::Http10, Link::Tls),
];

/// `wire`, with `link` for the client's hop and for rrlb's to the backend.
const fn on_both_hops(wire: Wire, link: Link) -> Setup {
    Setup {
        client: Client { wire, link },
        backend: link,
    }
}

/// The rrlb configuration for one backend-side case: the scripted backend alone, no active health checks, and
/// the TLS of `setup`.
fn one_backend(url: &str, setup: Setup, certs: &Certs) -> String {
    format!(
        "{}[health]\nenabled = false\n[timeouts]\n{HEADER_READ}{}{}",
        backends_toml(&[("s", url, 1)]),
        certs.listener_toml(setup.client.link),
        certs.upstream_toml(setup.backend),
    )
}

/// rrlb (a [`Harness`]) on a runtime of its own with one thread, as each of the binary's per-core workers is: a
/// client connection, and the backend connections it uses, stay on one thread with one pool, so that a backend
/// connection left desynchronised by a case is the one the next request gets. (On the tests' two-thread runtime
/// a later request would reuse it only when served on the same thread as the case: a toss-up.) Stopped, with
/// all of rrlb's tasks, when dropped.
struct OneThread {
    proxy: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for OneThread {
    fn drop(&mut self) {
        // The thread then drops its runtime, and every task of rrlb with it.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl OneThread {
    async fn start(toml: String) -> Self {
        let (started, proxy) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for rrlb");
            runtime.block_on(async move {
                let h = Harness::builder().file(toml).start().await;
                let _ = started.send(h.proxy);
                let _ = stopped.await;
                drop(h);
            });
        });
        let proxy = tokio::time::timeout(WAIT, proxy)
            .await
            .expect("rrlb started in time")
            .expect("rrlb started (see its panic above)");
        Self {
            proxy,
            stop: Some(stop),
        }
    }
}

/// Checks the first answer of a case against its expectation. `close_notify`, for a client over TLS, is whether
/// its connection ended with a TLS close_notify (looked at only after an answer delimited by the close, which
/// was read to that end).
fn check_first(
    expect: &Expect,
    read: &Read,
    wire: Wire,
    close_notify: Option<bool>,
) -> Result<(), String> {
    match (expect, read) {
        (Expect::Answer { status, body }, Read::Answer(a))
            if a.status == *status && a.body == *body =>
        {
            // Over TLS a body delimited by the close is whole only when the close_notify came (RFC 9112 §9.8).
            if a.until_close && close_notify == Some(false) {
                Err(format!(
                    "the answer's body ended at a close without a TLS close_notify, which a client must take \
                     for a truncation: {}",
                    a.describe()
                ))
            } else {
                Ok(())
            }
        }
        (Expect::Answer { status, body }, other) => Err(format!(
            "expected {status} with body {}, got {}",
            show(body),
            describe(other)
        )),
        (Expect::BadGateway, Read::Answer(a)) => {
            json_error(a, 502)?;
            match a.header("x-scripted") {
                Some(_) => Err(format!(
                    "a header of the bad answer was relayed: {}",
                    a.describe()
                )),
                None => Ok(()),
            }
        }
        (Expect::BadGateway, other) => {
            Err(format!("expected rrlb's JSON 502, got {}", describe(other)))
        }
        (Expect::BadGatewayOrCut { .. }, Read::Answer(a)) if a.status == 502 => json_error(a, 502),
        // On HTTP/1.0 a streamed body ends at the close: cut short or not, it looks the same in plaintext. Over
        // TLS the close tells: a body cut short must end without a close_notify, or the client takes the part
        // for the whole.
        (Expect::BadGatewayOrCut { valid }, Read::Answer(a))
            if wire == Wire::Http10
                && a.status == 200
                && a.until_close
                && valid.starts_with(&a.body) =>
        {
            if close_notify == Some(true) {
                Err(format!(
                    "a body cut short ended with a TLS close_notify, as if it were whole: {}",
                    a.describe()
                ))
            } else {
                Ok(())
            }
        }
        (
            Expect::BadGatewayOrCut { valid },
            Read::Truncated {
                answer: Some(a), ..
            },
        ) if a.status == 200 && valid.starts_with(&a.body) => Ok(()),
        (Expect::BadGatewayOrCut { valid }, other) => Err(format!(
            "expected rrlb's JSON 502, or a 200 cut short (body a prefix of {}) and the connection closed; got {}",
            show(valid),
            describe(other)
        )),
    }
}

/// A later client's `GET path` got exactly its own answer.
fn check_good(r: &Read, path: &str) -> Result<(), String> {
    match r {
        Read::Answer(a)
            if a.status == 200
                && a.header("x-path").as_deref() == Some(path)
                && a.body == format!("good {path}").as_bytes() =>
        {
            Ok(())
        }
        other => Err(format!(
            "expected its own answer (200, x-path: {path}, body \"good {path}\"), got {}",
            describe(other)
        )),
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// One backend-side case in one setup: its own backend and rrlb, the client's exchange, the invariants.
async fn backend_case(case: Arc<Case>, setup: Setup, certs: Arc<Certs>) -> Vec<String> {
    let mut failures = Vec::new();
    let wire = setup.client.wire;
    let mut backend = Scripted::start(case.script.clone(), setup.backend, &certs).await;
    let rrlb = OneThread::start(one_backend(&backend.url(), setup, &certs)).await;
    let path = format!("/case/{}", slug(case.name));
    let mut seen = Vec::new();

    let mut conn = certs.open(rrlb.proxy, setup.client.link).await;
    conn.send(&wire.request(case.method, &path)).await;
    let first = conn.answer(case.method == "HEAD").await;
    let close_notify = (setup.client.link == Link::Tls).then(|| conn.error().is_none());
    if let Err(e) = check_first(&case.expect, &first, wire, close_notify) {
        failures.push(format!("the answer: {e}"));
    }
    if case.late() && !backend.late_bytes_written().await {
        failures.push("the backend never wrote its late bytes".to_owned());
    }
    // (a) Nothing on the client's connection but that one answer: on HTTP/1.1 the next request there gets its
    // own answer (or the connection ends); otherwise the connection ends after it.
    match &first {
        Read::Answer(a) if wire == Wire::Http11 && !a.closes() && !a.until_close => {
            conn.send(&wire.request("GET", "/good/0")).await;
            match conn.answer(false).await {
                Read::Closed => {}
                other => {
                    if let Err(e) = check_good(&other, "/good/0") {
                        failures.push(format!("the next request on the same connection: {e}"));
                    }
                }
            }
        }
        Read::Answer(_) | Read::Truncated { .. } => {
            if let Some(e) = conn.must_close().await {
                failures.push(e);
            }
        }
        Read::Closed | Read::Malformed(_) | Read::Hang(_) => {}
    }
    seen.extend_from_slice(&conn.seen);
    // (b) Later clients on new connections get exactly their own answers (rrlb serves them on the thread whose
    // pool holds the backend connection of the case, which they reuse when it was pooled).
    for i in 1..=LATER_CLIENTS {
        let p = format!("/good/{i}");
        let mut c = certs.open(rrlb.proxy, setup.client.link).await;
        c.send(&wire.request("GET", &p)).await;
        let r = c.answer(false).await;
        if let Err(e) = check_good(&r, &p) {
            failures.push(format!("a later client's {p}: {e}"));
        }
        seen.extend_from_slice(&c.seen);
    }
    // (c) No smuggled byte reached anyone.
    failures.extend(no_marker(&seen));
    drop(rrlb);
    failures
}

async fn run_backend_cases(what: &str, cases: Vec<Case>) {
    let certs = Certs::new();
    let mut all = Vec::new();
    for c in cases {
        let c = Arc::new(c);
        for setup in SETUPS {
            all.push(case(
                format!("{} [{}]", c.name, setup.name()),
                backend_case(Arc::clone(&c), setup, Arc::clone(&certs)),
            ));
        }
    }
    run_all(what, all).await;
}

/// Cases 1–4: bytes after a complete answer (an unsolicited second answer, bytes after a chunked answer's end, a
/// body after a bodiless answer), immediately and late; and an unsolicited 101.
fn after_answer_cases() -> Vec<Case> {
    let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
    vec![
        get(
            "unsolicited second answer, written late",
            vec![w(HELLO), Step::AwaitGo, w(SMUGGLED), Step::Signal],
            ok(200, b"hello"),
        ),
        get(
            "unsolicited second answer, in the same write",
            vec![w(cat(&[HELLO, SMUGGLED]))],
            ok(200, b"hello"),
        ),
        get(
            "bytes after a chunked answer, in the same write",
            vec![w(cat(&[CHUNKED_HELLO, SMUGGLED]))],
            ok(200, b"hello"),
        ),
        get(
            "bytes after a chunked answer, written late",
            vec![w(CHUNKED_HELLO), Step::AwaitGo, w(SMUGGLED), Step::Signal],
            ok(200, b"hello"),
        ),
        get(
            "an answer after a 204",
            vec![w(cat(&[no_content, SMUGGLED]))],
            ok(204, b""),
        ),
        get(
            "a body after a 204 with a content-length",
            vec![w(b"HTTP/1.1 204 No Content\r\ncontent-length: 6\r\n\r\nPOISON")],
            ok(204, b""),
        ),
        get(
            "a body after a 304",
            vec![w(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 6\r\n\r\nPOISON")],
            ok(304, b""),
        ),
        get(
            "an answer after a 304",
            vec![w(cat(&[b"HTTP/1.1 304 Not Modified\r\n\r\n", SMUGGLED]))],
            ok(304, b""),
        ),
        Case {
            name: "a body after an answer to HEAD",
            method: "HEAD",
            script: vec![w(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON")],
            expect: ok(200, b""),
        },
        Case {
            name: "a chunked body after an answer to HEAD",
            method: "HEAD",
            script: vec![w(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nPOISON\r\n0\r\n\r\n",
            )],
            expect: ok(200, b""),
        },
        Case {
            name: "an answer after an answer to HEAD, written late",
            method: "HEAD",
            script: vec![
                w(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"),
                Step::AwaitGo,
                w(SMUGGLED),
                Step::Signal,
            ],
            expect: ok(200, b""),
        },
        get(
            "an unsolicited 101 Switching Protocols",
            vec![w(cat(&[
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: foo\r\nx-scripted: bad\r\n\r\n",
                SMUGGLED,
            ]))],
            Expect::BadGateway,
        ),
    ]
}

/// A bad answer head (marked `x-scripted: bad`) followed by `rest`; the connection stays open.
fn bad(head: &str, rest: &[u8]) -> Vec<Step> {
    vec![w(cat(&[head.as_bytes(), rest]))]
}

/// Case 5: conflicting or repeated framing in an answer.
fn framing_cases() -> Vec<Case> {
    // Under content-length the body is `0\r\n\r\n`, under chunked it is empty: either way an answer follows.
    let cl_te_body = cat(&[b"0\r\n\r\n", SMUGGLED]);
    let chunked_poison = cat(&[b"6\r\nPOISON\r\n0\r\n\r\n", SMUGGLED]);
    let poison = cat(&[b"POISON", SMUGGLED]);
    vec![
        get(
            "content-length then transfer-encoding: chunked",
            bad(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\nx-scripted: bad\r\n\r\n",
                &cl_te_body,
            ),
            Expect::BadGateway,
        ),
        get(
            "transfer-encoding: chunked then content-length",
            bad(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\nx-scripted: bad\r\n\r\n",
                &cl_te_body,
            ),
            Expect::BadGateway,
        ),
        get(
            "content-length, and transfer-encoding: chunked as the head's last line",
            bad(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-scripted: bad\r\nx-a: 1\r\nx-b: 2\r\nx-c: 3\r\ntransfer-encoding: chunked\r\n\r\n",
                &cl_te_body,
            ),
            Expect::BadGateway,
        ),
        get(
            "two equal content-length headers",
            bad(
                "HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
                &poison,
            ),
            Expect::BadGateway,
        ),
        get(
            "two different content-length headers",
            bad(
                "HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncontent-length: 0\r\nx-scripted: bad\r\n\r\n",
                &poison,
            ),
            Expect::BadGateway,
        ),
        get(
            "content-length: 6, 6",
            bad(
                "HTTP/1.1 200 OK\r\ncontent-length: 6, 6\r\nx-scripted: bad\r\n\r\n",
                &poison,
            ),
            Expect::BadGateway,
        ),
        get(
            "content-length: +6",
            bad(
                "HTTP/1.1 200 OK\r\ncontent-length: +6\r\nx-scripted: bad\r\n\r\n",
                &poison,
            ),
            Expect::BadGateway,
        ),
        get(
            "transfer-encoding: gzip, chunked",
            bad(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\nx-scripted: bad\r\n\r\n",
                &chunked_poison,
            ),
            Expect::BadGateway,
        ),
        Case {
            name: "transfer-encoding: identity",
            method: "GET",
            // Read until the close, leniently: closed at once, so that a lenient rrlb relays it without waiting.
            script: vec![
                w(cat(&[
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\nx-scripted: bad\r\n\r\n",
                    &poison,
                ])),
                Step::Close,
            ],
            expect: Expect::BadGateway,
        },
        get(
            "transfer-encoding: chunked on two lines",
            bad(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\nx-scripted: bad\r\n\r\n",
                &chunked_poison,
            ),
            Expect::BadGateway,
        ),
        get(
            "transfer-encoding: chunked, chunked",
            bad(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, chunked\r\nx-scripted: bad\r\n\r\n",
                &chunked_poison,
            ),
            Expect::BadGateway,
        ),
    ]
}

/// Case 6: malformed answer heads (each with a `POISON` body and a smuggled answer after it).
fn bad_head_cases() -> Vec<Case> {
    let poison = cat(&[b"POISON", SMUGGLED]);
    let heads: [(&'static str, &str); 13] = [
        (
            "bare LF line endings",
            "HTTP/1.1 200 OK\ncontent-length: 6\nx-scripted: bad\n\n",
        ),
        (
            "a bare CR inside a header line",
            "HTTP/1.1 200 OK\r\nx-a: a\rb\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "a \\x01 in a header value",
            "HTTP/1.1 200 OK\r\nx-a: a\x01b\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "a \\x7f in a header value",
            "HTTP/1.1 200 OK\r\nx-a: a\x7fb\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "obs-fold",
            "HTTP/1.1 200 OK\r\nx-a: a\r\n folded\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "status 099",
            "HTTP/1.1 099 Nope\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "status 600",
            "HTTP/1.1 600 Nope\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "status 999",
            "HTTP/1.1 999 Nope\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "HTTP/1.2 status line",
            "HTTP/1.2 200 OK\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "HTTP/2.0 status line",
            "HTTP/2.0 200 OK\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "a space before the colon",
            "HTTP/1.1 200 OK\r\nx-a : 1\r\ncontent-length: 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "a space before content-length's colon",
            "HTTP/1.1 200 OK\r\ncontent-length : 6\r\nx-scripted: bad\r\n\r\n",
        ),
        (
            "a space before transfer-encoding's colon",
            "HTTP/1.1 200 OK\r\ncontent-length: 6\r\ntransfer-encoding : chunked\r\nx-scripted: bad\r\n\r\n",
        ),
    ];
    heads
        .into_iter()
        .map(|(name, head)| get(name, bad(head, &poison), Expect::BadGateway))
        .collect()
}

/// Case 7: chunked bodies that go wrong (each trying to smuggle an answer after the bad bytes).
fn chunked_error_cases() -> Vec<Case> {
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let bodies: [(&'static str, &[u8], &'static [u8]); 10] = [
        ("a bare-LF chunk-size line", b"5\nhello\r\n0\r\n\r\n", b""),
        (
            "a chunk extension ending in a bare LF",
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"",
        ),
        (
            "an invalid hex chunk size",
            b"5\r\nhello\r\nzz\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
        (
            "a chunk size overflowing 64 bits",
            b"10000000000000005\r\nhello\r\n0\r\n\r\n",
            b"",
        ),
        (
            "a control character in a trailer",
            b"5\r\nhello\r\n0\r\nx-t: a\x01b\r\n\r\n",
            b"hello",
        ),
        (
            "a content-length trailer",
            b"5\r\nhello\r\n0\r\ncontent-length: 6\r\n\r\n",
            b"hello",
        ),
        (
            "a transfer-encoding trailer",
            b"5\r\nhello\r\n0\r\ntransfer-encoding: chunked\r\n\r\n",
            b"hello",
        ),
        (
            "a host trailer",
            b"5\r\nhello\r\n0\r\nhost: evil\r\n\r\n",
            b"hello",
        ),
        (
            "a trailer line ending in a bare LF",
            b"5\r\nhello\r\n0\r\nx-t: a\n\r\n",
            b"hello",
        ),
        (
            "chunk data longer than its size",
            b"3\r\nhello\r\n0\r\n\r\n",
            b"hel",
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, body, valid)| {
            get(
                name,
                bad(head, &cat(&[body, SMUGGLED])),
                Expect::BadGatewayOrCut { valid },
            )
        })
        .collect()
}

/// Case 8: answers that are fine and must still work.
fn control_cases() -> Vec<Case> {
    let long_chunked = cat(&[
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        &chunked(&long_body(), 64 * 1024),
    ]);
    vec![
        get(
            "100 Continue before a 200",
            vec![w(cat(&[b"HTTP/1.1 100 Continue\r\n\r\n", HELLO]))],
            ok(200, b"hello"),
        ),
        get(
            "103 Early Hints before a 200",
            vec![w(cat(&[
                b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n",
                HELLO,
            ]))],
            ok(200, b"hello"),
        ),
        get(
            "an HTTP/1.0 answer until the close",
            vec![
                w(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello until the close"),
                Step::Close,
            ],
            ok(200, b"hello until the close"),
        ),
        get(
            "a chunked answer with extensions and a trailer",
            vec![w(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-trailer\r\n\r\n5;name=value\r\nhello\r\n6;x=\"q\";y\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
            )],
            ok(200, b"hello world"),
        ),
        get(
            "a 1 MiB chunked answer",
            vec![w(long_chunked)],
            Expect::Answer {
                status: 200,
                body: long_body(),
            },
        ),
    ]
}

/// Backend cases 1–4: whatever a backend sends after a complete answer (or instead of one it may not send) never
/// reaches a client, and never shifts the answers of later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_complete_answer_never_reach_a_client() {
    run_backend_cases("bytes after a complete answer", after_answer_cases()).await;
}

/// Backend case 5: an answer whose framing is ambiguous is refused with rrlb's 502, none of it relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_ambiguous_framing_get_a_502() {
    run_backend_cases("ambiguous answer framing", framing_cases()).await;
}

/// Backend case 6: an answer head that is not valid HTTP/1.1 is refused with rrlb's 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answer_heads_get_a_502() {
    run_backend_cases("malformed answer heads", bad_head_cases()).await;
}

/// Backend case 7: a chunked body that goes wrong is refused (502) or cut short with the connection closed; what
/// follows the bad bytes never becomes an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_chunked_answers_are_refused_or_cut() {
    run_backend_cases("broken chunked answers", chunked_error_cases()).await;
}

/// Backend case 8: interim answers, an HTTP/1.0 answer, chunk extensions and trailers, a long chunked body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_unusual_answers_still_work() {
    run_backend_cases("well-formed unusual answers", control_cases()).await;
}

// ---------------------------------------------------------------------------------------------------------
// Client-side cases: a backend that records what reaches it

/// rrlb, its listener plain or TLS, in front of a [`TestBackend`], which records what reaches it; `timeouts` are
/// more lines for the `[timeouts]` table.
struct Env {
    proxy: SocketAddr,
    link: Link,
    certs: Arc<Certs>,
    seen: Received,
    _h: Harness,
    _rec: TestBackend,
}

impl Env {
    async fn start(timeouts: &str, link: Link, certs: &Arc<Certs>) -> Self {
        let rec = TestBackend::start().await;
        let toml = format!(
            "{}[health]\nenabled = false\n[limits]\nmax_body_bytes = 1024\n[timeouts]\n{HEADER_READ}{timeouts}{}",
            backends_toml(&[("t", &rec.url(), 1)]),
            certs.listener_toml(link),
        );
        let h = Harness::builder().file(toml).start().await;
        Self {
            proxy: h.proxy,
            link,
            certs: Arc::clone(certs),
            seen: rec.received(),
            _h: h,
            _rec: rec,
        }
    }

    /// One for each of [`LINKS`] (a plain listener, a TLS one), each with its own backend.
    async fn each_link(timeouts: &str) -> Vec<Self> {
        let certs = Certs::new();
        let mut envs = Vec::new();
        for link in LINKS {
            envs.push(Self::start(timeouts, link, &certs).await);
        }
        envs
    }

    /// A client of this rrlb on `wire`.
    fn client(&self, wire: Wire) -> Client {
        Client {
            wire,
            link: self.link,
        }
    }

    fn probe(&self) -> Probe {
        Probe {
            proxy: self.proxy,
            link: self.link,
            certs: Arc::clone(&self.certs),
            seen: self.seen.clone(),
        }
    }
}

/// Each path on each of `envs`' listeners.
fn each_client(envs: &[Env]) -> impl Iterator<Item = (&Env, Wire)> {
    envs.iter().flat_map(|env| WIRES.map(|wire| (env, wire)))
}

/// What a client-side case needs: where rrlb is and how to reach it, and what reached the backend.
#[derive(Clone)]
struct Probe {
    proxy: SocketAddr,
    link: Link,
    certs: Arc<Certs>,
    seen: Received,
}

impl Probe {
    /// A new connection to rrlb.
    async fn open(&self) -> Conn {
        self.certs.open(self.proxy, self.link).await
    }

    /// Sends `raw` on a new connection and reads one answer.
    async fn ask(&self, raw: &[u8]) -> (Read, Conn) {
        let mut conn = self.open().await;
        conn.send(raw).await;
        let r = conn.answer(false).await;
        (r, conn)
    }

    /// A failure for each recorded request whose path starts with one of `paths`.
    fn never(&self, paths: &[&str]) -> Vec<String> {
        let seen = self.seen.list();
        seen.iter()
            .filter(|r| {
                let path = r.split_once(' ').map(|(_, p)| p).unwrap_or_default();
                paths.iter().any(|p| path.starts_with(p))
            })
            .map(|r| format!("the backend received {r:?}"))
            .collect()
    }

    /// A refusal: the answer is `status` (rrlb's JSON error when `json`), then (when `close`) the connection ends
    /// with nothing after it, and none of `never` reached the backend.
    async fn refused(
        &self,
        raw: Vec<u8>,
        status: u16,
        json: bool,
        close: bool,
        never: &[&str],
    ) -> Vec<String> {
        let (r, mut conn) = self.ask(&raw).await;
        let mut failures = Vec::new();
        let checked = if json {
            expect_json(&r, status)
        } else {
            expect_status(&r, status).map(|_| ())
        };
        if let Err(e) = checked {
            failures.push(e);
        }
        if close && matches!(r, Read::Answer(_)) {
            failures.extend(conn.must_close().await);
        }
        failures.extend(self.never(never));
        failures
    }
}

/// The backend's view of a request (the recorder's JSON), from an answer that came from it.
fn backend_view(r: &Read) -> Result<Value, String> {
    match r {
        Read::Answer(a)
            if a.status == 200 && a.header("x-test-backend").as_deref() == Some("1") =>
        {
            serde_json::from_slice(&a.body).map_err(|e| format!("backend JSON: {e}"))
        }
        other => Err(format!(
            "expected the backend's 200, got {}",
            describe(other)
        )),
    }
}

/// The values of header `name` the backend received.
fn values(view: &Value, name: &str) -> Vec<String> {
    view["headers"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A failure unless the backend got exactly `want` for header `name`.
fn header_is(view: &Value, name: &str, want: &[&str]) -> Option<String> {
    let got = values(view, name);
    (got != want).then(|| format!("the backend got {name}: {got:?}, expected {want:?}"))
}

/// Client case 1: `Host` is required on HTTP/1.1, once, and valid; an empty one is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_rules() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    for env in &envs {
        let p = env.probe();
        cases.push(case(
            format!("no host [{}]", env.client(Wire::Http11).name()),
            async move {
                p.refused(
                    b"GET /c/no-host HTTP/1.1\r\n\r\n".to_vec(),
                    400,
                    true,
                    false,
                    &["/c/no-host"],
                )
                .await
            },
        ));
        for wire in WIRES {
            host_cases(env, wire, &mut cases);
        }
    }
    run_all("host header rules", cases).await;
}

/// Client case 1 on one wire.
fn host_cases(env: &Env, wire: Wire, cases: &mut Vec<(String, CaseFuture)>) {
    let v = wire.version();
    let on = env.client(wire).name();
    for (name, hosts) in [
        ("two different host headers", "host: a\r\nhost: b\r\n"),
        ("two equal host headers", "host: a\r\nhost: a\r\n"),
    ] {
        let p = env.probe();
        let path = format!("/c/{}-{}", slug(name), slug(v));
        cases.push(case(format!("{name} [{on}]"), async move {
            let raw = format!("GET {path} {v}\r\n{hosts}\r\n").into_bytes();
            p.refused(raw, 400, true, false, &[&path]).await
        }));
    }
    for (i, bad) in ["a b", "a/b", "user@a"].into_iter().enumerate() {
        let p = env.probe();
        let path = format!("/c/bad-host-{i}-{}", slug(v));
        cases.push(case(format!("host: {bad} [{on}]"), async move {
            let raw = format!("GET {path} {v}\r\nhost: {bad}\r\n\r\n").into_bytes();
            p.refused(raw, 400, false, false, &[&path]).await
        }));
    }
    let p = env.probe();
    cases.push(case(format!("an empty host [{on}]"), async move {
        let raw = format!("GET /c/empty-host {v}\r\nhost:\r\n\r\n").into_bytes();
        let (r, _) = p.ask(&raw).await;
        match backend_view(&r) {
            Ok(view) => header_is(&view, "x-forwarded-host", &[])
                .into_iter()
                .collect(),
            Err(e) => vec![e],
        }
    }));
}

/// Client case 2: an absolute-form target is forwarded in origin form; one whose authority is not the `Host`
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_targets() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    for (env, wire) in each_client(&envs) {
        let v = wire.version();
        let on = env.client(wire).name();
        let p = env.probe();
        cases.push(case(format!("absolute form [{on}]"), async move {
            let raw = format!("GET http://a.example/c/abs?q=1 {v}\r\nhost: a.example\r\n\r\n")
                .into_bytes();
            let (r, _) = p.ask(&raw).await;
            match backend_view(&r) {
                Ok(view) => {
                    let mut f = Vec::new();
                    if view["path"] != "/c/abs?q=1" {
                        f.push(format!(
                            "the backend got path {}, expected /c/abs?q=1",
                            view["path"]
                        ));
                    }
                    f.extend(header_is(&view, "x-forwarded-host", &["a.example"]));
                    f
                }
                Err(e) => vec![e],
            }
        }));
        let p = env.probe();
        let path = format!("/c/abs-evil-{}", slug(v));
        cases.push(case(
            format!("absolute form for another authority [{on}]"),
            async move {
                let raw = format!("GET http://evil.example{path} {v}\r\nhost: a.example\r\n\r\n")
                    .into_bytes();
                p.refused(raw, 400, false, false, &[&path]).await
            },
        ));
    }
    run_all("absolute-form targets", cases).await;
}

/// Client case 3: `x-forwarded-*` reach the backend as rrlb sets them, whatever the client sent
/// (`x-forwarded-proto`: `http` on a plain listener, `https` on a TLS one; a client claims the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_rrlbs_own() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    // Given what the backend saw and the x-forwarded-proto rrlb must set.
    type Check = fn(&Value, &str) -> Vec<String>;
    for (env, wire) in each_client(&envs) {
        let v = wire.version();
        let on = env.client(wire).name();
        let (proto, spoofed) = env.link.protos();
        let table: Vec<(&str, Vec<u8>, Check)> = vec![
            (
                "spoofed forwarded headers",
                format!(
                    "GET /c/fwd {v}\r\nhost: a.example\r\nx-forwarded-host: evil\r\nx-forwarded-proto: {spoofed}\r\n\
                     x-forwarded-for: 192.0.2.1\r\nx-forwarded-for: 192.0.2.2, 192.0.2.3\r\n\r\n"
                )
                .into_bytes(),
                |view, proto| {
                    [
                        header_is(view, "x-forwarded-host", &["a.example"]),
                        header_is(view, "x-forwarded-proto", &[proto]),
                        header_is(view, "x-forwarded-for", &["192.0.2.1, 192.0.2.2, 192.0.2.3, 127.0.0.1"]),
                    ]
                    .into_iter()
                    .flatten()
                    .collect()
                },
            ),
            (
                "no x-forwarded-for",
                format!("GET /c/fwd {v}\r\nhost: a\r\n\r\n").into_bytes(),
                |view, proto| {
                    [
                        header_is(view, "x-forwarded-for", &["127.0.0.1"]),
                        header_is(view, "x-forwarded-proto", &[proto]),
                        header_is(view, "x-forwarded-host", &["a"]),
                    ]
                    .into_iter()
                    .flatten()
                    .collect()
                },
            ),
            (
                "an empty x-forwarded-for",
                format!("GET /c/fwd {v}\r\nhost: a\r\nx-forwarded-for:\r\n\r\n").into_bytes(),
                |view, _| header_is(view, "x-forwarded-for", &["127.0.0.1"]).into_iter().collect(),
            ),
            (
                "a non-ASCII x-forwarded-for",
                cat(&[
                    format!("GET /c/fwd {v}\r\nhost: a\r\nx-forwarded-for: ").as_bytes(),
                    b"\xff\r\n\r\n",
                ]),
                |view, _| header_is(view, "x-forwarded-for", &["127.0.0.1"]).into_iter().collect(),
            ),
        ];
        for (name, raw, check) in table {
            let p = env.probe();
            cases.push(case(format!("{name} [{on}]"), async move {
                let (r, _) = p.ask(&raw).await;
                match backend_view(&r) {
                    Ok(view) => check(&view, proto),
                    Err(e) => vec![e],
                }
            }));
        }
    }
    for env in &envs {
        let p = env.probe();
        let (proto, spoofed) = env.link.protos();
        let on = env.client(Wire::Http10).name();
        cases.push(case(format!("spoofed forwarded headers without a host [{on}]"), async move {
            let raw = format!("GET /c/fwd HTTP/1.0\r\nx-forwarded-host: evil\r\nx-forwarded-proto: {spoofed}\r\n\r\n");
            let (r, _) = p.ask(raw.as_bytes()).await;
            match backend_view(&r) {
                Ok(view) => [
                    header_is(&view, "x-forwarded-host", &[]),
                    header_is(&view, "x-forwarded-proto", &[proto]),
                    header_is(&view, "x-forwarded-for", &["127.0.0.1"]),
                ]
                .into_iter()
                .flatten()
                .collect(),
                Err(e) => vec![e],
            }
        }));
    }
    run_all("forwarded headers", cases).await;
}

/// `POST /c/<name>` with `lines` and `body`, then a pipelined `GET /smuggled/<name>` in the same write.
fn with_smuggled(wire: Wire, name: &str, lines: &[u8], body: &[u8]) -> Vec<u8> {
    cat(&[
        format!(
            "POST /c/{name} {}\r\nhost: a\r\n{}",
            wire.version(),
            wire.keep_alive()
        )
        .as_bytes(),
        lines,
        b"\r\n",
        body,
        format!("GET /smuggled/{name} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes(),
    ])
}

/// A request framing case: name, header lines, body, the status on HTTP/1.1, the status on HTTP/1.0 (200: valid
/// there, not run).
type FramingCase = (&'static str, &'static [u8], &'static [u8], u16, u16);

/// Client case 4 (and HTTP/1.0's any transfer-encoding, from case 5): ambiguous request framing and malformed
/// header lines are refused, nothing reaches the backend, and the connection closes (the pipelined request
/// after them is never served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_request_framing_is_refused_and_closes() {
    let envs = Env::each_link("").await;
    let chunked: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
    let table: Vec<FramingCase> = vec![
        (
            "cl-then-te",
            b"content-length: 5\r\ntransfer-encoding: chunked\r\n",
            b"0\r\n\r\n",
            400,
            400,
        ),
        (
            "te-then-cl",
            b"transfer-encoding: chunked\r\ncontent-length: 5\r\n",
            b"0\r\n\r\n",
            400,
            400,
        ),
        (
            "two-equal-cl",
            b"content-length: 5\r\ncontent-length: 5\r\n",
            b"hello",
            400,
            400,
        ),
        (
            "two-different-cl",
            b"content-length: 5\r\ncontent-length: 6\r\n",
            b"hello",
            400,
            400,
        ),
        ("cl-list", b"content-length: 5, 5\r\n", b"hello", 400, 400),
        ("cl-plus", b"content-length: +5\r\n", b"hello", 400, 400),
        ("cl-negative", b"content-length: -1\r\n", b"", 400, 400),
        ("cl-hex", b"content-length: 0x5\r\n", b"hello", 400, 400),
        (
            "te-gzip-chunked",
            b"transfer-encoding: gzip, chunked\r\n",
            chunked,
            501,
            400,
        ),
        (
            "te-identity",
            b"transfer-encoding: identity\r\n",
            chunked,
            501,
            400,
        ),
        (
            "te-chunked-identity",
            b"transfer-encoding: chunked, identity\r\n",
            chunked,
            501,
            400,
        ),
        (
            "te-xchunked",
            b"transfer-encoding: xchunked\r\n",
            chunked,
            501,
            400,
        ),
        (
            "te-twice",
            b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            chunked,
            501,
            400,
        ),
        (
            "te-chunked-on-http-1-0",
            b"transfer-encoding: chunked\r\n",
            chunked,
            200,
            400,
        ),
        (
            "space-before-colon",
            b"x-a : 1\r\ncontent-length: 5\r\n",
            b"hello",
            400,
            400,
        ),
        (
            "space-before-cl-colon",
            b"content-length : 5\r\n",
            b"hello",
            400,
            400,
        ),
        (
            "space-before-te-colon",
            b"transfer-encoding : chunked\r\n",
            chunked,
            400,
            400,
        ),
        (
            "obs-fold",
            b"x-a: 1\r\n 2\r\ncontent-length: 5\r\n",
            b"hello",
            400,
            400,
        ),
        (
            "ctl-in-value",
            b"x-a: a\x01b\r\ncontent-length: 5\r\n",
            b"hello",
            400,
            400,
        ),
        (
            "del-in-value",
            b"x-a: a\x7fb\r\ncontent-length: 5\r\n",
            b"hello",
            400,
            400,
        ),
    ];
    let mut cases = Vec::new();
    for (env, wire) in each_client(&envs) {
        for &(name, lines, body, on11, on10) in &table {
            let status = match wire {
                Wire::Http11 => on11,
                Wire::Http10 => on10,
            };
            if status == 200 {
                continue; // valid on this version (chunked/HTTP/1.1 is client case 5)
            }
            let p = env.probe();
            let name = format!("{name}-{}", slug(wire.version()));
            let raw = with_smuggled(wire, &name, lines, body);
            cases.push(case(
                format!("{name} [{}]", env.client(wire).name()),
                async move {
                    let never = [format!("/c/{name}"), format!("/smuggled/{name}")];
                    p.refused(raw, status, false, true, &[&never[0], &never[1]])
                        .await
                },
            ));
        }
    }
    run_all("ambiguous request framing", cases).await;
}

/// Client case 5: chunked request bodies on HTTP/1.1: valid ones are forwarded with a content-length; malformed
/// ones get a 400, close the connection, and the pipelined request after them never reaches the backend; one
/// over the limit gets a 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_bodies() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    for env in &envs {
        chunked_body_cases(env, &mut cases);
    }
    run_all("chunked request bodies", cases).await;
}

/// Client case 5 on one listener.
fn chunked_body_cases(env: &Env, cases: &mut Vec<(String, CaseFuture)>) {
    let on = env.client(Wire::Http11).name();
    for (name, body) in [
        ("plain", &b"5\r\nhello\r\n0\r\n\r\n"[..]),
        (
            "extension-and-trailer",
            b"5;a=b\r\nhello\r\n0\r\nx-t: 1\r\n\r\n",
        ),
    ] {
        let p = env.probe();
        let raw = cat(&[
            format!(
                "POST /c/chunked-{name} HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
            body,
        ]);
        cases.push(case(
            format!("a valid chunked body, {name} [{on}]"),
            async move {
                let (r, _) = p.ask(&raw).await;
                match backend_view(&r) {
                    Ok(view) => {
                        let mut f: Vec<String> = [
                            header_is(&view, "content-length", &["5"]),
                            header_is(&view, "transfer-encoding", &[]),
                        ]
                        .into_iter()
                        .flatten()
                        .collect();
                        if view["body_len"] != 5 {
                            f.push(format!(
                                "the backend got body_len {}, expected 5",
                                view["body_len"]
                            ));
                        }
                        f
                    }
                    Err(e) => vec![e],
                }
            },
        ));
    }
    for (name, body) in [
        ("size-line-bare-lf", &b"5\nhello\r\n0\r\n\r\n"[..]),
        ("extension-bare-lf", b"5;a\nhello\r\n0\r\n\r\n"),
        ("trailer-bare-lf", b"5\r\nhello\r\n0\r\nx-t: 1\n\r\n"),
        ("invalid-hex", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("hex-with-junk", b"5g\r\nhello\r\n0\r\n\r\n"),
        ("size-overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ] {
        let p = env.probe();
        let raw = with_smuggled(Wire::Http11, name, b"transfer-encoding: chunked\r\n", body);
        cases.push(case(
            format!("a malformed chunked body, {name} [{on}]"),
            async move {
                let never = [format!("/c/{name}"), format!("/smuggled/{name}")];
                p.refused(raw, 400, false, true, &[&never[0], &never[1]])
                    .await
            },
        ));
    }
    // A connection that began with HTTP/1.0 is hyper's for the rest of its life; an HTTP/1.1 chunked request
    // on it is framed by hyper's decoder, which reads a bare-LF trailer differently (the hyper path once
    // swallowed the next request this way). rrlb closes such a connection after the answer.
    let p = env.probe();
    cases.push(case(
        format!(
            "a chunked body with a bare-LF trailer on a connection hyper serves [{}]",
            env.client(Wire::Http10).name()
        ),
        async move {
            let mut conn = p.open().await;
            conn.send(b"GET /c/first-http10 HTTP/1.0\r\nhost: a\r\nconnection: keep-alive\r\n\r\n")
                .await;
            let first = conn.answer(false).await;
            if let Err(e) = backend_view(&first) {
                return vec![format!("the HTTP/1.0 request: {e}")];
            }
            conn.send(
                b"POST /c/hyper-chunked HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n0\r\nx-t: 1\n\r\nGET /smuggled/hyper-trailer HTTP/1.1\r\nhost: a\r\n\r\n",
            )
            .await;
            // Refused or served, the connection must end there.
            let _ = conn.answer(false).await;
            let mut f: Vec<String> = conn.must_close().await.into_iter().collect();
            f.extend(p.never(&["/smuggled/hyper-trailer"]));
            f
        },
    ));
    let p = env.probe();
    cases.push(case(format!("a chunked body over the limit [{on}]"), async move {
        let chunk = format!("3e8\r\n{}\r\n", "x".repeat(1000));
        let raw = format!(
            "POST /c/chunked-big HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
        );
        p.refused(raw.into_bytes(), 413, false, false, &["/c/chunked-big"]).await
    }));
}

/// Client case 6: a request body that stalls gets rrlb's JSON 408 and the connection closes; nothing reaches
/// the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_gets_a_408() {
    let envs = Env::each_link("body_read = \"300ms\"\n").await;
    let mut cases = Vec::new();
    for (env, wire) in each_client(&envs) {
        let p = env.probe();
        let path = format!("/c/slow-{}", slug(wire.version()));
        cases.push(case(
            format!("a stalled body [{}]", env.client(wire).name()),
            async move {
                let raw = format!(
                    "POST {path} {}\r\nhost: a\r\ncontent-length: 100\r\n\r\n0123456789",
                    wire.version()
                );
                p.refused(raw.into_bytes(), 408, true, true, &[&path]).await
            },
        ));
    }
    run_all("stalled request bodies", cases).await;
}

/// Client case 7: `expect: 100-continue` gets a 100 before the body is sent; over the limit, a 413 and no 100;
/// another expectation, a 417.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    for env in &envs {
        expect_cases(env, &mut cases);
    }
    run_all("expect", cases).await;
}

/// Client case 7 on one listener.
fn expect_cases(env: &Env, cases: &mut Vec<(String, CaseFuture)>) {
    let on = env.client(Wire::Http11).name();
    let p = env.probe();
    cases.push(case(format!("expect: 100-continue, a small body [{on}]"), async move {
        let mut conn = p.open().await;
        conn.send(b"POST /c/expect HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
            .await;
        // The 100 comes before the body is sent: read exactly one head.
        let interim = loop {
            match parse_head(&conn.buf) {
                Head::Done { len, status, .. } => {
                    conn.buf.drain(..len);
                    break Ok(status);
                }
                Head::Bad(why) => break Err(why),
                Head::Partial => match conn.fill().await {
                    Some(true) => {}
                    Some(false) => break Err(format!("closed; got {}", show(&conn.buf))),
                    None => break Err(format!("no 100 Continue within {WAIT:?}; got {}", show(&conn.buf))),
                },
            }
        };
        match interim {
            Ok(100) => {}
            Ok(other) => return vec![format!("expected 100 Continue first, got {other}")],
            Err(e) => return vec![e],
        }
        conn.send(b"hello").await;
        let r = conn.answer(false).await;
        match backend_view(&r) {
            Ok(view) if view["body_len"] == 5 && view["path"] == "/c/expect" => vec![],
            Ok(view) => vec![format!("the backend got {view}")],
            Err(e) => vec![e],
        }
    }));
    let p = env.probe();
    cases.push(case(format!("expect: 100-continue, a body over the limit [{on}]"), async move {
        let (r, _) = p
            .ask(b"POST /c/expect-big HTTP/1.1\r\nhost: a\r\ncontent-length: 2000\r\nexpect: 100-continue\r\n\r\n")
            .await;
        let mut f = Vec::new();
        match expect_status(&r, 413) {
            Ok(a) if !a.interim.is_empty() => f.push(format!("a 413 after {:?}", a.interim)),
            Ok(_) => {}
            Err(e) => f.push(e),
        }
        f.extend(p.never(&["/c/expect-big"]));
        f
    }));
    let p = env.probe();
    cases.push(case(format!("expect: something-else [{on}]"), async move {
        p.refused(
            b"GET /c/expect-other HTTP/1.1\r\nhost: a\r\nexpect: something-else\r\n\r\n".to_vec(),
            417,
            false,
            false,
            &["/c/expect-other"],
        )
        .await
    }));
}

/// Client case 8: rrlb is not a forward proxy: `CONNECT` gets rrlb's JSON 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_gets_a_405() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    for env in &envs {
        let p = env.probe();
        cases.push(case(
            format!("CONNECT [{}]", env.client(Wire::Http11).name()),
            async move {
                let mut f = p
                    .refused(
                        b"CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n".to_vec(),
                        405,
                        true,
                        false,
                        &[],
                    )
                    .await;
                let seen = p.seen.list();
                f.extend(
                    seen.iter()
                        .filter(|r| r.starts_with("CONNECT"))
                        .map(|r| format!("the backend received {r:?}")),
                );
                f
            },
        ));
    }
    run_all("CONNECT", cases).await;
}

/// Client case 9: a request head over 64 KiB gets rrlb's JSON 431, and bytes that are not HTTP rrlb's JSON 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_garbage_get_json_errors() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    for (env, wire) in each_client(&envs) {
        let p = env.probe();
        let path = format!("/c/huge-{}", slug(wire.version()));
        cases.push(case(
            format!("a 65 KiB head [{}]", env.client(wire).name()),
            async move {
                let raw = format!(
                    "GET {path} {}\r\nhost: a\r\nx-big: {}\r\n\r\n",
                    wire.version(),
                    "a".repeat(65 * 1024)
                );
                p.refused(raw.into_bytes(), 431, true, false, &[&path])
                    .await
            },
        ));
    }
    // On a TLS listener these bytes come inside the session: there too, not HTTP.
    for env in &envs {
        let p = env.probe();
        let on = env.client(Wire::Http11).name();
        cases.push(case(format!("a TLS ClientHello [{on}]"), async move {
            let mut raw = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec();
            raw.extend_from_slice(&[0u8; 32]);
            p.refused(raw, 400, true, false, &[]).await
        }));
    }
    run_all("oversized heads and garbage", cases).await;
}

/// Client case 10: requests pipelined in one write get their answers in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let envs = Env::each_link("").await;
    let mut cases = Vec::new();
    for (env, wire) in each_client(&envs) {
        let p = env.probe();
        cases.push(case(format!("three pipelined requests [{}]", env.client(wire).name()), async move {
            let v = wire.version();
            let ka = wire.keep_alive();
            let paths = [
                format!("/c/pipe-1-{}", slug(v)),
                format!("/c/pipe-2-{}", slug(v)),
                format!("/c/pipe-3-{}", slug(v)),
            ];
            let raw = format!(
                "GET {} {v}\r\nhost: a\r\n{ka}\r\nPOST {} {v}\r\nhost: a\r\n{ka}content-length: 5\r\n\r\nhelloGET {} {v}\r\nhost: a\r\n{ka}\r\n",
                paths[0], paths[1], paths[2]
            );
            let mut conn = p.open().await;
            conn.send(raw.as_bytes()).await;
            let mut f = Vec::new();
            for path in &paths {
                let r = conn.answer(false).await;
                match backend_view(&r) {
                    Ok(view) if view["path"] == path.as_str() => {}
                    Ok(view) => f.push(format!("expected the answer to {path}, got one to {}", view["path"])),
                    Err(e) => {
                        f.push(format!("{path}: {e}"));
                        break;
                    }
                }
            }
            f
        }));
    }
    run_all("pipelining", cases).await;
}
