//! W3C Trace Context: the `traceparent` header, parsed strictly and written per attempt.
//!
//! # Why the balancer touches the trace
//! A request that reaches a backend through rrlb has taken one more hop. If rrlb forwarded the client's
//! `traceparent` as it is, the backend's span would name the *client's* span as its parent and rrlb would be
//! invisible in the trace; if it dropped the header, the trace would break in two. So, as Envoy and linkerd do,
//! the balancer keeps the trace id and the flags and puts its own span id in the parent field: one span per
//! request (the server span) and, below it, one per attempt (the client span), so that a retry shows as a
//! second child of the same request.
//!
//! # The rules ([W3C Trace Context](https://www.w3.org/TR/trace-context/), §3.2)
//! `traceparent: 00-<trace-id>-<parent-id>-<flags>`: the version, a 16-byte trace id, an 8-byte parent id and
//! one byte of flags, each in lower-case hex, separated by `-`. A value is refused (and a new trace started)
//! when:
//! - the version is not two hex digits, or is `ff`;
//! - version `00` is not exactly 55 characters; a later version is shorter than 55, or goes on past 55 without
//!   a `-` (the first 55 characters are then read as version `00`: that is how the format may grow);
//! - an id or the flags are not lower-case hex of the right length, or an id is all zeros;
//! - the request carries more than one `traceparent` (its value is ambiguous).
//!
//! With the `http` feature, [`TraceContextLayer`] (around the balancer: continue the caller's trace or start one)
//! and [`ChildSpanLayer`] (around the upstream: a new parent id for each attempt) do this for any
//! `http::Request`.

#[cfg(feature = "http")]
mod layer;

use std::fmt;

#[cfg(feature = "http")]
pub use self::layer::{
    ChildSpan, ChildSpanLayer, ChildSpanService, TraceContext, TraceContextLayer,
};

/// The name of the header, `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// The name of the vendor-specific trace state header, `tracestate` (passed through as it is).
pub const TRACESTATE: &str = "tracestate";

/// The flag bit that says the caller may have recorded the trace.
const SAMPLED: u8 = 0x01;

/// A 16-byte trace id; never all zeros.
///
/// ```
/// use rrlb_tower::trace::TraceId;
///
/// let id = TraceId::random();
/// assert_eq!(id.to_string().len(), 32);
/// assert_ne!(id.to_bytes(), [0; 16]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

/// An 8-byte span id; never all zeros.
///
/// ```
/// use rrlb_tower::trace::SpanId;
///
/// let a = SpanId::random();
/// assert_ne!(a, SpanId::random());
/// assert_eq!(a.to_string().len(), 16);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// A random id (from a thread-local generator: no lock, no system call).
    pub fn random() -> Self {
        loop {
            let v = fastrand::u128(..);
            if v != 0 {
                return Self(v.to_be_bytes());
            }
        }
    }

    /// The id from its bytes, unless they are all zeros.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }

    /// The id's bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The id in lower-case hex, without allocating.
    pub fn to_hex(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        write_hex(&self.0, &mut out);
        out
    }
}

impl SpanId {
    /// A random id (from a thread-local generator: no lock, no system call).
    pub fn random() -> Self {
        loop {
            let v = fastrand::u64(..);
            if v != 0 {
                return Self(v.to_be_bytes());
            }
        }
    }

    /// The id from its bytes, unless they are all zeros.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(Self(bytes))
    }

    /// The id's bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// The id in lower-case hex, without allocating.
    pub fn to_hex(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        write_hex(&self.0, &mut out);
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

/// Lower-case hex only, as the format requires.
fn read_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 32];
        write_hex(&self.0, &mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 16];
        write_hex(&self.0, &mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// Why a `traceparent` value was refused (see the [module docs](self) for the rules).
///
/// ```
/// use rrlb_tower::trace::{InvalidTraceParent, TraceParent};
///
/// let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
/// assert_eq!(TraceParent::parse(zeros.as_bytes()), Err(InvalidTraceParent::ZeroTraceId));
/// assert_eq!(TraceParent::parse(b"ff-whatever"), Err(InvalidTraceParent::Version));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTraceParent {
    /// The version is not two lower-case hex digits, or is `ff`.
    Version,
    /// The value is not as long as its version requires.
    Length,
    /// A field separator is not `-` where one is required.
    Separator,
    /// The trace id is not 32 lower-case hex digits.
    TraceId,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is not 16 lower-case hex digits.
    ParentId,
    /// The parent id is all zeros.
    ZeroParentId,
    /// The flags are not two lower-case hex digits.
    Flags,
}

impl fmt::Display for InvalidTraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Version => "traceparent: invalid version",
            Self::Length => "traceparent: wrong length",
            Self::Separator => "traceparent: a field separator is not '-'",
            Self::TraceId => "traceparent: the trace id is not 32 lower-case hex digits",
            Self::ZeroTraceId => "traceparent: the trace id is all zeros",
            Self::ParentId => "traceparent: the parent id is not 16 lower-case hex digits",
            Self::ZeroParentId => "traceparent: the parent id is all zeros",
            Self::Flags => "traceparent: the flags are not 2 lower-case hex digits",
        })
    }
}

impl std::error::Error for InvalidTraceParent {}

/// One hop of a trace: the trace id, the id of the span that sent it (the parent of whatever receives it), and
/// the flags.
///
/// ```
/// use rrlb_tower::trace::TraceParent;
///
/// let incoming = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// assert!(incoming.is_sampled());
///
/// // What the next hop gets: the same trace and flags, this hop's span as the parent.
/// let outgoing = incoming.child();
/// assert_eq!(outgoing.trace_id(), incoming.trace_id());
/// assert_ne!(outgoing.parent_id(), incoming.parent_id());
/// assert!(outgoing.to_string().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
/// assert!(outgoing.to_string().ends_with("-01"));
/// # Ok::<(), rrlb_tower::trace::InvalidTraceParent>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: TraceId,
    parent_id: SpanId,
    flags: u8,
}

impl TraceParent {
    /// The length of a version-00 value.
    pub const LEN: usize = 55;

    /// Reads a `traceparent` value.
    pub fn parse(value: &[u8]) -> Result<Self, InvalidTraceParent> {
        let version = value
            .get(..2)
            .and_then(read_hex::<1>)
            .ok_or(InvalidTraceParent::Version)?[0];
        if version == 0xff {
            return Err(InvalidTraceParent::Version);
        }
        let fits = if version == 0 {
            value.len() == Self::LEN
        } else {
            value.len() == Self::LEN || value.get(Self::LEN) == Some(&b'-')
        };
        if !fits || value.len() < Self::LEN {
            return Err(InvalidTraceParent::Length);
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return Err(InvalidTraceParent::Separator);
        }
        let trace_id = read_hex::<16>(&value[3..35]).ok_or(InvalidTraceParent::TraceId)?;
        let parent_id = read_hex::<8>(&value[36..52]).ok_or(InvalidTraceParent::ParentId)?;
        let flags = read_hex::<1>(&value[53..55]).ok_or(InvalidTraceParent::Flags)?[0];
        Ok(Self {
            trace_id: TraceId::from_bytes(trace_id).ok_or(InvalidTraceParent::ZeroTraceId)?,
            parent_id: SpanId::from_bytes(parent_id).ok_or(InvalidTraceParent::ZeroParentId)?,
            // A later version may define more flags; of those, only the ones this version knows are kept.
            flags: if version == 0 { flags } else { flags & SAMPLED },
        })
    }

    /// The first hop of a new trace: a random trace id, a random span id as the parent, sampled or not.
    pub fn new_root(sampled: bool) -> Self {
        Self {
            trace_id: TraceId::random(),
            parent_id: SpanId::random(),
            flags: if sampled { SAMPLED } else { 0 },
        }
    }

    /// A hop from these parts.
    pub fn new(trace_id: TraceId, parent_id: SpanId, flags: u8) -> Self {
        Self {
            trace_id,
            parent_id,
            flags,
        }
    }

    /// The same trace and flags with a new random span as the parent: what a hop sends on.
    pub fn child(&self) -> Self {
        self.with_parent(SpanId::random())
    }

    /// The same trace and flags with `parent_id` as the parent.
    pub fn with_parent(&self, parent_id: SpanId) -> Self {
        Self { parent_id, ..*self }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The id of the span that sent this hop.
    pub fn parent_id(&self) -> SpanId {
        self.parent_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the sampled flag is set: the caller may have recorded its part of the trace.
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The value as version 00 writes it, without allocating.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [b'-'; Self::LEN];
        out[..2].copy_from_slice(b"00");
        write_hex(&self.trace_id.0, &mut out[3..35]);
        write_hex(&self.parent_id.0, &mut out[36..52]);
        write_hex(&[self.flags], &mut out[53..55]);
        out
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.encode()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// Continues the trace of a request's `traceparent` values (all of them: more than one is refused), or starts
/// a new one, sampled with probability `sample_ratio`. Returns the context and whether the caller's was kept
/// (when it was not, the caller's `tracestate` belongs to no trace and should be dropped too).
///
/// ```
/// use rrlb_tower::trace::continue_or_start;
///
/// let valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".as_slice();
/// let (kept, continued) = continue_or_start([valid], 1.0);
/// assert!(continued && !kept.is_sampled()); // the caller's flags win over the ratio
///
/// let (new, continued) = continue_or_start([valid, valid], 0.0);
/// assert!(!continued && !new.is_sampled());
/// ```
pub fn continue_or_start<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    sample_ratio: f64,
) -> (TraceParent, bool) {
    let mut values = values.into_iter();
    if let (Some(one), None) = (values.next(), values.next())
        && let Ok(parent) = TraceParent::parse(one)
    {
        return (parent, true);
    }
    (TraceParent::new_root(sample(sample_ratio)), false)
}

/// A sampling decision with probability `ratio` (0.0 never, 1.0 always).
pub fn sample(ratio: f64) -> bool {
    ratio >= 1.0 || (ratio > 0.0 && fastrand::f64() < ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_value_round_trips() {
        let t = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(t.to_string(), VALID);
        assert_eq!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(t.flags(), 1);
    }

    #[test]
    fn every_rule_refuses_what_it_should() {
        use InvalidTraceParent::*;
        let cases: &[(&str, InvalidTraceParent)] = &[
            ("", Version),
            ("0", Version),
            (
                "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "FF-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                Length,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                Length,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                Length,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                Length,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Separator,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                Separator,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ZeroParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                Flags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
                Flags,
            ),
        ];
        for (value, why) in cases {
            assert_eq!(TraceParent::parse(value.as_bytes()), Err(*why), "{value:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_far_as_version_00_goes() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-comes-next";
        let t = TraceParent::parse(later.as_bytes()).unwrap();
        // Sent on as version 00, with only the flags version 00 defines.
        assert_eq!(t.to_string(), VALID);
    }

    #[test]
    fn children_keep_the_trace_and_flags_and_get_new_parents() {
        let t = TraceParent::parse(VALID.as_bytes()).unwrap();
        let a = t.child();
        let b = t.child();
        assert_eq!((a.trace_id(), a.flags()), (t.trace_id(), t.flags()));
        assert_ne!(a.parent_id(), t.parent_id());
        assert_ne!(a.parent_id(), b.parent_id());
        assert_eq!(TraceParent::parse(&a.encode()), Ok(a));
    }

    #[test]
    fn a_new_trace_is_sampled_by_the_ratio() {
        assert!(TraceParent::new_root(true).is_sampled());
        assert!(!TraceParent::new_root(false).is_sampled());
        assert!((0..1000).all(|_| !sample(0.0)));
        assert!((0..1000).all(|_| sample(1.0)));
        let hits = (0..10_000).filter(|_| sample(0.5)).count();
        assert!((4_000..6_000).contains(&hits), "{hits}");
    }

    #[test]
    fn none_or_several_values_start_a_new_trace() {
        let (_, kept) = continue_or_start(std::iter::empty(), 1.0);
        assert!(!kept);
        let (t, kept) = continue_or_start([b"garbage".as_slice()], 1.0);
        assert!(!kept && t.is_sampled());
        let (t, kept) = continue_or_start([VALID.as_bytes()], 0.0);
        assert!(kept && t.is_sampled());
    }
}
