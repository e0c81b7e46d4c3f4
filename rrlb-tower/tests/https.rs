//! `https://` backends behind a private CA: `HttpProbe::with_tls` and `UpstreamConfig::tls` reach them, the
//! default (Mozilla roots) does not. The CA and the backend's certificate are made here with rcgen; the backend
//! is a tokio-rustls server on `127.0.0.1:0`, stopped when the test ends.
#![cfg(feature = "https")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rrlb_core::{Backend, BreakerParams, HealthParams};
use rrlb_tower::Probe;
use rrlb_tower::Routed;
use rrlb_tower::http::{HttpProbe, HttpUpstream, UpstreamConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A private CA and a server certificate for `127.0.0.1` and `localhost` signed by it.
struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca: ca.der().clone(),
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// A TLS backend answering every request on a connection with `200 ok` (the request head is read up to its
/// blank line; the tests send no body). Aborted on drop.
struct TlsBackend {
    url: String,
    task: JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_backend(pki: &Pki) -> TlsBackend {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(pki.chain.clone(), pki.key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tls.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    TlsBackend { url, task }
}

fn private_ca(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn backend(url: &str) -> Arc<Backend> {
    Arc::new(Backend::new(
        "tls",
        url,
        true,
        BreakerParams::default(),
        HealthParams::default(),
    ))
}

#[tokio::test]
async fn a_probe_with_the_private_ca_passes_and_one_without_fails() {
    let pki = pki();
    let server = tls_backend(&pki).await;
    let probe = HttpProbe::new("/health", Duration::from_secs(5));
    assert!(
        !probe.probe(backend(&server.url)).await,
        "the web roots do not know the private CA"
    );
    let probe = probe.with_tls(private_ca(&pki));
    assert!(probe.probe(backend(&server.url)).await);
    // `localhost` is in the certificate too.
    let by_name = server.url.replace("127.0.0.1", "localhost");
    assert!(probe.probe(backend(&by_name)).await);
}

#[tokio::test]
async fn the_upstream_reaches_a_private_ca_backend_with_its_tls_config() {
    let pki = pki();
    let server = tls_backend(&pki).await;
    let upstream = HttpUpstream::new(UpstreamConfig {
        tls: Some(private_ca(&pki)),
        ..UpstreamConfig::default()
    });
    let request = http::Request::get("/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = upstream
        .oneshot(Routed {
            backend: backend(&server.url),
            request,
            attempt: 1,
        })
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
}
