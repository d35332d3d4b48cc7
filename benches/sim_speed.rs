//! Simulator speed: one contestant over one simulated hour of the conv trace scaled to about a
//! million requests, the oracle's search on the same load, and the events per second behind
//! them. Not criterion: each case is seconds long and runs three times; the median is kept.
//!
//!   cargo bench --bench sim_speed
//!
//! Prints a Markdown table (BENCHMARKS.md). Reads ../shared/traces.

use keda_llm_scaler::clock::Stopwatch;
use keda_llm_scaler::sim;
use keda_llm_scaler::sim::load::{self, COPY_SPREAD_S};
use keda_llm_scaler::sim::rivals;
use keda_llm_scaler::sim::run::{OraclePlan, Scenario, SimParams};
use keda_llm_scaler::tools::simulate::SimulateArgs;

fn params() -> SimParams {
    use clap::Parser;
    let cli = keda_llm_scaler::cli::Cli::try_parse_from(["keda-llm-scaler", "simulate"])
        .expect("default simulate flags");
    match cli.command {
        keda_llm_scaler::cli::Command::Simulate(a) => SimulateArgs::params(&a).expect("params"),
        _ => unreachable!("parsed as simulate"),
    }
}

/// The median wall time of three calls of `f`, seconds.
fn median_of_3(mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..3)
        .map(|_| {
            let t = Stopwatch::start();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[1]
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/traces/AzureLLMInferenceTrace_conv.csv"
    );
    let text = std::fs::read_to_string(path).expect("the conv trace in ../shared/traces");
    let rows = load::parse_trace(&text).expect("parses");
    let p = params();
    // About a million requests in the trace's hour.
    let scale = 1.0e6 / rows.len() as f64;
    let sc: Scenario = sim::scenarios::trace("conv", &rows, scale, 1.0, COPY_SPREAD_S, None, 1);
    let minutes = (sc.duration_s / 60.0).ceil() as usize;
    let plan = OraclePlan {
        per_minute: vec![6; minutes],
        target: 0.99,
        infeasible_minutes: 0,
    };
    println!(
        "| case | requests | simulated s | wall s (median of 3) | simulated s per wall s |\n|---|---|---|---|---|"
    );
    for name in ["static-peak", "mpc-planner", "keda-llm-scaler"] {
        let entry = rivals::resolve(name).expect("known");
        let m = median_of_3(|| {
            let c = sim::compare_with_plan(&sc, &p, std::slice::from_ref(&entry), 1, plan.clone());
            std::hint::black_box(c);
        });
        println!(
            "| {name}, one run | {} | {:.0} | {m:.2} | {:.0} |",
            sc.requests.len(),
            sc.duration_s,
            sc.duration_s / m
        );
    }
    let m = median_of_3(|| {
        std::hint::black_box(sim::run::plan_oracle(&sc, &p, 1));
    });
    println!(
        "| the oracle's search | {} | {:.0} | {m:.2} | {:.0} |",
        sc.requests.len(),
        sc.duration_s,
        sc.duration_s / m
    );
}
