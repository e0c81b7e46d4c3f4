//! Smooth weighted round robin, as NGINX does it, precomputed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{Balancer, CachePadded};
use crate::backend::Member;

/// Longest schedule kept; bigger weight sums are scaled down to fit (proportions then approximate).
pub const MAX_SCHEDULE: usize = 1 << 20;
/// Largest `backends × schedule length` simulated step by step; above it the equivalent-proportion
/// earliest-deadline schedule is built in `O(L log n)` instead.
const EXACT_BUDGET: usize = 1 << 26;

/// Smooth weighted round robin: the exact sequence of NGINX's algorithm, so weights 5, 1, 1 give
/// `a a b a c a a`, never the bursty `a a a a a b c`.
///
/// NGINX runs its algorithm on every pick, which is O(n) under a lock. Its sequence is periodic (after
/// `sum(weights)` steps every running weight is back at zero), so this balancer runs it once when a snapshot is
/// built, stores one period as the snapshot's [`WeightedPlan`], and a pick is one counter increment and one
/// table read. Weights are first divided by their greatest common divisor. Should the period exceed
/// [`MAX_SCHEDULE`] entries, weights are scaled down to fit, and for very large sets whose exact simulation would
/// be too slow to publish the schedule is built by earliest virtual deadline, which has the same per-period
/// proportions; both cases are documented approximations that the default limits of rrlb never reach for sets
/// under a few hundred backends.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, SetOptions, WeightedRoundRobin};
///
/// let set = BackendSet::with_backends(
///     WeightedRoundRobin::new(),
///     SetOptions::default(),
///     [
///         BackendSpec::new("a", "http://127.0.0.1:8081").with_weight(2),
///         BackendSpec::new("b", "http://127.0.0.1:8082"),
///     ],
/// )?;
/// let order: String = (0..6)
///     .map(|_| set.pick().map(|call| call.backend().name().to_owned()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(order, "abaaba");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    next: CachePadded<AtomicUsize>,
}

impl WeightedRoundRobin {
    /// A fresh balancer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// One period of the smooth weighted sequence, as indices into the snapshot's eligible members.
///
/// ```
/// use rrlb_core::WeightedPlan;
///
/// // Weights 5, 1, 1: NGINX's smooth sequence a a b a c a a, as indices.
/// let plan = WeightedPlan::build(&[5, 1, 1]);
/// assert_eq!(plan.schedule(), [0, 0, 1, 0, 2, 0, 0]);
/// assert!(plan.is_exact());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedPlan {
    schedule: Box<[u32]>,
    exact: bool,
}

impl WeightedPlan {
    /// The precomputed period.
    pub fn schedule(&self) -> &[u32] {
        &self.schedule
    }

    /// Whether the schedule is exactly NGINX's sequence for the configured weights (see the type docs).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// Builds the period for these weights.
    pub fn build(weights: &[u32]) -> Self {
        let n = weights.len();
        if n == 0 {
            return Self {
                schedule: Box::new([]),
                exact: true,
            };
        }
        let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x.max(1))).collect();
        reduce(&mut w);
        let mut exact = true;
        let total: u64 = w.iter().sum();
        if total > MAX_SCHEDULE as u64 {
            exact = false;
            let budget = (MAX_SCHEDULE as u64).saturating_sub(n as u64).max(n as u64);
            for x in &mut w {
                *x = (*x * budget / total).max(1);
            }
            reduce(&mut w);
        }
        if w.iter().all(|&x| x == 1) {
            // Equal weights: NGINX's sequence is plain rotation.
            return Self {
                schedule: (0..n as u32).collect(),
                exact,
            };
        }
        let total: u64 = w.iter().sum();
        let len = total as usize;
        if n.saturating_mul(len) <= EXACT_BUDGET {
            Self {
                schedule: nginx_sequence(&w, len),
                exact,
            }
        } else {
            Self {
                schedule: deadline_sequence(&w, len),
                exact: false,
            }
        }
    }
}

/// Divides every weight by the weights' greatest common divisor.
fn reduce(w: &mut [u64]) {
    let g = w.iter().fold(0, |g, &x| gcd(g, x));
    if g > 1 {
        for x in w {
            *x /= g;
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// NGINX's algorithm, step by step: every running weight grows by its weight, the largest (first on ties) is
/// picked and lowered by the total.
fn nginx_sequence(w: &[u64], len: usize) -> Box<[u32]> {
    let total = len as i64;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let mut best = 0;
        for i in 0..current.len() {
            current[i] += w[i] as i64;
            // `best <= i`, so current[best] is already this step's value; strict `>` keeps the first maximum.
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out.into_boxed_slice()
}

/// Earliest virtual deadline: the k-th turn of backend i is due at `(2k - 1) / (2 w_i)` of the period.
fn deadline_sequence(w: &[u64], len: usize) -> Box<[u32]> {
    #[derive(PartialEq, Eq)]
    struct Turn {
        /// Deadline as the fraction `num / den`.
        num: u64,
        den: u64,
        index: u32,
    }
    impl Ord for Turn {
        fn cmp(&self, other: &Self) -> Ordering {
            // Reversed: BinaryHeap is a max-heap and we want the earliest deadline, then the lowest index.
            let lhs = u128::from(self.num) * u128::from(other.den);
            let rhs = u128::from(other.num) * u128::from(self.den);
            rhs.cmp(&lhs).then_with(|| other.index.cmp(&self.index))
        }
    }
    impl PartialOrd for Turn {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    let mut heap: BinaryHeap<Turn> = w
        .iter()
        .enumerate()
        .map(|(i, &wi)| Turn {
            num: 1,
            den: 2 * wi,
            index: i as u32,
        })
        .collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let Some(turn) = heap.pop() else { break };
        out.push(turn.index);
        heap.push(Turn {
            num: turn.num + 2,
            ..turn
        });
    }
    out.into_boxed_slice()
}

impl Balancer for WeightedRoundRobin {
    type Plan = WeightedPlan;

    fn plan(&self, eligible: &[Member]) -> WeightedPlan {
        let weights: Vec<u32> = eligible.iter().map(|m| m.weight).collect();
        WeightedPlan::build(&weights)
    }

    #[inline]
    fn pick(&self, plan: &WeightedPlan, eligible: &[Member]) -> Option<usize> {
        let len = plan.schedule.len();
        if len == 0 || eligible.is_empty() {
            return None;
        }
        let slot = self.next.0.fetch_add(1, Relaxed) % len;
        plan.schedule.get(slot).map(|&i| i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(weights: &[u32]) -> String {
        let plan = WeightedPlan::build(weights);
        plan.schedule()
            .iter()
            .map(|&i| (b'a' + i as u8) as char)
            .collect()
    }

    #[test]
    fn nginx_example_is_smooth() {
        assert_eq!(letters(&[5, 1, 1]), "aabacaa");
        assert_eq!(letters(&[1, 1, 1]), "abc");
        assert_eq!(letters(&[2, 1]), "aba");
        assert_eq!(
            letters(&[10, 5, 5]),
            "abca",
            "weights are reduced by their gcd"
        );
    }

    #[test]
    fn deadline_schedule_has_exact_proportions() {
        let w = [3u64, 1, 2];
        let s = deadline_sequence(&w, 6);
        for (i, &wi) in w.iter().enumerate() {
            assert_eq!(s.iter().filter(|&&x| x as usize == i).count() as u64, wi);
        }
    }

    #[test]
    fn huge_weight_sums_are_scaled_to_fit() {
        let weights: Vec<u32> = (0..300).map(|i| 9_000 + i).collect();
        let plan = WeightedPlan::build(&weights);
        assert!(plan.schedule().len() <= MAX_SCHEDULE);
        assert!(!plan.is_exact());
        for i in 0..300u32 {
            assert!(plan.schedule().contains(&i), "every backend keeps a turn");
        }
    }
}
