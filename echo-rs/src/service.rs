//! The HTTP contract of `docs/echo-contract.md`: routing, echo, health and chaos routes.
//!
//! The handler is generic over the request body so unit tests drive it with in-memory bodies;
//! the server feeds it hyper's `Incoming`. Every response is built by [`App::respond`], which is
//! what guarantees `x-echo-service` and `content-type` on all of them.

use std::fmt::Display;
use std::pin::pin;

use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, CONNECTION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use serde_json::json;

use crate::MAX_BODY_BYTES;
use crate::chaos::{Chaos, ChaosSettings};
use crate::config::Config;

/// The response header naming the service.
pub(crate) const X_ECHO_SERVICE: HeaderName = HeaderName::from_static("x-echo-service");

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const ALLOW_ECHO: HeaderValue = HeaderValue::from_static("POST");
const ALLOW_HEALTH: HeaderValue = HeaderValue::from_static("GET");
const ALLOW_CHAOS: HeaderValue = HeaderValue::from_static("GET, POST, DELETE");

/// Everything a request needs, shared by all connections of one server.
#[derive(Debug)]
pub(crate) struct App {
    service_name: HeaderValue,
    chaos_routes: bool,
    chaos: Chaos,
    health_ok: Bytes,
    health_unhealthy: Bytes,
}

impl App {
    /// Prepares the per-server state. The configuration must have passed [`Config::validate`].
    pub(crate) fn new(config: &Config, chaos: Chaos) -> Result<Self, crate::ConfigError> {
        config.validate()?;
        let service_name = HeaderValue::from_str(&config.service_name)
            .unwrap_or_else(|_| HeaderValue::from_static(crate::config::DEFAULT_SERVICE_NAME));
        let health = |status: &str| {
            Bytes::from(json!({ "status": status, "service": config.service_name }).to_string())
        };
        Ok(Self {
            service_name,
            chaos_routes: config.chaos_routes,
            chaos,
            health_ok: health("ok"),
            health_unhealthy: health("unhealthy"),
        })
    }

    /// The fault-injection handle this server consults.
    #[cfg(test)]
    pub(crate) fn chaos(&self) -> &Chaos {
        &self.chaos
    }

    /// Answers one request. Never fails: every error is an HTTP response.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Display,
    {
        let path = req.uri().path();
        if path == "/health" {
            self.health(req.method())
        } else if self.chaos_routes && path == "/_chaos" {
            self.chaos_route(req).await
        } else {
            self.echo(req).await
        }
    }

    fn health(&self, method: &Method) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            return self.method_not_allowed(ALLOW_HEALTH);
        }
        if self.chaos.settings().healthy {
            self.respond(StatusCode::OK, self.health_ok.clone())
        } else {
            self.respond(
                StatusCode::SERVICE_UNAVAILABLE,
                self.health_unhealthy.clone(),
            )
        }
    }

    async fn echo<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Display,
    {
        if req.method() != Method::POST {
            return self.method_not_allowed(ALLOW_ECHO);
        }
        let body = match self.read_body(req.into_body()).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        if let Err(err) = validate_json(&body) {
            return self.error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {err}"));
        }
        let ChaosSettings {
            delay, fail_rate, ..
        } = self.chaos.settings();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.chaos.draw_failure(fail_rate) {
            return self.error(StatusCode::INTERNAL_SERVER_ERROR, "chaos: injected failure");
        }
        self.respond(StatusCode::OK, body)
    }

    async fn chaos_route<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Display,
    {
        let settings = match *req.method() {
            Method::GET => self.chaos.settings(),
            Method::DELETE => self.chaos.reset(),
            Method::POST => {
                let body = match self.read_body(req.into_body()).await {
                    Ok(body) => body,
                    Err(response) => return response,
                };
                match self.chaos.apply_json(&body) {
                    Ok(settings) => settings,
                    Err(err) => return self.error(StatusCode::BAD_REQUEST, &err.to_string()),
                }
            }
            _ => return self.method_not_allowed(ALLOW_CHAOS),
        };
        let body = json!({
            "delay_ms": u64::try_from(settings.delay.as_millis()).unwrap_or(u64::MAX),
            "fail_rate": settings.fail_rate,
            "healthy": settings.healthy,
        });
        self.respond(StatusCode::OK, Bytes::from(body.to_string()))
    }

    /// Reads at most [`MAX_BODY_BYTES`]: refuses a larger `Content-Length` before reading and
    /// stops reading as soon as the count passes the limit. A body that arrives in one frame is
    /// returned without copying.
    async fn read_body<B>(&self, body: B) -> Result<Bytes, Response<Full<Bytes>>>
    where
        B: Body<Data = Bytes>,
        B::Error: Display,
    {
        let limit = MAX_BODY_BYTES as u64;
        if body.size_hint().lower() > limit {
            return Err(self.too_large());
        }
        let mut body = pin!(body);
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                self.error(
                    StatusCode::BAD_REQUEST,
                    &format!("could not read body: {err}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                total += data.len() as u64;
                if total > limit {
                    return Err(self.too_large());
                }
                if !data.is_empty() {
                    chunks.push(data);
                }
            }
        }
        Ok(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.swap_remove(0),
            _ => {
                let mut joined = BytesMut::with_capacity(total as usize);
                chunks
                    .iter()
                    .for_each(|chunk| joined.extend_from_slice(chunk));
                joined.freeze()
            }
        })
    }

    fn too_large(&self) -> Response<Full<Bytes>> {
        let mut response = self.error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body exceeds {MAX_BODY_BYTES} bytes"),
        );
        // The rest of the body is not read, so the connection cannot be reused.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        response
    }

    fn method_not_allowed(&self, allow: HeaderValue) -> Response<Full<Bytes>> {
        let mut response = self.error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        response.headers_mut().insert(ALLOW, allow);
        response
    }

    fn error(&self, status: StatusCode, message: &str) -> Response<Full<Bytes>> {
        self.respond(status, Bytes::from(json!({ "error": message }).to_string()))
    }

    fn respond(&self, status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(X_ECHO_SERVICE, self.service_name.clone());
        headers.insert(CONTENT_TYPE, APPLICATION_JSON);
        response
    }
}

/// Checks that `body` is one JSON value (with optional surrounding whitespace) in UTF-8,
/// without building it: numbers are only scanned, so `1e400` and 30-digit integers pass and
/// are echoed exactly as sent.
fn validate_json(body: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|err| format!("body is not UTF-8: {err}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::Empty;
    use hyper::body::Frame;

    use super::*;

    fn app(chaos_routes: bool) -> App {
        let config = Config::new("svc-under-test").with_chaos_routes(chaos_routes);
        App::new(&config, Chaos::with_seed(Duration::ZERO, 1)).unwrap()
    }

    fn request(method: Method, path: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    }

    async fn call(
        app: &App,
        method: Method,
        path: &str,
        body: &'static [u8],
    ) -> (StatusCode, Response<Full<Bytes>>, Bytes) {
        let response = app.handle(request(method, path, body)).await;
        let status = response.status();
        assert_eq!(response.headers()[X_ECHO_SERVICE], "svc-under-test");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = response.body().clone().collect().await.unwrap().to_bytes();
        (status, response, body)
    }

    fn error_of(body: &[u8]) -> String {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        value["error"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn echoes_valid_json_byte_for_byte() {
        let app = app(false);
        for body in [
            &b"{}"[..],
            b"[]",
            b" \n\t{\"a\": [1, 2.5e-3, -0, true, false, null]} \r\n",
            b"\"h\\u00e9llo \\ud83d\\ude00 \\\"q\\\" \\\\ \\/\"",
            "\"h\u{e9}llo \u{4e16}\u{754c} \u{1f389}\"".as_bytes(),
            b"12345678901234567890123456789012345678901234567890",
            b"1e400",
            b"-1.5E+308",
            b"true",
            b"null",
        ] {
            let (status, _, echoed) = call(&app, Method::POST, "/any/path?x=1", body).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(&echoed[..], body);
        }
    }

    #[tokio::test]
    async fn refuses_invalid_json() {
        let app = app(false);
        for body in [
            &b""[..],
            b"   ",
            b"{",
            b"{\"a\":1}}",
            b"[1,]",
            b"{'a':1}",
            b"NaN",
            b"01",
            b"\"\\x\"",
            b"\"\xff\"",
            b"\"raw\ncontrol\"",
            b"[1] [2]",
        ] {
            let (status, _, answer) = call(&app, Method::POST, "/", body).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert!(
                error_of(&answer).starts_with("invalid JSON: "),
                "{answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn body_limit_counts_streamed_bytes() {
        let app = app(false);
        let chunk = Bytes::from(vec![b' '; 64 * 1024]);
        let streamed = |chunks: usize, last: &'static [u8]| {
            Chunked(
                std::iter::repeat_n(chunk.clone(), chunks)
                    .chain(std::iter::once(Bytes::from_static(last)))
                    .collect(),
            )
        };
        // 16 chunks of 64 KiB = exactly 1 MiB of whitespace, then the value: one byte too many.
        let response = app
            .handle(Request::post("/").body(streamed(16, b"1")).unwrap())
            .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[CONNECTION], "close");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(error_of(&body), "body exceeds 1048576 bytes");

        // 1 MiB - 1 bytes of whitespace and a one-byte value: exactly at the limit.
        let mut exact = vec![b' '; MAX_BODY_BYTES - 1];
        exact.push(b'1');
        let response = app
            .handle(
                Request::post("/")
                    .body(Full::new(Bytes::from(exact)))
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn methods_are_checked_per_route() {
        let app = app(true);
        for (method, path, allow) in [
            (Method::GET, "/", "POST"),
            (Method::PUT, "/x", "POST"),
            (Method::DELETE, "/x", "POST"),
            (Method::HEAD, "/x", "POST"),
            (Method::POST, "/health", "GET"),
            (Method::PUT, "/_chaos", "GET, POST, DELETE"),
            (Method::PATCH, "/_chaos", "GET, POST, DELETE"),
        ] {
            let (status, response, body) = call(&app, method.clone(), path, b"{}").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(response.headers()[ALLOW], allow);
            assert_eq!(error_of(&body), "method not allowed");
        }
    }

    #[tokio::test]
    async fn health_follows_chaos() {
        let app = app(false);
        let (status, _, body) = call(&app, Method::GET, "/health", b"").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], br#"{"service":"svc-under-test","status":"ok"}"#);
        app.chaos().set_healthy(false);
        let (status, _, body) = call(&app, Method::GET, "/health", b"").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"status": "unhealthy", "service": "svc-under-test"})
        );
    }

    #[tokio::test]
    async fn chaos_path_is_an_echo_path_when_routes_are_off() {
        let app = app(false);
        let (status, _, body) = call(&app, Method::POST, "/_chaos", br#"{"healthy":false}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], br#"{"healthy":false}"#);
        assert!(app.chaos().settings().healthy);
        let (status, _, _) = call(&app, Method::GET, "/_chaos", b"").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn chaos_routes_show_change_and_reset() {
        let app = app(true);
        let settings = |body: &[u8]| serde_json::from_slice::<serde_json::Value>(body).unwrap();
        let (status, _, body) = call(&app, Method::GET, "/_chaos", b"").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            settings(&body),
            json!({"delay_ms": 0, "fail_rate": 0.0, "healthy": true})
        );

        let (status, _, body) = call(
            &app,
            Method::POST,
            "/_chaos",
            br#"{"delay_ms":5,"fail_rate":1,"healthy":false}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            settings(&body),
            json!({"delay_ms": 5, "fail_rate": 1.0, "healthy": false})
        );

        let (status, _, body) = call(&app, Method::POST, "/_chaos", br#"{"nope":1}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).contains("nope"));

        let (status, _, body) = call(&app, Method::DELETE, "/_chaos", b"").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            settings(&body),
            json!({"delay_ms": 0, "fail_rate": 0.0, "healthy": true})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_come_after_the_delay() {
        let app = app(false);
        app.chaos().set_delay(Duration::from_secs(3));
        app.chaos().set_fail_rate(1.0).unwrap();
        let started = tokio::time::Instant::now();
        let (status, _, body) = call(&app, Method::POST, "/", b"{}").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error_of(&body), "chaos: injected failure");
        assert!(started.elapsed() >= Duration::from_secs(3));

        // Health is neither delayed nor failed.
        let started = tokio::time::Instant::now();
        let (status, _, _) = call(&app, Method::GET, "/health", b"").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn empty_body_without_length_is_invalid() {
        let app = app(false);
        let response = app
            .handle(Request::post("/").body(Empty::<Bytes>::new()).unwrap())
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    /// A body delivered in the given frames, like a chunked upload.
    struct Chunked(std::collections::VecDeque<Bytes>);

    impl Body for Chunked {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
        }
    }
}
