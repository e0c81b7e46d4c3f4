//! A tiny, seedable, lock-free random-number source shared by the pickers.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::CachePadded;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 over one atomic counter: each draw is one relaxed `fetch_add` followed by a pure mix, so any
/// number of threads can draw without a lock, and a seeded instance is reproducible on one thread.
#[derive(Debug)]
pub(crate) struct SharedRng {
    state: CachePadded<AtomicU64>,
}

impl SharedRng {
    pub(crate) fn with_seed(seed: u64) -> Self {
        Self {
            state: CachePadded(AtomicU64::new(seed)),
        }
    }

    /// Seeded from the standard library's per-process random hasher keys.
    pub(crate) fn from_entropy() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(GOLDEN);
        Self::with_seed(h.finish())
    }

    #[inline]
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self.state.0.fetch_add(GOLDEN, Relaxed).wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Maps 32 random bits onto `0..n` without a division (Lemire's multiply-shift; bias below n / 2^32).
#[inline]
pub(crate) fn below(bits: u32, n: usize) -> usize {
    ((u64::from(bits) * n as u64) >> 32) as usize
}

/// Two distinct indices in `0..n` (`n >= 2`) from 64 random bits: the power-of-two-choices draw.
#[inline]
pub(crate) fn two_of(r: u64, n: usize) -> (usize, usize) {
    let a = below(r as u32, n);
    let mut b = below((r >> 32) as u32, n - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_draws_repeat_and_cover_the_range() {
        let a = SharedRng::with_seed(7);
        let b = SharedRng::with_seed(7);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            let x = a.next_u64();
            assert_eq!(x, b.next_u64());
            seen[below(x as u32, 5)] += 1;
        }
        for count in seen {
            assert!((1_500..2_500).contains(&count), "{seen:?}");
        }
    }
}
