//! What each admin operation does, given the request the route table dispatched to it (already authorized
//! when the route mutates): the handlers, their JSON renderings and request-body validation.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use rrlb_core::{Backend, BackendSpec, Member};
use serde_json::{Value, json};

use super::AdminResponse;
use crate::app::App;
use crate::apply::{Changing, Control};
use crate::config::{BackendConfig, check_weight};
use crate::logging::ErrorChain;
use crate::state::{self, IfMatch, Overlay, StateError};

/// The refusal of a `weight` that is not a whole number in the engine's range.
fn bad_weight() -> String {
    use rrlb_core::backend::{MAX_WEIGHT, MIN_WEIGHT};
    format!("`weight` must be an integer {MIN_WEIGHT}..={MAX_WEIGHT}")
}

/// Admin request bodies larger than this are refused.
pub(crate) const MAX_ADMIN_BODY: usize = 64 * 1024;

/// A whole (not streamed) admin body.
pub(super) fn whole(bytes: impl Into<Bytes>) -> super::AdminBody {
    Full::new(bytes.into()).boxed_unsync()
}

pub(super) fn respond(status: StatusCode, body: &Value) -> AdminResponse {
    let mut res = Response::new(whole(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> AdminResponse {
    respond(status, &json!({ "error": message.to_string() }))
}

fn backend_json(m: &Member) -> Value {
    backend_state_json(m.backend(), m.weight(), m.is_draining())
}

/// A backend as listed, with its `"origin"` (`file`, `discovery` or `runtime`): a discovered one also says its
/// `"group"` and `"source"`.
fn listed_json(app: &Control, m: &Member) -> Value {
    let mut v = backend_json(m);
    let Some(o) = v.as_object_mut() else {
        return v;
    };
    match crate::discovery::group(&app.config.load(), m.name()) {
        Some((group, source)) => {
            o.insert("origin".into(), json!("discovery"));
            o.insert("group".into(), json!(group));
            o.insert("source".into(), json!(source.as_str()));
        }
        None if app.state().overlay().defines(m.name()) => {
            o.insert("origin".into(), json!("runtime"));
        }
        None => {
            o.insert("origin".into(), json!("file"));
        }
    }
    v
}

/// `answer` with `etag: "<revision>"`.
pub(super) fn with_etag(mut answer: AdminResponse, revision: u64) -> AdminResponse {
    if let Ok(v) = HeaderValue::from_str(&state::etag(revision)) {
        answer.headers_mut().insert(header::ETAG, v);
    }
    answer
}

/// The request's `if-match`, if any (unreadable bytes never match).
pub(super) fn if_match<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
}

/// Saves `next` if the state is at a revision the request's `if-match` accepts: the new revision; else `412`
/// (with the revision in force), or the `503` that says why the store could not keep it. Nothing changed then.
pub(super) async fn save(
    changing: &Changing<'_>,
    next: Overlay,
    if_match: Option<&str>,
) -> Result<u64, AdminResponse> {
    match changing.save(next, &IfMatch::parse(if_match)).await {
        Ok(saved) => Ok(saved.revision),
        Err(StateError::Stale { current }) => {
            let answer = respond(
                StatusCode::PRECONDITION_FAILED,
                &json!({
                    "error": format!(
                        "if-match {} does not name the runtime state's revision {current}: read it again \
                         (GET /admin/backends) and retry",
                        if_match.unwrap_or_default()
                    ),
                    "revision": current,
                }),
            );
            Err(with_etag(answer, current))
        }
        Err(e) => Err(unavailable(&e)),
    }
}

/// With a fleet's state, the set follows the store: publish it anew from the overlay now in force. `None`
/// when the state is this process's (the caller changes the set itself).
pub(super) fn republished(changing: &Changing<'_>) -> Option<AdminResponse> {
    if !changing.is_shared() {
        return None;
    }
    changing
        .republish()
        .err()
        .map(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
        .or(Some(AdminResponse::default()))
}

fn unavailable(e: &StateError) -> AdminResponse {
    tracing::error!(error = %ErrorChain(e), "a runtime change could not be kept; nothing changed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the change was not made: {}", ErrorChain(e)),
    )
}

/// `409` for a change by name to a discovered backend: its group's source owns it.
fn refuse_discovered(app: &App, m: &Member) -> Option<AdminResponse> {
    let config = app.config.load();
    let (group, source) = crate::discovery::group(&config, m.name())?;
    let message = format!(
        "backend {:?} was discovered by group {group:?} (source {:?}) and follows its answers: \
         change the group's [[backends]] entry instead",
        m.name(),
        source.as_str()
    );
    Some(respond(
        StatusCode::CONFLICT,
        &json!({ "error": message, "group": group, "source": source.as_str() }),
    ))
}

fn backend_state_json(b: &Backend, weight: u32, draining: bool) -> Value {
    json!({
        "name": b.name(),
        "url": b.url(),
        "weight": weight,
        "healthy": b.is_healthy(),
        "circuit": b.circuit().as_str(),
        "in_flight": b.stats().in_flight(),
        "draining": draining,
    })
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `GET /admin/health`'s body and status.
pub(super) fn health(app: &App) -> AdminResponse {
    let snap = app.set.load();
    let active: Vec<&Member> = snap.members().iter().filter(|m| !m.is_draining()).collect();
    let eligible = active.iter().filter(|m| m.is_eligible()).count();
    let status = if eligible > 0 && eligible == active.len() {
        "ok"
    } else if eligible > 0 {
        "degraded"
    } else {
        "down"
    };
    let body = json!({
        "status": status,
        "panic": snap.is_panic(),
        "backends": snap.members().iter().map(backend_json).collect::<Vec<_>>(),
    });
    let code = if app.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(code, &body)
}

/// `GET /admin/metrics`' body (also each `GET /admin/events` snapshot's).
pub(super) fn metrics_json(app: &App) -> Value {
    let snap = app.set.load();
    let mut counts = serde_json::Map::new();
    let mut backends = Vec::new();
    let now = rrlb_core::backend::Timestamp::from_instant(std::time::Instant::now());
    for m in snap.members() {
        let s = m.stats().snapshot();
        let ewma = m.stats().ewma().estimate(now).map(ms);
        counts.insert(m.name().to_owned(), json!(s.requests));
        backends.push(json!({
            "name": m.name(),
            "url": m.url(),
            "requests": s.requests,
            "successes": s.successes,
            "failures": s.failures,
            "error_rate": s.error_rate,
            "in_flight": s.in_flight,
            "latency_ms": {
                "avg": ms(s.latency_avg),
                "p50": ms(s.latency_p50),
                "p90": ms(s.latency_p90),
                "p99": ms(s.latency_p99),
            },
            "circuit": m.circuit().as_str(),
            "healthy": m.is_healthy(),
            "weight": m.weight(),
            "ewma_ms": ewma,
            "slow_start": m.slow_start_since().is_some(),
        }));
    }
    json!({
        "total_requests": app.metrics.total_requests(),
        "request_counts": counts,
        "backends": backends,
    })
}

/// The effective configuration as JSON, in the file's shape, without the admin token.
fn config_json(app: &App) -> Value {
    let text = app.config.load().to_toml_string();
    let mut value = toml::from_str::<toml::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(admin) = value.get_mut("admin").and_then(Value::as_object_mut) {
        admin.remove("token");
    }
    value
}

async fn json_body(
    req: Request<Incoming>,
) -> Result<serde_json::Map<String, Value>, AdminResponse> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE)
        && !ct
            .to_str()
            .unwrap_or_default()
            .trim_start()
            .starts_with("application/json")
    {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected content-type: application/json",
        ));
    }
    let bytes = Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body exceeds {MAX_ADMIN_BODY} bytes"),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the body: {e}"),
                )
            }
        })?
        .to_bytes();
    parse_object(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

/// Parses an admin request body: it must be one JSON object.
pub fn parse_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected a JSON object".to_owned()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Validates a `POST /admin/backends` body (`{"url", "weight"?, "name"?}`) into a backend spec.
pub fn parse_new_backend(body: &serde_json::Map<String, Value>) -> Result<BackendSpec, String> {
    if let Some(k) = body
        .keys()
        .find(|k| !["url", "weight", "name"].contains(&k.as_str()))
    {
        return Err(format!("unknown field `{k}` (expected url, weight, name)"));
    }
    let url = body
        .get("url")
        .ok_or("missing field `url`")?
        .as_str()
        .ok_or("`url` must be a string")?;
    let weight = match body.get("weight") {
        None => None,
        Some(w) => Some(
            w.as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .ok_or_else(bad_weight)?,
        ),
    };
    let name = match body.get("name") {
        None => None,
        Some(n) => Some(n.as_str().ok_or("`name` must be a string")?),
    };
    let config = BackendConfig::new(url, weight, name).map_err(|e| e.to_string())?;
    Ok(config.spec())
}

/// Finds a member by name, or by its (percent-decoded) URL.
fn find(app: &App, key: &str) -> Option<Member> {
    let decoded = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    let snap = app.set.load();
    snap.members()
        .iter()
        .find(|m| {
            m.name() == key
                || m.name() == decoded
                || m.url() == decoded
                || m.url().trim_end_matches('/') == decoded.trim_end_matches('/')
        })
        .cloned()
}

/// `GET /admin/metrics`: counters and latency per backend, as JSON.
pub(super) fn admin_metrics(app: &App) -> AdminResponse {
    respond(StatusCode::OK, &metrics_json(app))
}

/// `GET /healthz`: always `200` while serving.
pub(super) fn liveness() -> AdminResponse {
    respond(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /readyz`: `200` while a backend is eligible (and the runtime state has been read), else `503`.
/// `GET /admin/tls`: whether the proxy listener serves TLS, and each certificate it serves (the default pair's
/// first): name, subject, SANs, validity and source file; never anything of a key.
pub(super) fn tls(app: &App) -> AdminResponse {
    let listener = app.tls.load_full();
    let certificates = (*listener).as_ref().map(|l| l.infos()).unwrap_or_default();
    respond(
        StatusCode::OK,
        &json!({"enabled": listener.is_some(), "certificates": certificates}),
    )
}

pub(super) fn readiness(app: &Control) -> AdminResponse {
    if !app.state().is_synced() {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "the runtime state has not been read from its store yet"}),
        );
    }
    if app.is_ready() {
        respond(StatusCode::OK, &json!({"status": "ready"}))
    } else {
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "no eligible backend"}),
        )
    }
}

/// `GET /metrics`: the Prometheus (OpenMetrics) exposition.
pub(super) fn prometheus(app: &App) -> AdminResponse {
    let mut res = Response::new(whole(app.metrics.render(&app.set)));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}

/// `GET /admin/backends`, with the runtime state's `etag`.
pub(super) fn list_backends(app: &Control) -> AdminResponse {
    let revision = app.state().revision();
    let list: Vec<Value> = app
        .set
        .load()
        .members()
        .iter()
        .map(|m| listed_json(app, m))
        .collect();
    with_etag(
        respond(StatusCode::OK, &json!({ "backends": list })),
        revision,
    )
}

/// `GET /admin/backends/{name}`, with the runtime state's `etag`.
pub(super) fn get_backend(app: &Control, key: &str) -> AdminResponse {
    let revision = app.state().revision();
    match find(app, key) {
        Some(m) => with_etag(respond(StatusCode::OK, &listed_json(app, &m)), revision),
        None => error(StatusCode::NOT_FOUND, format!("no backend named {key:?}")),
    }
}

/// `DELETE /admin/backends/{name}`: `204`; requests in flight to it complete. `409` for a discovered backend,
/// `412` for a stale `if-match`, `503` when the store cannot keep the change.
pub(super) async fn delete_backend(
    app: &Control,
    req: Request<Incoming>,
    key: &str,
) -> AdminResponse {
    let precondition = if_match(&req);
    let changing = app.changing().await;
    let Some(m) = find(app, key) else {
        return error(StatusCode::NOT_FOUND, format!("no backend named {key:?}"));
    };
    if let Some(res) = refuse_discovered(app, &m) {
        return res;
    }
    let mut next = changing.overlay().next();
    next.delete(m.name());
    let revision = match save(&changing, next, precondition.as_deref()).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let removed = match republished(&changing) {
        Some(res) if res.status() != StatusCode::OK => return res,
        Some(_) => Ok(()),
        None => app.set.remove(m.name()).map(|_| ()),
    };
    match removed {
        Ok(_) => {
            tracing::info!(
                backend = m.name(),
                revision,
                "backend removed by the admin API"
            );
            let mut res = Response::new(whole(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            with_etag(res, revision)
        }
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

/// `POST /admin/reload`: `200` with the effective config, or `400` and the running config stays.
pub(super) async fn reload(app: &Control) -> AdminResponse {
    match app.reload().await {
        Ok(_) => respond(StatusCode::OK, &config_json(app)),
        Err(e) => {
            let e = ErrorChain(&e);
            tracing::error!(error = %e, "reload rejected; the running configuration stays");
            error(StatusCode::BAD_REQUEST, e)
        }
    }
}

/// `POST /admin/backends`: `201` with the backend and its `location`; `400` invalid; `409` duplicate; `412` a
/// stale `if-match`; `503` when the store cannot keep the change.
pub(super) async fn add_backend(app: &Control, req: Request<Incoming>) -> AdminResponse {
    let precondition = if_match(&req);
    let body = match json_body(req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let spec = match parse_new_backend(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let changing = app.changing().await;
    // Refused before anything is kept: a name or URL the set has.
    if let Some(m) = app
        .set
        .load()
        .members()
        .iter()
        .find(|m| m.name() == spec.name || m.url() == spec.url)
    {
        return error(
            StatusCode::CONFLICT,
            rrlb_core::SetError::Duplicate {
                name: m.name().to_owned(),
            },
        );
    }
    let weight = spec.weight;
    let mut next = changing.overlay().next();
    next.define(&spec.name, &spec.url, weight);
    let revision = match save(&changing, next, precondition.as_deref()).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let name = spec.name.clone();
    let added = match republished(&changing) {
        Some(res) if res.status() != StatusCode::OK => return res,
        Some(_) => app
            .set
            .get(&name)
            .map(|m| std::sync::Arc::clone(m.backend()))
            .ok_or(rrlb_core::SetError::NotFound { name }),
        None => app.set.add(spec),
    };
    match added {
        Ok(b) => {
            tracing::info!(
                backend = b.name(),
                url = b.url(),
                revision,
                "backend added by the admin API"
            );
            let mut v = backend_state_json(&b, weight, false);
            if let Some(o) = v.as_object_mut() {
                o.insert("origin".into(), json!("runtime"));
            }
            let mut res = with_etag(respond(StatusCode::CREATED, &v), revision);
            let location = format!(
                "/admin/backends/{}",
                percent_encoding::utf8_percent_encode(b.name(), percent_encoding::NON_ALPHANUMERIC)
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
        Err(e) if e.is_duplicate() => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// A validated `PATCH /admin/backends/{name}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    /// New weight.
    pub weight: Option<u32>,
    /// Start (`true`) or stop (`false`) draining.
    pub drain: Option<bool>,
    /// With `drain: true`: remove once idle.
    pub remove: Option<bool>,
}

/// Validates a `PATCH` body: at least one of `weight` (1..=10000), `drain`, `remove` (which needs `drain: true`).
pub fn parse_patch(body: &serde_json::Map<String, Value>) -> Result<Patch, String> {
    if body.is_empty() {
        return Err("expected at least one of weight, drain, remove".to_owned());
    }
    if let Some(k) = body
        .keys()
        .find(|k| !["weight", "drain", "remove"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field `{k}` (expected weight, drain, remove)"
        ));
    }
    let weight = match body.get("weight") {
        None => None,
        Some(w) => match w
            .as_u64()
            .map(|w| check_weight(u32::try_from(w).unwrap_or(u32::MAX)))
        {
            Some(Ok(w)) => Some(w),
            Some(Err(e)) => return Err(format!("weight: {e}")),
            None => return Err(bad_weight()),
        },
    };
    let flag = |k: &str| match body.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("`{k}` must be true or false")),
    };
    let (drain, remove) = (flag("drain")?, flag("remove")?);
    if remove == Some(true) && drain != Some(true) {
        return Err("`remove` needs `\"drain\": true`".to_owned());
    }
    Ok(Patch {
        weight,
        drain,
        remove,
    })
}

/// `PATCH /admin/backends/{name}`: a new weight, or drain (and remove once idle); `412` for a stale
/// `if-match`, `503` when the store cannot keep the change.
pub(super) async fn patch_backend(
    app: &Control,
    req: Request<Incoming>,
    key: &str,
) -> AdminResponse {
    let precondition = if_match(&req);
    let body = match json_body(req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let changing = app.changing().await;
    let Some(member) = find(app, key) else {
        return error(StatusCode::NOT_FOUND, format!("no backend named {key:?}"));
    };
    if let Some(res) = refuse_discovered(app, &member) {
        return res;
    }
    let Patch {
        weight,
        drain,
        remove,
    } = match parse_patch(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let name = member.name().to_owned();
    let mut next = changing.overlay().next();
    if let Some(w) = weight {
        next.set_weight(&name, w);
    }
    if let Some(d) = drain {
        next.drain(&name, d, remove.unwrap_or(false));
    }
    let revision = match save(&changing, next, precondition.as_deref()).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    match republished(&changing) {
        Some(res) if res.status() != StatusCode::OK => return res,
        Some(_) => {}
        None => {
            if let Some(res) = change_directly(app, &name, weight, drain, remove) {
                return res;
            }
        }
    }
    tracing::info!(
        backend = name,
        ?weight,
        ?drain,
        ?remove,
        revision,
        "backend changed by the admin API"
    );
    let answer = match app.set.get(&name) {
        Some(m) => respond(StatusCode::OK, &backend_json(&m)),
        // Drained and removed at once because it was idle.
        None => {
            let mut v = backend_json(&member);
            if let Some(o) = v.as_object_mut() {
                o.insert("draining".into(), json!(true));
                o.insert("removed".into(), json!(true));
            }
            respond(StatusCode::OK, &v)
        }
    };
    with_etag(answer, revision)
}

/// A `PATCH` on this process's set (a local state): the weight, then the drain.
fn change_directly(
    app: &Control,
    name: &str,
    weight: Option<u32>,
    drain: Option<bool>,
    remove: Option<bool>,
) -> Option<AdminResponse> {
    if let Some(w) = weight
        && let Err(e) = app.set.set_weight(name, w)
    {
        return Some(error(StatusCode::NOT_FOUND, e));
    }
    if let Some(d) = drain
        && let Err(e) = app.set.drain(name, d, remove.unwrap_or(false))
    {
        return Some(error(StatusCode::NOT_FOUND, e));
    }
    None
}
