//! TLS to `https://` backends: the client settings of each backend ([`UpstreamTlsSpec`] → [`UpstreamTls`] by
//! [`client_config`]), which backend uses which ([`BackendTls`]), and the handshake on a new connection.
//!
//! Why rrlb's own client and not a hyper client: an `https://` backend is reached by the same HTTP/1.1 upstream
//! as a plain one (`send.rs`, `pool.rs`, `body.rs`), over a TLS stream instead of a TCP one. The request head is
//! written as the forwarding core wrote it, never parsed again, and one set of answer rules (`h1::answer`)
//! serves both. rustls 0.23 with the ring provider (already in the tree through hyper-rustls), TLS 1.2 and 1.3,
//! ALPN `http/1.1`; certificates and keys are read as PEM with rustls-pki-types' `PemObject`.
//!
//! Errors name the file and what is wrong with it, never a byte of a key.

use std::collections::HashMap;
use std::future::Future;

use rrlb_tower::Probe;
use rrlb_tower::http::HttpProbe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What a backend's TLS client is made of, as the configuration gives it (`[upstream_tls]`, a backend's
/// `[backends.tls]`). The default is the Mozilla web roots, no client certificate, the URL's host as the name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamTlsSpec {
    /// A PEM file of extra root certificates, trusted beside the Mozilla web roots.
    pub ca: Option<PathBuf>,
    /// A PEM file with the client certificate (chain) for mTLS; with `key`.
    pub cert: Option<PathBuf>,
    /// A PEM file with the client certificate's private key (PKCS#8, PKCS#1 or SEC1); with `cert`.
    pub key: Option<PathBuf>,
    /// The name sent as SNI and checked against the backend's certificate, instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any certificate (its handshake signatures are still checked). Logged as a warning each time a
    /// client with it is built.
    pub insecure_skip_verify: bool,
}

/// A backend's TLS client settings, built by [`client_config`]: the rustls configuration and the name to
/// verify, when it is not the URL's host. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: Option<ServerName<'static>>,
}

impl UpstreamTls {
    /// Whether both are the same settings (the same built configuration and name): a pooled connection made
    /// with one may serve the other.
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

/// Why a backend's TLS client could not be built. Names the file and the problem; never prints key bytes.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// A file could not be read.
    #[error("cannot read {what} file {}", path.display())]
    Read {
        /// `CA`, `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not PEM of what it should hold, or holds none of it.
    #[error("{what} file {} {problem}", path.display())]
    Pem {
        /// `CA`, `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong (for a key file, never its contents).
        problem: String,
    },
    /// A CA certificate was refused as a trust anchor.
    #[error("CA file {}: a certificate is not a usable root", path.display())]
    Root {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// Only one of `cert` and `key` is set.
    #[error("a client certificate needs both cert and key (only {given} is set)")]
    HalfClientCert {
        /// The one that is set.
        given: &'static str,
    },
    /// The client certificate and key do not make a pair rustls accepts (the key does not match, or its type
    /// is not supported).
    #[error("client certificate {} with key {}", cert.display(), key.display())]
    ClientCert {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason (it names the problem, not the key).
        #[source]
        source: rustls::Error,
    },
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("server_name {0:?} is not a DNS name or an IP address")]
    ServerName(String),
    /// The crypto provider refused the protocol versions (never with ring's).
    #[error("the TLS provider refused TLS 1.2/1.3")]
    Provider(#[source] rustls::Error),
}

/// The ring provider every upstream TLS client uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a backend's TLS client from its spec: TLS 1.2 and 1.3, ALPN `http/1.1`, the Mozilla web roots plus
/// `ca`, the client certificate `cert`/`key` when given. With `insecure_skip_verify` any certificate is
/// accepted, and a warning says so.
pub(crate) fn client_config(spec: &UpstreamTlsSpec) -> Result<UpstreamTls, UpstreamTlsError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(UpstreamTlsError::Provider)?;
    let builder = if spec.insecure_skip_verify {
        tracing::warn!(
            server_name = spec.server_name.as_deref(),
            "upstream TLS with insecure_skip_verify: the backend's certificate is not verified"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(algorithms)))
    } else {
        builder.with_root_certificates(roots(spec.ca.as_deref())?)
    };
    let mut config = match (&spec.cert, &spec.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "certificate")?;
            let key_der = private_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|source| UpstreamTlsError::ClientCert {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(UpstreamTlsError::HalfClientCert { given: "cert" }),
        (None, Some(_)) => return Err(UpstreamTlsError::HalfClientCert { given: "key" }),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = spec
        .server_name
        .as_ref()
        .map(|n| {
            ServerName::try_from(n.clone()).map_err(|_| UpstreamTlsError::ServerName(n.clone()))
        })
        .transpose()?;
    Ok(UpstreamTls {
        config: Arc::new(config),
        server_name,
    })
}

/// The Mozilla web roots, plus the certificates of `ca`.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, UpstreamTlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        for cert in certificates(path, "CA")? {
            roots.add(cert).map_err(|source| UpstreamTlsError::Root {
                path: path.to_owned(),
                source,
            })?;
        }
    }
    Ok(roots)
}

/// Every certificate of a PEM file; at least one.
fn certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let pem_error = |e: pem::Error| match e {
        pem::Error::Io(source) => UpstreamTlsError::Read {
            what,
            path: path.to_owned(),
            source,
        },
        // Certificates are public: the parser's words may be shown.
        other => UpstreamTlsError::Pem {
            what,
            path: path.to_owned(),
            problem: format!("is not valid PEM ({other})"),
        },
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(UpstreamTlsError::Pem {
            what,
            path: path.to_owned(),
            problem: "holds no certificate".into(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file. Its problems are named without quoting the file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, UpstreamTlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::Io(source) => UpstreamTlsError::Read {
            what: "key",
            path: path.to_owned(),
            source,
        },
        pem::Error::NoItemsFound => UpstreamTlsError::Pem {
            what: "key",
            path: path.to_owned(),
            problem: "holds no private key".into(),
        },
        _ => UpstreamTlsError::Pem {
            what: "key",
            path: path.to_owned(),
            problem: "is not valid PEM".into(),
        },
    })
}

/// `insecure_skip_verify`: any certificate chain and name are accepted, but the handshake's signatures are
/// checked with the provider's algorithms, so the peer must still hold the key of the certificate it sent.
#[derive(Debug)]
pub(crate) struct AcceptAnyCertificate(pub(crate) WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Which TLS client each `https://` backend uses: its own (by backend name), its discovered group's (a member
/// named `group/ip:port` takes the settings given for `group`), or the default (`[upstream_tls]`).
///
/// A new `BackendTls` is given to the upstream at each reload; a pooled connection made with settings that
/// are no longer the backend's is not used again.
#[derive(Debug)]
pub(crate) struct BackendTls {
    /// Tells `BackendTls` values apart, so a thread's pool checks a backend's settings once per value.
    id: u64,
    default: UpstreamTls,
    backends: HashMap<String, UpstreamTls>,
}

impl BackendTls {
    /// Every `https://` backend uses `default`.
    pub(crate) fn new(default: UpstreamTls) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            default,
            backends: HashMap::new(),
        }
    }

    /// The backend (or discovered group) named `name` uses `tls`.
    #[must_use]
    pub(crate) fn with_backend(mut self, name: impl Into<String>, tls: UpstreamTls) -> Self {
        self.backends.insert(name.into(), tls);
        self
    }

    /// The settings of the backend named `backend`.
    pub(crate) fn get(&self, backend: &str) -> &UpstreamTls {
        self.backends
            .get(backend)
            .or_else(|| {
                let (group, _) = backend.split_once('/')?;
                self.backends.get(group)
            })
            .unwrap_or(&self.default)
    }

    /// This value's id (see the field).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// The health probe of a backend set whose `https://` backends may each have their own TLS settings: each
/// backend is probed with the settings its requests use (the same lookup as [`BackendTls::get`]: its name, its
/// discovery group, the default), CA, client certificate and `server_name` included, so a backend is never
/// marked unhealthy only because its probe trusted other roots than its traffic.
pub(crate) struct BackendProbe {
    default: HttpProbe,
    backends: HashMap<String, HttpProbe>,
}

impl BackendProbe {
    /// Probes `path` within `connect_timeout` on every backend, with the TLS settings in `tls`.
    pub(crate) fn new(path: &str, connect_timeout: std::time::Duration, tls: &BackendTls) -> Self {
        let probe = |t: &UpstreamTls| {
            let plain = HttpProbe::new(path, connect_timeout);
            match &t.server_name {
                Some(name) => plain.with_tls_for_name(Arc::clone(&t.config), name.clone()),
                None => plain.with_tls(Arc::clone(&t.config)),
            }
        };
        Self {
            default: probe(&tls.default),
            backends: tls
                .backends
                .iter()
                .map(|(name, t)| (name.clone(), probe(t)))
                .collect(),
        }
    }
}

impl Probe for BackendProbe {
    fn probe(
        &self,
        backend: Arc<rrlb_core::Backend>,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> {
        let name = backend.name();
        let probe = self
            .backends
            .get(name)
            .or_else(|| {
                let (group, _) = name.split_once('/')?;
                self.backends.get(group)
            })
            .unwrap_or(&self.default);
        probe.probe(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_default_trusts_the_web_roots_and_speaks_http1() {
        let tls = client_config(&UpstreamTlsSpec::default()).unwrap();
        assert_eq!(tls.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(tls.server_name.is_none());
    }

    #[test]
    fn errors_name_the_file_and_never_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = client_config(&UpstreamTlsSpec {
            ca: Some(missing.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let empty = write(dir.path(), "empty.pem", "hello\n");
        let e = client_config(&UpstreamTlsSpec {
            ca: Some(empty),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "CA file {} holds no certificate",
                dir.path().join("empty.pem").display()
            )
        );
        let secret =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBieXRlcw@@\n-----END PRIVATE KEY-----\n";
        let key = write(dir.path(), "key.pem", secret);
        let e = private_key(&key).unwrap_err();
        let chain = crate::logging::ErrorChain(&e).to_string();
        assert!(chain.contains("key.pem is not valid PEM"), "{chain}");
        assert!(!chain.contains("c2VjcmV0"), "{chain}");
        let e = client_config(&UpstreamTlsSpec {
            key: Some(dir.path().join("k.pem")),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(
            e,
            UpstreamTlsError::HalfClientCert { given: "key" }
        ));
        let e = client_config(&UpstreamTlsSpec {
            server_name: Some("not a name".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, UpstreamTlsError::ServerName(_)));
    }

    #[test]
    fn backends_take_their_own_then_their_groups_then_the_default() {
        let default = client_config(&UpstreamTlsSpec::default()).unwrap();
        let own = client_config(&UpstreamTlsSpec::default()).unwrap();
        let group = client_config(&UpstreamTlsSpec::default()).unwrap();
        let tls = BackendTls::new(default.clone())
            .with_backend("a", own.clone())
            .with_backend("web", group.clone());
        assert!(tls.get("a").same(&own));
        assert!(tls.get("web/10.0.0.1:443").same(&group));
        assert!(tls.get("b").same(&default));
        assert!(!tls.get("b").same(&own));
        assert_ne!(BackendTls::new(default).id(), tls.id());
    }
}
