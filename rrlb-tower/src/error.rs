//! The balancing service's error: which backend, how many attempts, and why.

use std::fmt;
use std::time::Instant;

use rrlb_core::NoEligibleBackend;

/// A boxed error, as tower uses.
///
/// ```
/// use rrlb_tower::BoxError;
///
/// fn parse(port: &str) -> Result<u16, BoxError> {
///     Ok(port.parse()?)
/// }
/// assert!(parse("80").is_ok());
/// assert!(parse("eighty").is_err());
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an attempt failed; retries are configured per kind (see [`RetryOn`](crate::RetryOn)).
///
/// ```
/// use rrlb_tower::{FailureKind, RetryOn};
///
/// assert_eq!(FailureKind::Connect.as_str(), "connect-failure");
/// // rrlb's default retries only what never reached a backend.
/// assert!(RetryOn::default().contains(FailureKind::Connect));
/// assert!(!RetryOn::default().contains(FailureKind::Status5xx));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The connection to the backend could not be made: nothing reached it, so any request is safe to retry.
    Connect,
    /// The attempt took longer than the per-attempt timeout.
    Timeout,
    /// The connection broke before a complete answer arrived.
    Reset,
    /// The backend answered with a 5xx status.
    Status5xx,
    /// Anything else the inner service reported.
    Other,
}

impl FailureKind {
    /// A short lower-case name (`connect-failure`, `timeout`, `reset`, `5xx`, `other`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect-failure",
            FailureKind::Timeout => "timeout",
            FailureKind::Reset => "reset",
            FailureKind::Status5xx => "5xx",
            FailureKind::Other => "other",
        }
    }
}

#[derive(Debug)]
enum Kind {
    NoEligible(NoEligibleBackend),
    Attempt(FailureKind),
}

/// The error of a [`Balance`](crate::Balance) call.
///
/// Opaque, with predicates: [`is_no_eligible_backend`](Error::is_no_eligible_backend),
/// [`is_connect`](Error::is_connect), [`is_timeout`](Error::is_timeout), [`is_reset`](Error::is_reset). It names
/// the backend of the last attempt and counts the attempts made. One pointer wide, so that results and futures
/// that may hold one stay small.
///
/// Like hyper's and reqwest's errors, its `Display` says only what failed at this level ("could not connect to
/// backend "a""); the inner service's error that caused it is its [`source`](std::error::Error::source), so
/// a report that walks the chain prints each cause once.
///
/// ```
/// use std::error::Error as _;
///
/// fn report(e: &rrlb_tower::Error) -> String {
///     let mut line = e.to_string();
///     let mut cause = e.source();
///     while let Some(c) = cause {
///         line.push_str(": ");
///         line.push_str(&c.to_string());
///         cause = c.source();
///     }
///     line
/// }
/// # let _ = report;
/// ```
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: Kind,
    backend: Option<Box<str>>,
    attempts: u32,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn no_eligible(e: NoEligibleBackend, attempts: u32, backend: Option<&str>) -> Self {
        Self(Box::new(Inner {
            kind: Kind::NoEligible(e),
            backend: backend.map(Into::into),
            attempts,
            source: None,
        }))
    }

    pub(crate) fn attempt(
        kind: FailureKind,
        backend: &str,
        attempts: u32,
        source: Option<BoxError>,
    ) -> Self {
        Self(Box::new(Inner {
            kind: Kind::Attempt(kind),
            backend: Some(backend.into()),
            attempts,
            source,
        }))
    }

    pub(crate) fn inner(source: BoxError) -> Self {
        Self(Box::new(Inner {
            kind: Kind::Attempt(FailureKind::Other),
            backend: None,
            attempts: 0,
            source: Some(source),
        }))
    }

    pub(crate) fn polled_after_completion() -> Self {
        Self::inner("response future polled after completion".into())
    }

    /// No backend was eligible (all unhealthy, ejected or draining, or none configured).
    pub fn is_no_eligible_backend(&self) -> bool {
        matches!(self.0.kind, Kind::NoEligible(_))
    }

    /// The last attempt could not connect.
    pub fn is_connect(&self) -> bool {
        matches!(self.0.kind, Kind::Attempt(FailureKind::Connect))
    }

    /// The last attempt timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self.0.kind, Kind::Attempt(FailureKind::Timeout))
    }

    /// The last attempt's connection was reset.
    pub fn is_reset(&self) -> bool {
        matches!(self.0.kind, Kind::Attempt(FailureKind::Reset))
    }

    /// How the last attempt failed, if an attempt was made.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self.0.kind {
            Kind::Attempt(k) => Some(k),
            Kind::NoEligible(_) => None,
        }
    }

    /// The backend of the last attempt.
    pub fn backend(&self) -> Option<&str> {
        self.0.backend.as_deref()
    }

    /// Attempts made (0 when no backend was eligible for the first).
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// For "no eligible backend": when the first ejected backend may come back (a `retry-after` hint).
    pub fn retry_at(&self) -> Option<Instant> {
        match &self.0.kind {
            Kind::NoEligible(e) => e.next_deadline(),
            Kind::Attempt(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.kind {
            Kind::NoEligible(e) => write!(f, "{e}")?,
            Kind::Attempt(kind) => {
                let what = match kind {
                    FailureKind::Connect => "could not connect to",
                    FailureKind::Timeout => "timed out waiting for",
                    FailureKind::Reset => "connection reset by",
                    FailureKind::Status5xx => "server error from",
                    FailureKind::Other => "request failed at",
                };
                write!(
                    f,
                    "{what} backend {:?}",
                    self.0.backend.as_deref().unwrap_or("?")
                )?;
            }
        }
        if self.0.attempts > 1 {
            write!(f, " (after {} attempts)", self.0.attempts)?;
        }
        // The inner error is `source()`, not part of this level's message (chains would print it twice).
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|e| &**e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn display_is_this_level_and_the_cause_is_the_source() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::attempt(FailureKind::Connect, "a", 2, Some(Box::new(cause)));
        assert_eq!(
            e.to_string(),
            r#"could not connect to backend "a" (after 2 attempts)"#
        );
        let source = e.source().expect("the inner error is the source");
        assert_eq!(source.to_string(), "refused");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }
}
