//! Trace-driven simulation of a Qwen3-0.6B/H100 vLLM fleet under keda-llm-scaler (through a
//! KEDA + HPA emulator) and under the baselines, scored on what users feel (true TTFT) and what
//! it costs (GPU-hours). The scaler's own parsing, signal and policy code runs in the loop on
//! the workers' rendered `/metrics`; see `docs/simulator.md`.
//!
//! A crate of its own beside the core, and as pure: simulated time, seeded randomness, no I/O.
//! The tools (`simulate`, `demo`) own files, terminals and sockets.
//!
//! # Layout
//!
//! - [`load`]: traces and synthetic arrival shapes; [`rng`]: the seeded random streams.
//! - [`worker`]: the vLLM engine model (and its Dynamo frontend), rendering real `/metrics`.
//! - [`keda`]: the KEDA + HPA emulator; [`prom`]: the mini Prometheus the baselines query.
//! - [`run`]: the event loop that ties a fleet, a policy and a load together.
//! - [`live`]: a fleet advanced in wall-clock time, for the demo.
//! - [`score`]: what users felt and what it cost; [`report`]: the HTML report.

/// The core the simulated scaler runs, under the name the shell uses too.
pub(crate) use keda_llm_scaler_core as core;

pub mod keda;
pub mod live;
pub mod load;
pub mod prom;
pub mod report;
pub mod rng;
pub mod run;
pub mod score;
pub mod worker;

use load::{Lengths, Request};
use rng::Rng;
use run::{OraclePlan, Policy, RunResult, Scenario, SimParams};

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
    let scenario = Scenario {
        name: "one replica".into(),
        requests: load::synthetic(
            &load::Shape::Poisson { rate },
            duration_s,
            lengths,
            &mut rng,
        ),
        duration_s,
        outages: Vec::new(),
        onsets: Vec::new(),
    };
    let one = SimParams {
        min_replicas: 1,
        max_replicas: 1,
        nodes: None,
        ..params.clone()
    };
    let plan = OraclePlan {
        capacity_rps: rate,
        per_minute: vec![1; (duration_s / 60.0).ceil() as usize + 1],
        peak_10s: 1,
    };
    run::run(Policy::StaticPeak, &scenario, &one, &plan, seed).served
}

/// Highest Poisson arrival rate one replica sustains with its true p95 TTFT within `slo_s`
/// for this length mix, found by bisection on short single-replica runs.
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
        p95 <= params.slo_s
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
            let (mut tp, mut n) = (0.0, 0.0);
            for q in &late {
                if let Some(d) = q.decode_us
                    && q.generated > 1
                {
                    tp += d as f64 / 1e6 / f64::from(q.generated - 1);
                    n += 1.0;
                }
            }
            let done = late.iter().filter(|q| q.decode_us.is_some()).count();
            CurvePoint {
                offered_rps: rate,
                throughput_rps: done as f64 / (duration_s * 0.8),
                ttft_p50_s: pick(0.5),
                ttft_p95_s: pick(0.95),
                tpot_s: if n > 0.0 { tp / n } else { f64::NAN },
            }
        })
        .collect()
}

/// The comparison of every requested policy on one scenario with one seed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// The scenario's name.
    pub scenario: String,
    /// The oracle's plan.
    pub oracle: OraclePlan,
    /// One result per policy, in the order asked.
    pub runs: Vec<RunResult>,
    /// Requests simulated.
    pub requests: usize,
    /// Simulated seconds.
    pub duration_s: f64,
}

/// Runs `policies` on `scenario`. Deterministic for a seed.
pub fn compare(
    scenario: &Scenario,
    params: &SimParams,
    policies: &[Policy],
    seed: u64,
) -> Comparison {
    compare_with_capacity(scenario, params, policies, seed, None)
}

/// [`compare`], reusing a per-replica capacity already calibrated for this load.
pub fn compare_with_capacity(
    scenario: &Scenario,
    params: &SimParams,
    policies: &[Policy],
    seed: u64,
    capacity: Option<f64>,
) -> Comparison {
    let lengths = Lengths::Empirical(
        scenario
            .requests
            .iter()
            .step_by((scenario.requests.len() / 5000).max(1))
            .map(|r: &Request| (r.prompt, r.generate))
            .collect(),
    );
    let capacity = capacity.unwrap_or_else(|| calibrate_capacity(params, &lengths, seed));
    let oracle = OraclePlan::new(
        &scenario.requests,
        scenario.duration_s,
        capacity,
        params.min_replicas.max(1),
        params.max_replicas,
    );
    let runs = policies
        .iter()
        .map(|p| {
            let mut r = run::run(*p, scenario, params, &oracle, seed);
            r.served = Vec::new();
            r
        })
        .collect();
    Comparison {
        scenario: scenario.name.clone(),
        oracle,
        runs,
        requests: scenario.requests.len(),
        duration_s: scenario.duration_s,
    }
}
