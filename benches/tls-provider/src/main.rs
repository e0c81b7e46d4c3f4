//! Full and resumed TLS 1.3 handshakes (ECDSA P-256 server certificate, X25519), client and server in one
//! thread over memory; the server's share of the time measured apart. Built once per provider by `run.sh`
//! (`--features ring` or `--features aws`); the numbers are in ADR 0010.
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

#[cfg(all(feature = "ring", feature = "aws"))]
compile_error!("build with one provider: --features ring or --features aws");

#[cfg(feature = "ring")]
fn provider() -> (CryptoProvider, &'static str) {
    (rustls::crypto::ring::default_provider(), "ring")
}
#[cfg(feature = "aws")]
fn provider() -> (CryptoProvider, &'static str) {
    (rustls::crypto::aws_lc_rs::default_provider(), "aws-lc-rs")
}

fn ticketer() -> Arc<dyn rustls::server::ProducesTickets> {
    #[cfg(feature = "ring")]
    return rustls::crypto::ring::Ticketer::new().unwrap();
    #[cfg(feature = "aws")]
    return rustls::crypto::aws_lc_rs::Ticketer::new().unwrap();
}

fn main() {
    let (provider, name) = provider();
    let provider = Arc::new(provider);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    server.ticketer = ticketer();
    let server = Arc::new(server);
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = |resume: bool| {
        let mut c = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        if !resume {
            c.resumption = rustls::client::Resumption::disabled();
        }
        Arc::new(c)
    };
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    for (what, client) in [("full", client(false)), ("resumed", client(true))] {
        for _ in 0..50 {
            handshake(&server, &client);
        }
        let start = Instant::now();
        let mut in_server = Duration::ZERO;
        for _ in 0..n {
            in_server += handshake(&server, &client);
        }
        let total = start.elapsed().as_secs_f64();
        println!(
            "{name} {what}: {n} handshakes, {:.0}/s client+server, {:.0}/s server side alone ({:.1} us each)",
            f64::from(n) / total,
            f64::from(n) / in_server.as_secs_f64(),
            in_server.as_secs_f64() * 1e6 / f64::from(n)
        );
    }
}

/// One handshake over memory; returns the time spent in the server's calls.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> Duration {
    let mut c =
        ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let t = Instant::now();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut in_server = t.elapsed();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let t = Instant::now();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        let mut out = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut out).unwrap();
        }
        in_server += t.elapsed();
        let mut rd = &out[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
        if !c.is_handshaking() && !s.is_handshaking() && !s.wants_write() && !c.wants_write() {
            return in_server;
        }
    }
}
