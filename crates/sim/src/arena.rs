//! The arena around single runs: every load over N seeds with a mean and 95 % confidence
//! interval per score, the rivals' tuning on the development loads, and the suite that runs
//! everything on a pool of threads.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::load::{Lengths, TraceRow};
use crate::rivals::{Entry, Rival};
use crate::run::{Scenario, SimParams};
use crate::score::{Scores, mean_ci95};
use crate::{Comparison, compare, scenarios};

/// A load the arena runs: a trace scaled to a target peak, or a synthetic scenario.
#[derive(Debug, Clone)]
pub enum Load {
    /// A trace with the Azure columns.
    Trace {
        /// Its file name.
        name: String,
        /// Its rows.
        rows: Arc<Vec<TraceRow>>,
        /// Rate scale (already resolved from `auto`).
        scale: f64,
        /// Time compression.
        speedup: f64,
        /// Copies' offset spread, seconds.
        spread_s: f64,
        /// Length override.
        duration_s: Option<f64>,
    },
    /// A synthetic scenario.
    Synthetic {
        /// Its name in [`scenarios::SYNTHETIC`].
        kind: String,
        /// Request sizes (a trace's), or 512/128.
        mix: Option<Arc<Lengths>>,
        /// Length override.
        duration_s: Option<f64>,
    },
}

impl Load {
    /// Its name in tables.
    pub fn name(&self) -> String {
        match self {
            Load::Trace { name, scale, .. } => format!("{name} x{scale:.1}"),
            Load::Synthetic { kind, .. } => kind.clone(),
        }
    }

    /// The scenario for `seed`, and the parameters to score it with (the field's SLO for
    /// long prompts unless the scoring SLO was set explicitly).
    pub fn build(
        &self,
        params: &SimParams,
        seed: u64,
        slo_fixed: bool,
    ) -> Result<(Scenario, SimParams), String> {
        match self {
            Load::Trace {
                name,
                rows,
                scale,
                speedup,
                spread_s,
                duration_s,
            } => Ok((
                scenarios::trace(name, rows, *scale, *speedup, *spread_s, *duration_s, seed),
                params.clone(),
            )),
            Load::Synthetic {
                kind,
                mix,
                duration_s,
            } => {
                let built = scenarios::synthetic(kind, params, mix.as_deref(), *duration_s, seed)?;
                let mut p = params.clone();
                if let Some(s) = built.ttft_slo_s
                    && !slo_fixed
                {
                    p.slo.ttft_s = s;
                    if p.scaler_follows_slo {
                        p.scaler.policy.ttft_target_s = s;
                    }
                }
                Ok((built.scenario, p))
            }
        }
    }
}

/// A contestant's scores over seeds: the JSON every tool reads (names are an interface).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Contestant (`NAME`, `NAME@tuned`, `oracle`).
    pub policy: String,
    /// Seeds run.
    pub seeds: usize,
    /// Mean good-rate.
    pub good_rate: f64,
    /// Its 95 % confidence half-width.
    pub good_rate_ci95: f64,
    /// Mean good requests per GPU-second.
    pub goodput_per_gpu_second: f64,
    /// Its 95 % confidence half-width.
    pub goodput_per_gpu_second_ci95: f64,
    /// Mean GPU-hours.
    pub gpu_hours: f64,
    /// Its 95 % confidence half-width.
    pub gpu_hours_ci95: f64,
    /// Mean GPU-hours of the SLO-feasible oracle.
    pub oracle_gpu_hours: f64,
    /// Mean share of 1-minute windows within both SLOs.
    pub slo_attainment_windows: f64,
    /// Mean share of requests with their first token within the TTFT SLO.
    pub slo_attainment_requests: f64,
    /// Mean direction reversals per hour.
    pub reversals_per_hour: f64,
    /// Mean replica changes per hour.
    pub actions_per_hour: f64,
    /// Scale-downs during metric outages, summed over seeds.
    pub scale_downs_during_outage: u32,
    /// Mean timed-out requests.
    pub timed_out: f64,
    /// Mean requests killed by a scale-down.
    pub killed: f64,
    /// Mean true TTFT p95, seconds.
    pub ttft_p95_seconds: f64,
    /// Mean p95 of the requests' mean ITL, seconds.
    pub itl_p95_seconds: f64,
    /// Mean replicas holding a GPU.
    pub mean_replicas: f64,
    /// Most replicas at once over all seeds.
    pub peak_replicas: u32,
}

/// Folds one contestant's per-seed scores.
pub fn summarize(policy: &str, runs: &[Scores]) -> Summary {
    let pick = |f: fn(&Scores) -> f64| mean_ci95(&runs.iter().map(f).collect::<Vec<_>>());
    let (good_rate, good_rate_ci95) = pick(|s| s.good_rate);
    let (goodput, goodput_ci95) = pick(|s| s.goodput_per_gpu_second);
    let (gpu_hours, gpu_hours_ci95) = pick(|s| s.gpu_hours);
    Summary {
        policy: policy.to_string(),
        seeds: runs.len(),
        good_rate,
        good_rate_ci95,
        goodput_per_gpu_second: goodput,
        goodput_per_gpu_second_ci95: goodput_ci95,
        gpu_hours,
        gpu_hours_ci95,
        oracle_gpu_hours: pick(|s| s.oracle_gpu_hours).0,
        slo_attainment_windows: pick(|s| s.slo_attainment_windows).0,
        slo_attainment_requests: pick(|s| s.slo_attainment_requests).0,
        reversals_per_hour: pick(|s| s.reversals_per_hour).0,
        actions_per_hour: pick(|s| s.actions_per_hour).0,
        scale_downs_during_outage: runs.iter().map(|s| s.scale_downs_during_outage).sum(),
        timed_out: pick(|s| s.timed_out as f64).0,
        killed: pick(|s| s.killed as f64).0,
        ttft_p95_seconds: pick(|s| s.ttft_p95_seconds).0,
        itl_p95_seconds: pick(|s| s.itl_p95_seconds).0,
        mean_replicas: pick(|s| s.mean_replicas).0,
        peak_replicas: runs.iter().map(|s| s.peak_replicas).max().unwrap_or(0),
    }
}

/// One load's result: a summary per contestant and the first seed's comparison (timelines
/// for the report).
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// The load's name.
    pub load: String,
    /// The scoring SLO it was judged at.
    pub slo: crate::score::Slo,
    /// Per contestant, in the order asked.
    pub summaries: Vec<Summary>,
    /// The first seed's comparison, and the parameters it was scored at.
    #[serde(skip)]
    pub first: Option<(Comparison, SimParams)>,
}

/// One finished job: load index, seed, and its comparison with the parameters it was scored at.
type Finished = (usize, u64, Result<(Comparison, SimParams), String>);

/// One load's runs as they come in: each contestant's per-seed scores, and the first seed's
/// comparison with its parameters.
type Gathered = (Vec<Vec<Scores>>, Option<(Comparison, SimParams)>);

/// How a set of runs is spread: seeds `first_seed..first_seed + seeds`, on `threads` threads.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// First seed.
    pub first_seed: u64,
    /// Seeds per load.
    pub seeds: u64,
    /// Worker threads.
    pub threads: usize,
    /// The scoring SLO was set explicitly (no per-load SLO).
    pub slo_fixed: bool,
}

/// Runs `entries` on every load for every seed of `spread`, with metric `outages` (start,
/// length in seconds) added to every load.
pub fn run_loads(
    loads: &[Load],
    params: &SimParams,
    entries: &[Entry],
    outages: &[(f64, f64)],
    spread: Spread,
) -> Result<Vec<LoadResult>, String> {
    let Spread {
        first_seed,
        seeds,
        threads,
        slo_fixed,
    } = spread;
    let jobs: Vec<(usize, u64)> = (0..loads.len())
        .flat_map(|l| (0..seeds.max(1)).map(move |s| (l, first_seed + s)))
        .collect();
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Finished>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(l, seed)) = jobs.get(i) else {
                        break;
                    };
                    let out = loads[l].build(params, seed, slo_fixed).map(|(mut sc, p)| {
                        sc.outages.extend_from_slice(outages);
                        (compare(&sc, &p, entries, seed), p)
                    });
                    if let Ok(mut d) = done.lock() {
                        d.push((l, seed, out));
                    }
                }
            });
        }
    });
    let mut done = done
        .into_inner()
        .map_err(|_| "a suite thread panicked".to_string())?;
    done.sort_by_key(|(l, s, _)| (*l, *s));
    let mut per_load: Vec<Gathered> = loads
        .iter()
        .map(|_| (vec![Vec::new(); entries.len()], None))
        .collect();
    for (l, _, result) in done {
        let (c, p) = result.map_err(|e| format!("{}: {e}", loads[l].name()))?;
        let (per_entry, first) = &mut per_load[l];
        for (i, r) in c.runs.iter().enumerate() {
            per_entry[i].push(r.scores.clone());
        }
        // Seeds come in order: the first kept is the first seed's.
        first.get_or_insert((c, p));
    }
    Ok(loads
        .iter()
        .zip(per_load)
        .map(|(load, (per_entry, first))| LoadResult {
            load: first
                .as_ref()
                .map_or_else(|| load.name(), |(c, _)| c.scenario.clone()),
            slo: first.as_ref().map_or(params.slo, |(_, p)| p.slo),
            summaries: entries
                .iter()
                .zip(&per_entry)
                .map(|(e, runs)| summarize(&e.label, runs))
                .collect(),
            first,
        })
        .collect())
}

/// One rival's tuning: every grid point's mean scores over the development loads, and the
/// point chosen.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    /// The rival.
    pub rival: String,
    /// Per grid point: label, mean good-rate, mean goodput per GPU-second.
    pub grid: Vec<(String, f64, f64)>,
    /// The chosen point's label.
    pub chosen: String,
}

/// How far below its grid's best good-rate a tuned point may sit, in share points.
pub const TUNE_GOOD_RATE_SLACK: f64 = 0.02;

/// The rule that picks a tuned point: the highest mean goodput per GPU-second among the points
/// whose mean good-rate is within [`TUNE_GOOD_RATE_SLACK`] of the grid's best (what an operator
/// running that rival would choose: as efficient as it gets without losing requests).
pub fn choose(points: &[(String, f64, f64)]) -> Option<String> {
    let best_rate = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    points
        .iter()
        .filter(|p| p.1 >= best_rate - TUNE_GOOD_RATE_SLACK)
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|p| p.0.clone())
}

/// Tunes each rival over its grid on `loads` (the development loads only).
pub fn tune(
    rivals: &[&'static Rival],
    loads: &[Load],
    params: &SimParams,
    spread: Spread,
) -> Result<Vec<Tuning>, String> {
    let mut entries = Vec::new();
    for r in rivals {
        entries.extend(crate::rivals::grid(r));
    }
    let results = run_loads(loads, params, &entries, &[], spread)?;
    let mut out = Vec::new();
    for r in rivals {
        let points: Vec<(String, f64, f64)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.rival.name == r.name)
            .map(|(i, e)| {
                let n = results.len().max(1) as f64;
                let rate = results
                    .iter()
                    .map(|l| l.summaries[i].good_rate)
                    .sum::<f64>()
                    / n;
                let gp = results
                    .iter()
                    .map(|l| l.summaries[i].goodput_per_gpu_second)
                    .sum::<f64>()
                    / n;
                (e.label.clone(), rate, gp)
            })
            .collect();
        let chosen = choose(&points).unwrap_or_default();
        out.push(Tuning {
            rival: r.name.to_string(),
            grid: points,
            chosen,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tuned_point_is_the_most_efficient_one_that_keeps_the_requests() {
        let grid = vec![
            ("a".to_string(), 0.99, 1.0),
            ("b".to_string(), 0.975, 1.4),
            ("c".to_string(), 0.90, 2.0),
        ];
        assert_eq!(choose(&grid).as_deref(), Some("b"));
    }
}
