//! Which algorithm serves the clients best? Not the cost of a pick (that is `benches/pick.rs`) but what each
//! algorithm does to the requests: the three scenarios of `rrlb_sim::scenarios` (a heterogeneous fleet, one
//! backend degrading mid-run, one failing 20 % of its calls) through rrlb's real balancers, breakers and
//! slow start, in deterministic virtual time.
//!
//! Run with `cargo bench -p rrlb-core --bench algorithms`. It prints one Markdown table per scenario and
//! writes `algorithms.csv` and `algorithms.svg` (the p50/p99/p99.9 of each algorithm, per scenario) under
//! `target/tmp/algorithms/`. `benches/README.md` shows the output.

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rrlb_sim::{Report, Scenario, compare, csv, markdown_table, scenarios};

fn main() -> Result<(), Box<dyn Error>> {
    let runs: Vec<(Scenario, Vec<Report>)> = scenarios::all()
        .into_iter()
        .map(|s| {
            let reports = compare(&s);
            (s, reports)
        })
        .collect();
    for (s, reports) in &runs {
        println!(
            "### {} ({}, {} s virtual, seed {})\n",
            s.name,
            s.description,
            s.duration.as_secs(),
            s.seed
        );
        println!("{}", markdown_table(reports));
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("algorithms");
    std::fs::create_dir_all(&dir)?;
    let all: Vec<Report> = runs.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    std::fs::write(dir.join("algorithms.csv"), csv(&all))?;
    plot(&dir.join("algorithms.svg"), &runs)?;
    println!("wrote {}", dir.join("algorithms.{csv,svg}").display());
    Ok(())
}

const P50: RGBColor = RGBColor(0x9e, 0xc5, 0xe8);
const P99: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
const P999: RGBColor = RGBColor(0xd9, 0x4f, 0x3d);

/// A short label for the chart; an algorithm without one is labelled with its name.
fn short(a: rrlb_core::Algorithm) -> &'static str {
    use rrlb_core::Algorithm::{LeastRequest, PeakEwma, RoundRobin, WeightedRoundRobin};
    let labels = [
        (RoundRobin, "RR"),
        (WeightedRoundRobin, "WRR"),
        (LeastRequest, "LR"),
        (PeakEwma, "EWMA"),
    ];
    labels
        .iter()
        .find(|(x, _)| *x == a)
        .map_or(a.as_str(), |(_, label)| label)
}

/// One panel per scenario: for each algorithm, a bar up to its p99 with its p50 inside and a mark at its p99.9,
/// on a logarithmic axis in milliseconds.
fn plot(path: &Path, runs: &[(Scenario, Vec<Report>)]) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (1200, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(36);
    title.titled(
        "Client latency (ms, log scale): light = p50, bar = p99, red mark = p99.9. RR round robin, WRR weighted, \
         LR least request, EWMA peak-EWMA",
        ("sans-serif", 18),
    )?;
    let panels = body.split_evenly((1, runs.len().max(1)));
    for (panel, (scenario, reports)) in panels.iter().zip(runs) {
        let n = reports.len();
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e3).max(0.1);
        let top = reports.iter().map(|r| ms(r.p999)).fold(1.0, f64::max) * 2.0;
        let names: Vec<&str> = reports.iter().map(|r| short(r.algorithm)).collect();
        let mut chart = ChartBuilder::on(panel)
            .caption(&scenario.name, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (0..n.saturating_sub(1)).into_segmented(),
                (0.5f64..top).log_scale(),
            )?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).copied().unwrap_or_default().to_owned(),
                _ => String::new(),
            })
            .x_label_style(("sans-serif", 13))
            .y_labels(8)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(TRANSPARENT)
            .y_desc("ms")
            .draw()?;
        for (i, r) in reports.iter().enumerate() {
            let bar = |lo: f64, hi: f64, color: RGBColor| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), lo),
                        (SegmentValue::Exact(i + 1), hi),
                    ],
                    color.filled(),
                );
                r.set_margin(0, 0, 8, 8);
                r
            };
            chart.draw_series([bar(0.5, ms(r.p99), P99), bar(0.5, ms(r.p50), P50)])?;
            chart.draw_series([PathElement::new(
                vec![
                    (SegmentValue::Exact(i), ms(r.p999)),
                    (SegmentValue::Exact(i + 1), ms(r.p999)),
                ],
                P999.stroke_width(3),
            )])?;
            if r.error_rate() > 0.0 {
                chart.draw_series([Text::new(
                    format!("{:.2}% err", r.error_rate() * 100.0),
                    (SegmentValue::Exact(i), ms(r.p999) * 1.25),
                    ("sans-serif", 12),
                )])?;
            }
        }
    }
    root.present()?;
    Ok(())
}
