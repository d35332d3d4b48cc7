//! Trace-driven simulation of a Qwen3-0.6B/H100 vLLM fleet, and the arena that judges
//! autoscalers on it: keda-llm-scaler (its own parsing, signal and policy code, through a
//! KEDA + HPA emulator), the rivals ported from their sources and an SLO-feasible oracle,
//! scored on good requests per GPU-second (`../shared/docs/arena.md`); see
//! `docs/simulator.md`.
//!
//! A crate of its own beside the core, and as pure: simulated time, seeded randomness, no I/O
//! (the suite's threads are the only concurrency). The tools (`simulate`, `demo`) own files,
//! terminals and sockets.
//!
//! # Layout
//!
//! - [`load`]: traces and synthetic arrival shapes; [`scenarios`]: the development loads;
//!   [`rng`]: the seeded random streams.
//! - [`worker`]: the vLLM engine model (and its Dynamo frontend), rendering real `/metrics`.
//! - [`keda`]: the KEDA + HPA emulator; [`prom`]: the mini Prometheus the rivals query.
//! - [`autoscaler`]: the one interface of every contestant; [`rivals`]: each contestant.
//! - [`run`]: the event loop that ties a fleet, an autoscaler and a load together, and the
//!   oracle's search.
//! - [`score`]: what users felt and what it cost; [`arena`]: seeds, confidence intervals,
//!   tuning and the suite; [`report`]: the HTML report.
//! - [`calibration`]: the engine model beside the anchors of engine-model.md.
//! - [`live`]: a fleet advanced in wall-clock time, for the demo.

/// The core the simulated scaler runs, under the name the shell uses too.
pub(crate) use keda_llm_scaler_core as core;

pub mod arena;
pub mod autoscaler;
pub mod calibration;
pub mod keda;
pub mod live;
pub mod load;
pub mod prom;
pub mod report;
pub mod rivals;
pub mod rng;
pub mod run;
pub mod scenarios;
pub mod score;
pub mod worker;

use load::Lengths;
use rivals::{Entry, Setup};
use rng::Rng;
use run::{OraclePlan, RunResult, Scenario, SimParams};

/// The deployment every contestant is configured from, for `params` and the oracle's `plan`.
pub fn setup(params: &SimParams, plan: OraclePlan) -> Setup {
    let node_lead = params.nodes.as_ref().map_or(0.0, |n| n.provision.max_s);
    Setup {
        min: params.min_replicas,
        max: params.max_replicas,
        cluster: params.cluster,
        slo: params.slo,
        polling_ms: (params.polling_s * 1e3) as u64,
        hpa_sync_ms: (params.hpa_sync_s * 1e3) as u64,
        cold_start_s: params.pod_start.mean(),
        lead_s: params.pod_start.max_s.max(params.pod_start.min_s) + node_lead,
        plan,
        scaler: params.scaler.clone(),
        record: params.record,
    }
}

/// What happened to each of `requests` (arrivals within `duration_s`) on one replica that
/// stays one replica.
pub fn one_replica_serves(
    params: &SimParams,
    requests: Vec<load::Request>,
    duration_s: f64,
    seed: u64,
) -> Vec<score::Served> {
    let scenario = Scenario {
        name: "one replica".into(),
        requests,
        duration_s,
        outages: Vec::new(),
        onsets: Vec::new(),
    };
    let one = SimParams {
        min_replicas: 1,
        max_replicas: 1,
        nodes: None,
        warmup_s: 0.0,
        ..params.clone()
    };
    let plan = OraclePlan {
        per_minute: vec![1],
        target: params.oracle_target,
        infeasible_minutes: 0,
    };
    run::run(
        rivals::fixed(1),
        "one replica",
        &scenario,
        &one,
        &plan,
        seed,
    )
    .served
}

/// What happened to each request when one replica served `duration_s` of Poisson arrivals at
/// `rate` (`stream` picks the random stream, so each use keeps its own arrivals).
fn one_replica(
    params: &SimParams,
    lengths: &Lengths,
    rate: f64,
    duration_s: f64,
    seed: u64,
    stream: u64,
) -> Vec<score::Served> {
    let mut rng = Rng::new(seed).fork(stream);
    let requests = load::synthetic(
        &load::Shape::Poisson { rate },
        duration_s,
        lengths,
        &mut rng,
    );
    one_replica_serves(params, requests, duration_s, seed)
}

/// Highest Poisson arrival rate one replica sustains with its true p95 TTFT within the TTFT
/// SLO for this length mix, found by bisection on short single-replica runs (what
/// `--rate-scale auto` and the synthetic loads are sized in).
pub fn calibrate_capacity(params: &SimParams, lengths: &Lengths, seed: u64) -> f64 {
    let duration = 240.0;
    let warmup_us = 60_000_000;
    let ok = |rate: f64| {
        let late: Vec<score::Served> = one_replica(params, lengths, rate, duration, seed, 0xca1)
            .into_iter()
            .filter(|q| q.arrival_us >= warmup_us)
            .collect();
        let p95 = score::window_p95(&late, duration, duration)
            .into_iter()
            .flatten()
            .next()
            .unwrap_or(f64::INFINITY);
        p95 <= params.slo.ttft_s
    };
    let (mut lo, mut hi) = (0.5f64, 400.0f64);
    if !ok(lo) {
        return lo;
    }
    for _ in 0..12 {
        let mid = (lo * hi).sqrt();
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One point of the single-replica load curve.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CurvePoint {
    /// Offered Poisson rate, requests per second.
    pub offered_rps: f64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Median client TTFT, seconds.
    pub ttft_p50_s: f64,
    /// p95 client TTFT, seconds.
    pub ttft_p95_s: f64,
    /// Mean time per output token after the first, seconds.
    pub tpot_s: f64,
}

/// TTFT and TPOT against offered load for one replica (the calibration curve in
/// docs/simulator.md): `duration_s` of Poisson arrivals at each rate, the first fifth dropped as
/// warm-up.
pub fn load_curve(
    params: &SimParams,
    lengths: &Lengths,
    rates: &[f64],
    duration_s: f64,
    seed: u64,
) -> Vec<CurvePoint> {
    rates
        .iter()
        .map(|&rate| {
            let served = one_replica(params, lengths, rate, duration_s, seed, 0xc0);
            let warm = (duration_s * 0.2 * 1e6) as u64;
            let late: Vec<&score::Served> =
                served.iter().filter(|q| q.arrival_us >= warm).collect();
            let mut ttft: Vec<f64> = late
                .iter()
                .map(|q| q.ttft_us.map_or(f64::INFINITY, |t| t as f64 / 1e6))
                .collect();
            ttft.sort_by(f64::total_cmp);
            let pick = |q: f64| {
                ttft.get(((ttft.len() as f64 - 1.0) * q).round() as usize)
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let itls: Vec<f64> = late.iter().filter_map(|q| q.mean_itl_s()).collect();
            // Completions within the run (the simulation drains the rest after it).
            let end_us = (duration_s * 1e6) as u64;
            let done = late
                .iter()
                .filter(|q| {
                    q.fate == score::Fate::Completed
                        && q.ttft_us
                            .zip(q.decode_us)
                            .is_some_and(|(t, d)| q.arrival_us + t + d <= end_us)
                })
                .count();
            CurvePoint {
                offered_rps: rate,
                throughput_rps: done as f64 / (duration_s * 0.8),
                ttft_p50_s: pick(0.5),
                ttft_p95_s: pick(0.95),
                tpot_s: if itls.is_empty() {
                    f64::NAN
                } else {
                    itls.iter().sum::<f64>() / itls.len() as f64
                },
            }
        })
        .collect()
}

/// The comparison of contestants on one scenario with one seed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The oracle's plan.
    pub oracle: OraclePlan,
    /// One result per contestant, in the order asked.
    pub runs: Vec<RunResult>,
    /// Requests simulated.
    pub requests: usize,
    /// Simulated seconds of arrivals.
    pub duration_s: f64,
}

/// Runs `entries` on `scenario` with `seed` (after sizing the oracle's plan for it).
/// Deterministic for a seed.
pub fn compare(
    scenario: &Scenario,
    params: &SimParams,
    entries: &[Entry],
    seed: u64,
) -> Comparison {
    let plan = run::plan_oracle(scenario, params, seed);
    compare_with_plan(scenario, params, entries, seed, plan)
}

/// [`compare`] with the oracle's plan already sized.
pub fn compare_with_plan(
    scenario: &Scenario,
    params: &SimParams,
    entries: &[Entry],
    seed: u64,
    plan: OraclePlan,
) -> Comparison {
    let setup = setup(params, plan.clone());
    let runs = entries
        .iter()
        .map(|e| {
            let mut r = run::run(e.build(&setup), &e.label, scenario, params, &plan, seed);
            if !params.record {
                r.served = Vec::new();
            }
            r
        })
        .collect();
    Comparison {
        scenario: scenario.name.clone(),
        seed,
        oracle: plan,
        runs,
        requests: scenario.requests.len(),
        duration_s: scenario.duration_s,
    }
}
