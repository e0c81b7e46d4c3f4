//! Several threads picking and recording while another publishes snapshots.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use rrlb_core::{Algorithm, AnyBalancer, Backend, BackendSet, BackendSpec, SetOptions};

const PICKERS: usize = 4;
const PICKS_PER_THREAD: usize = 20_000;

#[test]
fn no_count_is_lost_and_no_removed_backend_is_picked() {
    for algorithm in Algorithm::ALL {
        run(algorithm);
    }
}

fn run(algorithm: Algorithm) {
    let set = BackendSet::with_backends(
        AnyBalancer::new(algorithm),
        SetOptions::default(),
        (0..4).map(|i| BackendSpec::new(format!("base{i}"), format!("http://base{i}:80"))),
    )
    .unwrap();
    // Backends "x0", "x1", ... are added and removed by the writer; `removed` is how many of them are gone.
    let removed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<std::sync::Mutex<Vec<Arc<Backend>>>> = Arc::default();

    let writer = {
        let (set, removed, stop, seen) = (set.clone(), removed.clone(), stop.clone(), seen.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(SeqCst) && i < 2_000 {
                let b = set
                    .add(BackendSpec::new(format!("x{i}"), format!("http://x{i}:80")))
                    .unwrap();
                seen.lock().unwrap().push(b);
                set.set_weight("base0", 1 + (i as u32 % 7)).unwrap();
                set.remove(&format!("x{i}")).unwrap();
                // Let ejected backends go half-open, so breakers keep moving while the pickers run.
                set.refresh(Instant::now() + Duration::from_secs(3_600));
                removed.store(i + 1, SeqCst);
                i += 1;
            }
        })
    };

    let pickers: Vec<_> = (0..PICKERS)
        .map(|t| {
            let (set, removed) = (set.clone(), removed.clone());
            thread::spawn(move || {
                let mut picked = 0u64;
                // Half the threads pick through a `Picker` (a cached snapshot), half through the set.
                let mut picker = (t % 2 == 1).then(|| set.picker());
                for n in 0..PICKS_PER_THREAD {
                    let gone = removed.load(SeqCst);
                    let call = match picker.as_mut() {
                        Some(p) => p.pick(),
                        None => set.pick(),
                    };
                    // Failures open breakers, so at times nothing is eligible: that is an answer, not a call.
                    let Ok(call) = call else { continue };
                    picked += 1;
                    if let Some(x) = call.backend().name().strip_prefix('x') {
                        let x: usize = x.parse().unwrap();
                        assert!(
                            x >= gone,
                            "picked x{x} after its removal returned ({gone} removed)"
                        );
                    }
                    match (t + n) % 3 {
                        0 => call.success(),
                        1 => call.failure(),
                        _ => drop(call),
                    }
                }
                picked
            })
        })
        .collect();
    let expected: u64 = pickers.into_iter().map(|p| p.join().unwrap()).sum();
    assert!(expected > 0);
    stop.store(true, SeqCst);
    writer.join().unwrap();

    let mut all: Vec<Arc<Backend>> = set
        .load()
        .members()
        .iter()
        .map(|m| m.backend().clone())
        .collect();
    all.extend(seen.lock().unwrap().iter().cloned());
    let (mut requests, mut outcomes) = (0, 0);
    for b in &all {
        let s = b.stats().snapshot();
        assert_eq!(
            s.in_flight,
            0,
            "{algorithm}: {} still has calls in flight",
            b.name()
        );
        requests += s.requests;
        outcomes += s.successes + s.failures + s.cancelled;
    }
    assert_eq!(requests, expected, "{algorithm}: every pick counted once");
    assert_eq!(outcomes, expected, "{algorithm}: every call finished once");
}
