//! TLS on the proxy listener: certificates loaded and checked from PEM files, chosen by SNI, rotated by one
//! pointer store, and the rustls `ServerConfig` the accept loop hands each connection to.
//!
//! # Why this shape
//!
//! - **rustls with the ring provider** (`docs/adr/0010-tls-rustls-ring.md`): ring is already in
//!   the tree for `https://` backends and builds with a C compiler alone; the provider is passed explicitly
//!   (`builder_with_provider`), never taken from a process default another crate could install.
//! - **Check everything before serving anything** ([`load`]): each file is read, each key loaded and
//!   compared with its certificate, the client CA parsed, and only a complete [`Loaded`] reaches the listener.
//!   A bad file is refused by name and what was serving keeps serving. Errors never carry key bytes.
//! - **One pointer per rotation** ([`TlsListener::apply`]): the certificates and what is shown of them are one
//!   immutable table behind an `ArcSwap` that rustls's resolver reads per handshake; a handshake in progress
//!   and the connections already open keep the pair they got.
//! - **Loudly served, not refused**: an expired or not-yet-valid certificate, or a key file others can read,
//!   is a [`Warning`], not an error: refusing a late renewal would turn a warning into an outage.
//!
//! ```text
//! ListenerSpec ──load()──▶ Loaded ──TlsListener::new / apply──▶ Resolver (ArcSwap<Table>) ◀── rustls, per handshake
//!                                                        └────▶ ServerConfig ──acceptor()──▶ accept loop
//! ```

mod error;
mod info;
mod listener;
mod load;
mod sni;
mod sniff;

use std::path::PathBuf;

pub use error::TlsError;
pub(crate) use info::client_subject;
pub(crate) use listener::TlsListener;
#[cfg(test)]
pub(crate) use load::Warning;
pub(crate) use load::{Loaded, load, pair_from_pem};
pub(crate) use sniff::{PLAIN_HTTP_ANSWER, looks_like_plain_http};

/// A certificate chain file and its private key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PairSpec {
    /// PEM: the leaf certificate first, then its intermediates.
    pub(crate) cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted.
    pub(crate) key: PathBuf,
}

/// Whether the listener asks clients for a certificate: the configuration's own type.
pub(crate) use crate::config::ClientAuth;

/// What one TLS listener serves: the default pair, the pairs chosen by SNI, and client authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerSpec {
    /// The pair for clients without SNI or with a name no other pair has.
    pub(crate) default: PairSpec,
    /// Pairs chosen by the DNS names in their certificates' SANs.
    pub(crate) sni: Vec<PairSpec>,
    /// PEM: the CA certificates client certificates must chain to.
    pub(crate) client_ca: Option<PathBuf>,
    /// Whether client certificates are asked for.
    pub(crate) client_auth: ClientAuth,
}

/// The one crypto provider rrlb's TLS listener uses.
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests;
