//! TLS for the tests: certificates made with rcgen ([`Pki`]: a CA, server certificates, a client certificate,
//! written as PEM files into a temporary directory), and [`TlsEcho`], a tokio-rustls backend on `127.0.0.1:0`
//! that answers each request with its body, optionally requiring a client certificate. Stopped on drop. Clients:
//! [`Pki::client_config`] and [`connect`], which a [`super::wire::Conn`] can run over; other test servers:
//! [`server_config`] (as [`super::scripted::RawBackend::start_tls`] uses it).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::io;
use std::net::SocketAddr;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A certificate and its key, in memory and as PEM files.
pub struct Pair {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A private CA that signs server and client certificates; its files live in a temporary directory that is
/// removed on drop.
pub struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    pub ca: CertificateDer<'static>,
    pub ca_file: PathBuf,
    next: AtomicU64,
}

impl Pki {
    /// A new CA.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rrlb test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("write CA");
        Self {
            issuer: Issuer::new(params, key),
            ca: cert.der().clone(),
            ca_file,
            dir,
            next: AtomicU64::new(0),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by the CA.
    pub fn issue(&self, names: &[&str]) -> Pair {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("sign");
        self.pair(cert.der().clone(), cert.pem(), key)
    }

    /// A certificate signed by the CA whose subject is `CN=<cn>`, for `names` (none for a client certificate).
    pub fn issue_named(&self, cn: &str, names: &[&str]) -> Pair {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        self.pair(cert.der().clone(), cert.pem(), key)
    }

    /// A self-signed certificate for `names`, which no CA vouches for.
    pub fn self_signed(&self, names: &[&str]) -> Pair {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = CertificateParams::new(names)
            .expect("params")
            .self_signed(&key)
            .expect("self-sign");
        self.pair(cert.der().clone(), cert.pem(), key)
    }

    /// A client configuration trusting the CA, offering `alpn`, with `client` as its certificate. A new one per
    /// connection, so that no connection resumes another's session.
    pub fn client_config(&self, alpn: &[&str], client: Option<&Pair>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("CA");
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client {
            Some(pair) => builder
                .with_client_auth_cert(vec![pair.cert.clone()], pair.key.clone_key())
                .expect("client certificate"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        Arc::new(config)
    }

    fn pair(&self, cert: CertificateDer<'static>, pem: String, key: KeyPair) -> Pair {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let cert_file = self.dir.path().join(format!("cert-{n}.pem"));
        let key_file = self.dir.path().join(format!("key-{n}.pem"));
        std::fs::write(&cert_file, pem).expect("write certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        Pair {
            cert,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            cert_file,
            key_file,
        }
    }
}

/// A TLS client connection.
pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to `addr` verifying the name `name` (an IP address: no SNI is sent); the connect and the
/// handshake are bounded by [`super::HANG`].
pub async fn try_connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> io::Result<Tls> {
    let name = ServerName::try_from(name.to_owned()).map_err(io::Error::other)?;
    let fut = async {
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
    };
    tokio::time::timeout(super::HANG, fut)
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the handshake hung")))
}

/// [`try_connect`], which must succeed.
pub async fn connect(addr: SocketAddr, name: &str, config: Arc<rustls::ClientConfig>) -> Tls {
    try_connect(addr, name, config)
        .await
        .unwrap_or_else(|e| panic!("TLS connection to {addr} as {name}: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS backend that answers every request with `200` and the request's body (by `content-length`), on
/// keep-alive connections. Aborted on drop.
pub struct TlsEcho {
    pub addr: std::net::SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server configuration serving `server`'s certificate; with `client_ca`, a client certificate signed by it is
/// required.
pub fn server_config(server: &Pair, client_ca: Option<&Pki>) -> Arc<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(pki) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca.clone()).expect("client CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![server.cert.clone()], server.key.clone_key())
        .expect("server certificate");
    Arc::new(config)
}

impl TlsEcho {
    /// Serves with `server`'s certificate; with `client_ca`, a client certificate signed by it is required.
    pub async fn start(server: &Pair, client_ca: Option<&Pki>) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(server, client_ca));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                conns.spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = echo(&mut tls).await;
                    }
                });
            }
        });
        Self { addr, task }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// Answers each request on `tls` with its body, until the peer closes.
async fn echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    tls: &mut S,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if read_more(tls, &mut buf).await? == 0 {
                return Ok(());
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            if read_more(tls, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body: Vec<u8> = buf.drain(..end + 4 + length).skip(end + 4).collect();
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        tls.write_all(&answer).await?;
        tls.flush().await?;
    }
}

async fn read_more<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = s.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}
