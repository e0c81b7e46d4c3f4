//! The admin API (on its own listener): health, metrics, backends, reload. See `docs/api-spec.yml`.
//!
//! # Why one route table
//!
//! Every operation is one row of the table (`ROUTES`): method, path pattern, read or mutate, handler.
//! [`handle`] finds the rows whose pattern matches the path (none: `404`), the one among them for the method
//! (none: `405` with an `allow` header listing exactly those rows' methods), and then passes the request
//! through one authorization gate before calling the handler: a mutating row needs `authorization: Bearer
//! TOKEN` when a token is configured, else `401`. Adding an endpoint is adding a row and its handler (and its
//! operation in `docs/api-spec.yml`): it cannot forget the token check, and its `405` answers follow from the
//! table. `tests/api_spec.rs` holds the table and the spec to the same operations, and the spec's
//! per-operation `security` to the rows that mutate.
//!
//! A pattern is a literal path, or a literal prefix ending in one `{parameter}` that takes the (non-empty)
//! rest of the path, slashes included (a backend's name, or its percent-encoded URL). A collection that has
//! such a `{parameter}` route under it is also served with a trailing slash (`/admin/backends/`). `HEAD` is
//! served wherever `GET` is.
//!
//! The live dashboard (`dashboard.rs`) is three read rows of the same table: the page, and the Server-Sent
//! Events stream it is fed by, which ends when the client goes away or rrlb shuts down.

mod dashboard;
mod handlers;
mod runtime;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use tokio::sync::watch;

use self::handlers::error;
pub use self::handlers::{Patch, parse_new_backend, parse_object, parse_patch};
use crate::apply::Control;

/// An admin answer's body: a whole one, or (`GET /admin/events`) a stream.
type AdminBody = UnsyncBoxBody<Bytes, Infallible>;

type AdminResponse = Response<AdminBody>;

/// What a handler gets: the app, the request, the path's `{parameter}` (empty when the pattern has none), and
/// the stop flag (set when rrlb shuts down; a streaming answer ends then).
struct Call<'a> {
    app: &'a Arc<Control>,
    req: Request<Incoming>,
    param: &'a str,
    stop: &'a watch::Receiver<bool>,
}

type Answer<'a> = Pin<Box<dyn Future<Output = AdminResponse> + Send + 'a>>;

type Handler = for<'a> fn(Call<'a>) -> Answer<'a>;

/// One admin operation.
#[derive(Debug)]
struct Route {
    method: Method,
    pattern: &'static str,
    access: Access,
    handler: Handler,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone who reaches the admin listener.
    Read,
    /// With the bearer token, when one is configured.
    Mutate,
}

/// A handler that answers without waiting.
fn now<'a>(res: AdminResponse) -> Answer<'a> {
    Box::pin(std::future::ready(res))
}

/// Every admin operation. Rows for one path are listed in the order their `allow` header names them; the first
/// row that matches a path and method serves it.
static ROUTES: &[Route] = &[
    Route::new(Method::GET, "/healthz", Access::Read, |_| {
        now(handlers::liveness())
    }),
    Route::new(Method::GET, "/readyz", Access::Read, |c| {
        now(handlers::readiness(c.app))
    }),
    Route::new(Method::GET, "/metrics", Access::Read, |c| {
        now(handlers::prometheus(c.app))
    }),
    Route::new(Method::GET, "/admin/health", Access::Read, |c| {
        now(handlers::health(c.app))
    }),
    Route::new(Method::GET, "/admin/tls", Access::Read, |c| {
        now(handlers::tls(c.app))
    }),
    Route::new(Method::GET, "/admin/metrics", Access::Read, |c| {
        now(handlers::admin_metrics(c.app))
    }),
    Route::new(Method::GET, "/admin/backends", Access::Read, |c| {
        now(handlers::list_backends(c.app))
    }),
    Route::new(Method::POST, "/admin/backends", Access::Mutate, |c| {
        Box::pin(handlers::add_backend(c.app, c.req))
    }),
    Route::new(Method::GET, "/admin/backends/{name}", Access::Read, |c| {
        now(handlers::get_backend(c.app, c.param))
    }),
    Route::new(
        Method::PATCH,
        "/admin/backends/{name}",
        Access::Mutate,
        |c| Box::pin(handlers::patch_backend(c.app, c.req, c.param)),
    ),
    Route::new(
        Method::DELETE,
        "/admin/backends/{name}",
        Access::Mutate,
        |c| Box::pin(handlers::delete_backend(c.app, c.req, c.param)),
    ),
    Route::new(Method::GET, "/admin/runtime", Access::Read, |c| {
        now(runtime::show(c.app))
    }),
    Route::new(Method::DELETE, "/admin/runtime", Access::Mutate, |c| {
        Box::pin(runtime::drop_all(c.app, c.req))
    }),
    Route::new(Method::GET, "/admin/fleet", Access::Read, |c| {
        Box::pin(runtime::fleet(c.app))
    }),
    Route::new(Method::POST, "/admin/reload", Access::Mutate, |c| {
        Box::pin(handlers::reload(c.app))
    }),
    Route::new(Method::GET, "/", Access::Read, |_| now(dashboard::page())),
    Route::new(Method::GET, "/admin/dashboard", Access::Read, |_| {
        now(dashboard::page())
    }),
    Route::new(Method::GET, "/admin/events", Access::Read, |c| {
        now(dashboard::events(c.app.app(), c.stop))
    }),
];

impl Route {
    const fn new(method: Method, pattern: &'static str, access: Access, handler: Handler) -> Self {
        Self {
            method,
            pattern,
            access,
            handler,
        }
    }

    /// `Some(parameter)` when `path` matches the pattern (`""` for a literal pattern).
    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self.pattern.split_once('{') {
            None => (path == self.pattern).then_some(""),
            Some((prefix, _)) => path.strip_prefix(prefix).filter(|rest| !rest.is_empty()),
        }
    }

    fn serves(&self, method: &Method) -> bool {
        self.method == method || (method == Method::HEAD && self.method == Method::GET)
    }
}

/// The (method, pattern, mutating) of every route, in table order: what `docs/api-spec.yml` must list.
pub(crate) fn operations() -> Vec<(&'static str, &'static str, bool)> {
    ROUTES
        .iter()
        .map(|r| (r.method.as_str(), r.pattern, r.access == Access::Mutate))
        .collect()
}

/// Handles one admin request; a streaming answer ends once `stop` is set. Never fails: every problem is a
/// JSON answer.
pub(crate) async fn handle(
    app: Arc<Control>,
    stop: watch::Receiver<bool>,
    req: Request<Incoming>,
) -> Result<AdminResponse, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let res = dispatch(&app, &stop, req, &path, &method).await;
    tracing::debug!(target: "rrlb::admin", %method, path, status = res.status().as_u16());
    Ok(res)
}

/// Route, `405`, the authorization gate, then the handler: the only place that decides who may call what.
async fn dispatch(
    app: &Arc<Control>,
    stop: &watch::Receiver<bool>,
    req: Request<Incoming>,
    path: &str,
    method: &Method,
) -> AdminResponse {
    let (route, param) = match find(path, method) {
        Routed::To(route, param) => (route, param),
        Routed::NoSuchPath => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no such admin endpoint: {path}"),
            );
        }
        Routed::NotAllowed(allow) => return not_allowed(&allow),
    };
    if route.access == Access::Mutate && !authorized(app, &req) {
        return unauthorized();
    }
    (route.handler)(Call {
        app,
        req,
        param,
        stop,
    })
    .await
}

/// What the table says about a path and method.
#[derive(Debug)]
enum Routed<'p> {
    /// The first row serving the method at the path, and the path's parameter.
    To(&'static Route, &'p str),
    NoSuchPath,
    /// The path has rows, none for the method: the `allow` header's value.
    NotAllowed(String),
}

fn find<'p>(path: &'p str, method: &Method) -> Routed<'p> {
    let path = without_collection_slash(path);
    let matched: Vec<(&'static Route, &'p str)> = ROUTES
        .iter()
        .filter_map(|r| r.matches(path).map(|param| (r, param)))
        .collect();
    if matched.is_empty() {
        return Routed::NoSuchPath;
    }
    match matched.iter().find(|(r, _)| r.serves(method)) {
        Some(&(route, param)) => Routed::To(route, param),
        None => Routed::NotAllowed(allow(matched.iter().map(|(r, _)| &r.method))),
    }
}

/// `/admin/backends/` is `/admin/backends`: the path of a collection whose members a `{parameter}` route serves.
fn without_collection_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(collection)
            if ROUTES.iter().any(|r| {
                r.pattern
                    .split_once('{')
                    .is_some_and(|(prefix, _)| prefix == path)
            }) =>
        {
            collection
        }
        _ => path,
    }
}

fn authorized(app: &Control, req: &Request<Incoming>) -> bool {
    let config = app.config.load();
    let Some(token) = config.admin.token.as_ref() else {
        return true;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .is_some_and(|presented| token.verify(presented.trim()))
}

fn unauthorized() -> AdminResponse {
    let mut res = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"rrlb-admin\""),
    );
    res
}

/// The `allow` header's value: `methods` (the table's, for one path), each once, in table order.
fn allow<'m>(methods: impl Iterator<Item = &'m Method>) -> String {
    let mut names: Vec<&str> = Vec::new();
    for m in methods {
        if !names.contains(&m.as_str()) {
            names.push(m.as_str());
        }
    }
    names.join(", ")
}

fn not_allowed(allow: &str) -> AdminResponse {
    let mut res = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    if let Ok(v) = HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(path: &str) -> Vec<(&'static str, String)> {
        let path = without_collection_slash(path);
        ROUTES
            .iter()
            .filter_map(|r| r.matches(path).map(|p| (r.method.as_str(), p.to_owned())))
            .collect()
    }

    #[test]
    fn patterns_match_literal_paths_and_a_trailing_parameter() {
        assert_eq!(rows("/healthz"), [("GET", String::new())]);
        assert!(rows("/healthz/").is_empty());
        assert!(rows("/admin/nothing-here").is_empty());
        assert_eq!(
            rows("/admin/backends/"),
            [("GET", String::new()), ("POST", String::new())]
        );
        // A discovered backend's name has a slash; a URL comes percent-encoded.
        for name in ["a", "echo/10.0.0.1:8081", "http%3A%2F%2Fecho-go%3A8081"] {
            let path = format!("/admin/backends/{name}");
            let want: Vec<_> = ["GET", "PATCH", "DELETE"]
                .into_iter()
                .map(|m| (m, name.to_owned()))
                .collect();
            assert_eq!(rows(&path), want, "{path}");
        }
    }

    #[test]
    fn the_table_is_well_formed() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(r.pattern.starts_with('/'), "{}", r.pattern);
            if let Some((_, param)) = r.pattern.split_once('{') {
                assert!(
                    param.ends_with('}') && !param.contains(['{', '/']),
                    "{}: one parameter, last",
                    r.pattern
                );
            }
            // No row is shadowed by an earlier one.
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|e| e.method == r.method && e.pattern == r.pattern),
                "{} {} twice",
                r.method,
                r.pattern
            );
            // Reads are safe methods, and every other method needs the token.
            assert_eq!(
                r.access == Access::Mutate,
                !r.method.is_safe(),
                "{} {}",
                r.method,
                r.pattern
            );
        }
    }

    #[test]
    fn allow_lists_each_method_once_in_table_order() {
        let methods = [Method::GET, Method::PATCH, Method::GET, Method::DELETE];
        assert_eq!(allow(methods.iter()), "GET, PATCH, DELETE");
        match find("/admin/backends/a", &Method::PUT) {
            Routed::NotAllowed(allow) => assert_eq!(allow, "GET, PATCH, DELETE"),
            other => panic!("{other:?}"),
        }
        match find("/admin/backends/a", &Method::HEAD) {
            Routed::To(route, name) => assert_eq!((route.method.as_str(), name), ("GET", "a")),
            other => panic!("{other:?}"),
        }
    }
}
