//! Plain picking with `rrlb-core`: no runtime, no network.
//!
//! A weighted set of three backends; each pick returns a `Call` guard that is finished with an
//! outcome and a latency. One backend starts failing, its circuit breaker ejects it, and the
//! others take its share. Run with `cargo run --example pick`.

use std::time::{Duration, Instant};

use rrlb_core::{
    Algorithm, AnyBalancer, BackendSet, BackendSpec, BreakerParams, Outcome, SetOptions,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Eject a backend after 3 failures in a row, for 30 s.
    let options = SetOptions {
        breaker: BreakerParams {
            consecutive_failures: 3,
            open_duration: Duration::from_secs(30),
            ..BreakerParams::default()
        },
        ..SetOptions::default()
    };
    let set = BackendSet::with_backends(
        AnyBalancer::new(Algorithm::WeightedRoundRobin),
        options,
        [
            BackendSpec::new("a", "http://10.0.0.1:8080").with_weight(3),
            BackendSpec::new("b", "http://10.0.0.2:8080").with_weight(2),
            BackendSpec::new("c", "http://10.0.0.3:8080"),
        ],
    )?;

    // Smooth weighted round robin: a gets 3 of 6, b 2, c 1, interleaved.
    let mut sequence = String::new();
    for _ in 0..12 {
        let call = set.pick()?; // counts the call in flight
        sequence.push_str(call.backend().name());
        // Pretend the call took a few milliseconds, then record it as a success.
        let latency = Duration::from_millis(5 + sequence.len() as u64);
        call.finish_with_latency(Outcome::Success, latency, Instant::now());
    }
    println!("weighted sequence:   {sequence}");

    // Now every call to "c" fails: after three in a row its breaker opens.
    let mut sequence = String::new();
    for _ in 0..30 {
        let call = set.pick()?;
        let name = call.backend().name().to_owned();
        sequence.push_str(&name);
        if name == "c" {
            call.failure();
        } else {
            call.success();
        }
    }
    println!("with c failing:      {sequence}");
    let c = set.get("c").ok_or("c is configured")?;
    println!(
        "c's circuit:         {} (healthy: {})",
        c.circuit(),
        c.is_healthy()
    );

    // Ejected: a and b keep their 3:2 proportion among themselves.
    let sequence: String = (0..10)
        .map(|_| {
            set.pick().map(|call| {
                let name = call.backend().name().to_owned();
                call.success();
                name
            })
        })
        .collect::<Result<_, _>>()?;
    println!("after the ejection:  {sequence}");

    println!();
    println!("backend  requests  successes  failures  error rate  avg latency");
    for member in set.load().members() {
        let s = member.stats().snapshot();
        println!(
            "{:<7}  {:>8}  {:>9}  {:>8}  {:>9.0}%  {:>10.1?}",
            member.name(),
            s.requests,
            s.successes,
            s.failures,
            s.error_rate * 100.0,
            s.latency_avg,
        );
    }
    Ok(())
}
