//! HTTP pieces: a pooled upstream client that sends each request to its picked backend, the default HTTP
//! [`Policy`], and an HTTP health [`Probe`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{self, Client};
use hyper_util::rt::TokioExecutor;
use pin_project_lite::pin_project;
use rrlb_core::Backend;
use tower::Service;

use crate::balance::Routed;
use crate::error::{BoxError, FailureKind};
use crate::health::Probe;
use crate::policy::{Policy, Served};

mod counted;
mod url;

pub use self::counted::ConnectionCount;
use self::counted::Counting;
pub use self::url::{BackendUrl, InvalidBackendUrl};

/// The connector: plain HTTP, plus TLS for `https://` backends with the `https` feature.
///
/// ```
/// use std::time::Duration;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use rrlb_tower::http::Connector;
///
/// /// A client whose connector has the same type as the one rrlb-tower's HTTP pieces use.
/// fn client(connector: Connector) -> Client<Connector, String> {
///     Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
/// }
/// # let _ = client;
/// ```
#[cfg(feature = "https")]
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
/// The connector: plain HTTP, plus TLS for `https://` backends with the `https` feature.
///
/// ```
/// use std::time::Duration;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use rrlb_tower::http::Connector;
///
/// /// A client whose connector has the same type as the one rrlb-tower's HTTP pieces use.
/// fn client(connector: Connector) -> Client<Connector, String> {
///     Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
/// }
/// # let _ = client;
/// ```
#[cfg(not(feature = "https"))]
pub type Connector = HttpConnector;

/// A connector as the upstream and the probe use it: `connect_timeout`, `TCP_NODELAY`, and with the `https`
/// feature TLS (rustls, Mozilla roots) for `https://` URLs. For other hyper clients of an embedding program
/// that should connect the same way.
///
/// ```
/// use std::time::Duration;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client: Client<_, String> =
///     Client::builder(TokioExecutor::new()).build(rrlb_tower::http::connector(Duration::from_millis(500)));
/// # drop(client);
/// # }
/// ```
pub fn connector(connect_timeout: Duration) -> Connector {
    let http = plain_connector(connect_timeout);
    #[cfg(feature = "https")]
    {
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }
    #[cfg(not(feature = "https"))]
    {
        http
    }
}

/// The TCP part of every connector: `connect_timeout` and `TCP_NODELAY`; `https://` URIs are let through
/// only when the `https` feature adds TLS on top (else they are refused).
fn plain_connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    #[cfg(feature = "https")]
    http.enforce_http(false);
    http
}

/// Like [`connector`], with a TLS client configuration of your own for `https://` URIs instead of the Mozilla
/// roots: a private CA, a client certificate (mTLS), a custom verifier. `http://` URIs stay plain.
///
/// The configuration is used as it is; its ALPN protocols should be empty or `http/1.1` (the clients of this
/// module speak HTTP/1.1 only).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Trust one private CA (here an empty store: load yours with rustls-pki-types' `PemObject`).
/// let roots = rustls::RootCertStore::empty();
/// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
///     .with_safe_default_protocol_versions()?
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// let connector = rrlb_tower::http::connector_with_tls(Duration::from_millis(500), Arc::new(tls));
/// let client: Client<_, String> = Client::builder(TokioExecutor::new()).build(connector);
/// # drop(client);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "https")]
pub fn connector_with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Connector {
    hyper_rustls::HttpsConnector::from((plain_connector(connect_timeout), tls))
}

/// The connector of an [`UpstreamConfig`]: with its own TLS configuration when it has one.
fn connector_for(config: &UpstreamConfig) -> Connector {
    #[cfg(feature = "https")]
    if let Some(tls) = &config.tls {
        return connector_with_tls(config.connect_timeout, Arc::clone(tls));
    }
    connector(config.connect_timeout)
}

/// The request type of the HTTP pieces: a fully buffered body, so that a request can be re-sent.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use rrlb_tower::http::HttpRequest;
///
/// // A buffered body can be sent again, so a failed attempt can be retried on another backend.
/// let request: HttpRequest = http::Request::post("/echo").body(Full::new(Bytes::from_static(b"{}")))?;
/// assert_eq!(request.uri().path(), "/echo");
/// # Ok::<(), http::Error>(())
/// ```
pub type HttpRequest = Request<Full<Bytes>>;

/// Settings of the upstream connection pool, and (with the `https` feature) the TLS client for `https://`
/// backends.
///
/// ```
/// use std::time::Duration;
/// use rrlb_tower::http::{HttpUpstream, UpstreamConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = UpstreamConfig {
///     connect_timeout: Duration::from_millis(200),
///     pool_max_idle_per_host: 32,
///     ..UpstreamConfig::default()
/// };
/// let upstream = HttpUpstream::new(config);
/// # drop(upstream);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Connect timeout. Default 500 ms.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per backend. Default 256.
    pub pool_max_idle_per_host: usize,
    /// The TLS client for `https://` backends (see [`connector_with_tls`]); `None` (the default): the Mozilla
    /// web roots, no client certificate.
    #[cfg(feature = "https")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            #[cfg(feature = "https")]
            tls: None,
        }
    }
}

/// Sends each [`Routed`] request to its backend over one shared, pooled keep-alive hyper client.
///
/// The request's URI is rewritten to the backend's scheme and authority, with the backend URL's path (if any)
/// prefixed to the request's path; the `host` header is replaced by the backend's authority.
///
/// Cheap to clone (one `Arc`): a [`Balance`](crate::Balance) keeps a clone in every call that may be retried.
///
/// ```
/// use bytes::Bytes;
/// use echo_rs::{Config, EchoServer};
/// use http_body_util::{BodyExt, Full};
/// use rrlb_core::BackendSpec;
/// use rrlb_core::{BackendSet, RoundRobin, SetOptions};
/// use rrlb_tower::Routed;
/// use rrlb_tower::http::{HttpUpstream, UpstreamConfig};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let echo = EchoServer::start("127.0.0.1:0", Config::new("echo-1")).await?;
/// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("echo-1", echo.url())])?;
/// let backend = set.pick()?.backend().clone();
///
/// // Without a balancer in front, the upstream sends a request to the backend it is routed to.
/// let request = http::Request::post("/echo").body(Full::new(Bytes::from_static(b"[1,2]")))?;
/// let response = HttpUpstream::new(UpstreamConfig::default()).oneshot(Routed { backend, request, attempt: 1 }).await?;
/// assert_eq!(response.headers()["x-echo-service"], "echo-1");
/// assert_eq!(response.into_body().collect().await?.to_bytes(), "[1,2]");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HttpUpstream(Arc<UpstreamInner>);

#[derive(Debug)]
struct UpstreamInner {
    client: UpstreamClient,
    config: UpstreamConfig,
    per_thread: Option<u64>,
    connections: ConnectionCount,
}

type UpstreamClient = Client<Counting<Connector>, Full<Bytes>>;

thread_local! {
    /// Per-thread pools of [`HttpUpstream::per_thread`] upstreams, by upstream id.
    static THREAD_CLIENTS: std::cell::RefCell<Vec<(u64, UpstreamClient)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn build_client(config: &UpstreamConfig, connections: &ConnectionCount) -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(Counting {
            inner: connector_for(config),
            count: connections.clone(),
        })
}

impl HttpUpstream {
    /// A client with these pool settings, one pool shared by every thread. Must be called inside a tokio runtime.
    pub fn new(config: UpstreamConfig) -> Self {
        let connections = ConnectionCount::new();
        Self(Arc::new(UpstreamInner {
            client: build_client(&config, &connections),
            config,
            per_thread: None,
            connections,
        }))
    }

    /// Like [`new`](Self::new), but each thread that sends requests gets its own pool.
    ///
    /// Meant for thread-per-core serving (one current-thread runtime per core): a request, its pooled
    /// connection and that connection's task then all stay on one thread, with no cross-thread wake-ups.
    pub fn per_thread(config: UpstreamConfig) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let connections = ConnectionCount::new();
        Self(Arc::new(UpstreamInner {
            client: build_client(&config, &connections),
            config,
            per_thread: Some(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            connections,
        }))
    }

    /// The same upstream, counting its open connections in `count` (shared with whatever else counts in
    /// it, such as the upstream this one replaces). Call it before the first request.
    pub fn counting(self, count: ConnectionCount) -> Self {
        Self(Arc::new(UpstreamInner {
            client: build_client(&self.0.config, &count),
            config: self.0.config.clone(),
            per_thread: self.0.per_thread,
            connections: count,
        }))
    }

    /// Its connections to backends open now, pooled or in use (see [`counting`](Self::counting)).
    pub fn connections(&self) -> &ConnectionCount {
        &self.0.connections
    }

    /// Calls `f` with the client to use on this thread (borrowed: no clone of the client per request).
    fn with_client<R>(&self, f: impl FnOnce(&UpstreamClient) -> R) -> R {
        let Some(id) = self.0.per_thread else {
            return f(&self.0.client);
        };
        THREAD_CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, c)) = clients.iter().find(|(i, _)| *i == id) {
                return f(c);
            }
            // A new upstream (a reload changed its settings): older pools of this thread are dropped once
            // their last in-flight request ends.
            clients.retain(|(i, _)| *i > id.saturating_sub(4));
            let c = build_client(&self.0.config, &self.0.connections);
            let out = f(&c);
            clients.push((id, c));
            out
        })
    }
}

/// The URI of `path_and_query` on `backend`: its scheme and authority, its path as a prefix (see
/// [`BackendUrl::uri_for`]).
pub fn backend_uri(
    backend: &Backend,
    path_and_query: Option<&PathAndQuery>,
) -> Result<Uri, InvalidBackendUrl> {
    BackendUrl::of(backend)?.uri_for(path_and_query)
}

pin_project! {
    #[project = UpstreamStateProj]
    enum UpstreamState {
        Sending { #[pin] fut: legacy::ResponseFuture },
        Failed { error: Option<BoxError> },
    }
}

pin_project! {
    /// The future of an [`HttpUpstream`] call.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use rrlb_core::{Backend, BreakerParams, HealthParams};
    /// use rrlb_tower::Routed;
    /// use rrlb_tower::http::{HttpUpstream, UpstreamConfig, UpstreamFuture};
    /// use tower::Service;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Nothing listens on port 9 of the loopback: the future resolves to a connect error.
    /// let backend = Backend::new("gone", "http://127.0.0.1:9", true, BreakerParams::default(), HealthParams::default());
    /// let request = http::Request::get("/").body(Full::new(Bytes::new())).unwrap();
    /// let future: UpstreamFuture = HttpUpstream::new(UpstreamConfig::default()).call(Routed { backend: backend.into(), request, attempt: 1 });
    /// let error = future.await.unwrap_err();
    /// assert_eq!(rrlb_tower::http::classify_transport_error(&*error), rrlb_tower::FailureKind::Connect);
    /// # }
    /// ```
    pub struct UpstreamFuture {
        #[pin]
        state: UpstreamState,
    }
}

impl Future for UpstreamFuture {
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            UpstreamStateProj::Sending { fut } => fut.poll(cx).map_err(Into::into),
            UpstreamStateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "upstream future polled after completion".into()))),
        }
    }
}

impl Service<Routed<HttpRequest>> for HttpUpstream {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, routed: Routed<HttpRequest>) -> Self::Future {
        let Routed {
            backend, request, ..
        } = routed;
        let (mut parts, body) = request.into_parts();
        let url = BackendUrl::of(&backend);
        match url.and_then(|url| Ok((url.uri_for(parts.uri.path_and_query())?, url))) {
            Ok((uri, url)) => {
                parts
                    .headers
                    .insert(header::HOST, url.host_header().clone());
                parts.uri = uri;
                // The upstream leg is HTTP/1.1 whatever the client spoke.
                parts.version = http::Version::HTTP_11;
                UpstreamFuture {
                    state: UpstreamState::Sending {
                        fut: self.with_client(|c| c.request(Request::from_parts(parts, body))),
                    },
                }
            }
            Err(e) => UpstreamFuture {
                state: UpstreamState::Failed {
                    error: Some(Box::new(e)),
                },
            },
        }
    }
}

/// The default HTTP policy: transport errors, timeouts and 5xx answers are failures, 4xx are not; requests are
/// copied for retries (their bodies are buffered `Bytes`, so the copy is cheap); the serving backend is put in
/// the response's extensions as [`Served`].
///
/// ```
/// use bytes::Bytes;
/// use echo_rs::{Config, EchoServer};
/// use http_body_util::Full;
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
/// use rrlb_tower::http::{HttpPolicy, HttpUpstream, UpstreamConfig};
/// use rrlb_tower::{Balance, BalanceConfig, Served};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let echo = EchoServer::start("127.0.0.1:0", Config::new("echo-1")).await?;
/// // The first backend refuses connections: the policy retries the attempt on the second one.
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("down", "http://127.0.0.1:9"), BackendSpec::new("echo-1", echo.url())],
/// )?;
/// let client = Balance::new(HttpUpstream::new(UpstreamConfig::default()), set, HttpPolicy, BalanceConfig::default());
/// let request = http::Request::post("/echo").body(Full::new(Bytes::from_static(b"{}")))?;
/// let response = client.oneshot(request).await?;
/// let served = response.extensions().get::<Served>().ok_or("HttpPolicy notes the backend")?;
/// assert_eq!((served.backend.name(), served.attempts), ("echo-1", 2));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpPolicy;

impl<B> Policy<HttpRequest, Response<B>, BoxError> for HttpPolicy
where
    B: Send + 'static,
{
    fn classify_response(&self, response: &Response<B>) -> Option<FailureKind> {
        response
            .status()
            .is_server_error()
            .then_some(FailureKind::Status5xx)
    }

    fn classify_error(&self, error: &BoxError) -> FailureKind {
        classify_transport_error(&**error)
    }

    fn clone_request(&self, request: &HttpRequest) -> Option<HttpRequest> {
        let mut copy = Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        Some(copy)
    }

    fn on_served(&self, response: &mut Response<B>, backend: &Arc<Backend>, attempts: u32) {
        response.extensions_mut().insert(Served {
            backend: Arc::clone(backend),
            attempts,
        });
    }
}

/// Classifies an upstream transport error: connect failure, reset, or other.
pub fn classify_transport_error(error: &(dyn std::error::Error + 'static)) -> FailureKind {
    if let Some(e) = error.downcast_ref::<legacy::Error>()
        && e.is_connect()
    {
        return FailureKind::Connect;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused | NotConnected | AddrNotAvailable => return FailureKind::Connect,
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return FailureKind::Reset;
                }
                TimedOut => return FailureKind::Timeout,
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return FailureKind::Reset;
        }
        source = e.source();
    }
    FailureKind::Other
}

/// An HTTP health probe: `GET <backend URL prefix><path>`, passing on any 2xx.
///
/// ```
/// use std::time::Duration;
/// use echo_rs::{Config, EchoServer};
/// use rrlb_core::{Backend, BreakerParams, HealthParams};
/// use rrlb_tower::Probe;
/// use rrlb_tower::http::HttpProbe;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let echo = EchoServer::start("127.0.0.1:0", Config::new("echo-1")).await?;
/// let backend = Backend::new("echo-1", echo.url(), true, BreakerParams::default(), HealthParams::default());
/// let probe = HttpProbe::new("/health", Duration::from_millis(500));
/// assert!(probe.probe(backend.into()).await);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpProbe {
    client: Client<Connector, Full<Bytes>>,
    path: Arc<str>,
    /// Kept for a client built again with another TLS configuration ([`with_tls`](Self::with_tls)).
    #[cfg_attr(not(feature = "https"), allow(dead_code))]
    connect_timeout: Duration,
}

/// The probe's client over `connector`.
fn probe_client(connector: Connector) -> Client<Connector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
}

impl HttpProbe {
    /// Probes `path` (e.g. `/health`) on every backend; `https://` backends are checked against the Mozilla
    /// web roots (see [`with_tls`](Self::with_tls)). Must be called inside a tokio runtime.
    pub fn new(path: &str, connect_timeout: Duration) -> Self {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Self {
            client: probe_client(connector(connect_timeout)),
            path: path.into(),
            connect_timeout,
        }
    }

    /// The same probe, reaching `https://` backends with `tls` (a private CA, a client certificate; see
    /// [`connector_with_tls`]) instead of the Mozilla web roots. One configuration serves every backend.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use rrlb_tower::http::HttpProbe;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // The roots of your private CA (loaded from its PEM file with rustls-pki-types' `PemObject`).
    /// let roots = rustls::RootCertStore::empty();
    /// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let probe = HttpProbe::new("/health", Duration::from_millis(500)).with_tls(Arc::new(tls));
    /// # drop(probe);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "https")]
    #[must_use]
    pub fn with_tls(self, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            client: probe_client(connector_with_tls(self.connect_timeout, tls)),
            ..self
        }
    }

    /// Like [`with_tls`](Self::with_tls), but sends `server_name` as SNI and verifies it in the backend's
    /// certificate instead of the backend URL's host: for backends reached by address whose certificate names a
    /// host (rrlb's `upstream_tls.server_name`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use rrlb_tower::http::HttpProbe;
    ///
    /// let roots = rustls::RootCertStore::empty(); // your CA's certificates
    /// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
    ///     .with_safe_default_protocol_versions()
    ///     .expect("the ring provider's default versions")
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let name = rustls::pki_types::ServerName::try_from("backend.internal").expect("a DNS name");
    /// let probe = HttpProbe::new("/health", Duration::from_secs(1)).with_tls_for_name(Arc::new(tls), name);
    /// # drop(probe);
    /// # }
    /// ```
    #[cfg(feature = "https")]
    pub fn with_tls_for_name(
        self,
        tls: Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name))
            .enable_http1()
            .wrap_connector(plain_connector(self.connect_timeout));
        Self {
            client: probe_client(connector),
            ..self
        }
    }
}

impl Probe for HttpProbe {
    fn probe(&self, backend: Arc<Backend>) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        let client = self.client.clone();
        let path = PathAndQuery::try_from(&*self.path).ok();
        Box::pin(async move {
            let Ok(uri) = backend_uri(&backend, path.as_ref()) else {
                return false;
            };
            let mut req = Request::new(Full::new(Bytes::new()));
            *req.uri_mut() = uri;
            req.headers_mut().insert(
                header::USER_AGENT,
                header::HeaderValue::from_static("rrlb-health-check"),
            );
            match client.request(req).await {
                Ok(res) => {
                    let ok = res.status().is_success();
                    drop(res); // the body is not read; the connection is not reused
                    ok
                }
                Err(_) => false,
            }
        })
    }
}

/// A JSON error response body and status, as rrlb answers when no backend can take a request.
pub fn status_for(error: &crate::Error) -> StatusCode {
    if error.is_no_eligible_backend() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if error.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rrlb_core::{BreakerParams, HealthParams};

    fn backend(url: &str) -> Backend {
        Backend::new(
            "b",
            url,
            true,
            BreakerParams::default(),
            HealthParams::default(),
        )
    }

    #[test]
    fn backend_uri_prefixes_the_path() {
        let pq = PathAndQuery::from_static("/x/y?z=1");
        assert_eq!(
            backend_uri(&backend("http://10.0.0.1:8080"), Some(&pq)).unwrap(),
            "http://10.0.0.1:8080/x/y?z=1"
        );
        assert_eq!(
            backend_uri(&backend("http://h:1/api/"), Some(&pq)).unwrap(),
            "http://h:1/api/x/y?z=1"
        );
        assert_eq!(
            backend_uri(&backend("http://h:1/api"), None).unwrap(),
            "http://h:1/api/"
        );
        assert!(backend_uri(&backend("not a url"), Some(&pq)).is_err());
        assert!(backend_uri(&backend("/relative"), Some(&pq)).is_err());
        // A backend that carries its parsed URL is not parsed again: its string is not even looked at.
        let carried = backend("unparsable").with_ext(rrlb_core::backend::Extension::new(
            "http://h:2/p".parse::<BackendUrl>().unwrap(),
        ));
        assert_eq!(
            backend_uri(&carried, Some(&pq)).unwrap(),
            "http://h:2/p/x/y?z=1"
        );
    }

    #[test]
    fn policy_classifies_statuses() {
        let ok = Response::builder().status(404).body(()).unwrap();
        let bad = Response::builder().status(503).body(()).unwrap();
        assert_eq!(
            Policy::<HttpRequest, _, BoxError>::classify_response(&HttpPolicy, &ok),
            None
        );
        assert_eq!(
            Policy::<HttpRequest, _, BoxError>::classify_response(&HttpPolicy, &bad),
            Some(FailureKind::Status5xx)
        );
        let reset: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify_transport_error(&*reset), FailureKind::Reset);
    }
}
