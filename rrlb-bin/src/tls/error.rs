//! What can be wrong with a certificate, a key or a client CA file: always named by its file, never showing a
//! byte of a key (the PEM parser's own messages, which may quote a line or a base64 symbol, are not passed on).

use std::io;

/// A certificate, key or CA file that cannot be served, or a TLS setting that cannot be built.
///
/// `Display` is `"<file>: <what is wrong>"` (`key.pem: the key does not match the certificate in cert.pem`),
/// the file as the configuration named it. Nothing of a key's contents is ever part of it.
#[derive(Debug, thiserror::Error)]
#[error("{place}{kind}")]
pub struct TlsError {
    /// `"<file>: "`, or empty for an error that is about no single file.
    place: String,
    kind: Kind,
}

/// What is wrong, without the file.
#[derive(Debug, thiserror::Error)]
enum Kind {
    #[error("cannot read: {0}")]
    Read(io::Error),
    #[error("not PEM (no \"-----BEGIN\" line)")]
    NotPem,
    #[error("damaged PEM (bad base64, or a section without its END line)")]
    DamagedPem,
    #[error("no CERTIFICATE section in the PEM")]
    NoCertificate,
    #[error("no private key section in the PEM")]
    NoKey,
    #[error("the private key is encrypted: give it unencrypted, readable only by rrlb")]
    EncryptedKey,
    #[error("not a usable private key (RSA, ECDSA P-256/P-384 or Ed25519 are)")]
    BadKey,
    #[error("not a valid X.509 certificate: {0}")]
    BadCertificate(String),
    #[error("the key does not match the certificate in {cert}")]
    KeyMismatch { cert: String },
    #[error("not a usable CA certificate: {0}")]
    BadCa(String),
    #[error("client_auth = \"{0}\" needs a client_ca")]
    NoClientCa(&'static str),
    #[error("cannot build the TLS settings: {0}")]
    Settings(rustls::Error),
}

impl TlsError {
    fn at(file: &str, kind: Kind) -> Self {
        Self {
            place: format!("{file}: "),
            kind,
        }
    }

    pub(super) fn read(file: &str, e: io::Error) -> Self {
        Self::at(file, Kind::Read(e))
    }

    pub(super) fn not_pem(file: &str) -> Self {
        Self::at(file, Kind::NotPem)
    }

    pub(super) fn damaged_pem(file: &str) -> Self {
        Self::at(file, Kind::DamagedPem)
    }

    pub(super) fn no_certificate(file: &str) -> Self {
        Self::at(file, Kind::NoCertificate)
    }

    pub(super) fn no_key(file: &str) -> Self {
        Self::at(file, Kind::NoKey)
    }

    pub(super) fn encrypted_key(file: &str) -> Self {
        Self::at(file, Kind::EncryptedKey)
    }

    pub(super) fn bad_key(file: &str) -> Self {
        Self::at(file, Kind::BadKey)
    }

    pub(super) fn bad_certificate(file: &str, why: impl std::fmt::Display) -> Self {
        Self::at(file, Kind::BadCertificate(why.to_string()))
    }

    pub(super) fn key_mismatch(key: &str, cert: &str) -> Self {
        Self::at(
            key,
            Kind::KeyMismatch {
                cert: cert.to_owned(),
            },
        )
    }

    pub(super) fn bad_ca(file: &str, why: impl std::fmt::Display) -> Self {
        Self::at(file, Kind::BadCa(why.to_string()))
    }

    pub(super) fn no_client_ca(client_auth: &'static str) -> Self {
        Self {
            place: String::new(),
            kind: Kind::NoClientCa(client_auth),
        }
    }

    pub(super) fn settings(e: rustls::Error) -> Self {
        Self {
            place: String::new(),
            kind: Kind::Settings(e),
        }
    }

    /// Whether a key was refused for not matching its certificate.
    pub fn is_key_mismatch(&self) -> bool {
        matches!(self.kind, Kind::KeyMismatch { .. })
    }

    /// Whether a file held no PEM at all.
    pub fn is_not_pem(&self) -> bool {
        matches!(self.kind, Kind::NotPem)
    }

    /// Whether a file could not be read (missing, a directory, no permission).
    pub fn is_read(&self) -> bool {
        matches!(self.kind, Kind::Read(_))
    }
}
