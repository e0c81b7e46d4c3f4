//! Compare the balancing algorithms on a fleet you describe, in simulated time (a few hundred milliseconds):
//!
//! ```sh
//! cargo run -p rrlb-examples --example compare -- --rate 1000 rs:exp:2 go:exp:3 node:exp:6:4 java:lognormal:10:4
//! cargo run -p rrlb-examples --example compare -- a:exp:3 b:exp:3 flaky:exp:3:8:0.2   # one fails 20 %
//! ```
//!
//! Each backend is `NAME:DIST:MS[:WORKERS[:FAIL_RATE]]`, with `DIST` one of `fixed`, `exp` (exponential with
//! mean MS) or `lognormal` (median MS, sigma 1: heavy-tailed); 8 workers and no failures by default.
//! Options: `--rate REQ_PER_S` (default 1000), `--seconds N` (60), `--seed N` (1), `--slow-start SECS` (0).

use std::time::Duration;

use rrlb_sim::{BackendModel, Latency, Scenario, compare, markdown_table};

fn backend(spec: &str) -> Result<BackendModel, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let num = |i: usize, what: &str| -> Result<Option<f64>, String> {
        parts
            .get(i)
            .map(|s| {
                s.parse::<f64>()
                    .map_err(|_| format!("{spec}: {what} {s:?} is not a number"))
            })
            .transpose()
    };
    let (Some(name), Some(dist)) = (parts.first(), parts.get(1)) else {
        return Err(format!(
            "{spec}: expected NAME:DIST:MS[:WORKERS[:FAIL_RATE]]"
        ));
    };
    let ms = num(2, "MS")?.ok_or_else(|| format!("{spec}: MS is missing"))?;
    let d = Duration::from_secs_f64(ms.max(0.0) / 1e3);
    let latency = match *dist {
        "fixed" => Latency::Fixed(d),
        "exp" => Latency::Exponential(d),
        "lognormal" => Latency::LogNormal {
            median: d,
            sigma: 1.0,
        },
        other => {
            return Err(format!(
                "{spec}: unknown DIST {other:?} (fixed, exp, lognormal)"
            ));
        }
    };
    let mut b = BackendModel::new(*name, latency);
    if let Some(w) = num(3, "WORKERS")? {
        b = b.workers(w as u32);
    }
    if let Some(f) = num(4, "FAIL_RATE")? {
        b = b.failing(f);
    }
    Ok(b)
}

fn scenario(args: &[String]) -> Result<Scenario, String> {
    let mut s = Scenario::new("compare", Vec::new(), 1_000.0);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| -> Result<f64, String> {
            let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match arg.as_str() {
            "--rate" => s.arrival_rate = value("--rate")?,
            "--seconds" => s.duration = Duration::from_secs_f64(value("--seconds")?.max(0.0)),
            "--seed" => s.seed = value("--seed")? as u64,
            "--slow-start" => {
                s.options.slow_start = Duration::from_secs_f64(value("--slow-start")?.max(0.0))
            }
            spec => s.backends.push(backend(spec)?),
        }
    }
    if s.backends.is_empty() {
        return Err("no backends: give at least one NAME:DIST:MS".to_owned());
    }
    Ok(s)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match scenario(&args) {
        Ok(s) => {
            println!(
                "{} backends, {} req/s, {} s simulated, seed {}\n",
                s.backends.len(),
                s.arrival_rate,
                s.duration.as_secs_f64(),
                s.seed
            );
            println!("{}", markdown_table(&compare(&s)));
        }
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    }
}
