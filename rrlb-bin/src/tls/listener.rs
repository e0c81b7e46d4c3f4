//! The listener's TLS state: the certificate table (swapped on every load) and the rustls `ServerConfig`
//! (rebuilt only when the client-authentication settings change).

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls_pki_types::CertificateDer;

use super::info::CertInfo;
use super::load::{Loaded, roots_store};
use super::sni::{Resolver, Table};
use super::{ClientAuth, ListenerSpec, TlsError, provider};

/// Sessions the server-side cache keeps (TLS 1.2 session IDs, and TLS 1.3 resumption when a client does not
/// take tickets): rustls's default is 256; an entry is a few hundred bytes.
const SESSION_CACHE: usize = 4096;

/// The ALPN protocols offered, most preferred first. `http/1.0` too: rrlb serves HTTP/1.0 over TLS (hyper's
/// path, as in plaintext), and a client that offers only it (curl 7.88 to 8.4 with `--http1.0`) would
/// otherwise be refused the handshake with `no_application_protocol` (RFC 7301 §3.2). NGINX offers it as well.
const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", b"http/1.0"];

/// The client-authentication settings a `ServerConfig` was built for.
#[derive(PartialEq)]
struct Auth {
    mode: ClientAuth,
    roots: Option<Vec<CertificateDer<'static>>>,
}

struct Current {
    config: Arc<ServerConfig>,
    auth: Auth,
}

/// A TLS listener's state: hand [`acceptor`](Self::acceptor) each accepted connection, [`apply`](Self::apply)
/// each reload.
pub(crate) struct TlsListener {
    resolver: Arc<Resolver>,
    current: ArcSwap<Current>,
    /// Serialises `apply`, so two reloads cannot interleave their two stores.
    applying: Mutex<()>,
}

impl TlsListener {
    /// The state for `loaded` with the client authentication `spec` asks for.
    pub(crate) fn new(loaded: Loaded, spec: &ListenerSpec) -> Result<Self, TlsError> {
        let resolver = Arc::new(Resolver {
            table: ArcSwap::from_pointee(Table::new(&loaded)),
        });
        let auth = Auth {
            mode: spec.client_auth,
            roots: loaded.client_roots,
        };
        let config = Arc::new(server_config(Arc::clone(&resolver), &auth)?);
        Ok(Self {
            resolver,
            current: ArcSwap::from_pointee(Current { config, auth }),
            applying: Mutex::new(()),
        })
    }

    /// A rotation: the certificates swap in one pointer store, which the next handshake reads. A change of
    /// `client_ca` (its certificates, not its file name) or `client_auth` builds a new `ServerConfig`, with a
    /// new ticket key and session cache: rustls resumes a session without verifying the client again, so a
    /// session begun without a client certificate must not resume under a config that requires one. With the
    /// same client settings the `ServerConfig` is kept, and sessions keep resuming across rotations.
    /// Connections in flight keep what they were accepted with. On an error nothing changes.
    pub(crate) fn apply(&self, loaded: Loaded, spec: &ListenerSpec) -> Result<(), TlsError> {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
        let table = Table::new(&loaded);
        let auth = Auth {
            mode: spec.client_auth,
            roots: loaded.client_roots,
        };
        let config = if auth == self.current.load().auth {
            None
        } else {
            Some(Arc::new(server_config(Arc::clone(&self.resolver), &auth)?))
        };
        self.resolver.table.store(Arc::new(table));
        if let Some(config) = config {
            self.current.store(Arc::new(Current { config, auth }));
        }
        Ok(())
    }

    /// An acceptor with the current `ServerConfig`: take one per accepted connection.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.current.load().config))
    }

    /// What is served: each certificate's info, the default pair's first.
    pub(crate) fn infos(&self) -> Vec<CertInfo> {
        self.resolver.table.load().infos().to_vec()
    }
}

/// TLS 1.2 and 1.3 with the ring provider, ALPN `h2`, `http/1.1` then `http/1.0`, tickets (ring's rotating ticketer) and
/// a session cache, certificates from `resolver`, client certificates as `auth` asks.
fn server_config(resolver: Arc<Resolver>, auth: &Auth) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::settings)?;
    let builder = match (auth.mode, &auth.roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (mode, None) => return Err(TlsError::no_client_ca(mode.as_str())),
        (mode, Some(roots)) => {
            let roots = Arc::new(roots_store(roots).map_err(TlsError::settings)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match mode {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::settings(rustls::Error::General(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::settings)?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(config)
}
