//! Errors of backend-set operations.

use std::fmt;
use std::time::Instant;

/// Why a change to a [`BackendSet`](super::BackendSet) was refused. Nothing changed.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
/// set.add(BackendSpec::new("a", "http://127.0.0.1:8081"))?;
/// let error = set.add(BackendSpec::new("a2", "http://127.0.0.1:8081")).unwrap_err();
/// assert!(error.is_duplicate());
/// assert!(set.remove("nope").unwrap_err().is_not_found());
/// assert!(set.set_weight("a", 0).unwrap_err().is_invalid_weight());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetError {
    /// A backend with this name or URL is already in the set.
    Duplicate {
        /// The name of the backend in the way.
        name: String,
    },
    /// No backend has this name.
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The weight is outside 1..=10000.
    InvalidWeight {
        /// The backend.
        name: String,
        /// The refused weight.
        weight: u32,
    },
}

impl SetError {
    /// Whether the error is a duplicate name or URL.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, SetError::Duplicate { .. })
    }

    /// Whether the named backend does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SetError::NotFound { .. })
    }

    /// Whether a weight was out of range.
    pub fn is_invalid_weight(&self) -> bool {
        matches!(self, SetError::InvalidWeight { .. })
    }
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::Duplicate { name } => {
                write!(f, "backend {name:?} already exists (same name or URL)")
            }
            SetError::NotFound { name } => write!(f, "no backend named {name:?}"),
            SetError::InvalidWeight { name, weight } => write!(
                f,
                "backend {name:?}: weight {weight} is out of range 1..=10000 (0 is refused: drain the backend instead)"
            ),
        }
    }
}

impl std::error::Error for SetError {}

/// No backend is eligible: all are unhealthy, ejected by their breakers, or draining (or the set is empty).
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
///
/// let set = BackendSet::with_backends(
///     RoundRobin::new(),
///     SetOptions::default(),
///     [BackendSpec::new("a", "http://127.0.0.1:8081")],
/// )?;
/// set.get("a").ok_or("a is in the set")?.backend().set_healthy(false);
/// let error = set.pick().unwrap_err();
/// assert_eq!(error.members(), 1);
/// assert_eq!(error.next_deadline(), None); // no breaker is open, so no hint for retry-after
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoEligibleBackend {
    members: usize,
    next_deadline: Option<Instant>,
}

impl NoEligibleBackend {
    pub(crate) fn new(members: usize, next_deadline: Option<Instant>) -> Self {
        Self {
            members,
            next_deadline,
        }
    }

    /// How many backends the set has (0 means it is empty).
    pub fn members(&self) -> usize {
        self.members
    }

    /// When the first open breaker's period ends, if any is open: a hint for `retry-after`.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_deadline
    }
}

impl fmt::Display for NoEligibleBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.members == 0 {
            f.write_str("no backend is configured")
        } else {
            write!(
                f,
                "none of the {} backends is eligible (unhealthy, ejected or draining)",
                self.members
            )
        }
    }
}

impl std::error::Error for NoEligibleBackend {}
