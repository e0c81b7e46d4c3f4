//! The Maglev lookup table, weighted as Envoy's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{LoadBound, hash64, hash64_seeded};

/// An unclaimed table entry.
const EMPTY: u32 = u32::MAX;

/// Backend `i` (its permutation state `(offset, skip, next, claimed)`) claims the next free slot of its
/// permutation.
fn claim(table: &mut [u32], perm: &mut (u64, u64, u64, u64), i: usize, m: u64) {
    let (offset, skip, next, claimed) = perm;
    let mut slot = (*offset + *next * *skip) % m;
    while table[slot as usize] != EMPTY {
        *next += 1;
        slot = (*offset + *next * *skip) % m;
    }
    table[slot as usize] = i as u32;
    *next += 1;
    *claimed += 1;
}

/// The default table size: 65,537, prime, Envoy's default `table_size`.
pub const DEFAULT_TABLE_SIZE: usize = 65_537;

/// A Maglev lookup table (Eisenbud et al., NSDI 2016, §3.4), weighted as Envoy's `MaglevTable`.
///
/// Each backend gets a permutation of the `M` (prime) table slots from two hashes of its name:
/// `offset = h1 % M`, `skip = h2 % (M − 1) + 1`, slot `j` of the permutation is `(offset + j·skip) % M`.
/// The table fills in rounds; in round `t` (1, 2, …) backend `i` of weight `wᵢ` claims its next free
/// preferred slot when `t · wᵢ ≥ (claimedᵢ + 1) · w_max`, so it owns ≈ `M · wᵢ / Σw` slots (at equal
/// weights every backend claims once a round, exactly the paper's algorithm). Backends of weight 0 claim
/// nothing.
///
/// The build is `O(M)` slot claims (plus a heap of the backends when the weights are far apart, so one
/// heavy backend among many light ones does not cost a sweep of every backend in every round).
///
/// A lookup is `table[hash % M]`: one division and one read.
///
/// ```
/// use rrlb_core::hash::{MaglevTable, hash64};
///
/// let table = MaglevTable::build(&[("a", 1), ("b", 1), ("c", 2)]);
/// assert!(table.lookup(hash64(b"user-42")).unwrap() < 3);
/// assert_eq!(table.len(), 65_537);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MaglevTable {
    table: Vec<u32>,
    backends: usize,
}

impl MaglevTable {
    /// Builds the table of [`DEFAULT_TABLE_SIZE`] entries for `backends`, each `(name, weight)`.
    #[must_use]
    pub fn build<S: AsRef<str>>(backends: &[(S, u32)]) -> Self {
        Self::with_size(backends, DEFAULT_TABLE_SIZE)
    }

    /// Builds a table of `size` entries. `size` should be prime (so every `skip` generates a full
    /// permutation) and much larger than the number of backends (the paper: `M ≥ 100·N` keeps the
    /// imbalance under 1 %); with fewer entries than weighted backends some backends own none.
    ///
    /// # Panics
    /// When `size < 2`.
    #[must_use]
    pub fn with_size<S: AsRef<str>>(backends: &[(S, u32)], size: usize) -> Self {
        Self::fill(backends, size, false)
    }

    /// The build; `force_sweep` takes the round-by-round schedule whatever the weights (for the test that
    /// both schedules agree).
    fn fill<S: AsRef<str>>(backends: &[(S, u32)], size: usize, force_sweep: bool) -> Self {
        assert!(size >= 2, "a Maglev table needs at least 2 entries");
        let live: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].1 > 0).collect();
        if live.is_empty() {
            return Self {
                table: Vec::new(),
                backends: backends.len(),
            };
        }
        let m = size as u64;
        // Per live backend: offset, skip, next permutation index, claimed count.
        let mut perm: Vec<(u64, u64, u64, u64)> = live
            .iter()
            .map(|&i| {
                let name = backends[i].0.as_ref().as_bytes();
                let offset = hash64_seeded(name, 1) % m;
                let skip = hash64_seeded(name, 2) % (m - 1) + 1;
                (offset, skip, 0, 0)
            })
            .collect();
        let w_max = live
            .iter()
            .map(|&i| u64::from(backends[i].1))
            .max()
            .unwrap_or(1);
        let mut table = vec![EMPTY; size];
        // Backend k claims its c-th slot (c = 1, 2, …) in round ⌈c · w_max / wₖ⌉, and within a round the
        // backends claim in index order. Two schedules with the same result: sweeping every backend every
        // round (cheap when the weights are close), or a heap ordered by (round, index) (when one heavy
        // backend makes many rounds in which the light ones sit out). `schedule_equivalence` tests it.
        let total: u64 = live.iter().map(|&i| u64::from(backends[i].1)).sum();
        let sweep_work = (size as u64).saturating_mul(w_max) / total.max(1) * live.len() as u64;
        if sweep_work <= 4 * size as u64 || force_sweep {
            let mut filled = 0usize;
            let mut round: u64 = 0;
            while filled < size {
                round += 1;
                for (k, &i) in live.iter().enumerate() {
                    let w = u64::from(backends[i].1);
                    if round * w < (perm[k].3 + 1) * w_max {
                        continue;
                    }
                    claim(&mut table, &mut perm[k], i, m);
                    filled += 1;
                    if filled == size {
                        break;
                    }
                }
            }
        } else {
            let next_round = |c: u64, w: u64| (c * w_max).div_ceil(w);
            let mut heap: BinaryHeap<Reverse<(u64, usize)>> = live
                .iter()
                .enumerate()
                .map(|(k, &i)| Reverse((next_round(1, u64::from(backends[i].1)), k)))
                .collect();
            for _ in 0..size {
                let Some(Reverse((_, k))) = heap.pop() else {
                    break;
                };
                let i = live[k];
                claim(&mut table, &mut perm[k], i, m);
                let w = u64::from(backends[i].1);
                heap.push(Reverse((next_round(perm[k].3 + 1, w), k)));
            }
        }
        Self {
            table,
            backends: backends.len(),
        }
    }

    /// The number of entries (`M`; 0 when no backend has a weight).
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table is empty (no backends, or all of weight 0).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The number of backends the table was built from.
    #[must_use]
    pub fn backends(&self) -> usize {
        self.backends
    }

    /// The backend index of every entry (for inspection and tests).
    #[must_use]
    pub fn entries(&self) -> &[u32] {
        &self.table
    }

    /// The backend (index into the slice given to [`build`](Self::build)) that `hash` maps to: entry
    /// `hash % M`. Hash keys with [`hash64`] (or any well-mixed 64-bit hash). `None` when empty.
    #[must_use]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[(hash % self.table.len() as u64) as usize] as usize)
    }

    /// [`lookup`](Self::lookup) of [`hash64`]`(key)`.
    #[must_use]
    pub fn lookup_key(&self, key: &[u8]) -> Option<usize> {
        self.lookup(hash64(key))
    }

    /// The bounded-loads pick: from entry `hash % M`, the first backend `b` (walking the next entries,
    /// wrapping) for which `load(b)` is `Some(in_flight)` (eligible) and `bound` admits `in_flight`.
    /// `None` when the table is empty or no entry's backend qualifies.
    ///
    /// With [`LoadBound::unbounded`] and every backend eligible this is [`lookup`](Self::lookup). It
    /// neither locks nor allocates; at worst it visits every entry once.
    pub fn pick_bounded(
        &self,
        hash: u64,
        bound: LoadBound,
        load: impl FnMut(usize) -> Option<u64>,
    ) -> Option<usize> {
        let n = self.table.len();
        if n == 0 {
            return None;
        }
        let start = (hash % n as u64) as usize;
        super::walk_bounded(start, n, |i| self.table[i] as usize, bound, load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_filled_and_even() {
        let names: Vec<(String, u32)> = (0..7).map(|i| (format!("b{i}"), 1)).collect();
        let t = MaglevTable::with_size(&names, 65_537);
        let mut counts = [0usize; 7];
        for &e in t.entries() {
            counts[e as usize] += 1;
        }
        // Equal weights: every backend claims once a round, so the counts differ by at most one.
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");
    }

    #[test]
    fn schedule_equivalence() {
        // One heavy backend among light ones takes the heap; the sweep must give the same table.
        let mut fleet: Vec<(String, u32)> = (0..50).map(|i| (format!("b{i}"), 1 + i % 3)).collect();
        fleet[7].1 = 200;
        for size in [101, 65_537] {
            let heap = MaglevTable::fill(&fleet, size, false);
            let sweep = MaglevTable::fill(&fleet, size, true);
            assert_eq!(heap.entries(), sweep.entries());
        }
    }

    #[test]
    fn zero_weight_and_empty() {
        let t = MaglevTable::with_size(&[("a", 0), ("b", 1)], 13);
        assert!(t.entries().iter().all(|&e| e == 1));
        assert!(MaglevTable::build(&[("a", 0)]).lookup(1).is_none());
    }
}
