//! Parity of rrlb's paths and transports: the same requests sent as HTTP/1.1 (the fast path), HTTP/1.0 (handed
//! to hyper's server) and HTTP/2 (hyper's server), each in plaintext (HTTP/2 with prior knowledge, h2c) and over
//! TLS (rrlb's listener with `[tls]`; ALPN `http/1.1`, `http/1.0`, `h2`), must reach the backend as the same
//! HTTP/1.1 request, and come back to the client as the same answer. Six renderings of every request: HTTP/1.1
//! over TLS stays on the fast path (ALPN `http/1.1` is not a reason to hand a connection to hyper), HTTP/1.0
//! over TLS is handed to hyper like HTTP/1.0 in plaintext, and `h2` goes to hyper's HTTP/2 server at once.
//!
//! Per request, what `TestBackend` received (method, path and query, the set of header names, `host`,
//! `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host`, `x-request-id`, `content-length`, body length,
//! what its `traceparent` says about the client's trace, `tracestate`)
//! and what the client got (status, where the answer came from, the JSON error's `error` text and
//! `request_id`, `x-request-id`, `x-rrlb-backend`, `retry-after` presence, `content-type`) are compared across
//! the six renderings, with a diff of every difference.
//!
//! What legitimately differs by protocol or transport is in the renderings and the expected values, not in the
//! comparison: HTTP/2 cannot carry connection-specific headers (RFC 9113 §8.2.2), so the HTTP/2 renderings of a
//! request with `connection`, `keep-alive`, `proxy-connection` or `upgrade` omit them (hyper's HTTP/2 client
//! drops them, and the headers `connection` names); HTTP/2 has no `host` line but `:authority` (RFC 9113
//! §8.3.1), which the HTTP/2 renderings set to the value the HTTP/1 renderings send as `host`: `localhost` on
//! every rendering (the plaintext and the TLS rrlb listen on different ports, so it is neither's address; it is
//! the name the TLS renderings send as SNI and verify). `x-forwarded-proto` is the scheme of the client's
//! connection (`http` in plaintext, `https` over TLS, whatever the client sent: the requests include a
//! client's `https` and a client's `http`): every rendering checks it is exactly its own, and the comparison
//! sees it as "the connection's scheme" (or the wrong value, and over which transport). Each TLS rendering
//! offers the ALPN protocol ID of its version alone, and checks that rrlb chose it. No header is left out of
//! the comparison: rrlb sends the backend its own HTTP/1.1 request whatever the client spoke, and over whatever
//! transport. Values that are random per request (a request id rrlb made) are compared by shape
//! (a UUID v4) and by agreement between the backend and the answer.
//!
//! TLS must not change which path serves a request, nor the answer: each TLS rendering's answer is also laid
//! out as its plaintext rendering's (the status line's version and the header names, in order). The paths lay
//! out rrlb's own answers differently (hyper's server adds `date` and orders the lines its own way; the fast
//! path writes `content-length` before rrlb's fields), so for the requests rrlb answers itself (the body over
//! the limit, the backend that is down) this pins HTTP/1.1 over TLS to the fast path and HTTP/1.0 over TLS to
//! hyper's. rrlb has no metric or header that names the path; backends' answers are laid out alike on both.
//!
//! Sources: RFC 9110 §7.6.1 (hop-by-hop `connection` headers, `proxy-connection`, `keep-alive`, `te`,
//! `upgrade`), §7.2 (Host and :authority), §4.2.2 (https); RFC 9112 §3.2 (Host), §6.3 (message body length);
//! RFC 9113 §3.2 (starting HTTP/2 for https URIs: ALPN `h2`), §3.3 (prior knowledge), §8.2.2
//! (connection-specific fields), §8.3.1 (request pseudo-header fields); RFC 7301 (ALPN) and the IANA ALPN
//! protocol IDs (`http/1.0`, `http/1.1`, `h2`); PortSwigger, James Kettle, "HTTP/2: The Sequel is Always Worse"
//! (2021: request smuggling through HTTP/2 to HTTP/1 downgrades, where the same request becomes different
//! HTTP/1 on the way to the backend); the HTTP Garden (Kallus et al., arXiv:2405.17737) on gateways
//! transforming one request differently from another.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rrlb_tower::trace::TraceParent;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use support::tls::{Pair, Pki, try_connect};
use support::wire::{Conn, Stream, WAIT};
use support::*;

/// What every rendering sends as `host` (HTTP/1) or `:authority` (HTTP/2), and the name the TLS renderings
/// send as SNI and verify: the TLS listener's certificate is for it.
const AUTHORITY: &str = "localhost";

/// One request, as every rendering sends it.
struct Req {
    name: &'static str,
    method: &'static str,
    /// Path and query.
    target: &'static str,
    headers: Vec<(&'static str, &'static [u8])>,
    body: Vec<u8>,
    /// The statuses it may get (the same one on every rendering).
    status: &'static [u16],
    /// The `x-forwarded-for` the backend must get: the client's values, joined in order, then the client.
    xff: &'static str,
}

fn req(
    name: &'static str,
    method: &'static str,
    target: &'static str,
    headers: &[(&'static str, &'static [u8])],
    body: &[u8],
    status: &'static [u16],
) -> Req {
    Req {
        name,
        method,
        target,
        headers: headers.to_vec(),
        body: body.to_vec(),
        status,
        xff: "127.0.0.1",
    }
}

impl Req {
    fn xff(mut self, xff: &'static str) -> Self {
        self.xff = xff;
        self
    }
}

/// Headers that describe the connection (RFC 9110 §7.6.1): never forwarded, and not sendable on HTTP/2.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "x-drop",
];

/// A valid `traceparent` a client sends.
const CLIENT_TRACE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The `traceparent` values the client sends.
fn sent_traceparents(r: &Req) -> Vec<&[u8]> {
    r.headers
        .iter()
        .filter(|(n, _)| *n == "traceparent")
        .map(|(_, v)| *v)
        .collect()
}

/// What the backend's `traceparent` says about the client's (W3C Trace Context): it must be exactly one valid
/// value that continues the client's trace when the client sent exactly one valid value (same trace id and
/// flags, rrlb's span as the parent), and a new trace otherwise.
fn trace_shape(r: &Req, got: &[String]) -> String {
    let sent = sent_traceparents(r);
    let [one] = got else {
        return format!("{} traceparent values: {got:?}", got.len());
    };
    let Ok(seen) = TraceParent::parse(one.as_bytes()) else {
        return format!("an invalid traceparent {one:?}");
    };
    let caller = match sent.as_slice() {
        [v] => TraceParent::parse(v).ok(),
        _ => None,
    };
    match caller {
        Some(c) if seen.trace_id() == c.trace_id() && seen.flags() == c.flags() => {
            if seen.parent_id() == c.parent_id() {
                "the client's traceparent unchanged".to_owned()
            } else {
                "continues the client's trace, with rrlb's span as the parent".to_owned()
            }
        }
        Some(_) => format!("{one:?}, not the client's trace"),
        None if sent.iter().any(|v| {
            String::from_utf8_lossy(v)
                .to_ascii_lowercase()
                .contains(&seen.trace_id().to_string())
        }) =>
        {
            format!("{one:?} reuses an invalid client trace id")
        }
        None => "a new trace".to_owned(),
    }
}

/// The trace a request must show on every rendering: the client's continued when it sent exactly one valid
/// `traceparent`, else a new one; `tracestate` only with a continued trace.
fn trace_rules(r: &Req, o: &BTreeMap<String, String>) -> Vec<String> {
    if o.get("answer: from").map(String::as_str) != Some("the backend") {
        return Vec::new();
    }
    let sent = sent_traceparents(r);
    let continued = matches!(sent.as_slice(), [v] if TraceParent::parse(v).is_ok());
    let want_trace = if continued {
        "continues the client's trace, with rrlb's span as the parent"
    } else {
        "a new trace"
    };
    let want_state = match r.headers.iter().find(|(n, _)| *n == "tracestate") {
        Some((_, v)) if continued => format!("{:?}", String::from_utf8_lossy(v)),
        _ => "(none)".to_owned(),
    };
    let mut errors = Vec::new();
    if o.get("backend: traceparent").map(String::as_str) != Some(want_trace) {
        errors.push(format!(
            "the backend's traceparent: {:?}, expected {want_trace:?}",
            o.get("backend: traceparent")
        ));
    }
    if o.get("backend: tracestate") != Some(&want_state) {
        errors.push(format!(
            "the backend's tracestate: {:?}, expected {want_state}",
            o.get("backend: tracestate")
        ));
    }
    errors
}

/// The requests compared (all against a `TestBackend`, with `limits.max_body_bytes = 64`).
fn requests() -> Vec<Req> {
    let ok: &[u16] = &[200];
    vec![
        req("GET", "GET", "/parity/get", &[], b"", ok),
        req(
            "GET with a query",
            "GET",
            "/parity/query?a=1&b=two%20words&c",
            &[],
            b"",
            ok,
        ),
        req(
            "POST with a body",
            "POST",
            "/parity/post",
            &[("content-type", b"application/json")],
            b"{\"a\":1}",
            ok,
        ),
        req(
            "POST with an empty body",
            "POST",
            "/parity/empty",
            &[],
            b"",
            ok,
        ),
        req(
            "a client's x-request-id",
            "GET",
            "/parity/id",
            &[("x-request-id", b"parity-id-1")],
            b"",
            ok,
        ),
        req(
            "POST with a client's x-request-id",
            "POST",
            "/parity/id-post",
            &[("x-request-id", b"parity-id-2")],
            b"hello",
            ok,
        ),
        req(
            "an x-request-id rrlb does not keep",
            "GET",
            "/parity/bad-id",
            &[("x-request-id", b"not a sane id!")],
            b"",
            ok,
        ),
        req(
            "x-forwarded-for",
            "GET",
            "/parity/xff",
            &[("x-forwarded-for", b"203.0.113.9")],
            b"",
            ok,
        )
        .xff("203.0.113.9, 127.0.0.1"),
        req(
            "x-forwarded-for on two lines",
            "GET",
            "/parity/xff2",
            &[
                ("x-forwarded-for", b"203.0.113.9"),
                ("x-forwarded-for", b"198.51.100.7, 192.0.2.1"),
            ],
            b"",
            ok,
        )
        .xff("203.0.113.9, 198.51.100.7, 192.0.2.1, 127.0.0.1"),
        req(
            "an empty x-forwarded-for",
            "GET",
            "/parity/xff-empty",
            &[("x-forwarded-for", b"")],
            b"",
            ok,
        ),
        req(
            "a non-ASCII x-forwarded-for",
            "GET",
            "/parity/xff-bytes",
            &[("x-forwarded-for", b"\xff")],
            b"",
            ok,
        ),
        req(
            "connection-named and hop-by-hop headers",
            "GET",
            "/parity/hop",
            &[
                ("connection", b"x-drop"),
                ("x-drop", b"1"),
                ("keep-alive", b"timeout=5"),
                ("proxy-connection", b"keep-alive"),
                ("x-kept", b"1"),
            ],
            b"",
            ok,
        ),
        req(
            "te: trailers",
            "GET",
            "/parity/te",
            &[("te", b"trailers")],
            b"",
            ok,
        ),
        req(
            "upgrade: foo",
            "GET",
            "/parity/upgrade",
            &[("upgrade", b"foo")],
            b"",
            ok,
        ),
        req(
            "a client's x-forwarded-host and x-forwarded-proto",
            "GET",
            "/parity/xfh",
            &[
                ("x-forwarded-host", b"evil.example"),
                ("x-forwarded-proto", b"https"),
            ],
            b"",
            ok,
        ),
        req(
            "a client's x-forwarded-proto: http",
            "GET",
            "/parity/xfp-http",
            &[("x-forwarded-proto", b"http")],
            b"",
            ok,
        ),
        req(
            "a client's traceparent and tracestate",
            "GET",
            "/parity/trace",
            &[
                ("traceparent", CLIENT_TRACE),
                ("tracestate", b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ],
            b"",
            ok,
        ),
        req(
            "a traceparent of a later version",
            "GET",
            "/parity/trace-later",
            &[(
                "traceparent",
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
            )],
            b"",
            ok,
        ),
        req(
            "an invalid traceparent (upper-case hex) and a tracestate",
            "GET",
            "/parity/trace-bad",
            &[
                (
                    "traceparent",
                    b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
                ),
                ("tracestate", b"k=v"),
            ],
            b"",
            ok,
        ),
        req(
            "an all-zero trace id",
            "POST",
            "/parity/trace-zero",
            &[(
                "traceparent",
                b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
            b"x",
            ok,
        ),
        req(
            "two traceparents",
            "GET",
            "/parity/trace-two",
            &[
                ("traceparent", CLIENT_TRACE),
                (
                    "traceparent",
                    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
            ],
            b"",
            ok,
        ),
        req(
            "a body over the limit",
            "POST",
            "/parity/big",
            &[],
            &[b'x'; 100],
            &[413],
        ),
    ]
}

/// The HTTP version a rendering speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Http11,
    Http10,
    H2,
}

/// What a rendering's connection to rrlb is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    Tls,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Plain => "plaintext",
            Transport::Tls => "TLS",
        }
    }

    /// The scheme of a connection like it, as `x-forwarded-proto` must tell a backend.
    fn scheme(self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls => "https",
        }
    }
}

/// How a request reaches rrlb: a version over a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rendering {
    version: Version,
    transport: Transport,
}

const fn rendering(version: Version, transport: Transport) -> Rendering {
    Rendering { version, transport }
}

const RENDERINGS: [Rendering; 6] = [
    rendering(Version::Http11, Transport::Plain),
    rendering(Version::Http10, Transport::Plain),
    rendering(Version::H2, Transport::Plain),
    rendering(Version::Http11, Transport::Tls),
    rendering(Version::Http10, Transport::Tls),
    rendering(Version::H2, Transport::Tls),
];

impl Rendering {
    fn name(self) -> &'static str {
        match (self.version, self.transport) {
            (Version::Http11, Transport::Plain) => "fast path (HTTP/1.1)",
            (Version::Http10, Transport::Plain) => "hyper path (HTTP/1.0)",
            (Version::H2, Transport::Plain) => "hyper path (h2c)",
            (Version::Http11, Transport::Tls) => "fast path (HTTP/1.1, TLS)",
            (Version::Http10, Transport::Tls) => "hyper path (HTTP/1.0, TLS)",
            (Version::H2, Transport::Tls) => "hyper path (h2, TLS)",
        }
    }

    /// The ALPN protocol a TLS rendering offers, and must get: the ID of the version it speaks.
    fn alpn(self) -> &'static str {
        match self.version {
            Version::Http11 => "http/1.1",
            Version::Http10 => "http/1.0",
            Version::H2 => "h2",
        }
    }
}

/// An rrlb to send a rendering to: its proxy listener, and the CA that signed its TLS listener's certificate
/// (not used in plaintext).
#[derive(Clone, Copy)]
struct Proxy<'a> {
    addr: SocketAddr,
    pki: &'a Pki,
}

/// The CA of the TLS renderings, and the certificate of rrlb's TLS listeners (for [`AUTHORITY`]).
struct Certs {
    pki: Pki,
    pair: Pair,
}

impl Certs {
    fn new() -> Self {
        let pki = Pki::new();
        let pair = pki.issue(&[AUTHORITY]);
        Self { pki, pair }
    }

    /// An rrlb with configuration `toml` whose proxy listener is plaintext, or TLS (`toml` with a `[tls]` table
    /// for [`Certs::pair`]).
    async fn start(&self, toml: &str, transport: Transport) -> Harness {
        let toml = match transport {
            Transport::Plain => toml.to_owned(),
            Transport::Tls => format!(
                "{toml}[tls]\ncert = {:?}\nkey = {:?}\n",
                self.pair.cert_file.display().to_string(),
                self.pair.key_file.display().to_string()
            ),
        };
        Harness::builder().file(toml).start().await
    }
}

/// An answer as the client got it.
struct Got {
    /// The version of its status line (`HTTP/1.1`, `HTTP/1.0`), or `HTTP/2`.
    version: String,
    status: u16,
    /// Lowercase names, in the order they came; values as text.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How the answer is laid out: the version, then the header names in order.
    fn layout(&self) -> String {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        format!("{}: {}", self.version, names.join(", "))
    }
}

/// Whether the request sends a `content-length` (every rendering alike: with a body, or for a POST).
fn length_line(r: &Req) -> Option<usize> {
    (!r.body.is_empty() || r.method == "POST").then_some(r.body.len())
}

/// A new connection to `proxy` for `rendering`: TCP, or TLS over it (verifying [`AUTHORITY`], offering the
/// rendering's ALPN protocol, which rrlb must choose).
async fn open(proxy: Proxy<'_>, rendering: Rendering) -> Result<Box<dyn Stream>, String> {
    match rendering.transport {
        Transport::Plain => Ok(Box::new(
            TcpStream::connect(proxy.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?,
        )),
        Transport::Tls => {
            let alpn = rendering.alpn();
            let config = proxy.pki.client_config(&[alpn], None);
            let tls = try_connect(proxy.addr, AUTHORITY, config)
                .await
                .map_err(|e| format!("the TLS handshake offering ALPN {alpn:?}: {e}"))?;
            let chosen = tls.get_ref().1.alpn_protocol();
            if chosen != Some(alpn.as_bytes()) {
                return Err(format!(
                    "ALPN chose {:?}, not {alpn:?}",
                    chosen.map(String::from_utf8_lossy)
                ));
            }
            Ok(Box::new(tls))
        }
    }
}

/// Sends `r` on a new connection to `proxy` as `rendering` says, and reads the answer.
async fn send(proxy: Proxy<'_>, rendering: Rendering, r: &Req) -> Result<Got, String> {
    let exchange = async {
        let stream = open(proxy, rendering).await?;
        match rendering.version {
            Version::Http11 => send_raw(stream, r, "HTTP/1.1").await,
            Version::Http10 => send_raw(stream, r, "HTTP/1.0").await,
            Version::H2 => send_h2(stream, rendering.transport, r).await,
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {WAIT:?}")))
}

/// Sends `r` on `stream` as HTTP/1.1 or HTTP/1.0, written by hand, and reads the answer.
async fn send_raw(stream: Box<dyn Stream>, r: &Req, version: &str) -> Result<Got, String> {
    let mut raw = format!(
        "{} {} {version}\r\nhost: {AUTHORITY}\r\n",
        r.method, r.target
    )
    .into_bytes();
    for (name, value) in &r.headers {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    if let Some(n) = length_line(r) {
        raw.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&r.body);
    let mut conn = Conn::new(stream, WAIT);
    // rrlb may answer (a 413) before it reads the body: a write error is not the answer.
    conn.send(&raw).await;
    let a = conn.answer(r.method == "HEAD").await.into_answer()?;
    Ok(Got {
        version: format!("HTTP/1.{}", a.version),
        status: a.status,
        headers: a
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
        body: a.body,
    })
}

/// Sends `r` over HTTP/2 on `stream` (prior knowledge in plaintext, ALPN `h2` over TLS), with `:scheme` the
/// transport's and `:authority` what the HTTP/1 renderings send as `host`.
async fn send_h2(stream: Box<dyn Stream>, transport: Transport, r: &Req) -> Result<Got, String> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?)
        .uri(format!("{}://{AUTHORITY}{}", transport.scheme(), r.target));
    for (name, value) in &r.headers {
        let value = HeaderValue::from_bytes(value).map_err(|e| format!("{name}: {e}"))?;
        builder = builder.header(HeaderName::from_static(name), value);
    }
    if let Some(n) = length_line(r) {
        builder = builder.header(http::header::CONTENT_LENGTH, n);
    }
    let request = builder
        .body(Full::new(Bytes::from(r.body.clone())))
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("the HTTP/2 handshake: {e:?}"))?;
    let _driver = Driver(tokio::spawn(conn));
    let exchange = async {
        let res = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok(Got {
            version: format!("{:?}", parts.version),
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        })
    };
    exchange.await
}

/// A client connection's task, stopped when this is dropped (the answer read, or the exchange given up).
struct Driver<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A request id as compared: the client's when it sent a sane one, else its shape.
fn id_shape(value: Option<&str>, sent: Option<&str>) -> String {
    match value {
        None => "(none)".to_owned(),
        Some(v) if Some(v) == sent => format!("the client's {v:?}"),
        Some(v) if is_uuid_v4(v) => "a new UUID v4".to_owned(),
        Some(v) => format!("{v:?}"),
    }
}

/// What the comparison sees of an `x-forwarded-proto` that is the scheme of the client's connection.
const SAME_SCHEME: &str = "the connection's scheme";

/// What the comparison sees of the backend's `x-forwarded-proto` (`joined`, its values as [`observe`] writes
/// them): that it is the scheme of the connection `transport` (whichever that is), or what it is instead.
fn proto_shape(joined: &str, transport: Transport) -> String {
    if joined == format!("{:?}", transport.scheme()) {
        SAME_SCHEME.to_owned()
    } else {
        format!("{joined} over {}", transport.name())
    }
}

/// What is compared: the answer, and (when the answer came from the backend) what the backend received, on
/// `rendering`.
fn observe(r: &Req, rendering: Rendering, got: &Got) -> BTreeMap<String, String> {
    let mut o = BTreeMap::new();
    let sent_id = r
        .headers
        .iter()
        .find(|(n, _)| *n == "x-request-id")
        .and_then(|(_, v)| std::str::from_utf8(v).ok());
    let answer_id = got.header("x-request-id");
    let text = |v: Option<&str>| {
        v.map(|s| format!("{s:?}"))
            .unwrap_or_else(|| "(none)".to_owned())
    };
    o.insert("answer: status".to_owned(), got.status.to_string());
    o.insert(
        "answer: content-type".to_owned(),
        text(got.header("content-type")),
    );
    o.insert(
        "answer: x-rrlb-backend".to_owned(),
        text(got.header("x-rrlb-backend")),
    );
    o.insert(
        "answer: retry-after".to_owned(),
        if got.header("retry-after").is_some() {
            "present"
        } else {
            "absent"
        }
        .to_owned(),
    );
    o.insert(
        "answer: x-request-id".to_owned(),
        id_shape(answer_id, sent_id),
    );
    let from_backend = got.header("x-test-backend") == Some("1");
    o.insert(
        "answer: from".to_owned(),
        if from_backend { "the backend" } else { "rrlb" }.to_owned(),
    );
    let json: Option<Value> = serde_json::from_slice(&got.body).ok();
    if !from_backend {
        let error = json.as_ref().and_then(|j| j["error"].as_str());
        o.insert("answer: error".to_owned(), text(error));
        let id = json.as_ref().and_then(|j| j["request_id"].as_str());
        o.insert(
            "answer: request_id".to_owned(),
            match id {
                Some(id) if Some(id) == answer_id => "= x-request-id".to_owned(),
                other => format!("{other:?}, x-request-id {answer_id:?}"),
            },
        );
        return o;
    }
    let Some(view) = json else {
        o.insert("backend".to_owned(), "(not JSON)".to_owned());
        return o;
    };
    let values = |name: &str| -> Vec<String> {
        view["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| format!("{:?}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let joined = |name: &str| {
        let v = values(name);
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join(" | ")
        }
    };
    o.insert("backend: method".to_owned(), view["method"].to_string());
    o.insert("backend: path".to_owned(), view["path"].to_string());
    let names: BTreeSet<&str> = view["headers"]
        .as_object()
        .map(|h| h.keys().map(String::as_str).collect())
        .unwrap_or_default();
    o.insert(
        "backend: header names".to_owned(),
        names.iter().copied().collect::<Vec<_>>().join(", "),
    );
    for name in [
        "host",
        "x-forwarded-for",
        "x-forwarded-host",
        "content-length",
    ] {
        o.insert(format!("backend: {name}"), joined(name));
    }
    o.insert(
        "backend: x-forwarded-proto".to_owned(),
        proto_shape(&joined("x-forwarded-proto"), rendering.transport),
    );
    let backend_ids = values("x-request-id");
    let backend_id = match backend_ids.as_slice() {
        [one] => one.trim_matches('"').to_owned(),
        _ => format!("{backend_ids:?}"),
    };
    o.insert(
        "backend: x-request-id".to_owned(),
        id_shape(Some(&backend_id), sent_id),
    );
    o.insert(
        "backend: x-request-id is the answer's".to_owned(),
        (Some(backend_id.as_str()) == answer_id).to_string(),
    );
    o.insert("backend: body_len".to_owned(), view["body_len"].to_string());
    let traceparents: Vec<String> = values("traceparent")
        .iter()
        .map(|v| v.trim_matches('"').to_owned())
        .collect();
    o.insert(
        "backend: traceparent".to_owned(),
        trace_shape(r, &traceparents),
    );
    o.insert("backend: tracestate".to_owned(), joined("tracestate"));
    o
}

/// What the renderings of one request got: the observations compared across all of them, and the answers'
/// layouts, compared between the transports of each version.
#[derive(Default)]
struct Seen {
    observed: Vec<(Rendering, BTreeMap<String, String>)>,
    layouts: Vec<(Rendering, String)>,
}

impl Seen {
    fn push(&mut self, r: &Req, rendering: Rendering, got: &Got) -> BTreeMap<String, String> {
        let o = observe(r, rendering, got);
        self.observed.push((rendering, o.clone()));
        self.layouts.push((rendering, got.layout()));
        o
    }

    /// The differences between the renderings of `r`: one entry, or none.
    fn differences(&self, r: &Req) -> Option<String> {
        let mut lines = differences(&self.observed);
        lines.extend(layout_differences(&self.layouts));
        (!lines.is_empty()).then(|| format!("{:?} differs:\n{}", r.name, lines.join("\n")))
    }
}

/// Sends `r` on every rendering (each to the rrlb `proxy` gives for its transport), checks its status and the
/// rules of every rendering, compares the observations; failures are appended to `diffs`.
async fn compare<'a>(proxy: impl Fn(Transport) -> Proxy<'a>, r: &Req, diffs: &mut Vec<String>) {
    let mut seen = Seen::default();
    for rendering in RENDERINGS {
        match send(proxy(rendering.transport), rendering, r).await {
            Ok(got) => {
                if !r.status.contains(&got.status) {
                    diffs.push(format!(
                        "{:?} on the {}: status {}, expected one of {:?}: {}",
                        r.name,
                        rendering.name(),
                        got.status,
                        r.status,
                        String::from_utf8_lossy(&got.body)
                    ));
                }
                let o = seen.push(r, rendering, &got);
                diffs.extend(
                    forwarded_rules(r, rendering, &o)
                        .into_iter()
                        .chain(trace_rules(r, &o))
                        .map(|e| format!("{:?} on the {}: {e}", r.name, rendering.name())),
                );
                if let Some(names) = o.get("backend: header names") {
                    for hop in HOP_BY_HOP {
                        if names.split(", ").any(|n| n == hop) {
                            diffs.push(format!(
                                "{:?} on the {}: the backend received hop-by-hop header {hop:?}",
                                r.name,
                                rendering.name()
                            ));
                        }
                    }
                }
            }
            Err(e) => diffs.push(format!("{:?} on the {}: {e}", r.name, rendering.name())),
        }
    }
    diffs.extend(seen.differences(r));
}

/// rrlb's forwarded headers, on every rendering: exactly one `x-forwarded-proto`, the scheme of the
/// rendering's connection (`http` or `https`); exactly one `x-forwarded-host` equal to the client's host (or
/// `:authority`); and exactly one `x-forwarded-for` as `r.xff` says (whatever `x-forwarded-*` the client
/// sent).
fn forwarded_rules(r: &Req, rendering: Rendering, o: &BTreeMap<String, String>) -> Vec<String> {
    if o.get("answer: from").map(String::as_str) != Some("the backend") {
        return Vec::new();
    }
    let quoted = |v: &str| format!("{v:?}");
    let scheme = quoted(rendering.transport.scheme());
    [
        (
            "x-forwarded-proto",
            SAME_SCHEME.to_owned(),
            format!("{scheme} ({SAME_SCHEME})"),
        ),
        ("x-forwarded-host", quoted(AUTHORITY), quoted(AUTHORITY)),
        ("x-forwarded-for", quoted(r.xff), quoted(r.xff)),
    ]
    .into_iter()
    .filter_map(|(name, want, shown)| {
        let got = o.get(&format!("backend: {name}"));
        (got != Some(&want))
            .then(|| format!("the backend got {name}: {got:?}, expected exactly {shown}"))
    })
    .collect()
}

/// For every observation that is not the same on all renderings: its name, then its value per rendering.
fn differences(seen: &[(Rendering, BTreeMap<String, String>)]) -> Vec<String> {
    let keys: BTreeSet<&String> = seen.iter().flat_map(|(_, o)| o.keys()).collect();
    let mut lines = Vec::new();
    for key in keys {
        let values: Vec<Option<&String>> = seen.iter().map(|(_, o)| o.get(key)).collect();
        if values.windows(2).all(|w| w[0] == w[1]) {
            continue;
        }
        lines.push(format!("  {key}:"));
        for ((rendering, _), v) in seen.iter().zip(&values) {
            lines.push(format!(
                "    {:<27} {}",
                rendering.name(),
                v.map(String::as_str).unwrap_or("(absent)")
            ));
        }
    }
    lines
}

/// For every TLS rendering whose answer is laid out otherwise than its plaintext rendering's (same version):
/// both layouts.
fn layout_differences(layouts: &[(Rendering, String)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (tls, over_tls) in layouts
        .iter()
        .filter(|(r, _)| r.transport == Transport::Tls)
    {
        let plain = rendering(tls.version, Transport::Plain);
        let Some((_, in_plaintext)) = layouts.iter().find(|(r, _)| *r == plain) else {
            continue;
        };
        if over_tls != in_plaintext {
            lines.push(format!(
                "  the answer's layout over TLS:\n    {:<27} {in_plaintext}\n    {:<27} {over_tls}",
                plain.name(),
                tls.name()
            ));
        }
    }
    lines
}

fn assert_no_diffs(what: &str, diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{what}: {} difference(s) between the renderings (the fast path: HTTP/1.1; the hyper path: HTTP/1.0 \
         and HTTP/2; each in plaintext and over TLS):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// A configuration with one backend, `name` at `url`, without health checks, and `extra`.
fn config(name: &str, url: &str, extra: &str) -> String {
    format!(
        "{}[health]\nenabled = false\n{extra}",
        backends_toml(&[(name, url, 1)])
    )
}

/// Every request reaches the backend as the same request, and comes back as the same answer, on all six
/// renderings: one rrlb with a plaintext listener and one with a TLS listener, before the same backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_forwarded_alike_on_every_path() {
    let backend = TestBackend::start().await;
    let toml = config("t", &backend.url(), "[limits]\nmax_body_bytes = 64\n");
    let certs = Certs::new();
    let plain = certs.start(&toml, Transport::Plain).await;
    let tls = certs.start(&toml, Transport::Tls).await;
    let proxy = |transport| Proxy {
        addr: match transport {
            Transport::Plain => plain.proxy,
            Transport::Tls => tls.proxy,
        },
        pki: &certs.pki,
    };
    let mut diffs = Vec::new();
    for r in requests() {
        compare(proxy, &r, &mut diffs).await;
    }
    assert_no_diffs("requests", &diffs);
}

/// A backend that is down is reported alike (status, error text, headers) on all six renderings; each
/// rendering gets its own rrlb in the same state (one backend on a closed port, no health checks, a fresh
/// breaker; its listener plaintext or TLS as the rendering's transport).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_backend_is_reported_alike_on_every_path() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let toml = config("down", &format!("http://{closed}"), "");
    let r = req(
        "a backend that is down",
        "GET",
        "/parity/down",
        &[("x-request-id", b"parity-down")],
        b"",
        &[502, 503],
    );
    let certs = Certs::new();
    let mut seen = Seen::default();
    let mut diffs = Vec::new();
    for rendering in RENDERINGS {
        let h = certs.start(&toml, rendering.transport).await;
        let proxy = Proxy {
            addr: h.proxy,
            pki: &certs.pki,
        };
        match send(proxy, rendering, &r).await {
            Ok(got) => {
                if !r.status.contains(&got.status) {
                    diffs.push(format!(
                        "on the {}: status {}, expected 502 or 503",
                        rendering.name(),
                        got.status
                    ));
                }
                seen.push(&r, rendering, &got);
            }
            Err(e) => diffs.push(format!("on the {}: {e}", rendering.name())),
        }
    }
    diffs.extend(seen.differences(&r));
    assert_no_diffs("a down backend", &diffs);
}
