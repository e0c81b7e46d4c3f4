//! Consistent hashing with bounded loads: a [`MaglevTable`] and an NGINX-compatible [`KetamaRing`].
//!
//! Both map a key's hash to one of the backends they were built from, and both move few keys when the
//! backend set changes. They are built once per change of the backend set (off the request path) and looked
//! up without locking or allocating.
//!
//! # Which one
//!
//! - [`MaglevTable`] (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
//!   NSDI 2016; Envoy's `MAGLEV`): a lookup is one modulo and one array read, whatever the number of
//!   backends, and the spread over backends is near perfect (every backend owns ⌊M/n⌋ or ⌈M/n⌉ entries
//!   at equal weights). The price: removing one of N backends moves a little more than its own 1/N of the
//!   keys (the paper's Figure 12; the tests measure it below 2/N).
//! - [`KetamaRing`] (Karger et al.'s ring with ketama's 160 points per weight unit, bit for bit NGINX's
//!   `hash $key consistent` and pingora-ketama): removing a backend moves exactly its keys and no other, and
//!   a fleet migrating from NGINX keeps its key → backend mapping. The price: a binary search per lookup
//!   (O(log 160·W)) and a coarser spread (a few percent of imbalance with 160 points per backend).
//!
//! The default should be Maglev. Measured here (`benches/hash.rs`, `--quick`, one core of a shared
//! 2-core machine; `tests/hash.rs` for the movement):
//!
//! | | Maglev (M = 65,537) | ring (160 points per weight) |
//! |---|---|---|
//! | lookup (hash + find), N = 3 / 100 / 10,000 | 8 / 8 / 8 ns | 22 / 34 / 116 ns |
//! | bounded-loads pick (ε = 0.25, a third full), same N | 12 / 13 / 13 ns | 30 / 44 / 148 ns |
//! | build, N = 10 / 1,000 (weights 1–3) | 1.7–2.1 / 2.6–3.4 ms | 0.07–0.09 / 11–13 ms |
//! | build, N = 1,000, one of weight 1,000, the rest 1 | 5.8 ms | — |
//! | keys moved when 1 of N = 5 / 10 / 50 / 100 leaves | 20.1 / 10.3 / 2.5 / 1.7 % | 20.9 / 10.0 / 1.8 / 0.9 % (only the leaver's) |
//!
//! Maglev is the faster lookup at every fleet size and builds well under Envoy's published ~10 ms; its
//! spread is the tighter one as long as `M ≫ N` (the paper asks `M ≥ 100·N`: at N = 10,000 each backend
//! owns 6 or 7 entries, ±8 %, so build a larger table with [`MaglevTable::with_size`]). Choose the ring when
//! compatibility with NGINX's placement, or strictly minimal disruption, matters more.

//! # Bounded loads
//!
//! Plain consistent hashing overloads the backend of a hot key. Mirrokni, Thorup and Zadimoghaddam,
//! "Consistent Hashing with Bounded Loads" (arXiv 1608.01350), cap every backend's load and walk on from the
//! key's position past full backends; HAProxy's `hash-balance-factor` and Envoy's `hash_balance_factor` do
//! this with in-flight requests as the load. [`LoadBound`] is that cap, and
//! [`MaglevTable::pick_bounded`] / [`KetamaRing::pick_bounded`] the deterministic walk (Maglev: the next
//! table entries; the ring: the next points), skipping ineligible backends too.

mod ketama;
mod maglev;

pub use ketama::{KetamaRing, POINTS_PER_WEIGHT};
pub use maglev::{DEFAULT_TABLE_SIZE, MaglevTable};

/// The CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`) table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Feeds `bytes` into a running (not yet finalised) CRC-32 state, as NGINX's `ngx_crc32_update`.
pub(crate) fn crc32_update(mut state: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        state = CRC_TABLE[((state ^ u32::from(b)) & 0xff) as usize] ^ (state >> 8);
    }
    state
}

/// The initial CRC-32 state (`ngx_crc32_init`).
pub(crate) const CRC_INIT: u32 = 0xFFFF_FFFF;

/// CRC-32 of `bytes`: NGINX's `ngx_crc32_long`, zlib's `crc32`, the key hash of [`KetamaRing`].
///
/// ```
/// assert_eq!(rrlb_core::hash::crc32(b"123456789"), 0xCBF4_3926); // the CRC-32 check value
/// ```
#[must_use]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(CRC_INIT, bytes) ^ CRC_INIT
}

/// A 64-bit hash of a key for [`MaglevTable::lookup`]: FNV-1a finished with a SplitMix64 mix, so that
/// the low bits (the table index is `hash % M`) depend on every input byte. Stable across builds and
/// platforms (it is part of the placement), unlike `std`'s `DefaultHasher`.
#[must_use]
pub fn hash64(bytes: &[u8]) -> u64 {
    hash64_seeded(bytes, 0)
}

/// [`hash64`] with a seed mixed into the FNV offset basis (Maglev takes two independent hashes of a name).
pub(crate) fn hash64_seeded(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h)
}

/// SplitMix64's finaliser.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The per-backend cap of consistent hashing with bounded loads.
///
/// With a balance factor `c = 1 + ε` (HAProxy's `hash-balance-factor` / 100, Envoy's
/// `hash_balance_factor` / 100), `T` requests in flight over all eligible backends and `n` eligible
/// backends, the request about to be placed may go to a backend with `in_flight` requests only if
///
/// ```text
/// in_flight + 1 <= cap,   cap = ⌈c · (T + 1) / n⌉
/// ```
///
/// that is, no backend holds more than `c` times the average load counting the new request: Mirrokni et
/// al.'s per-bin capacity ⌈(1+ε)·m/n⌉ with `m = T + 1` balls (arXiv 1608.01350). HAProxy's
/// `chash_server_is_eligible` (lb_chash.c) starts from the same total, `⌈(served + 1) · factor / 100⌉`
/// slots, but rounds the total rather than each share and then splits it over the servers by weight (a
/// server is eligible while `served < slots`), so a HAProxy server's cap can be one below ours; Envoy
/// documents its `hash_balance_factor` as the same cap at `factor` × the average outstanding requests.
/// Weights are not part of the cap in this version (every eligible backend gets the same cap).
///
/// Because the `n` eligible backends hold at most `T` between them, one of them holds at most ⌊T/n⌋ and
/// ⌊T/n⌋ + 1 ≤ ⌈(T+1)/n⌉ ≤ cap: a walk over all eligible backends always finds one that is not full.
///
/// `LoadBound::unbounded()` (ε = ∞) never reports a backend full: plain consistent hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBound {
    cap: u64,
}

impl LoadBound {
    /// No cap: the walk only skips ineligible backends.
    #[must_use]
    pub const fn unbounded() -> Self {
        Self { cap: u64::MAX }
    }

    /// The cap for balance factor `factor = 1 + ε` (`None`, or a non-finite factor, = unbounded), with
    /// `total_in_flight` requests in flight over the `eligible` eligible backends. A factor below 1 is
    /// taken as 1 (a cap below the average would leave every backend full).
    #[must_use]
    pub fn new(factor: Option<f64>, total_in_flight: u64, eligible: usize) -> Self {
        let Some(c) = factor.filter(|c| c.is_finite()) else {
            return Self::unbounded();
        };
        if eligible == 0 {
            return Self::unbounded();
        }
        let c = c.max(1.0);
        let cap = (c * (total_in_flight as f64 + 1.0) / eligible as f64).ceil();
        // At least one slot: ⌈(T+1)/n⌉ >= 1 always, the max guards float rounding.
        Self {
            cap: (cap as u64).max(1),
        }
    }

    /// The cap: the most requests (the new one included) a backend may have in flight, `u64::MAX` when
    /// unbounded.
    #[must_use]
    pub const fn cap(&self) -> u64 {
        self.cap
    }

    /// Whether this bound is unbounded (plain consistent hashing).
    #[must_use]
    pub const fn is_unbounded(&self) -> bool {
        self.cap == u64::MAX
    }

    /// Whether a backend with `in_flight` requests in flight may take one more.
    #[must_use]
    pub const fn admits(&self, in_flight: u64) -> bool {
        in_flight < self.cap
    }
}

/// The bounded-loads walk both structures share: from slot `start` of `len` slots (wrapping), the first
/// backend `backend_at(slot)` for which `load` says `Some(in_flight)` (eligible) and `bound` admits it; a
/// backend just refused is not asked again on the next slot (consecutive slots often share one). No lock, no
/// allocation; at worst every slot once.
pub(crate) fn walk_bounded(
    start: usize,
    len: usize,
    backend_at: impl Fn(usize) -> usize,
    bound: LoadBound,
    mut load: impl FnMut(usize) -> Option<u64>,
) -> Option<usize> {
    let mut last_rejected = usize::MAX;
    for step in 0..len {
        let i = start + step;
        let b = backend_at(if i >= len { i - len } else { i });
        if b == last_rejected {
            continue;
        }
        match load(b) {
            Some(in_flight) if bound.admits(in_flight) => return Some(b),
            _ => last_rejected = b,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn bound_formula() {
        // 9 in flight + the new one over 4 backends, c = 1.25: ⌈1.25 · 10 / 4⌉ = ⌈3.125⌉ = 4.
        let b = LoadBound::new(Some(1.25), 9, 4);
        assert_eq!(b.cap(), 4);
        assert!(b.admits(3));
        assert!(!b.admits(4));
        assert!(LoadBound::new(None, 9, 4).is_unbounded());
        assert!(LoadBound::new(Some(f64::INFINITY), 9, 4).is_unbounded());
        assert_eq!(LoadBound::new(Some(1.0), 0, 10).cap(), 1);
    }
}
