//! A user-written balancing algorithm: priority failover.
//!
//! Backends are grouped in priority tiers. All traffic goes to the best tier that still has an
//! eligible backend, round robin inside it; when the whole tier is ejected (unhealthy, circuit
//! open, draining), the next tier takes over, and traffic returns as soon as a better backend is
//! eligible again. Run with `cargo run --example custom_algorithm`.
//!
//! A [`Balancer`] has two parts: `plan`, run once whenever the set of eligible backends changes
//! (here: find the best tier), and `pick`, run on every request, which must not block or allocate
//! (here: one atomic add).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rrlb_core::{BackendSet, BackendSpec, Balancer, Member, SetOptions};

/// Priority failover: lower numbers are better; backends without a priority are in the last tier.
struct PriorityFailover {
    priorities: HashMap<String, u32>,
    next: AtomicUsize,
}

impl PriorityFailover {
    fn new<'a>(tiers: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        Self {
            priorities: tiers
                .into_iter()
                .map(|(name, p)| (name.to_owned(), p))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn priority(&self, member: &Member) -> u32 {
        self.priorities
            .get(member.name())
            .copied()
            .unwrap_or(u32::MAX)
    }
}

impl Balancer for PriorityFailover {
    /// Indices (into the eligible slice) of the best tier's backends.
    type Plan = Vec<usize>;

    fn plan(&self, eligible: &[Member]) -> Vec<usize> {
        let Some(best) = eligible.iter().map(|m| self.priority(m)).min() else {
            return Vec::new();
        };
        (0..eligible.len())
            .filter(|&i| self.priority(&eligible[i]) == best)
            .collect()
    }

    fn pick(&self, tier: &Self::Plan, _eligible: &[Member]) -> Option<usize> {
        match tier.len() {
            0 => None,
            n => tier
                .get(self.next.fetch_add(1, Ordering::Relaxed) % n)
                .copied(),
        }
    }
}

/// Eight picks, each finished as a success, as a string of backend names (`-`: none eligible).
fn eight_picks(set: &BackendSet<PriorityFailover>) -> String {
    (0..8)
        .map(|_| match set.pick() {
            Ok(call) => {
                let name = call.backend().name().to_owned();
                call.success();
                name
            }
            Err(_) => "-".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let balancer = PriorityFailover::new([("primary-1", 0), ("primary-2", 0), ("backup", 1)]);
    let set = BackendSet::with_backends(
        balancer,
        SetOptions::default(),
        [
            BackendSpec::new("primary-1", "http://10.0.0.1:8080"),
            BackendSpec::new("primary-2", "http://10.0.0.2:8080"),
            BackendSpec::new("backup", "http://10.0.1.1:8080"),
        ],
    )?;
    let set_healthy = |name: &str, healthy: bool| {
        if let Some(member) = set.get(name) {
            // What an active health check (or an operator) does; the set re-plans at once.
            member.set_healthy(healthy);
        }
    };

    println!("all healthy:          {}", eight_picks(&set));
    set_healthy("primary-1", false);
    println!("primary-1 down:       {}", eight_picks(&set));
    set_healthy("primary-2", false);
    println!("both primaries down:  {}", eight_picks(&set));
    set_healthy("backup", false);
    println!("everything down:      {}", eight_picks(&set));
    if let Err(e) = set.pick() {
        println!("                      ({e})");
    }
    set_healthy("primary-2", true);
    println!("primary-2 back:       {}", eight_picks(&set));
    set_healthy("primary-1", true);
    set_healthy("backup", true);
    println!("all back:             {}", eight_picks(&set));
    Ok(())
}
