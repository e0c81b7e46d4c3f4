//! The runtime state and the fleet on the admin API: `GET /admin/runtime` (the overlay of admin changes and
//! where it is kept), `DELETE /admin/runtime` (drop it: back to the file's backends), `GET /admin/fleet` (the
//! replicas sharing the state and the revision each applied).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::AdminResponse;
use super::handlers::{error, if_match, respond, save, with_etag};
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
    let precondition = if_match(&req);
    let changing = app.changing().await;
    let current = changing.overlay();
    let dropped = current.backends.len();
    let mut next = current.next();
    next.clear();
    let revision = match save(&changing, next, precondition.as_deref()).await {
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
/// "applied_revision", "last_seen"}]}`: every live replica sharing the state (a local store: this process).
/// `503` while the fleet's store cannot be reached.
pub(super) async fn fleet(app: &Control) -> AdminResponse {
    let revision = app.state().revision();
    match app.state().members().await {
        Ok(mut members) => {
            members.sort_by(|a, b| a.member.id.cmp(&b.member.id));
            with_etag(
                respond(
                    StatusCode::OK,
                    &json!({ "revision": revision, "members": members }),
                ),
                revision,
            )
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::logging::ErrorChain(&e),
        ),
    }
}
