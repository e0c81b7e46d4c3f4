//! The runtime state and the fleet on the admin API: `GET /admin/runtime` (the overlay of admin changes and
//! where it is kept), `DELETE /admin/runtime` (drop it: back to the file's backends), `GET /admin/fleet` (the
//! replicas sharing the state and the revision each applied).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::AdminResponse;
use super::handlers::{error, if_match, respond, save, stale, with_etag};
use crate::apply::Control;

/// `GET /admin/runtime`: `{"revision", "store", "backends": {NAME: CHANGE}}`, with the `etag`.
pub(super) fn show(app: &Control) -> AdminResponse {
    let overlay = app.state().overlay();
    with_etag(
        respond(
            StatusCode::OK,
            &json!({
                "revision": overlay.revision,
                "store": app.state().describe(),
                "backends": overlay.backends,
            }),
        ),
        overlay.revision,
    )
}

/// `DELETE /admin/runtime`: every runtime change dropped, the backends as the file (and discovery) define
/// them; `200` with the new revision and how many changes went. `412` for a stale `if-match`, `503` when the
/// store cannot keep it.
pub(super) async fn drop_all(app: &Control, req: Request<Incoming>) -> AdminResponse {
    let changing = app.changing().await;
    if let Some(res) = stale(if_match(&req).as_deref(), &changing) {
        return res;
    }
    let current = changing.overlay();
    let dropped = current.backends.len();
    let mut next = current.next();
    next.clear();
    let revision = match save(&changing, next).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    if let Err(e) = changing.republish() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    tracing::info!(
        dropped,
        revision,
        "runtime changes dropped by the admin API"
    );
    with_etag(
        respond(
            StatusCode::OK,
            &json!({ "revision": revision, "dropped": dropped }),
        ),
        revision,
    )
}

/// `GET /admin/fleet`: `{"revision", "members": [{"id", "version", "listen", "admin_listen",
/// "applied_revision", "last_seen"}]}`. Without a shared store the fleet is this process.
pub(super) fn fleet(app: &Control) -> AdminResponse {
    let revision = app.state().revision();
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let members: Vec<_> = app
        .state()
        .me()
        .map(|m| {
            json!({
                "id": m.id,
                "version": m.version,
                "listen": m.listen.to_string(),
                "admin_listen": m.admin_listen.to_string(),
                "applied_revision": revision,
                "last_seen": now,
            })
        })
        .into_iter()
        .collect();
    with_etag(
        respond(
            StatusCode::OK,
            &json!({ "revision": revision, "members": members }),
        ),
        revision,
    )
}
