//! The proxy listener's request handler: limits, request ids, header hygiene, balancing, error answers,
//! metrics and the access log.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use rrlb_tower::Served;
use rrlb_tower::http::status_for;
use tower::{Service, ServiceExt};

use crate::state::{App, ProxyService};

/// The proxy's response body: a backend's streamed body, or one of rrlb's own JSON answers.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-rrlb-backend`.
pub static X_RRLB_BACKEND: HeaderName = HeaderName::from_static("x-rrlb-backend");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), never forwarded.
pub(crate) fn hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Removes hop-by-hop headers, including those the `connection` header names.
///
/// One pass over the names finds what to remove (most messages have none of them), instead of a hashed removal
/// per hop-by-hop name on every message.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let hop = hop_by_hop();
    if !headers.keys().any(|k| hop.contains(&k)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in hop {
        headers.remove(name);
    }
}

/// A client's `x-request-id` is kept when it is 1..=128 visible characters from a safe set.
fn sane_request_id(v: &HeaderValue) -> bool {
    sane_request_id_bytes(v.as_bytes())
}

/// [`sane_request_id`] on the raw header value.
pub(crate) fn sane_request_id_bytes(b: &[u8]) -> bool {
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
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The body of rrlb's own JSON error answers: `{"error": ..., "request_id": ...}`.
pub fn error_body(message: &str, request_id: &HeaderValue) -> String {
    serde_json::json!({
        "error": message,
        "request_id": request_id.to_str().unwrap_or_default(),
    })
    .to_string()
}

/// rrlb's own JSON error answer.
pub fn json_error(
    status: StatusCode,
    message: &str,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let body = error_body(message, request_id);
    let mut res = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(X_REQUEST_ID.clone(), request_id.clone());
    res
}

/// When `client` is over its rate (`limits.rate_per_client`): the seconds to wait, at least 1.
pub(crate) fn rate_limited(app: &App, client: SocketAddr) -> Option<u64> {
    let limiter = app.limiter.load();
    let not_until = limiter.as_ref().as_ref()?.check_key(&client.ip()).err()?;
    let wait = not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ));
    Some((wait.as_secs_f64().ceil() as u64).max(1))
}

/// The `retry-after` seconds for a `503` with no eligible backend: until the first breaker may let a call
/// through, 1 to 60.
pub(crate) fn no_backend_retry_after(e: &rrlb_tower::Error) -> u64 {
    e.retry_at()
        .map(|t| {
            t.saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil() as u64
        })
        .unwrap_or(1)
        .clamp(1, 60)
}

fn retry_after(res: &mut Response<ProxyBody>, seconds: u64) {
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
}

/// A thread's copy of a published service, and the `Arc` it was copied from.
pub(crate) type LocalService<S> = RefCell<Option<(Arc<S>, S)>>;

thread_local! {
    /// This thread's copy of the proxy service (see [`call_local`]).
    static SERVICE: LocalService<ProxyService> = const { RefCell::new(None) };
}

/// Calls this thread's copy (in `key`) of the `published` service, made again when a reload published
/// a new one: `Balance::call` takes `&mut self`, and cloning the service per request would take and drop
/// references on the set, its snapshot and the retry budget that every worker thread shares. Not an
/// `async fn`: the caller awaits the service's own future, so its state holds that future and not also a copy
/// of the request and a fallback path.
pub(crate) fn call_local<S, R>(
    key: &'static std::thread::LocalKey<LocalService<S>>,
    published: &arc_swap::ArcSwap<S>,
    req: R,
) -> Sending<S, R>
where
    S: Service<R> + Clone,
{
    key.with_borrow_mut(|slot| {
        let current = published.load();
        if !matches!(slot, Some((published, _)) if Arc::ptr_eq(published, &current)) {
            *slot = Some((Arc::clone(&current), S::clone(&current)));
        }
        let Some((_, svc)) = slot.as_mut() else {
            return Sending::Right(Box::pin(S::clone(&current).oneshot(req)));
        };
        // rrlb's upstreams are always ready; should that ever change, fall back to waiting on a clone.
        match svc.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Sending::Left(svc.call(req)),
            _ => Sending::Right(Box::pin(svc.clone().oneshot(req))),
        }
    })
}

/// [`call_local`]'s future: the service's, or (never in practice) a boxed wait for a clone to be ready.
pub(crate) type Sending<S, R> =
    futures_util::future::Either<<S as Service<R>>::Future, Pin<Box<tower::util::Oneshot<S, R>>>>;

/// One serving thread's handle on the [`App`]: every request takes a reference on it, and a reference count
/// that only one thread writes stays in that core's cache (the `App`'s own count is shared by all threads).
#[derive(Debug, Clone)]
pub struct Local(pub Arc<App>);

impl std::ops::Deref for Local {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// Handles one request on the proxy listener. Never fails: every problem is an HTTP answer.
pub async fn handle(
    app: Arc<Local>,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    // The TSC clock: two `Instant::now()` calls cost ~50 ns per request on a VM, two of these ~15 ns.
    let started = quanta::Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| sane_request_id(v))
        .cloned()
        .unwrap_or_else(new_request_id);
    // The access line's request fields, captured only when the access log is on (no allocation otherwise).
    let line = tracing::enabled!(target: "rrlb::access", tracing::Level::INFO)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));

    let (res, backend, attempts, reject) = forward(&app, req, client, &request_id).await;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    match reject {
        Some(reason) => app.metrics.reject(reason),
        None => app.metrics.observe(
            backend.as_deref(),
            status,
            elapsed.as_secs_f64(),
            attempts.saturating_sub(1),
        ),
    }
    if let Some((method, path)) = line {
        tracing::info!(
            target: "rrlb::access",
            request_id = request_id.to_str().unwrap_or_default(),
            client = %client.ip(),
            method = %method,
            path = %path,
            status,
            backend = backend.as_deref().unwrap_or("-"),
            attempts,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
    Ok(res)
}

type Forwarded = (
    Response<ProxyBody>,
    Option<String>,
    u32,
    Option<&'static str>,
);

async fn forward(
    app: &App,
    req: Request<Incoming>,
    client: SocketAddr,
    request_id: &HeaderValue,
) -> Forwarded {
    let config = app.config.load();
    let max_body = config.limits.max_body_bytes;

    if let Some(wait) = rate_limited(app, client) {
        let mut res = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded for this client",
            request_id,
        );
        retry_after(&mut res, wait);
        return (res, None, 0, Some("rate_limit"));
    }

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body exceeds {max_body} bytes"),
            request_id,
        )
    };
    if declared.is_some_and(|n| n > max_body) {
        return (too_large(), None, 0, Some("body_too_large"));
    }

    let (mut parts, body) = req.into_parts();
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return (too_large(), None, 0, Some("body_too_large"));
        }
        Err(e) => {
            let res = json_error(
                StatusCode::BAD_REQUEST,
                &format!("could not read the request body: {e}"),
                request_id,
            );
            return (res, None, 0, Some("bad_request"));
        }
    };

    // Where the client wanted to go: Host (HTTP/1.1) or :authority (HTTP/2).
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    strip_hop_by_hop(&mut parts.headers);
    let h = &mut parts.headers;
    let ip = client.ip().to_string();
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = host {
        h.insert(X_FORWARDED_HOST.clone(), host);
    }
    h.insert(X_REQUEST_ID.clone(), request_id.clone());
    h.remove(header::CONTENT_LENGTH);
    if !body.is_empty() || parts.method != http::Method::GET {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let upstream_req = Request::from_parts(parts, Full::new(body));

    match call_local(&SERVICE, &app.service, upstream_req).await {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            let served = parts.extensions.remove::<Served>();
            strip_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .insert(X_REQUEST_ID.clone(), request_id.clone());
            let (name, attempts) = match served {
                Some(s) => {
                    if let Ok(v) = HeaderValue::from_str(s.backend.name()) {
                        parts.headers.insert(X_RRLB_BACKEND.clone(), v);
                    }
                    (Some(s.backend.name().to_owned()), s.attempts)
                }
                None => (None, 1),
            };
            (
                Response::from_parts(parts, Either::Left(body)),
                name,
                attempts,
                None,
            )
        }
        Err(e) => {
            let status = status_for(&e);
            let mut res = json_error(status, &e.to_string(), request_id);
            if e.is_no_eligible_backend() {
                retry_after(&mut res, no_backend_retry_after(&e));
                return (res, None, 0, Some("no_backend"));
            }
            if let Some(b) = e.backend()
                && let Ok(v) = HeaderValue::from_str(b)
            {
                res.headers_mut().insert(X_RRLB_BACKEND.clone(), v);
            }
            (res, e.backend().map(str::to_owned), e.attempts(), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_connection_named_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert!(sane_request_id(&HeaderValue::from_static("abc-123")));
        assert!(!sane_request_id(&HeaderValue::from_static("")));
        assert!(!sane_request_id(&HeaderValue::from_static("a b")));
        assert!(!sane_request_id(
            &HeaderValue::from_str(&"x".repeat(129)).unwrap()
        ));
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(new_request_id(), id);
    }
}
