//! The TLS module's tests: certificates made with rcgen at test time, files in a temporary directory, and
//! real handshakes through tokio-rustls on 127.0.0.1:0 (the server side as the accept loop will run it: a
//! fresh `acceptor()` per connection).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::client::TlsStream;

use super::*;

// ---------------------------------------------------------------------------------------------------------
// Certificates and files

/// A certificate authority made for one test.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
    der: CertificateDer<'static>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        der: cert.der().clone(),
        params,
        key,
    }
}

/// A leaf certificate and key, both PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Leaf {
    fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert.as_bytes()).unwrap()
    }
}

fn leaf_with(
    ca: &Ca,
    cn: &str,
    sans: &[&str],
    eku: ExtendedKeyUsagePurpose,
    edit: impl FnOnce(&mut CertificateParams),
) -> Leaf {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![eku];
    edit(&mut params);
    let key = KeyPair::generate().unwrap();
    let cert = params
        .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
        .unwrap();
    Leaf {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn server_leaf(ca: &Ca, cn: &str, sans: &[&str]) -> Leaf {
    leaf_with(ca, cn, sans, ExtendedKeyUsagePurpose::ServerAuth, |_| {})
}

fn client_leaf(ca: &Ca, cn: &str) -> Leaf {
    leaf_with(ca, cn, &[], ExtendedKeyUsagePurpose::ClientAuth, |_| {})
}

/// A temporary directory of PEM files, removed on drop.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    /// Writes `text` to `name` (mode 0600 on Unix, as a key file should be).
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        path
    }

    fn pair(&self, stem: &str, leaf: &Leaf) -> PairSpec {
        PairSpec {
            cert: self.write(&format!("{stem}.crt"), &leaf.cert),
            key: self.write(&format!("{stem}.key"), &leaf.key),
        }
    }
}

fn spec(default: PairSpec) -> ListenerSpec {
    ListenerSpec {
        default,
        sni: Vec::new(),
        client_ca: None,
        client_auth: ClientAuth::None,
    }
}

fn listener(spec: &ListenerSpec) -> Arc<TlsListener> {
    Arc::new(TlsListener::new(load(spec).unwrap(), spec).unwrap())
}

/// The base64 lines of a PEM key: none of them may ever be part of an error.
fn key_lines(key_pem: &str) -> Vec<&str> {
    key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 8)
        .collect()
}

fn assert_no_key(message: &str, key_pem: &str) {
    for line in key_lines(key_pem) {
        assert!(
            !message.contains(line),
            "the error shows the key: {message}"
        );
    }
    assert!(!message.contains("PRIVATE KEY-----"), "{message}");
}

// ---------------------------------------------------------------------------------------------------------
// Loading

#[test]
fn a_valid_pair_loads_and_shows_its_certificate() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let pair = files.pair(
        "server",
        &server_leaf(&ca, "rrlb test server", &["localhost", "127.0.0.1"]),
    );
    let loaded = load(&spec(pair.clone())).unwrap();
    assert!(loaded.warnings().is_empty(), "{:?}", loaded.warnings());
    let infos = loaded.infos();
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    assert_eq!(info.name, "localhost");
    assert!(
        info.subject.contains("CN=rrlb test server"),
        "{}",
        info.subject
    );
    assert_eq!(info.sans, ["localhost", "127.0.0.1"]);
    assert_eq!(info.source, pair.cert.display().to_string());
    // rcgen's default validity: 1975-01-01 to 4096-01-01.
    assert_eq!(info.not_before, "1975-01-01T00:00:00Z");
    assert_eq!(info.not_after, "4096-01-01T00:00:00Z");
    assert!(info.not_after_unix > 4_000_000_000);
    let json = serde_json::to_value(info).unwrap();
    let mut fields: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "name",
            "not_after",
            "not_after_unix",
            "not_before",
            "sans",
            "source",
            "subject"
        ]
    );
}

#[test]
fn a_key_that_does_not_match_is_refused_naming_the_key_file() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let one = server_leaf(&ca, "one", &["localhost"]);
    let other = server_leaf(&ca, "other", &["localhost"]);
    let cert = files.write("cert.pem", &one.cert);
    let key = files.write("key.pem", &other.key);
    let e = load(&spec(PairSpec {
        cert: cert.clone(),
        key: key.clone(),
    }))
    .err()
    .unwrap();
    assert!(e.is_key_mismatch(), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the key does not match the certificate in {}",
            key.display(),
            cert.display()
        )
    );
    assert_no_key(&e.to_string(), &other.key);
    assert_no_key(&format!("{e:?}"), &other.key);
}

#[test]
fn not_pem_is_refused_naming_the_file() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let good = server_leaf(&ca, "good", &["localhost"]);
    let cert = files.write("cert.pem", &good.cert);
    let key = files.write("key.pem", &good.key);
    let junk = files.write("junk.pem", "hello, not a certificate\n");

    let e = load(&spec(PairSpec {
        cert: junk.clone(),
        key: key.clone(),
    }))
    .err()
    .unwrap();
    assert!(e.is_not_pem(), "{e}");
    assert_eq!(
        e.to_string(),
        format!("{}: not PEM (no \"-----BEGIN\" line)", junk.display())
    );

    let e = load(&spec(PairSpec {
        cert: cert.clone(),
        key: junk.clone(),
    }))
    .err()
    .unwrap();
    assert!(
        e.is_not_pem() && e.to_string().starts_with(&junk.display().to_string()),
        "{e}"
    );

    // A certificate where the key should be, and a key where the certificate should be.
    let e = load(&spec(PairSpec {
        cert: cert.clone(),
        key: cert.clone(),
    }))
    .err()
    .unwrap();
    assert!(
        e.to_string().ends_with("no private key section in the PEM"),
        "{e}"
    );
    let e = load(&spec(PairSpec {
        cert: key.clone(),
        key: key.clone(),
    }))
    .err()
    .unwrap();
    assert!(
        e.to_string().ends_with("no CERTIFICATE section in the PEM"),
        "{e}"
    );
    assert_no_key(&e.to_string(), &good.key);
}

#[test]
fn damaged_key_pem_is_refused_without_showing_it() {
    let ca = ca("rrlb test CA");
    let good = server_leaf(&ca, "good", &["localhost"]);
    // A symbol that is not base64 inside the key, and a key cut short before its END line.
    let body_at = good.key.find('\n').unwrap() + 1;
    let bad_symbol = format!("{}!{}", &good.key[..body_at], &good.key[body_at + 1..]);
    let cut = &good.key[..good.key.len() / 2];
    let other_type = good.key.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
    for (bad, expect) in [
        (bad_symbol.as_str(), "damaged PEM"),
        (cut, "damaged PEM"),
        (other_type.as_str(), "the private key is encrypted"),
    ] {
        let e = pair_from_pem(good.cert.as_bytes(), bad.as_bytes(), ("c.pem", "k.pem"))
            .err()
            .unwrap();
        let text = e.to_string();
        assert!(
            text.starts_with("k.pem: ") && text.contains(expect),
            "{text}"
        );
        assert_no_key(&text, &good.key);
        assert_no_key(&format!("{e:?}"), &good.key);
    }
    // A key section with a body that is not a key.
    let not_a_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let e = pair_from_pem(
        good.cert.as_bytes(),
        not_a_key.as_bytes(),
        ("c.pem", "k.pem"),
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().starts_with("k.pem: not a usable private key"),
        "{e}"
    );
}

#[test]
fn an_unreadable_file_is_refused_naming_it() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let good = files.pair("good", &server_leaf(&ca, "good", &["localhost"]));
    let missing = files.0.path().join("missing.pem");
    let e = load(&spec(PairSpec {
        cert: missing.clone(),
        key: good.key.clone(),
    }))
    .err()
    .unwrap();
    assert!(e.is_read(), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read: ", missing.display())),
        "{e}"
    );
    // A directory where the key should be.
    let e = load(&spec(PairSpec {
        cert: good.cert.clone(),
        key: files.0.path().to_owned(),
    }))
    .err()
    .unwrap();
    assert!(
        e.is_read()
            && e.to_string()
                .starts_with(&files.0.path().display().to_string()),
        "{e}"
    );
    // The client CA too.
    let mut s = spec(good);
    s.client_ca = Some(missing.clone());
    let e = load(&s).err().unwrap();
    assert!(e.is_read() && e.to_string().contains("missing.pem"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let pair = files.pair("server", &server_leaf(&ca, "server", &["localhost"]));
    std::fs::set_permissions(&pair.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loaded = load(&spec(pair.clone())).unwrap();
    assert_eq!(
        loaded.warnings(),
        [Warning::KeyReadableByOthers {
            key: pair.key.display().to_string(),
            mode: 0o644
        }]
    );
    let text = loaded.warnings()[0].to_string();
    assert!(
        text.contains("mode 0644") && text.contains("chmod 600"),
        "{text}"
    );
}

#[test]
fn an_expired_certificate_loads_with_a_warning() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let expired = leaf_with(
        &ca,
        "expired",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        |p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        },
    );
    let pair = files.pair("expired", &expired);
    let loaded = load(&spec(pair.clone())).unwrap();
    let info = &loaded.infos()[0];
    assert_eq!(info.not_after, "2020-01-01T00:00:00Z");
    assert_eq!(info.not_after_unix, 1_577_836_800);
    assert_eq!(
        loaded.warnings(),
        [Warning::Expired {
            cert: pair.cert.display().to_string(),
            not_after: info.not_after.clone()
        }]
    );
    assert!(
        loaded.warnings()[0]
            .to_string()
            .contains("EXPIRED at 2020-01-01T00:00:00Z")
    );

    let future = leaf_with(
        &ca,
        "future",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        |p| {
            p.not_before = rcgen::date_time_ymd(3000, 1, 1);
        },
    );
    let loaded = load(&spec(files.pair("future", &future))).unwrap();
    assert!(
        matches!(loaded.warnings(), [Warning::NotYetValid { .. }]),
        "{:?}",
        loaded.warnings()
    );
}

#[test]
fn client_auth_without_a_client_ca_is_refused() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let mut s = spec(files.pair("server", &server_leaf(&ca, "server", &["localhost"])));
    s.client_auth = ClientAuth::Required;
    let e = TlsListener::new(load(&s).unwrap(), &s).err().unwrap();
    assert_eq!(
        e.to_string(),
        "client_auth = \"required\" needs a client_ca"
    );
}

#[test]
fn sni_names_pick_exact_then_one_label_wildcards_then_the_default() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let mut s = spec(files.pair(
        "default",
        &server_leaf(&ca, "default", &["localhost", "both.test"]),
    ));
    s.sni = vec![
        files.pair("a", &server_leaf(&ca, "a", &["a.test", "both.test"])),
        files.pair("b", &server_leaf(&ca, "b", &["*.b.test"])),
    ];
    let loaded = load(&s).unwrap();
    let table = sni::Table::new(&loaded);
    let [default, a, b] = [&loaded.default.key, &loaded.sni[0].key, &loaded.sni[1].key];
    for (name, want) in [
        (None, default),
        (Some("a.test"), a),
        (Some("A.Test."), a),
        (Some("both.test"), a),
        (Some("x.b.test"), b),
        (Some("X.B.TEST"), b),
        (Some("b.test"), default),
        (Some("y.x.b.test"), default),
        (Some("localhost"), default),
        (Some("unknown.test"), default),
        (Some(""), default),
    ] {
        assert!(Arc::ptr_eq(table.pick(name), want), "{name:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Handshakes

/// What the server saw of one accepted connection.
#[derive(Debug)]
struct Accepted {
    alpn: Option<Vec<u8>>,
    subject: Option<String>,
}

/// A TLS echo server on 127.0.0.1:0 that takes a fresh acceptor for every connection, as the accept loop
/// will; its tasks stop when it is dropped.
struct Server {
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<Result<Accepted, String>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts the connections' tasks.
        self.task.abort();
    }
}

impl Server {
    async fn start(listener: Arc<TlsListener>) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = tcp.accept().await {
                let acceptor = listener.acceptor();
                let tx = tx.clone();
                conns.spawn(async move {
                    let mut tls = match acceptor.accept(stream).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let conn = tls.get_ref().1;
                    let _ = tx.send(Ok(Accepted {
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                        subject: client_subject(conn),
                    }));
                    let mut buf = [0; 1024];
                    while let Ok(n @ 1..) = tls.read(&mut buf).await {
                        if tls.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    async fn next(&mut self) -> Result<Accepted, String> {
        self.accepted.recv().await.unwrap()
    }
}

/// A client trusting `ca`, offering `alpn`, speaking the `versions` given.
fn client(
    ca: &Ca,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

fn client_with_cert(ca: &Ca, leaf: &Leaf) -> ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![leaf.der()],
            PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
        )
        .unwrap()
}

fn default_client(ca: &Ca) -> Arc<ClientConfig> {
    Arc::new(client(ca, &[b"h2", b"http/1.1"], rustls::DEFAULT_VERSIONS))
}

/// A client that takes any certificate (to see which one an unknown name gets), still checking signatures.
fn accept_any_client() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::upstream::AcceptAnyCertificate(
            provider().signature_verification_algorithms,
        )))
        .with_no_client_auth();
    Arc::new(config)
}

async fn connect(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

/// Sends `ping` and reads it back: proves the connection carries data both ways (and, in TLS 1.3, makes the
/// client read the session tickets that came before the echo).
async fn echo(tls: &mut TlsStream<TcpStream>) -> std::io::Result<()> {
    tls.write_all(b"ping").await?;
    let mut back = [0; 4];
    tls.read_exact(&mut back).await?;
    assert_eq!(&back, b"ping");
    Ok(())
}

fn peer_leaf(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn sni_picks_the_certificate_and_no_sni_gets_the_default() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let default = server_leaf(&ca, "default", &["localhost", "127.0.0.1"]);
    let a = server_leaf(&ca, "a", &["a.test"]);
    let b = server_leaf(&ca, "b", &["*.b.test"]);
    let mut s = spec(files.pair("default", &default));
    s.sni = vec![files.pair("a", &a), files.pair("b", &b)];
    let mut server = Server::start(listener(&s)).await;
    let verified = default_client(&ca);
    let mut no_sni = client(&ca, &[], rustls::DEFAULT_VERSIONS);
    no_sni.enable_sni = false;
    let no_sni = Arc::new(no_sni);
    let any = accept_any_client();

    for (config, name, want) in [
        (&verified, "a.test", &a),
        (&verified, "x.b.test", &b),
        (&verified, "localhost", &default),
        // An IP address is never sent as SNI.
        (&verified, "127.0.0.1", &default),
        (&no_sni, "localhost", &default),
        (&any, "unknown.test", &default),
        (&any, "b.test", &default),
    ] {
        let mut tls = connect(config, server.addr, name).await.unwrap();
        echo(&mut tls).await.unwrap();
        assert_eq!(peer_leaf(&tls), want.der(), "{name}");
        server.next().await.unwrap();
    }
}

#[tokio::test]
async fn alpn_offers_h2_then_http1_and_both_versions_connect() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let s = spec(files.pair("server", &server_leaf(&ca, "server", &["localhost"])));
    let mut server = Server::start(listener(&s)).await;
    for (offered, want) in [
        (&[&b"h2"[..], b"http/1.1"][..], Some(&b"h2"[..])),
        (&[&b"http/1.1"[..], b"h2"][..], Some(&b"h2"[..])),
        (&[&b"h2"[..]][..], Some(&b"h2"[..])),
        (&[&b"http/1.1"[..]][..], Some(&b"http/1.1"[..])),
        (&[&b"http/1.0"[..]][..], Some(&b"http/1.0"[..])),
        (&[&b"http/1.0"[..], b"http/1.1"][..], Some(&b"http/1.1"[..])),
        (&[][..], None),
    ] {
        let config = Arc::new(client(&ca, offered, rustls::DEFAULT_VERSIONS));
        let mut tls = connect(&config, server.addr, "localhost").await.unwrap();
        echo(&mut tls).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), want, "{offered:?}");
        assert_eq!(server.next().await.unwrap().alpn.as_deref(), want);
    }
    for (version, want) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let config = Arc::new(client(&ca, &[b"h2"], &[version]));
        let mut tls = connect(&config, server.addr, "localhost").await.unwrap();
        echo(&mut tls).await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(want));
        server.next().await.unwrap();
    }
}

#[tokio::test]
async fn a_second_connection_resumes_with_either_version() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let s = spec(files.pair("server", &server_leaf(&ca, "server", &["localhost"])));
    let mut server = Server::start(listener(&s)).await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = Arc::new(client(&ca, &[b"h2"], &[version]));
        let mut first = connect(&config, server.addr, "localhost").await.unwrap();
        echo(&mut first).await.unwrap();
        assert_eq!(
            first.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Full)
        );
        let mut second = connect(&config, server.addr, "localhost").await.unwrap();
        echo(&mut second).await.unwrap();
        assert_eq!(
            second.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version:?}"
        );
        server.next().await.unwrap();
        server.next().await.unwrap();
    }
}

#[tokio::test]
async fn a_rotation_serves_new_connections_and_keeps_open_ones() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let old = server_leaf(&ca, "old", &["localhost"]);
    let new = server_leaf(&ca, "new", &["localhost"]);
    let old_spec = spec(files.pair("old", &old));
    let tls = listener(&old_spec);
    let mut server = Server::start(Arc::clone(&tls)).await;
    let resuming = default_client(&ca);

    let mut before = connect(&resuming, server.addr, "localhost").await.unwrap();
    echo(&mut before).await.unwrap();
    assert_eq!(peer_leaf(&before), old.der());
    server.next().await.unwrap();

    let new_spec = spec(files.pair("new", &new));
    tls.apply(load(&new_spec).unwrap(), &new_spec).unwrap();
    assert!(tls.infos()[0].subject.contains("CN=new"));

    let mut after = connect(&default_client(&ca), server.addr, "localhost")
        .await
        .unwrap();
    echo(&mut after).await.unwrap();
    assert_eq!(peer_leaf(&after), new.der());
    server.next().await.unwrap();
    // The connection opened before still works, on the old certificate.
    echo(&mut before).await.unwrap();
    assert_eq!(peer_leaf(&before), old.der());
    // Same client settings: the ServerConfig (and its ticket key) was kept, so sessions still resume.
    let mut resumed = connect(&resuming, server.addr, "localhost").await.unwrap();
    echo(&mut resumed).await.unwrap();
    assert_eq!(
        resumed.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    server.next().await.unwrap();

    // A mismatched pair is refused, naming its key, and the new pair keeps serving.
    let bad = PairSpec {
        cert: files.write("bad.crt", &old.cert),
        key: files.write("bad.key", &new.key),
    };
    let bad_spec = spec(bad.clone());
    let e = load(&bad_spec)
        .and_then(|l| tls.apply(l, &bad_spec))
        .err()
        .unwrap();
    assert!(
        e.is_key_mismatch() && e.to_string().starts_with(&bad.key.display().to_string()),
        "{e}"
    );
    let mut still = connect(&default_client(&ca), server.addr, "localhost")
        .await
        .unwrap();
    echo(&mut still).await.unwrap();
    assert_eq!(peer_leaf(&still), new.der());
    assert!(tls.infos()[0].subject.contains("CN=new"));
    server.next().await.unwrap();
}

fn auth_spec(files: &Files, server: &Leaf, client_ca: &Ca, auth: ClientAuth) -> ListenerSpec {
    let mut s = spec(files.pair("server", server));
    s.client_ca = Some(files.write("client-ca.pem", &client_ca.pem));
    s.client_auth = auth;
    s
}

/// Connects and exchanges data; in TLS 1.3 a refused client certificate shows only on the first read.
async fn connect_and_echo(config: &Arc<ClientConfig>, addr: SocketAddr) -> std::io::Result<()> {
    let mut tls = connect(config, addr, "localhost").await?;
    echo(&mut tls).await
}

#[tokio::test]
async fn required_client_auth_needs_a_certificate_from_client_ca() {
    let ca = ca("rrlb test CA");
    let clients = self::ca("rrlb client CA");
    let strangers = self::ca("someone else's CA");
    let files = Files::new();
    let s = auth_spec(
        &files,
        &server_leaf(&ca, "server", &["localhost"]),
        &clients,
        ClientAuth::Required,
    );
    let tls = listener(&s);
    let mut server = Server::start(Arc::clone(&tls)).await;

    assert!(
        connect_and_echo(&default_client(&ca), server.addr)
            .await
            .is_err()
    );
    assert!(server.next().await.is_err());

    let stranger = Arc::new(client_with_cert(&ca, &client_leaf(&strangers, "stranger")));
    assert!(connect_and_echo(&stranger, server.addr).await.is_err());
    assert!(server.next().await.is_err());

    let known = Arc::new(client_with_cert(&ca, &client_leaf(&clients, "client one")));
    connect_and_echo(&known, server.addr).await.unwrap();
    let subject = server.next().await.unwrap().subject.unwrap();
    assert_eq!(subject, "CN=client one");

    // A reload that turns client authentication off takes effect on the next connection.
    let mut off = s.clone();
    off.client_auth = ClientAuth::None;
    tls.apply(load(&off).unwrap(), &off).unwrap();
    connect_and_echo(&default_client(&ca), server.addr)
        .await
        .unwrap();
    assert_eq!(server.next().await.unwrap().subject, None);
}

#[tokio::test]
async fn optional_client_auth_lets_both_in() {
    let ca = ca("rrlb test CA");
    let clients = self::ca("rrlb client CA");
    let files = Files::new();
    let s = auth_spec(
        &files,
        &server_leaf(&ca, "server", &["localhost"]),
        &clients,
        ClientAuth::Optional,
    );
    let mut server = Server::start(listener(&s)).await;

    connect_and_echo(&default_client(&ca), server.addr)
        .await
        .unwrap();
    assert_eq!(server.next().await.unwrap().subject, None);

    let known = Arc::new(client_with_cert(&ca, &client_leaf(&clients, "client two")));
    connect_and_echo(&known, server.addr).await.unwrap();
    assert_eq!(
        server.next().await.unwrap().subject.as_deref(),
        Some("CN=client two")
    );
}

#[tokio::test]
async fn an_expired_certificate_is_served() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let expired = leaf_with(
        &ca,
        "expired",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        |p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        },
    );
    let s = spec(files.pair("expired", &expired));
    let mut server = Server::start(listener(&s)).await;
    // A verifying client refuses it; one that does not look gets it.
    assert!(
        connect(&default_client(&ca), server.addr, "localhost")
            .await
            .is_err()
    );
    let _ = server.next().await;
    let mut tls = connect(&accept_any_client(), server.addr, "localhost")
        .await
        .unwrap();
    echo(&mut tls).await.unwrap();
    assert_eq!(peer_leaf(&tls), expired.der());
    server.next().await.unwrap();
}

/// What the fuzz target's `testing::tls_pair` returns (that module sits above this one, so it is not called).
fn loads(cert: &[u8], key: &[u8]) -> bool {
    pair_from_pem(cert, key, ("cert.pem", "key.pem")).is_ok()
}

#[test]
fn pem_files_of_every_shape_never_panic() {
    // The fuzz target's function on a few hand-made shapes (the fuzzer does the rest).
    let ca = ca("rrlb test CA");
    let good = server_leaf(&ca, "good", &["localhost"]);
    assert!(loads(good.cert.as_bytes(), good.key.as_bytes()));
    for (cert, key) in [
        (&b""[..], &b""[..]),
        (
            b"-----BEGIN CERTIFICATE-----\n",
            b"-----BEGIN PRIVATE KEY-----\n",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            good.key.as_bytes(),
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            good.key.as_bytes(),
        ),
        (good.key.as_bytes(), good.cert.as_bytes()),
        (&[0xff; 64][..], &[0x00; 64][..]),
    ] {
        assert!(!loads(cert, key));
    }
}

#[test]
fn client_subject_is_none_on_a_connection_without_a_client_certificate() {
    let ca = ca("rrlb test CA");
    let files = Files::new();
    let tls = listener(&spec(
        files.pair("server", &server_leaf(&ca, "server", &["localhost"])),
    ));
    let config = tls.acceptor().config().clone();
    let conn = rustls::ServerConnection::new(config).unwrap();
    assert_eq!(client_subject(&conn), None);
}

#[test]
fn the_fuzz_seeds_load_as_their_names_say() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/tls_pem");
    for (seed, want) in [
        ("pair", true),
        ("chain", true),
        ("mismatch", false),
        ("not-pem", false),
    ] {
        let data = std::fs::read(dir.join(seed)).unwrap();
        let at = data.iter().position(|&b| b == 0).unwrap();
        assert_eq!(loads(&data[..at], &data[at + 1..]), want, "{seed}");
    }
}
