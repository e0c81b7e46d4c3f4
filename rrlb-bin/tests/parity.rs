//! Parity of rrlb's paths: the same requests sent as HTTP/1.1 (the fast path), HTTP/1.0 (handed to hyper's
//! server) and HTTP/2 with prior knowledge (h2c, hyper's server) must reach the backend as the same HTTP/1.1
//! request, and come back to the client as the same answer.
//!
//! Per request, what `TestBackend` received (method, path and query, the set of header names, `host`,
//! `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host`, `x-request-id`, `content-length`, body length,
//! what its `traceparent` says about the client's trace, `tracestate`)
//! and what the client got (status, where the answer came from, the JSON error's `error` text and
//! `request_id`, `x-request-id`, `x-rrlb-backend`, `retry-after` presence, `content-type`) are compared across
//! the three renderings, with a diff of every difference.
//!
//! What legitimately differs by protocol is in the renderings, not in the comparison: HTTP/2 cannot carry
//! connection-specific headers (RFC 9113 §8.2.2), so the h2c rendering of a request with `connection`,
//! `keep-alive`, `proxy-connection` or `upgrade` omits them (hyper's HTTP/2 client drops them, and the headers
//! `connection` names); HTTP/2 has no `host` line but `:authority` (RFC 9113 §8.3.1), which the h2c rendering
//! sets to the same value the HTTP/1 renderings send as `host`. No header is left out of the comparison: rrlb
//! sends the backend its own HTTP/1.1 request whatever the client spoke. Values that are random per request (a
//! request id rrlb made) are compared by shape (a UUID v4) and by agreement between the backend and the answer.
//!
//! Sources: RFC 9110 §7.6.1 (hop-by-hop `connection` headers, `proxy-connection`, `keep-alive`, `te`,
//! `upgrade`), §7.2 (Host and :authority); RFC 9112 §3.2 (Host), §6.3 (message body length); RFC 9113 §8.2.2
//! (connection-specific fields), §8.3.1 (request pseudo-header fields); PortSwigger, James Kettle, "HTTP/2: The
//! Sequel is Always Worse" (2021: request smuggling through HTTP/2 to HTTP/1 downgrades, where the same request
//! becomes different HTTP/1 on the way to the backend); the HTTP Garden (Kallus et al., arXiv:2405.17737) on
//! gateways transforming one request differently from another.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rrlb_tower::trace::TraceParent;
use serde_json::Value;
use tokio::net::TcpListener;

use support::wire::{Conn, WAIT};
use support::*;

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

/// How a request reaches rrlb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendering {
    Http11,
    Http10,
    H2c,
}

const RENDERINGS: [Rendering; 3] = [Rendering::Http11, Rendering::Http10, Rendering::H2c];

impl Rendering {
    fn name(self) -> &'static str {
        match self {
            Rendering::Http11 => "fast path (HTTP/1.1)",
            Rendering::Http10 => "hyper path (HTTP/1.0)",
            Rendering::H2c => "hyper path (h2c)",
        }
    }
}

/// An answer as the client got it.
struct Got {
    status: u16,
    /// Lowercase names, values as text.
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
}

/// Whether the request sends a `content-length` (every rendering alike: with a body, or for a POST).
fn length_line(r: &Req) -> Option<usize> {
    (!r.body.is_empty() || r.method == "POST").then_some(r.body.len())
}

/// Sends `r` on a new raw connection as HTTP/1.1 or HTTP/1.0 and reads the answer.
async fn send_raw(proxy: SocketAddr, r: &Req, version: &str) -> Result<Got, String> {
    let mut raw = format!("{} {} {version}\r\nhost: {proxy}\r\n", r.method, r.target).into_bytes();
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
    let exchange = async {
        let mut conn = Conn::connect(proxy, WAIT).await;
        // rrlb may answer (a 413) before it reads the body: a write error is not the answer.
        conn.send(&raw).await;
        let a = conn.answer(r.method == "HEAD").await.into_answer()?;
        Ok(Got {
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
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {WAIT:?}")))
}

type H2Client = Client<HttpConnector, Full<Bytes>>;

/// Sends `r` over h2c (HTTP/2 with prior knowledge), with `:authority` what the HTTP/1 renderings send as `host`.
async fn send_h2(client: &H2Client, proxy: SocketAddr, r: &Req) -> Result<Got, String> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?)
        .uri(format!("http://{proxy}{}", r.target));
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
    let exchange = async {
        let res = client
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        if res.version() != http::Version::HTTP_2 {
            return Err(format!("answered over {:?}, not HTTP/2", res.version()));
        }
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok(Got {
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
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {WAIT:?}")))
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

/// What is compared: the answer, and (when the answer came from the backend) what the backend received.
fn observe(r: &Req, got: &Got) -> BTreeMap<String, String> {
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
        "x-forwarded-proto",
        "x-forwarded-host",
        "content-length",
    ] {
        o.insert(format!("backend: {name}"), joined(name));
    }
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

/// Sends `r` on every rendering (h2c through `h2`), checks its status, compares the observations; failures are
/// appended to `diffs`.
async fn compare(proxy: SocketAddr, h2: &H2Client, r: &Req, diffs: &mut Vec<String>) {
    let mut seen: Vec<(Rendering, BTreeMap<String, String>)> = Vec::new();
    for rendering in RENDERINGS {
        let got = match rendering {
            Rendering::Http11 => send_raw(proxy, r, "HTTP/1.1").await,
            Rendering::Http10 => send_raw(proxy, r, "HTTP/1.0").await,
            Rendering::H2c => send_h2(h2, proxy, r).await,
        };
        match got {
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
                let o = observe(r, &got);
                diffs.extend(
                    forwarded_rules(proxy, r, &o)
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
                seen.push((rendering, o));
            }
            Err(e) => diffs.push(format!("{:?} on the {}: {e}", r.name, rendering.name())),
        }
    }
    let lines = differences(&seen);
    if !lines.is_empty() {
        diffs.push(format!("{:?} differs:\n{}", r.name, lines.join("\n")));
    }
}

/// rrlb's forwarded headers, on every rendering: exactly one `x-forwarded-proto: http`, exactly one
/// `x-forwarded-host` equal to the client's host (or `:authority`), and exactly one `x-forwarded-for` as
/// `r.xff` says (whatever `x-forwarded-*` the client sent).
fn forwarded_rules(proxy: SocketAddr, r: &Req, o: &BTreeMap<String, String>) -> Vec<String> {
    if o.get("answer: from").map(String::as_str) != Some("the backend") {
        return Vec::new();
    }
    [
        ("x-forwarded-proto", "http".to_owned()),
        ("x-forwarded-host", proxy.to_string()),
        ("x-forwarded-for", r.xff.to_owned()),
    ]
    .into_iter()
    .filter_map(|(name, want)| {
        let want = format!("{want:?}");
        let got = o.get(&format!("backend: {name}"));
        (got != Some(&want))
            .then(|| format!("the backend got {name}: {got:?}, expected exactly {want}"))
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
                "    {:<24} {}",
                rendering.name(),
                v.map(String::as_str).unwrap_or("(absent)")
            ));
        }
    }
    lines
}

fn h2_client() -> H2Client {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

fn assert_no_diffs(what: &str, diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{what}: {} difference(s) between the fast path (HTTP/1.1) and the hyper path (HTTP/1.0, h2c):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// Every request reaches the backend as the same request, and comes back as the same answer, on all three
/// renderings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_forwarded_alike_on_every_path() {
    let backend = TestBackend::start().await;
    let toml = format!(
        "{}[health]\nenabled = false\n[limits]\nmax_body_bytes = 64\n",
        backends_toml(&[("t", &backend.url(), 1)])
    );
    let h = Harness::builder().file(toml).start().await;
    let h2 = h2_client();
    let mut diffs = Vec::new();
    for r in requests() {
        compare(h.proxy, &h2, &r, &mut diffs).await;
    }
    assert_no_diffs("requests", &diffs);
}

/// A backend that is down is reported alike (status, error text, headers) on all three renderings; each
/// rendering gets its own rrlb in the same state (one backend on a closed port, no health checks, a fresh
/// breaker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_backend_is_reported_alike_on_every_path() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let toml = format!(
        "{}[health]\nenabled = false\n",
        backends_toml(&[("down", &format!("http://{closed}"), 1)])
    );
    let r = req(
        "a backend that is down",
        "GET",
        "/parity/down",
        &[("x-request-id", b"parity-down")],
        b"",
        &[502, 503],
    );
    let mut seen = Vec::new();
    let mut diffs = Vec::new();
    for rendering in RENDERINGS {
        let h = Harness::builder().file(toml.clone()).start().await;
        let got = match rendering {
            Rendering::Http11 => send_raw(h.proxy, &r, "HTTP/1.1").await,
            Rendering::Http10 => send_raw(h.proxy, &r, "HTTP/1.0").await,
            Rendering::H2c => send_h2(&h2_client(), h.proxy, &r).await,
        };
        match got {
            Ok(got) => {
                if !r.status.contains(&got.status) {
                    diffs.push(format!(
                        "on the {}: status {}, expected 502 or 503",
                        rendering.name(),
                        got.status
                    ));
                }
                seen.push((rendering, observe(&r, &got)));
            }
            Err(e) => diffs.push(format!("on the {}: {e}", rendering.name())),
        }
    }
    let lines = differences(&seen);
    if !lines.is_empty() {
        diffs.push(format!("{:?} differs:\n{}", r.name, lines.join("\n")));
    }
    assert_no_diffs("a down backend", &diffs);
}
