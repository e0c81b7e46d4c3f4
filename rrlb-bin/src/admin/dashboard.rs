//! The live dashboard: `GET /` and `GET /admin/dashboard` serve one self-contained page (`dashboard.html`,
//! embedded in the binary), which draws what `GET /admin/events` streams.
//!
//! # Why Server-Sent Events
//!
//! The page only listens, so a one-way stream is enough: SSE is plain HTTP (a chunked `text/event-stream`
//! answer, one `data:` line per event), the browser's `EventSource` reconnects by itself, and the admin
//! listener needs nothing beyond hyper. Each event is the `GET /admin/metrics` snapshot (built by the same
//! function) plus `"time"`, so the page computes rates from two snapshots and the JSON API stays the one
//! source of truth.
//!
//! A stream ends when its client goes away (hyper drops the body once a write fails) and when rrlb shuts
//! down (the stop flag), so an open dashboard never holds a shutdown open. `rrlb_admin_event_streams`
//! counts the streams open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::AdminResponse;
use super::handlers::{metrics_json, whole};
use crate::app::App;

/// The page: HTML, CSS and script in one file, no external references.
const PAGE: &str = include_str!("dashboard.html");

/// Time between two snapshots on an event stream.
const PERIOD: Duration = Duration::from_secs(1);

/// Event streams open at once, at most: each costs a connection and a snapshot a second; beyond this a
/// request gets `503` (a handful of dashboards is the use; thousands would be an accident or an attack).
pub(crate) const MAX_STREAMS: i64 = 64;

/// How long a browser waits before reconnecting a broken stream (the SSE `retry:` field, in milliseconds).
const RETRY_MS: u32 = 2000;

/// `GET /` and `GET /admin/dashboard`.
pub(super) fn page() -> AdminResponse {
    let mut res = Response::new(whole(Bytes::from_static(PAGE.as_bytes())));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The page needs nothing from elsewhere; the browser is told to load nothing from elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
        ),
    );
    res
}

/// `GET /admin/events`: a `text/event-stream` of snapshots, one now and one every [`PERIOD`], until the
/// client goes away or `stop` is set; `503` when [`MAX_STREAMS`] are open already.
pub(super) fn events(app: &Arc<App>, stop: &watch::Receiver<bool>) -> AdminResponse {
    let Some(open) = Open::new(&app.metrics.event_streams) else {
        let mut res = super::handlers::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} event streams are open already; try again later"),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return res;
    };
    let mut ticks = tokio::time::interval(PERIOD);
    // A stream that fell behind (a slow client) sends the next snapshot, not a burst of stale ones.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let source = Snapshots {
        app: Arc::clone(app),
        stop: stop.clone(),
        ticks,
        _open: open,
    };
    let retry = Bytes::from(format!("retry: {RETRY_MS}\n\n"));
    let frames = stream::once(async move { retry })
        .chain(stream::unfold(source, Snapshots::next))
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
    *res.status_mut() = StatusCode::OK;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// What an event stream draws its events from.
struct Snapshots {
    app: Arc<App>,
    stop: watch::Receiver<bool>,
    ticks: Interval,
    _open: Open,
}

impl Snapshots {
    /// The next event, once it is due; `None` (the end of the stream) once rrlb is stopping.
    async fn next(mut self) -> Option<(Bytes, Self)> {
        let due = tokio::select! {
            biased;
            // Set, or its sender gone: either way rrlb is stopping.
            _ = self.stop.wait_for(|stopping| *stopping) => false,
            _ = self.ticks.tick() => true,
        };
        due.then(|| (event(metrics_json(&self.app), SystemTime::now()), self))
    }
}

/// One SSE event: the snapshot with `"time"` (RFC 3339, UTC, milliseconds) on one `data:` line.
fn event(mut snapshot: Value, now: SystemTime) -> Bytes {
    if let Some(fields) = snapshot.as_object_mut() {
        fields.insert(
            "time".to_owned(),
            Value::String(humantime::format_rfc3339_millis(now).to_string()),
        );
    }
    // `Value`'s compact rendering escapes line breaks inside strings, so the JSON is one line.
    Bytes::from(format!("data: {snapshot}\n\n"))
}

/// One open stream on the `rrlb_admin_event_streams` gauge, for as long as it lives.
struct Open(Gauge);

impl Open {
    /// Counts one more open stream, or `None` (counting nothing) when [`MAX_STREAMS`] are open.
    fn new(gauge: &Gauge) -> Option<Self> {
        if gauge.inc() >= MAX_STREAMS {
            gauge.dec();
            return None;
        }
        Some(Self(gauge.clone()))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_is_one_data_line_with_the_snapshot_and_its_time() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let snapshot = json!({"total_requests": 3, "backends": [{"name": "a\nb"}]});
        let event = event(snapshot, at);
        let text = std::str::from_utf8(&event).expect("utf-8");
        let data = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .expect("one data field and the blank line");
        assert!(!data.contains('\n'), "{data:?}");
        let parsed: Value = serde_json::from_str(data).expect("JSON");
        assert_eq!(parsed["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(parsed["total_requests"], 3);
        assert_eq!(parsed["backends"][0]["name"], "a\nb");
    }

    #[test]
    fn the_page_is_self_contained() {
        assert!(PAGE.starts_with("<!doctype html>"));
        for external in ["http://", "https://", "//cdn", "@import"] {
            assert!(!PAGE.contains(external), "{external} in the page");
        }
        assert!(PAGE.contains("/admin/events"));
    }

    #[test]
    fn the_gauge_counts_open_streams() {
        let gauge = Gauge::default();
        let (a, b) = (Open::new(&gauge), Open::new(&gauge));
        assert_eq!(gauge.get(), 2);
        drop(a);
        assert_eq!(gauge.get(), 1);
        drop(b);
        assert_eq!(gauge.get(), 0);
    }
}
