//! The proxy listener's TLS: handshakes by result, and each served certificate's expiry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `rrlb_tls_handshakes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    /// `client` (the proxy listener).
    side: &'static str,
    /// `ok`, `error`, `timeout` or `plaintext` (an HTTP/1 request on the TLS port).
    result: &'static str,
}

/// Labels of `rrlb_tls_certificate_expiry_timestamp_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

/// The TLS families.
#[derive(Debug, Default)]
pub(crate) struct TlsMetrics {
    handshakes: Family<HandshakeLabels, Counter>,
    expiry: Family<NameLabel, Gauge>,
}

impl TlsMetrics {
    /// Registers the families in `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "rrlb_tls_handshakes",
            "TLS handshakes on the proxy listener, by result (ok, error, timeout, plaintext)",
            self.handshakes.clone(),
        );
        registry.register(
            "rrlb_tls_certificate_expiry_timestamp_seconds",
            "When each served certificate expires (not_after, Unix seconds)",
            self.expiry.clone(),
        );
    }

    /// Counts one handshake of the client side with its `result`.
    pub(crate) fn handshake(&self, result: &'static str) {
        self.handshakes
            .get_or_create(&HandshakeLabels {
                side: "client",
                result,
            })
            .inc();
    }

    /// The served certificates now: their names and expiry (Unix seconds); the series of certificates no
    /// longer served go.
    pub(crate) fn set_certificates<'a>(
        &self,
        certificates: impl IntoIterator<Item = (&'a str, i64)>,
    ) {
        self.expiry.clear();
        for (name, not_after) in certificates {
            self.expiry
                .get_or_create(&NameLabel {
                    name: name.to_owned(),
                })
                .set(not_after);
        }
    }
}
