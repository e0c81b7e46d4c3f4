//! Reading and checking certificate/key pairs and the client CA: every file is read and every pair checked
//! (parsed, the key usable by the ring provider and matching its certificate) before anything is served, so
//! a bad file is refused by name and the pairs already serving stay.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::info::{self, CertInfo};
use super::{ListenerSpec, PairSpec, TlsError, provider};

/// One certificate chain with its key, and what is known of its leaf.
#[derive(Clone)]
pub(super) struct Pair {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) info: CertInfo,
    /// The leaf's DNS SANs, lower-cased: what SNI selects the pair by.
    pub(super) dns_names: Vec<String>,
}

/// A listener's files, read and checked: the pairs, the client CA's certificates, and what to warn about.
pub(crate) struct Loaded {
    pub(super) default: Pair,
    pub(super) sni: Vec<Pair>,
    /// The client CA's certificates (DER), when `client_ca` is set.
    pub(super) client_roots: Option<Vec<CertificateDer<'static>>>,
    warnings: Vec<Warning>,
}

impl Loaded {
    /// Every certificate's info, the default pair's first.
    pub(crate) fn infos(&self) -> Vec<CertInfo> {
        std::iter::once(&self.default)
            .chain(&self.sni)
            .map(|p| p.info.clone())
            .collect()
    }

    /// What is served but should not be: key files others can read, certificates outside their validity.
    pub(crate) fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Logs each warning at `warn` level.
    pub(crate) fn log_warnings(&self) {
        for w in &self.warnings {
            tracing::warn!(warning = %w, "tls");
        }
    }
}

/// Something served but wrong: said loudly at each load, never refused (an expired certificate still lets
/// clients that skip verification in, and refusing it would turn a renewal that came late into an outage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Warning {
    /// A key file readable or writable by its group or others (`mode & 0o077 != 0`).
    KeyReadableByOthers {
        /// The key file.
        key: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A certificate whose `not_after` has passed.
    Expired {
        /// The certificate file.
        cert: String,
        /// Its `not_after` (RFC 3339).
        not_after: String,
    },
    /// A certificate whose `not_before` has not come yet.
    NotYetValid {
        /// The certificate file.
        cert: String,
        /// Its `not_before` (RFC 3339).
        not_before: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyReadableByOthers { key, mode } => write!(
                f,
                "{key}: the private key is readable by group or others (mode {mode:04o}); chmod 600 it"
            ),
            Self::Expired { cert, not_after } => write!(
                f,
                "{cert}: the certificate EXPIRED at {not_after}; it is served, but clients will refuse it"
            ),
            Self::NotYetValid { cert, not_before } => write!(
                f,
                "{cert}: the certificate is NOT VALID BEFORE {not_before}; it is served, but clients will refuse it"
            ),
        }
    }
}

/// Reads and checks every file of `spec`: the pairs, then the client CA.
pub(crate) fn load(spec: &ListenerSpec) -> Result<Loaded, TlsError> {
    let mut warnings = Vec::new();
    let now = unix_now();
    let default = load_pair(&spec.default, now, &mut warnings)?;
    let sni = spec
        .sni
        .iter()
        .map(|p| load_pair(p, now, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    let client_roots = spec.client_ca.as_deref().map(load_ca).transpose()?;
    Ok(Loaded {
        default,
        sni,
        client_roots,
        warnings,
    })
}

fn load_pair(spec: &PairSpec, now: i64, warnings: &mut Vec<Warning>) -> Result<Pair, TlsError> {
    let cert_name = spec.cert.display().to_string();
    let key_name = spec.key.display().to_string();
    let cert_pem = std::fs::read(&spec.cert).map_err(|e| TlsError::read(&cert_name, e))?;
    let key_pem = std::fs::read(&spec.key).map_err(|e| TlsError::read(&key_name, e))?;
    let pair = pair(&cert_pem, &key_pem, (&cert_name, &key_name))?;
    if let Some(mode) = shared_mode(&spec.key) {
        warnings.push(Warning::KeyReadableByOthers {
            key: key_name,
            mode,
        });
    }
    warnings.extend(validity_warning(&pair.info, now));
    Ok(pair)
}

/// The key file's permission bits when its group or others may read or write it (Unix only).
#[cfg(unix)]
fn shared_mode(key: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn shared_mode(_key: &Path) -> Option<u32> {
    None
}

/// Whether a certificate is outside its validity at `now` (seconds since the epoch).
pub(super) fn validity_warning(info: &CertInfo, now: i64) -> Option<Warning> {
    if now > info.not_after_unix {
        Some(Warning::Expired {
            cert: info.source.clone(),
            not_after: info.not_after.clone(),
        })
    } else if now < info.not_before_unix {
        Some(Warning::NotYetValid {
            cert: info.source.clone(),
            not_before: info.not_before.clone(),
        })
    } else {
        None
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A pair from PEM bytes; `names` (certificate file, key file) only name them in errors and the info.
/// Pure: no file, no clock.
pub(crate) fn pair_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    names: (&str, &str),
) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let p = pair(cert_pem, key_pem, names)?;
    Ok((p.key, p.info))
}

fn pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    (cert_name, key_name): (&str, &str),
) -> Result<Pair, TlsError> {
    let chain = certificates(cert_pem, cert_name)?;
    let key = private_key(key_pem, key_name)?;
    let leaf = chain
        .first()
        .ok_or_else(|| TlsError::no_certificate(cert_name))?;
    let parsed = info::parse(leaf, cert_name)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| TlsError::bad_key(key_name))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        // A key type whose public half the provider cannot give: nothing to compare with.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::key_mismatch(key_name, cert_name));
        }
        // The leaf parsed with x509-parser but not with webpki.
        Err(e) => return Err(TlsError::bad_certificate(cert_name, e)),
    }
    Ok(Pair {
        key: Arc::new(certified),
        info: parsed.info,
        dns_names: parsed.dns_names,
    })
}

fn has_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every `CERTIFICATE` section of a file, in order (the leaf first, then its chain).
fn certificates(pem: &[u8], file: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if !has_pem(pem) {
        return Err(TlsError::not_pem(file));
    }
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::damaged_pem(file))?;
    if chain.is_empty() {
        return Err(TlsError::no_certificate(file));
    }
    Ok(chain)
}

/// The first private key of a file (PKCS#8, PKCS#1 RSA or SEC1 EC). The parser's errors are not passed on:
/// they may quote what they could not read.
fn private_key(pem: &[u8], file: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    if !has_pem(pem) {
        return Err(TlsError::not_pem(file));
    }
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) if pem.windows(9).any(|w| w == b"ENCRYPTED") => {
            Err(TlsError::encrypted_key(file))
        }
        Err(pem::Error::NoItemsFound) => Err(TlsError::no_key(file)),
        Err(_) => Err(TlsError::damaged_pem(file)),
    }
}

/// The client CA file's certificates, each checked as a trust anchor.
fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let name = path.display().to_string();
    let pem = std::fs::read(path).map_err(|e| TlsError::read(&name, e))?;
    let roots = certificates(&pem, &name)?;
    roots_store(&roots).map_err(|e| TlsError::bad_ca(&name, e))?;
    Ok(roots)
}

/// A root store of `roots` (all of them usable as trust anchors, or the error).
pub(super) fn roots_store(
    roots: &[CertificateDer<'static>],
) -> Result<RootCertStore, rustls::Error> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.clone())?;
    }
    Ok(store)
}
