//! Span export over OTLP/HTTP (`[tracing] otlp_endpoint`), with the OpenTelemetry SDK's batch processor and
//! OTLP exporter.
//!
//! rrlb chooses its span ids itself: they go out in `traceparent` headers (per attempt, before the attempt's
//! span is over) and into the access log whether or not anything is exported. So the spans are not built
//! through the SDK's `Tracer` (which makes its own ids) but handed to its [`BatchSpanProcessor`] finished, as
//! [`SpanData`]: one SERVER span per request, one CLIENT span per attempt, its child. Only sampled requests
//! make spans (their `traceparent` flags say so: the client's decision, or `sample_ratio` for new traces).
//!
//! The processor's queue is bounded (2048 spans): a span that finds it full is dropped, so exporting never
//! blocks or slows a request; batches leave at least every second, and at shutdown what is queued is sent
//! (bounded to 5 s).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::Method;
use rrlb_core::Backend;
use rrlb_tower::FailureKind;
use rrlb_tower::trace::{SpanId, TraceParent};

use crate::config::TracingConfig;

/// How long the exporter waits for the collector, and how long shutdown waits for the last batch.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why span export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its configuration.
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The configured base URL.
        endpoint: String,
        /// The exporter's error.
        reason: String,
    },
    /// `otlp_endpoint` is set but this build has no exporter.
    #[error(
        "tracing.otlp_endpoint is set, but this rrlb was built without the `otel` feature (no span export)"
    )]
    NotBuilt,
}

/// The request a SERVER span is about, gathered while it is served.
#[derive(Debug)]
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) struct ServerSpan {
    pub(crate) trace: Trace,
    pub(crate) start: SystemTime,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) client: IpAddr,
    /// `1.0`, `1.1` or `2`.
    pub(crate) protocol: &'static str,
    pub(crate) status: u16,
    pub(crate) backend: Option<String>,
}

/// One attempt, for its CLIENT span.
#[derive(Debug)]
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) struct ClientSpan<'a> {
    pub(crate) trace: &'a Trace,
    pub(crate) span: SpanId,
    pub(crate) attempt: u32,
    pub(crate) backend: &'a Backend,
    pub(crate) method: &'a Method,
    pub(crate) start: SystemTime,
    /// The answer's status, or how the attempt failed.
    pub(crate) result: Result<u16, FailureKind>,
}

#[cfg(feature = "otel")]
mod otel {
    use std::borrow::Cow;

    use opentelemetry::trace::{
        SpanContext, SpanId as OtelSpanId, SpanKind, Status, TraceFlags, TraceId as OtelTraceId,
        TraceState,
    };
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::runtime::Tokio;
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
    use opentelemetry_sdk::trace::{
        BatchConfigBuilder, SpanData, SpanEvents, SpanLinks, SpanProcessor,
    };

    use std::sync::Arc;

    use super::*;

    /// Span export: cheap to clone (one `Arc`).
    #[derive(Clone)]
    pub(crate) struct Telemetry(Arc<Inner>);

    struct Inner {
        processor: BatchSpanProcessor<Tokio>,
        scope: InstrumentationScope,
        config: TracingConfig,
    }

    impl std::fmt::Debug for Telemetry {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Telemetry")
                .field("endpoint", &self.0.config.otlp_endpoint)
                .finish_non_exhaustive()
        }
    }

    impl Telemetry {
        /// Span export as `config` says, or `None` when it has no `otlp_endpoint`. Must be called inside a
        /// tokio runtime (the processor's task runs on it).
        pub(crate) fn new(
            config: &TracingConfig,
            connect_timeout: Duration,
        ) -> Result<Option<Self>, TelemetryError> {
            let Some(endpoint) = &config.otlp_endpoint else {
                return Ok(None);
            };
            let client = opentelemetry_http::hyper::HyperClient::new(
                rrlb_tower::http::connector(connect_timeout),
                EXPORT_TIMEOUT,
                None,
            );
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{endpoint}/v1/traces"))
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| TelemetryError::Exporter {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(2048)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_secs(1))
                .with_max_export_timeout(EXPORT_TIMEOUT)
                .build();
            let mut processor = BatchSpanProcessor::builder(exporter, Tokio)
                .with_batch_config(batch)
                .build();
            processor.set_resource(
                &Resource::builder_empty()
                    .with_service_name(config.service_name.clone())
                    .build(),
            );
            let scope = InstrumentationScope::builder("rrlb")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build();
            Ok(Some(Self(Arc::new(Inner {
                processor,
                scope,
                config: config.clone(),
            }))))
        }

        /// Whether this export was made from the same settings as `config` (a reload keeps it then).
        pub(crate) fn is_for(&self, config: &TracingConfig) -> bool {
            self.0.config.otlp_endpoint == config.otlp_endpoint
                && self.0.config.service_name == config.service_name
        }

        /// Queues the SERVER span of a finished request.
        pub(crate) fn server(&self, s: ServerSpan, end: SystemTime) {
            let mut attributes = vec![
                KeyValue::new("http.request.method", s.method.as_str().to_owned()),
                KeyValue::new("url.path", s.path),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("http.response.status_code", i64::from(s.status)),
                KeyValue::new("client.address", s.client.to_string()),
                KeyValue::new("network.protocol.name", "http"),
                KeyValue::new("network.protocol.version", s.protocol),
            ];
            if let Some(b) = s.backend {
                attributes.push(KeyValue::new("rrlb.backend", b));
            }
            let status = if s.status >= 500 {
                Status::error(format!("status {}", s.status))
            } else {
                Status::Unset
            };
            let parent = s.trace.caller.map_or(OtelSpanId::INVALID, |c| {
                OtelSpanId::from_bytes(c.to_bytes())
            });
            self.queue(
                SpanKind::Server,
                (
                    context(&s.trace, s.trace.server.parent_id()),
                    parent,
                    s.trace.caller.is_some(),
                ),
                &s.method,
                (s.start, end),
                (attributes, status),
            );
        }

        /// Queues the CLIENT span of a finished attempt.
        pub(crate) fn client(&self, c: ClientSpan<'_>, end: SystemTime) {
            let mut attributes = vec![
                KeyValue::new("http.request.method", c.method.as_str().to_owned()),
                KeyValue::new("rrlb.backend", c.backend.name().to_owned()),
                KeyValue::new("rrlb.attempt", i64::from(c.attempt)),
                KeyValue::new("url.full", c.backend.url().to_owned()),
            ];
            if let Ok(url) = rrlb_tower::http::BackendUrl::of(c.backend) {
                attributes.push(KeyValue::new("server.address", url.host().to_owned()));
                attributes.push(KeyValue::new("server.port", i64::from(url.port())));
            }
            let status = match c.result {
                Ok(code) => {
                    attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
                    if code >= 400 {
                        attributes.push(KeyValue::new("error.type", code.to_string()));
                        Status::error(format!("status {code}"))
                    } else {
                        Status::Unset
                    }
                }
                Err(kind) => {
                    attributes.push(KeyValue::new("error.type", kind.as_str()));
                    Status::error(kind.as_str())
                }
            };
            let parent = OtelSpanId::from_bytes(c.trace.server.parent_id().to_bytes());
            self.queue(
                SpanKind::Client,
                (context(c.trace, c.span), parent, false),
                c.method,
                (c.start, end),
                (attributes, status),
            );
        }

        /// Hands a finished span to the processor: a full queue drops it (the processor counts and logs
        /// drops). `span` is its context, its parent's id and whether the parent is remote.
        fn queue(
            &self,
            kind: SpanKind,
            (span, parent, remote): (SpanContext, OtelSpanId, bool),
            method: &Method,
            (start, end): (SystemTime, SystemTime),
            (attributes, status): (Vec<KeyValue>, Status),
        ) {
            self.0.processor.on_end(SpanData {
                span_context: span,
                parent_span_id: parent,
                parent_span_is_remote: remote,
                span_kind: kind,
                name: Cow::Owned(method.as_str().to_owned()),
                start_time: start,
                end_time: end,
                attributes,
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status,
                instrumentation_scope: self.0.scope.clone(),
            });
        }

        /// Sends what is queued and stops, within [`EXPORT_TIMEOUT`]. Blocks: call it off the runtime's threads
        /// (the processor's task needs them to answer).
        pub(crate) fn shutdown(&self) {
            if let Err(e) = self.0.processor.shutdown_with_timeout(EXPORT_TIMEOUT) {
                tracing::warn!(error = %e, "span export did not finish cleanly");
            }
        }
    }

    fn context(trace: &Trace, span: SpanId) -> SpanContext {
        let flags = TraceFlags::new(trace.server.flags());
        SpanContext::new(
            OtelTraceId::from_bytes(trace.server.trace_id().to_bytes()),
            OtelSpanId::from_bytes(span.to_bytes()),
            flags,
            false,
            TraceState::default(),
        )
    }
}

#[cfg(feature = "otel")]
pub(crate) use otel::Telemetry;

/// Without the `otel` feature there is no export: no value of this type is ever made ([`Telemetry::new`]
/// refuses an `otlp_endpoint`), so its methods do nothing.
#[cfg(not(feature = "otel"))]
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    _none: (),
}

#[cfg(not(feature = "otel"))]
impl Telemetry {
    pub(crate) fn new(
        config: &TracingConfig,
        _connect_timeout: Duration,
    ) -> Result<Option<Self>, TelemetryError> {
        match config.otlp_endpoint {
            Some(_) => Err(TelemetryError::NotBuilt),
            None => Ok(None),
        }
    }

    pub(crate) fn is_for(&self, _config: &TracingConfig) -> bool {
        true
    }

    pub(crate) fn server(&self, _s: ServerSpan, _end: SystemTime) {}

    pub(crate) fn client(&self, _c: ClientSpan<'_>, _end: SystemTime) {}

    pub(crate) fn shutdown(&self) {}
}

/// A request's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trace {
    /// The trace id and flags, with rrlb's span for the request (the server span) as the parent: each attempt
    /// sends a child of it.
    pub(crate) server: TraceParent,
    /// The client's span, the server span's parent, when the request continued a trace.
    pub(crate) caller: Option<SpanId>,
}
