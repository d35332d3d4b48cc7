//! Scoring a run from what actually happened: every request's true TTFT (recorded exactly,
//! independent of the exposition buckets) and every scaling action.

use hdrhistogram::Histogram as Hdr;
use serde::Serialize;

/// One scaling action: spec replicas changed at `t_s` from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Action {
    /// When, seconds.
    pub t_s: f64,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
}

/// The scores of one policy on one scenario (the `--json` row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Policy name.
    pub policy: String,
    /// Share of requests with TTFT <= SLO (requests lost or never served count as misses).
    pub slo_attainment_requests: f64,
    /// Share of 1-minute windows (by arrival) whose true p95 TTFT <= SLO.
    pub slo_attainment_windows: f64,
    /// GPU-hours: pods holding a GPU (starting or serving), integrated over the run.
    pub gpu_hours: f64,
    /// The oracle's GPU-hours on the same load (lower bound).
    pub oracle_gpu_hours: f64,
    /// gpu_hours / oracle_gpu_hours.
    pub over_provisioning: f64,
    /// Spec-replica changes per hour.
    pub actions_per_hour: f64,
    /// Consecutive actions in opposite directions less than 10 minutes apart.
    pub reversals_10min: u32,
    /// Time to recover after a burst (see `recover_seconds`), seconds.
    pub recover_seconds: f64,
    /// Scale-downs while metrics were unavailable.
    pub scale_downs_during_outage: u32,
    /// p95 of all requests' TTFT, seconds (lost requests count as infinite).
    pub ttft_p95_seconds: f64,
    /// Requests lost to abrupt pod removal before their first token.
    pub dropped_requests: u64,
    /// Time-averaged pods holding a GPU.
    pub mean_replicas: f64,
    /// Most pods at once.
    pub peak_replicas: u32,
}

/// A request's fate: arrival and client-side TTFT (None: never got a first token).
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// Arrival, microseconds.
    pub arrival_us: u64,
    /// TTFT, microseconds.
    pub ttft_us: Option<u64>,
    /// Time from the first to the last token, microseconds (None if unfinished).
    pub decode_us: Option<u64>,
    /// Tokens generated.
    pub generated: u32,
}

/// A value recorded for a request that never produced a token (one hour, in microseconds).
const LOST_US: u64 = 3_600_000_000;

fn hdr() -> Hdr<u64> {
    // 1 µs .. 2 h at 3 significant digits; the bounds are constants.
    Hdr::new_with_bounds(1, 2 * LOST_US, 3).expect("valid constant hdrhistogram bounds")
}

fn p95(h: &Hdr<u64>) -> f64 {
    h.value_at_quantile(0.95) as f64 / 1e6
}

/// A request's TTFT as recorded: lost requests count as one hour.
fn recorded_us(r: &Served) -> u64 {
    r.ttft_us.unwrap_or(LOST_US).clamp(1, 2 * LOST_US)
}

/// Exact TTFTs grouped into consecutive windows of `width_s` by arrival, from 0.
fn windows(served: &[Served], width_s: f64, duration_s: f64) -> Vec<Hdr<u64>> {
    let n = (duration_s / width_s).ceil().max(1.0) as usize;
    let mut hs: Vec<Hdr<u64>> = (0..n).map(|_| hdr()).collect();
    for r in served {
        let i = ((r.arrival_us as f64 / 1e6) / width_s) as usize;
        if let Some(h) = hs.get_mut(i) {
            let _ = h.record(recorded_us(r));
        }
    }
    hs
}

/// Per-window (by arrival) true p95 TTFT in seconds, for windows of `width_s` starting at 0.
pub fn window_p95(served: &[Served], width_s: f64, duration_s: f64) -> Vec<Option<f64>> {
    windows(served, width_s, duration_s)
        .iter()
        .map(|h| (!h.is_empty()).then(|| p95(h)))
        .collect()
}

/// Recovery time. With known burst onsets: for each onset, the time until the rolling 30 s
/// p95 (by arrival, in 10 s steps) is back under the SLO, the worst onset reported. Without:
/// the longest stretch of consecutive 10 s steps whose rolling p95 breaks the SLO.
pub fn recover_seconds(served: &[Served], slo_s: f64, duration_s: f64, onsets_s: &[f64]) -> f64 {
    let step = 10.0;
    let hs = windows(served, step, duration_s);
    let n = hs.len();
    // A step breaches when the p95 of the 30 s ending with it (exact samples merged) does.
    let breach: Vec<bool> = (0..n)
        .map(|i| {
            let mut h = hdr();
            for past in &hs[i.saturating_sub(2)..=i] {
                let _ = h.add(past);
            }
            !h.is_empty() && p95(&h) > slo_s
        })
        .collect();
    if onsets_s.is_empty() {
        let (mut best, mut run) = (0usize, 0usize);
        for b in &breach {
            run = if *b { run + 1 } else { 0 };
            best = best.max(run);
        }
        return best as f64 * step;
    }
    onsets_s
        .iter()
        .map(|onset| {
            let start = ((onset / step) as usize).min(n);
            // The burst's breach must begin within 5 minutes of its onset to be its own.
            let horizon = (start + 30).min(n);
            let Some(first) = (start..horizon).find(|&i| breach[i]) else {
                return 0.0;
            };
            match (first..n).find(|&i| !breach[i]) {
                Some(end) => end as f64 * step - onset,
                None => duration_s - onset,
            }
        })
        .fold(0.0, f64::max)
}

/// Reversals: consecutive actions in opposite directions less than 10 minutes apart.
pub fn reversals(actions: &[Action]) -> u32 {
    actions
        .windows(2)
        .filter(|w| {
            let d0 = i64::from(w[0].to) - i64::from(w[0].from);
            let d1 = i64::from(w[1].to) - i64::from(w[1].from);
            d0.signum() * d1.signum() < 0 && w[1].t_s - w[0].t_s < 600.0
        })
        .count() as u32
}

/// Everything a run produced that scoring needs.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// Requests.
    pub served: &'a [Served],
    /// Scaling actions.
    pub actions: &'a [Action],
    /// Outage intervals, seconds.
    pub outages: &'a [(f64, f64)],
    /// Burst onsets, seconds.
    pub onsets: &'a [f64],
    /// Run length, seconds.
    pub duration_s: f64,
    /// SLO, seconds.
    pub slo_s: f64,
    /// GPU-seconds used.
    pub gpu_seconds: f64,
    /// Oracle GPU-hours.
    pub oracle_gpu_hours: f64,
    /// Most pods at once.
    pub peak_replicas: u32,
    /// Requests dropped.
    pub dropped: u64,
}

/// Scores a run.
pub fn score(policy: &str, f: RunFacts<'_>) -> Scores {
    let slo_us = (f.slo_s * 1e6) as u64;
    let ok = f
        .served
        .iter()
        .filter(|r| r.ttft_us.is_some_and(|t| t <= slo_us))
        .count();
    let windows = window_p95(f.served, 60.0, f.duration_s);
    let (good, total) = windows
        .iter()
        .flatten()
        .fold((0usize, 0usize), |(g, t), p| {
            (g + usize::from(*p <= f.slo_s), t + 1)
        });
    let mut all = hdr();
    for r in f.served {
        let _ = all.record(recorded_us(r));
    }
    let hours = f.duration_s / 3600.0;
    let gpu_hours = f.gpu_seconds / 3600.0;
    let in_outage = |t: f64| f.outages.iter().any(|(s, d)| t >= *s && t < s + d);
    Scores {
        policy: policy.to_string(),
        slo_attainment_requests: if f.served.is_empty() {
            1.0
        } else {
            ok as f64 / f.served.len() as f64
        },
        slo_attainment_windows: if total == 0 {
            1.0
        } else {
            good as f64 / total as f64
        },
        gpu_hours,
        oracle_gpu_hours: f.oracle_gpu_hours,
        over_provisioning: if f.oracle_gpu_hours > 0.0 {
            gpu_hours / f.oracle_gpu_hours
        } else {
            0.0
        },
        actions_per_hour: if hours > 0.0 {
            f.actions.len() as f64 / hours
        } else {
            0.0
        },
        reversals_10min: reversals(f.actions),
        recover_seconds: recover_seconds(f.served, f.slo_s, f.duration_s, f.onsets),
        scale_downs_during_outage: f
            .actions
            .iter()
            .filter(|a| a.to < a.from && in_outage(a.t_s))
            .count() as u32,
        ttft_p95_seconds: if f.served.is_empty() { 0.0 } else { p95(&all) },
        dropped_requests: f.dropped,
        mean_replicas: if f.duration_s > 0.0 {
            f.gpu_seconds / f.duration_s
        } else {
            0.0
        },
        peak_replicas: f.peak_replicas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(t_s: f64, ttft_ms: Option<u64>) -> Served {
        Served {
            arrival_us: (t_s * 1e6) as u64,
            ttft_us: ttft_ms.map(|m| m * 1000),
            decode_us: None,
            generated: 1,
        }
    }

    #[test]
    fn attainment_windows_and_reversals() {
        let mut served = Vec::new();
        for i in 0..600 {
            let t = f64::from(i) * 0.2; // 0..120 s
            // second minute is slow
            served.push(req(t, Some(if t >= 60.0 { 900 } else { 100 })));
        }
        served.push(req(10.0, None));
        let actions = [
            Action {
                t_s: 10.0,
                from: 2,
                to: 4,
            },
            Action {
                t_s: 100.0,
                from: 4,
                to: 3,
            },
            Action {
                t_s: 1000.0,
                from: 3,
                to: 5,
            },
        ];
        let s = score(
            "x",
            RunFacts {
                served: &served,
                actions: &actions,
                outages: &[(90.0, 20.0)],
                onsets: &[],
                duration_s: 120.0,
                slo_s: 0.5,
                gpu_seconds: 7200.0,
                oracle_gpu_hours: 1.0,
                peak_replicas: 5,
                dropped: 1,
            },
        );
        assert!((s.slo_attainment_requests - 300.0 / 601.0).abs() < 1e-9);
        assert_eq!(s.slo_attainment_windows, 0.5);
        assert_eq!(
            s.reversals_10min, 1,
            "up then down 90 s later; the later up is 15 min after"
        );
        assert_eq!(s.scale_downs_during_outage, 1);
        assert!((s.over_provisioning - 2.0).abs() < 1e-9);
        assert!(
            (s.recover_seconds - 60.0).abs() < 1e-9,
            "{}",
            s.recover_seconds
        );
    }

    #[test]
    fn recovery_after_an_onset() {
        // Slow from 100 s to 160 s, onset at 100 s.
        let served: Vec<Served> = (0..3000)
            .map(|i| {
                let t = f64::from(i) * 0.1;
                req(
                    t,
                    Some(if (100.0..160.0).contains(&t) {
                        2000
                    } else {
                        50
                    }),
                )
            })
            .collect();
        let r = recover_seconds(&served, 0.5, 300.0, &[100.0]);
        assert!((60.0..=90.0).contains(&r), "{r}");
        assert_eq!(recover_seconds(&served, 0.5, 300.0, &[250.0]), 0.0);
    }
}
