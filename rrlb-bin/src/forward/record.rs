//! Recording one exchange: the metrics and the access line, the same on both paths, written when the answer's
//! head is ready and before it leaves (so whoever got the answer sees it counted).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use std::time::SystemTime;

use http::Method;
use http::header::HeaderValue;

use crate::access_log::{AccessLog, Line};
use crate::app::Local;
use crate::metrics::Metrics;
use crate::telemetry::{ServerSpan, Telemetry};
use rrlb_core::Backend;
use std::sync::Arc;

/// What one exchange came to, as it is counted and logged: the status the client got, the backend, the
/// attempts, and the reject reason when rrlb answered itself. (Not rrlb-core's `Outcome`, which is one
/// attempt's result as a backend's statistics see it.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict<'a> {
    /// The status the client gets.
    pub(crate) status: u16,
    /// The backend that answered or was tried last.
    pub(crate) backend: Option<&'a str>,
    /// Attempts made (0 when no backend was tried).
    pub(crate) attempts: u32,
    /// The `rrlb_rejected_total` reason when rrlb answered itself before any backend.
    pub(crate) reject: Option<&'static str>,
}

impl<'a> Verdict<'a> {
    /// A request whose balancing failed (`answer` is what the client gets): a rejection when no backend was
    /// eligible, else a failed exchange with the backend tried last.
    pub(crate) fn failed(e: &'a rrlb_tower::Error, answer: &super::ErrorAnswer) -> Self {
        match super::Rejection::from_balance(e) {
            Some(r) => Verdict::rejected(&r),
            None => Verdict {
                status: answer.status.as_u16(),
                backend: e.backend(),
                attempts: e.attempts(),
                reject: None,
            },
        }
    }

    /// A request a backend answered with `status`; `served` is which backend, after how many attempts.
    pub(crate) fn answered(status: u16, served: &'a Option<(Arc<Backend>, u32)>) -> Self {
        let (backend, attempts) = match served {
            Some((b, n)) => (Some(b.name()), *n),
            None => (None, 1),
        };
        Verdict {
            status,
            backend,
            attempts,
            reject: None,
        }
    }

    /// A request rrlb refused itself.
    pub(crate) fn rejected(rejection: &super::Rejection) -> Self {
        Verdict {
            status: rejection.status().as_u16(),
            backend: None,
            attempts: 0,
            reject: Some(rejection.reason()),
        }
    }
}

/// Where a record writes its access line: the log of the state serving it, borrowed on the fast path (the
/// record ends with the exchange), shared on the hyper path (the record ends with the answer's body).
#[derive(Debug)]
pub(crate) enum Log<'a> {
    /// Borrowed for the exchange.
    Borrowed(&'a AccessLog),
    /// Shared with the answer's body.
    Shared(Arc<Local>),
    /// The log is off (no reference taken).
    Off,
}

impl Log<'_> {
    fn get(&self) -> Option<&AccessLog> {
        match self {
            Log::Borrowed(log) => Some(log),
            Log::Shared(app) => Some(&app.access_log),
            Log::Off => None,
        }
    }
}

/// One exchange being timed, and its access line (when the log is on), written when the record is dropped:
/// after the answer's body went out, so the line has the bytes sent and the whole duration.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    started: quanta::Instant,
    line: Option<(Log<'a>, Line)>,
    client: SocketAddr,
    trace: Option<super::Trace>,
    /// The request's SERVER span, when it is sampled and spans are exported.
    span: Option<Box<(Telemetry, ServerSpan)>>,
    bytes_in: u64,
    bytes_out: u64,
}

impl<'a> Record<'a> {
    /// Starts timing a request from `client`; `path` is read only when the access log is on.
    pub(crate) fn start(log: Log<'a>, client: SocketAddr, method: &str, path: &str) -> Self {
        // The TSC clock: two `Instant::now()` calls cost ~50 ns per request on a VM, two of these ~15 ns.
        let started = quanta::Instant::now();
        let line = log.get().and_then(AccessLog::line).map(|mut line| {
            let mut ip = [0u8; 48];
            let ip = format_ip(client.ip(), &mut ip);
            line.str("client", ip);
            line.str("method", method.as_bytes());
            line.str("path", path.as_bytes());
            (log, line)
        });
        Self {
            started,
            line,
            client,
            trace: None,
            span: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The request's trace, once it is known (a request refused before it was read has none); with
    /// `telemetry`, a sampled request's SERVER span is exported when the record ends. `path` is the request's
    /// path (without the query), `protocol` its HTTP version (`1.0`, `1.1`, `2`).
    pub(crate) fn traced(
        &mut self,
        trace: &super::Trace,
        telemetry: Option<&Telemetry>,
        (method, path, protocol): (&Method, &str, &'static str),
    ) {
        self.trace = Some(*trace);
        if let Some(telemetry) = telemetry.filter(|_| trace.server.is_sampled()) {
            let start = SystemTime::now()
                .checked_sub(self.started.elapsed())
                .unwrap_or_else(SystemTime::now);
            let span = ServerSpan {
                trace: *trace,
                start,
                method: method.clone(),
                path: path.split('?').next().unwrap_or(path).to_owned(),
                client: self.client.ip(),
                protocol,
                status: 0,
                backend: None,
            };
            self.span = Some(Box::new((telemetry.clone(), span)));
        }
    }

    /// Records rrlb's refusal of the request (`rrlb_rejected_total`, the access line, the answer's size) and
    /// returns the answer the client gets.
    pub(crate) fn refused(
        &mut self,
        metrics: &Metrics,
        request_id: &HeaderValue,
        rejection: &super::Rejection,
    ) -> super::ErrorAnswer {
        self.done(metrics, request_id, Verdict::rejected(rejection));
        let answer = rejection.answer();
        self.sent(answer.body_len(request_id));
        answer
    }

    /// Records a request whose balancing failed (`error`) and returns the answer the client gets.
    pub(crate) fn failed(
        &mut self,
        metrics: &Metrics,
        request_id: &HeaderValue,
        error: &rrlb_tower::Error,
    ) -> super::ErrorAnswer {
        let answer = super::ErrorAnswer::from_balance(error);
        self.done(metrics, request_id, Verdict::failed(error, &answer));
        self.sent(answer.body_len(request_id));
        answer
    }

    /// The request body's length.
    pub(crate) fn received(&mut self, bytes: u64) {
        self.bytes_in = bytes;
    }

    /// Counts bytes of the answer's body sent to the client.
    pub(crate) fn sent(&mut self, bytes: u64) {
        self.bytes_out += bytes;
    }

    /// Counts the outcome in `metrics` and adds it to the access line.
    pub(crate) fn done(
        &mut self,
        metrics: &Metrics,
        request_id: &HeaderValue,
        outcome: Verdict<'_>,
    ) {
        let elapsed = self.started.elapsed();
        match outcome.reject {
            Some(reason) => metrics.reject(reason),
            None => metrics.observe(
                outcome.backend,
                outcome.status,
                elapsed.as_secs_f64(),
                outcome.attempts.saturating_sub(1),
            ),
        }
        if let Some(span) = &mut self.span {
            span.1.status = outcome.status;
            span.1.backend = outcome.backend.map(str::to_owned);
        }
        if let Some((_, line)) = &mut self.line {
            line.str("request_id", request_id.as_bytes());
            match &self.trace {
                Some(t) => line.str("trace_id", &t.server.trace_id().to_hex()),
                None => line.str("trace_id", b"-"),
            }
            line.num("status", outcome.status.into());
            line.str("backend", outcome.backend.unwrap_or("-").as_bytes());
            line.num("attempts", outcome.attempts.into());
        }
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        if let Some(span) = self.span.take() {
            let (telemetry, span) = *span;
            telemetry.server(span, SystemTime::now());
        }
        if let Some((log, mut line)) = self.line.take() {
            line.num("bytes_in", self.bytes_in);
            line.num("bytes_out", self.bytes_out);
            line.millis("duration_ms", self.started.elapsed());
            if let Some(log) = log.get() {
                log.write(&line);
            }
        }
    }
}

/// `ip` as text in `buf`, without allocating.
fn format_ip(ip: IpAddr, buf: &mut [u8; 48]) -> &[u8] {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{ip}");
    let end = usize::try_from(cursor.position()).unwrap_or(0);
    &buf[..end]
}
