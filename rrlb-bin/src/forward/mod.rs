//! The forwarding core: every decision about a request and its answer, made once from a protocol-neutral view
//! and written out by each request path in its own form.
//!
//! rrlb has two request paths: the fast path ([`crate::fast`], hand-written HTTP/1.1) and the hyper path
//! ([`crate::proxy`], HTTP/1.0 and h2c through hyper's server). When two paths each decide for themselves which
//! headers to forward, what `x-forwarded-for` becomes or when a request is refused, they drift apart, and a
//! client picks the path that suits an attack. So the paths only gather facts and render; this module decides:
//!
//! - [`Facts::gather`] reads the header fields in one pass (from `httparse` or a `HeaderMap` alike);
//! - [`decide`] turns them, with the method, target and protocol, into a [`Plan`] (request id, the origin-form
//!   target, `x-forwarded-*`, the body's framing, whether to close, `expect`) or a [`Rejection`];
//! - [`Facts::forwards`] says which of the client's fields go to the backend as they are;
//! - [`admit`] applies the limits (rate, body size); [`Rejection`]/[`ErrorAnswer`] are rrlb's own answers,
//!   written as bytes ([`ErrorAnswer::to_h1`]) or as a `Response` ([`ErrorAnswer::to_response`]);
//! - [`Record`] counts the outcome and writes the access line.
//!
//! The request rules, stricter than RFC 9112 requires where being lenient has let requests be smuggled, and as
//! strict as NGINX:
//! - HTTP/1.1 needs exactly one `host` (RFC 9112 §3.2); HTTP/1.0 at most one; a value that is not an
//!   authority (`a b`, `a/b`, `user@a`) is refused; an empty one is allowed and means "no host".
//! - An absolute-form target (or HTTP/2's `:authority`) must name the same authority as `host` if both are
//!   given; it is forwarded in origin form, its authority as `x-forwarded-host`. `*` and `CONNECT` are refused.
//! - `transfer-encoding` is allowed on HTTP/1.1 only, exactly `chunked`, once, and never beside
//!   `content-length`; `content-length` is one header of decimal digits.
//! - `x-forwarded-host` and `x-forwarded-proto` are rrlb's: a client's never pass. `x-forwarded-for` is the
//!   client's valid values (visible ASCII, joined in order with `, `), then the client's address.
//! - `x-request-id` is kept when it is 1 to 128 characters from a safe set, else a new UUID v4 is made.
//! - `traceparent` is rrlb's: a client's single valid one is continued (its trace id and flags, rrlb's span as
//!   the parent), anything else starts a new trace, and each attempt sends its own span id
//!   ([`rrlb_tower::trace`] has the rules). `tracestate` passes only with a continued trace.

pub(crate) mod record;
pub(crate) mod reject;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use http::header::{HeaderName, HeaderValue};
use rrlb_tower::trace::TraceParent;

pub(crate) use self::record::{Log, Record, Verdict};
pub(crate) use self::reject::{ErrorAnswer, Rejection};
use crate::app::App;
use crate::h1::{self, Connection};
pub(crate) use crate::telemetry::Trace;

/// How long a keep-alive client connection may stay idle between requests (NGINX's `keepalive_timeout` default
/// is 75 s; clients' pools usually drop idle connections sooner).
pub(crate) const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);

/// How long, once the server stops, a keep-alive connection must have sent nothing before it is closed. A client
/// that got its last answer before the stop (so without `connection: close`) may have its next request on the
/// wire already; closing at once would lose it. Every answer during the drain carries `connection: close`, so
/// only connections that stay quiet this long are closed unasked (as HAProxy's soft stop does, but bounded).
pub(crate) const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(500);

/// `x-request-id`.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-rrlb-backend`.
pub(crate) static X_RRLB_BACKEND: HeaderName = HeaderName::from_static("x-rrlb-backend");

/// The protocol a client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2 (h2c).
    Http2,
}

impl Protocol {
    /// The version as OpenTelemetry's `network.protocol.version` writes it.
    pub(crate) fn version(self) -> &'static str {
        match self {
            Protocol::Http10 => "1.0",
            Protocol::Http11 => "1.1",
            Protocol::Http2 => "2",
        }
    }
}

/// What a request's header fields say, as far as rrlb decides on it.
#[derive(Debug, Default)]
pub(crate) struct Facts<'a> {
    hosts: usize,
    host: Option<&'a [u8]>,
    lengths: usize,
    length: Option<u64>,
    bad_length: bool,
    codings: usize,
    chunked: bool,
    expects: usize,
    expect: Option<&'a [u8]>,
    request_id: Option<&'a [u8]>,
    traceparents: usize,
    traceparent: Option<&'a [u8]>,
    forwarded_for: Vec<&'a [u8]>,
    connection: Connection<'a>,
}

impl<'a> Facts<'a> {
    /// Reads the fields that matter, in one pass.
    pub(crate) fn gather(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut f = Facts::default();
        for (name, value) in fields {
            // Dispatch on the length first: most fields are none of these.
            match name.len() {
                4 if name.eq_ignore_ascii_case("host") => {
                    f.hosts += 1;
                    f.host.get_or_insert(value);
                }
                6 if name.eq_ignore_ascii_case("expect") => {
                    f.expects += 1;
                    f.expect = Some(value);
                }
                10 if name.eq_ignore_ascii_case("connection") => f.connection.add(value),
                11 if name.eq_ignore_ascii_case("traceparent") => {
                    f.traceparents += 1;
                    f.traceparent.get_or_insert(value);
                }
                12 if name.eq_ignore_ascii_case("x-request-id") => {
                    f.request_id.get_or_insert(value);
                }
                14 if name.eq_ignore_ascii_case("content-length") => {
                    f.lengths += 1;
                    match h1::parse_length(value) {
                        Some(n) => f.length = Some(n),
                        None => f.bad_length = true,
                    }
                }
                15 if name.eq_ignore_ascii_case("x-forwarded-for") => f.forwarded_for.push(value),
                17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                    f.codings += 1;
                    f.chunked = h1::is_chunked(value);
                }
                _ => {}
            }
        }
        f
    }

    /// Whether the client's field `name` goes to the backend as it is. Not: hop-by-hop fields (and those
    /// `connection` names), framing (`content-length`, `transfer-encoding`, `expect`: rrlb reads the body
    /// and frames it anew), `host` (the backend's), the fields rrlb sets itself, and a `tracestate` whose
    /// trace was not continued.
    pub(crate) fn forwards(&self, name: &str) -> bool {
        const OWN: [&str; 9] = [
            "host",
            "content-length",
            "transfer-encoding",
            "expect",
            "x-request-id",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "traceparent",
        ];
        !(OWN.iter().any(|o| name.eq_ignore_ascii_case(o))
            || self.connection.is_hop_by_hop(name)
            || (name.eq_ignore_ascii_case("tracestate") && self.caller_trace().is_none()))
    }

    /// The client's trace, when it sent exactly one valid `traceparent`.
    fn caller_trace(&self) -> Option<TraceParent> {
        let value = self.traceparent.filter(|_| self.traceparents == 1)?;
        TraceParent::parse(value).ok()
    }

    /// The request's place in a trace: the client's continued, or a new one sampled with `sample_ratio`.
    pub(crate) fn trace(&self, sample_ratio: f64) -> Trace {
        match self.caller_trace() {
            Some(caller) => Trace {
                server: caller.child(),
                caller: Some(caller.parent_id()),
            },
            None => Trace {
                server: TraceParent::new_root(rrlb_tower::trace::sample(sample_ratio)),
                caller: None,
            },
        }
    }

    /// The body length the client announced, if it did.
    pub(crate) fn declared_length(&self) -> Option<u64> {
        self.length
    }

    /// The request id: the client's first `x-request-id` when it is sane, else a new one.
    pub(crate) fn request_id(&self) -> HeaderValue {
        self.request_id
            .filter(|v| sane_request_id(v))
            .and_then(|v| HeaderValue::from_bytes(v).ok())
            .unwrap_or_else(new_request_id)
    }
}

/// A client connection either path serves: plain TCP or TLS.
pub(crate) trait ClientStream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> ClientStream for S {}

/// The client a request came from, as the fields rrlb adds need it: its address as text (`x-forwarded-for`),
/// whether it connected over TLS (`x-forwarded-proto`), and the header that carries its verified client
/// certificate's subject (`tls.client_subject_header`): written from the certificate, and a client's own field
/// of that name never passes.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// The client's address as text.
    pub(crate) ip: String,
    /// The connection is TLS.
    pub(crate) https: bool,
    /// The subject header's name, and the verified subject when the client presented a certificate.
    pub(crate) subject: Option<(HeaderName, Option<HeaderValue>)>,
}

impl Peer {
    /// A plaintext client at `ip`.
    pub(crate) fn plain(ip: String) -> Self {
        Self {
            ip,
            https: false,
            subject: None,
        }
    }

    /// Whether `name` is the subject header, which only rrlb writes.
    fn sets(&self, name: &str) -> bool {
        self.subject
            .as_ref()
            .is_some_and(|(own, _)| own.as_str().eq_ignore_ascii_case(name))
    }
}

/// How the request body arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    None,
    /// `content-length` bytes.
    Length(u64),
    /// Chunked (HTTP/1.1).
    Chunked,
}

/// What rrlb will do with a request it accepts.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// The request id: the client's when it is sane, else a new one.
    pub(crate) request_id: HeaderValue,
    /// The target in origin form (`/path?query`).
    pub(crate) target: Cow<'a, str>,
    /// How the body arrives.
    pub(crate) body: BodyFraming,
    /// The client's connection closes after this exchange.
    pub(crate) close: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
    /// The request's trace.
    pub(crate) trace: Trace,
    /// The client's `x-forwarded-for` values, written out only with the head.
    forwarded_for: &'a [&'a [u8]],
    /// The client.
    peer: &'a Peer,
    forwarded_host: Option<&'a [u8]>,
}

/// Decides what to do with a request. `target` is the request target as received (or, from hyper, the path
/// and query), `authority` the one hyper parsed out of an absolute URI or HTTP/2's `:authority`; a new trace is
/// sampled with probability `sample_ratio`.
pub(crate) fn decide<'a>(
    protocol: Protocol,
    method: &Method,
    (target, authority): (&'a str, Option<&'a str>),
    facts: &'a Facts<'a>,
    peer: &'a Peer,
    sample_ratio: f64,
) -> Result<Plan<'a>, Rejection> {
    if method == Method::CONNECT {
        return Err(Rejection::Connect);
    }
    let (authority, target) = match origin_form(target)? {
        (Some(a), path) => (Some(a), path),
        (None, path) => (authority, path),
    };
    if facts.hosts > 1 {
        return Err(Rejection::bad("more than one host header"));
    }
    if facts.hosts == 0 && protocol == Protocol::Http11 {
        return Err(Rejection::bad("missing host header"));
    }
    if let Some(host) = facts.host
        && !valid_authority(host)
    {
        return Err(Rejection::bad("invalid host header"));
    }
    if let (Some(a), Some(host)) = (authority, facts.host)
        && !a.as_bytes().eq_ignore_ascii_case(host)
    {
        return Err(Rejection::bad(
            "the host header does not match the request target",
        ));
    }
    if let Some(a) = authority
        && (a.is_empty() || !valid_authority(a.as_bytes()))
    {
        return Err(Rejection::bad("invalid authority in the request target"));
    }
    let forwarded_host = authority
        .map(str::as_bytes)
        .or(facts.host)
        .filter(|h| !h.is_empty());

    let body = if facts.codings > 0 {
        if protocol != Protocol::Http11 {
            return Err(Rejection::bad(
                "transfer-encoding is only allowed in HTTP/1.1 requests",
            ));
        }
        if facts.lengths > 0 {
            return Err(Rejection::bad("both content-length and transfer-encoding"));
        }
        if facts.codings > 1 || !facts.chunked {
            return Err(Rejection::UnsupportedCoding);
        }
        BodyFraming::Chunked
    } else if facts.bad_length || facts.lengths > 1 {
        return Err(Rejection::bad("invalid content-length"));
    } else {
        match facts.length {
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    };
    let expect_continue = match facts.expect {
        None => false,
        Some(v) if facts.expects == 1 && v.trim_ascii().eq_ignore_ascii_case(b"100-continue") => {
            // RFC 9110 §10.1.1: an HTTP/1.0 client's 100-continue is ignored.
            protocol == Protocol::Http11
        }
        Some(_) => return Err(Rejection::Expectation),
    };
    let request_id = facts.request_id();
    let close = match protocol {
        Protocol::Http11 => facts.connection.close,
        Protocol::Http10 => !facts.connection.keep_alive || facts.connection.close,
        Protocol::Http2 => false,
    };
    Ok(Plan {
        request_id,
        target,
        body,
        close,
        expect_continue,
        trace: facts.trace(sample_ratio),
        forwarded_for: &facts.forwarded_for,
        peer,
        forwarded_host,
    })
}

/// Splits an absolute-form target into its authority and its origin form; an origin-form target is kept.
fn origin_form(target: &str) -> Result<(Option<&str>, Cow<'_, str>), Rejection> {
    if target.starts_with('/') {
        return Ok((None, Cow::Borrowed(target)));
    }
    if target == "*" {
        return Err(Rejection::bad("asterisk-form targets are not supported"));
    }
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| {
            target
                .get(..scheme.len())
                .filter(|s| s.eq_ignore_ascii_case(scheme))
                .map(|_| &target[scheme.len()..])
        })
        .ok_or_else(|| Rejection::bad("invalid request target"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if path.contains('#') {
        return Err(Rejection::bad("a fragment in the request target"));
    }
    let path = if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    Ok((Some(authority), path))
}

/// Whether `v` can be a `host` value: an authority (RFC 3986 reg-name or IP literal, and a port) without
/// userinfo. Empty is allowed here (a request whose target has no authority sends an empty `host`).
fn valid_authority(v: &[u8]) -> bool {
    v.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

/// A client's `x-request-id` is kept when it is 1..=128 visible characters from a safe set.
pub(crate) fn sane_request_id(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(c))
}

/// A new request id: a UUID v4.
pub(crate) fn new_request_id() -> HeaderValue {
    // A UUID v4 (122 random bits) written straight into a stack buffer: no formatting machinery.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = fastrand::u128(..) & !(0xF000u128 << 64) & !(0xC000u128 << 48)
        | (0x4000u128 << 64)
        | (0x8000u128 << 48);
    let mut out = [b'-'; 36];
    let mut nibble = 32;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        nibble -= 1;
        *slot = HEX[((v >> (nibble * 4)) & 0xF) as usize];
    }
    // The id's bytes are cut from a per-thread block (`Bytes` sharing it) instead of allocated one by one.
    thread_local! {
        static IDS: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
    }
    /// Request ids per block.
    const PER_BLOCK: usize = 64;
    let shared = IDS.try_with(|ids| {
        let mut ids = ids.borrow_mut();
        if ids.capacity() < out.len() {
            *ids = bytes::BytesMut::with_capacity(out.len() * PER_BLOCK);
        }
        ids.extend_from_slice(&out);
        ids.split().freeze()
    });
    match shared {
        Ok(bytes) => HeaderValue::from_maybe_shared(bytes),
        // A thread being torn down: an allocation of its own.
        Err(_) => HeaderValue::from_bytes(&out),
    }
    .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Writes the `x-forwarded-for` line: the client's valid values in order, then the client's address. A value
/// that is empty or holds anything but visible ASCII and spaces is dropped (it cannot be relayed faithfully as
/// text).
fn push_forwarded_for(out: &mut Vec<u8>, prior: &[&[u8]], client_ip: &str) {
    out.extend_from_slice(b"x-forwarded-for: ");
    for p in prior {
        let p = p.trim_ascii();
        if !p.is_empty() && p.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            out.extend_from_slice(p);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(client_ip.as_bytes());
    out.extend_from_slice(b"\r\n");
}

impl Plan<'_> {
    /// Writes the fields rrlb adds, in order: `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host` (when
    /// a host is known), `x-request-id`.
    fn push_added(&self, out: &mut Vec<u8>) {
        push_forwarded_for(out, self.forwarded_for, &self.peer.ip);
        let proto: &[u8] = if self.peer.https { b"https" } else { b"http" };
        h1::push_header(out, b"x-forwarded-proto", proto);
        if let Some((name, Some(subject))) = &self.peer.subject {
            h1::push_header(out, name.as_str().as_bytes(), subject.as_bytes());
        }
        if let Some(host) = self.forwarded_host {
            h1::push_header(out, b"x-forwarded-host", host);
        }
        h1::push_header(out, b"x-request-id", self.request_id.as_bytes());
    }

    /// Writes the head the backend gets, but for what the upstream adds per backend (the method, the backend
    /// URL's path prefix and `host`): the origin-form target and ` HTTP/1.1`, the client's fields that
    /// [`Facts::forwards`], then rrlb's own. Both paths write a request this way; `content-length` follows
    /// once the body is read ([`sends_length`]).
    pub(crate) fn write_h1<'f>(
        &self,
        facts: &Facts<'_>,
        fields: impl IntoIterator<Item = (&'f str, &'f [u8])>,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in fields {
            if facts.forwards(name) && !self.peer.sets(name) {
                h1::push_header(out, name.as_bytes(), value);
            }
        }
        self.push_added(out);
    }
}

/// What serving a request reads from the configuration in force, the same for both paths and loaded once per
/// request (one pointer load): a key that requests read is added here and read where it is decided, not loaded
/// by each path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// `timeouts.header_read`: how long a request head may take.
    pub(crate) header_read: Duration,
    /// `timeouts.body_read`: the longest wait between two reads of a request body.
    pub(crate) body_read: Duration,
    /// `limits.max_body_bytes`.
    pub(crate) max_body: u64,
    /// `tracing.sample_ratio`: the share of new traces that are sampled.
    pub(crate) sample_ratio: f64,
}

impl Settings {
    /// The settings in force now.
    pub(crate) fn of(app: &App) -> Self {
        let c = app.config.load();
        Self {
            header_read: c.timeouts.header_read,
            body_read: c.timeouts.body_read,
            max_body: c.limits.max_body_bytes,
            sample_ratio: c.tracing.sample_ratio,
        }
    }
}

/// The checks made before a body is read: the client's rate (`limits.rate_per_client`), then the announced
/// body size against `limits.max_body_bytes`.
pub(crate) fn admit(
    app: &App,
    settings: &Settings,
    client: SocketAddr,
    declared: Option<u64>,
) -> Result<(), Rejection> {
    let max_body = settings.max_body;
    if let Some(not_until) = app
        .limiter
        .load()
        .as_ref()
        .as_ref()
        .and_then(|l| l.check_key(&client.ip()).err())
    {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(Rejection::RateLimited(
            (wait.as_secs_f64().ceil() as u64).max(1),
        ));
    }
    if declared.is_some_and(|n| n > max_body) {
        return Err(Rejection::BodyTooLarge(max_body));
    }
    Ok(())
}

/// The fields rrlb adds to every answer, a backend's and its own: `x-request-id`, and `x-rrlb-backend` naming
/// the backend that answered or was tried last, when its name can be a field value (one check for both
/// paths). Written as bytes ([`write_h1`](Self::write_h1)) or into a `HeaderMap`
/// ([`write_map`](Self::write_map)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerFields<'a> {
    request_id: &'a HeaderValue,
    backend: Option<&'a str>,
}

impl<'a> AnswerFields<'a> {
    /// The fields for an answer to the request `request_id`, from `backend` when one was tried.
    pub(crate) fn new(request_id: &'a HeaderValue, backend: Option<&'a str>) -> Self {
        Self {
            request_id,
            backend: backend.filter(|b| h1::is_field_value(b.as_bytes())),
        }
    }

    /// Appends them as HTTP/1.1 header lines.
    pub(crate) fn write_h1(&self, out: &mut Vec<u8>) {
        h1::push_header(
            out,
            X_REQUEST_ID.as_str().as_bytes(),
            self.request_id.as_bytes(),
        );
        if let Some(backend) = self.backend {
            h1::push_header(out, X_RRLB_BACKEND.as_str().as_bytes(), backend.as_bytes());
        }
    }

    /// Sets them in `headers`.
    pub(crate) fn write_map(&self, headers: &mut http::HeaderMap) {
        headers.insert(X_REQUEST_ID.clone(), self.request_id.clone());
        if let Some(v) = self
            .backend
            .and_then(|b| HeaderValue::from_bytes(b.as_bytes()).ok())
        {
            headers.insert(X_RRLB_BACKEND.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests;
