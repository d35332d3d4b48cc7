//! Scoring a run from what actually happened to every request (true TTFT and inter-token
//! latency, recorded exactly, independent of any exposition bucket) and what the fleet cost,
//! over the scored interval (after the warm-up). The headline is the Autoscaling Arena's:
//! good requests per GPU-second (`../shared/docs/arena.md`, "How the field scores").

use hdrhistogram::Histogram as Hdr;
use serde::Serialize;

/// One change of the replica count the control plane asked for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Action {
    /// Seconds.
    pub t_s: f64,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Every token delivered.
    Completed,
    /// The client gave up (no completion within the client timeout).
    TimedOut,
    /// Its pod was removed by a scale-down while it ran or waited.
    Killed,
    /// The engine refused it (larger than the whole KV cache).
    Rejected,
    /// Still running when the run ended.
    Unfinished,
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Served {
    /// Arrival, microseconds.
    pub arrival_us: u64,
    /// Client TTFT, microseconds, if a first token arrived.
    pub ttft_us: Option<u64>,
    /// First to last token, microseconds, if it completed.
    pub decode_us: Option<u64>,
    /// Output tokens.
    pub generated: u32,
    /// How it ended.
    pub fate: Fate,
}

impl Served {
    /// Mean inter-token latency (first to last token over the gaps), seconds; `None` for a
    /// single-token answer or an incomplete one.
    pub fn mean_itl_s(&self) -> Option<f64> {
        let d = self.decode_us?;
        (self.generated > 1).then(|| d as f64 / 1e6 / f64::from(self.generated - 1))
    }

    /// Whether it met both SLOs: completed, first token within `slo.ttft_s`, mean ITL within
    /// `slo.itl_s`.
    pub fn good(&self, slo: &Slo) -> bool {
        self.fate == Fate::Completed
            && self.ttft_us.is_some_and(|t| t as f64 / 1e6 <= slo.ttft_s)
            && self.mean_itl_s().is_none_or(|itl| itl <= slo.itl_s)
    }
}

/// The scoring SLOs (flags of their own, independent of any policy's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    /// TTFT SLO, seconds.
    pub ttft_s: f64,
    /// Mean inter-token latency SLO, seconds.
    pub itl_s: f64,
}

/// What one run scored, over its scored interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Policy name.
    pub policy: String,
    /// Share of arrived requests that met both SLOs.
    pub good_rate: f64,
    /// Good requests per GPU-second (starting and draining pods included): the headline.
    pub goodput_per_gpu_second: f64,
    /// GPU-hours held.
    pub gpu_hours: f64,
    /// The SLO-feasible oracle's GPU-hours on the same load and seed.
    pub oracle_gpu_hours: f64,
    /// Share of 1-minute windows whose TTFT p95 and ITL p95 were within the SLOs.
    pub slo_attainment_windows: f64,
    /// Share of requests with a first token within the TTFT SLO.
    pub slo_attainment_requests: f64,
    /// Direction changes within 10 minutes of the previous action, per hour.
    pub reversals_per_hour: f64,
    /// Replica changes asked for, per hour.
    pub actions_per_hour: f64,
    /// Scale-downs while metrics were out.
    pub scale_downs_during_outage: u32,
    /// Requests the client gave up on.
    pub timed_out: u64,
    /// Requests killed by a scale-down.
    pub killed: u64,
    /// Requests arrived in the scored interval.
    pub requests: u64,
    /// True TTFT p95 over the scored requests, seconds (failed ones count as very late).
    pub ttft_p95_seconds: f64,
    /// p95 of the requests' mean ITL, seconds.
    pub itl_p95_seconds: f64,
    /// Mean replicas holding a GPU.
    pub mean_replicas: f64,
    /// Most replicas holding a GPU at once.
    pub peak_replicas: u32,
    /// Longest stretch after a burst onset with the 30 s TTFT p95 over the SLO, seconds.
    pub recover_seconds: f64,
}

/// A failed request's TTFT in the percentile tables: later than any real one.
const LOST_US: u64 = 3_600_000_000;

fn hdr() -> Hdr<u64> {
    // 1 µs .. 2 h at 3 significant digits; the bounds are constants.
    Hdr::new_with_bounds(1, 2 * LOST_US, 3).expect("valid constant hdrhistogram bounds")
}

fn p95(h: &Hdr<u64>) -> f64 {
    h.value_at_quantile(0.95) as f64 / 1e6
}

fn ttft_recorded_us(r: &Served) -> u64 {
    match (r.fate, r.ttft_us) {
        (Fate::Completed | Fate::Unfinished, Some(t)) => t.clamp(1, 2 * LOST_US),
        _ => LOST_US,
    }
}

fn itl_recorded_us(r: &Served) -> Option<u64> {
    match r.fate {
        Fate::Completed => r
            .mean_itl_s()
            .map(|s| ((s * 1e6) as u64).clamp(1, 2 * LOST_US)),
        Fate::TimedOut | Fate::Killed | Fate::Rejected => Some(LOST_US),
        Fate::Unfinished => None,
    }
}

fn windows(served: &[Served], width_s: f64, from_s: f64, to_s: f64) -> Vec<(Hdr<u64>, Hdr<u64>)> {
    let n = ((to_s - from_s) / width_s).ceil().max(1.0) as usize;
    let mut hs: Vec<(Hdr<u64>, Hdr<u64>)> = (0..n).map(|_| (hdr(), hdr())).collect();
    for r in served {
        let t = r.arrival_us as f64 / 1e6 - from_s;
        if t < 0.0 {
            continue;
        }
        if let Some((ttft, itl)) = hs.get_mut((t / width_s) as usize) {
            let _ = ttft.record(ttft_recorded_us(r));
            if let Some(v) = itl_recorded_us(r) {
                let _ = itl.record(v);
            }
        }
    }
    hs
}

/// True TTFT p95 per window of `width_s` from 0 to `duration_s`, by arrival (None: no
/// arrivals).
pub fn window_p95(served: &[Served], width_s: f64, duration_s: f64) -> Vec<Option<f64>> {
    windows(served, width_s, 0.0, duration_s)
        .iter()
        .map(|(h, _)| (!h.is_empty()).then(|| p95(h)))
        .collect()
}

/// Seconds until the 30 s TTFT p95 is back within `slo_s` after each onset (the worst), or the
/// longest breach when there are no onsets.
pub fn recover_seconds(served: &[Served], slo_s: f64, duration_s: f64, onsets_s: &[f64]) -> f64 {
    let step = 10.0;
    let hs = windows(served, step, 0.0, duration_s);
    let n = hs.len();
    // A step breaches when the p95 of the 30 s ending with it (exact samples merged) does.
    let breach: Vec<bool> = (0..n)
        .map(|i| {
            let mut h = hdr();
            for past in &hs[i.saturating_sub(2)..=i] {
                let _ = h.add(&past.0);
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

/// Actions that reverse the direction of the one before within 10 minutes.
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

/// Everything [`score`] needs about a run.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// Every request that arrived before the end.
    pub served: &'a [Served],
    /// Actions.
    pub actions: &'a [Action],
    /// Metric outages (start, length), seconds.
    pub outages: &'a [(f64, f64)],
    /// Burst onsets, seconds.
    pub onsets: &'a [f64],
    /// Start of the scored interval (the warm-up's end), seconds.
    pub from_s: f64,
    /// End of arrivals, seconds.
    pub duration_s: f64,
    /// The scoring SLOs.
    pub slo: Slo,
    /// GPU-seconds held in the scored interval.
    pub gpu_seconds: f64,
    /// The oracle's GPU-hours over the same interval.
    pub oracle_gpu_hours: f64,
    /// Most pods holding a GPU at once.
    pub peak_replicas: u32,
}

/// Scores a run over `[from_s, duration_s)`.
pub fn score(policy: &str, f: RunFacts<'_>) -> Scores {
    let from_us = (f.from_s * 1e6) as u64;
    let scored: Vec<&Served> = f
        .served
        .iter()
        .filter(|r| r.arrival_us >= from_us)
        .collect();
    let n = scored.len() as u64;
    let good = scored.iter().filter(|r| r.good(&f.slo)).count() as u64;
    let slo_us = (f.slo.ttft_s * 1e6) as u64;
    let fast = scored
        .iter()
        .filter(|r| r.fate != Fate::Rejected && r.ttft_us.is_some_and(|t| t <= slo_us))
        .count() as u64;
    let count = |fate| scored.iter().filter(|r| r.fate == fate).count() as u64;
    let ws = windows(f.served, 60.0, f.from_s, f.duration_s);
    let (ok_windows, all_windows) =
        ws.iter()
            .filter(|(t, _)| !t.is_empty())
            .fold((0u32, 0u32), |(g, t), (ttft, itl)| {
                let ok = p95(ttft) <= f.slo.ttft_s && (itl.is_empty() || p95(itl) <= f.slo.itl_s);
                (g + u32::from(ok), t + 1)
            });
    let (mut all_ttft, mut all_itl) = (hdr(), hdr());
    for r in &scored {
        let _ = all_ttft.record(ttft_recorded_us(r));
        if let Some(v) = itl_recorded_us(r) {
            let _ = all_itl.record(v);
        }
    }
    let span_s = (f.duration_s - f.from_s).max(0.0);
    let hours = span_s / 3600.0;
    let scored_actions: Vec<Action> = f
        .actions
        .iter()
        .filter(|a| a.t_s >= f.from_s && a.t_s < f.duration_s)
        .copied()
        .collect();
    let per_hour = |x: f64| if hours > 0.0 { x / hours } else { 0.0 };
    let in_outage = |t: f64| f.outages.iter().any(|(s, d)| t >= *s && t < s + d);
    let share = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Scores {
        policy: policy.to_string(),
        good_rate: share(good, n),
        goodput_per_gpu_second: if f.gpu_seconds > 0.0 {
            good as f64 / f.gpu_seconds
        } else {
            0.0
        },
        gpu_hours: f.gpu_seconds / 3600.0,
        oracle_gpu_hours: f.oracle_gpu_hours,
        slo_attainment_windows: share(u64::from(ok_windows), u64::from(all_windows)),
        slo_attainment_requests: share(fast, n),
        reversals_per_hour: per_hour(f64::from(reversals(&scored_actions))),
        actions_per_hour: per_hour(scored_actions.len() as f64),
        scale_downs_during_outage: f
            .actions
            .iter()
            .filter(|a| a.to < a.from && in_outage(a.t_s))
            .count() as u32,
        timed_out: count(Fate::TimedOut),
        killed: count(Fate::Killed),
        requests: n,
        ttft_p95_seconds: if n == 0 { 0.0 } else { p95(&all_ttft) },
        itl_p95_seconds: if all_itl.is_empty() {
            0.0
        } else {
            p95(&all_itl)
        },
        mean_replicas: if span_s > 0.0 {
            f.gpu_seconds / span_s
        } else {
            0.0
        },
        peak_replicas: f.peak_replicas,
        recover_seconds: recover_seconds(f.served, f.slo.ttft_s, f.duration_s, f.onsets),
    }
}

/// A mean over seeds and the half-width of its 95 % confidence interval (Student's t).
pub fn mean_ci95(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // Two-sided 97.5 % quantiles of Student's t for 1..=30 degrees of freedom, then normal.
    const T975: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let t = T975.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLO: Slo = Slo {
        ttft_s: 0.5,
        itl_s: 0.05,
    };

    fn req(t_s: f64, ttft_ms: Option<u64>) -> Served {
        Served {
            arrival_us: (t_s * 1e6) as u64,
            ttft_us: ttft_ms.map(|m| m * 1000),
            decode_us: Some(99_000),
            generated: 100,
            fate: if ttft_ms.is_some() {
                Fate::Completed
            } else {
                Fate::TimedOut
            },
        }
    }

    fn facts<'a>(served: &'a [Served], actions: &'a [Action]) -> RunFacts<'a> {
        RunFacts {
            served,
            actions,
            outages: &[(90.0, 20.0)],
            onsets: &[],
            from_s: 0.0,
            duration_s: 120.0,
            slo: SLO,
            gpu_seconds: 7200.0,
            oracle_gpu_hours: 1.0,
            peak_replicas: 5,
        }
    }

    #[test]
    fn good_rate_goodput_windows_and_reversals() {
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
        ];
        let s = score("x", facts(&served, &actions));
        assert!((s.good_rate - 300.0 / 601.0).abs() < 1e-9);
        assert!((s.goodput_per_gpu_second - 300.0 / 7200.0).abs() < 1e-12);
        assert_eq!(s.slo_attainment_windows, 0.5);
        assert_eq!(s.timed_out, 1);
        assert!(
            (s.reversals_per_hour - 30.0).abs() < 1e-9,
            "one in 2 minutes"
        );
        assert_eq!(s.scale_downs_during_outage, 1);
        assert!(
            (s.recover_seconds - 60.0).abs() < 1e-9,
            "{}",
            s.recover_seconds
        );
    }

    #[test]
    fn a_request_killed_mid_decode_is_a_failure_even_with_its_first_token() {
        let mut killed = req(1.0, Some(100));
        killed.fate = Fate::Killed;
        killed.decode_us = None;
        assert!(!killed.good(&SLO));
        let s = score("x", facts(&[killed, req(2.0, Some(100))], &[]));
        assert_eq!(s.good_rate, 0.5);
        assert_eq!(s.killed, 1);
    }

    #[test]
    fn a_slow_decode_fails_the_itl_slo() {
        let mut slow = req(1.0, Some(100));
        slow.decode_us = Some(99 * 60_000); // 60 ms per token
        assert!(!slow.good(&SLO));
        assert!(req(1.0, Some(100)).good(&SLO));
    }

    #[test]
    fn warm_up_is_not_scored() {
        let served = [req(10.0, Some(900)), req(70.0, Some(100))];
        let mut f = facts(&served, &[]);
        f.from_s = 60.0;
        let s = score("x", f);
        assert_eq!((s.requests, s.good_rate), (1, 1.0));
    }

    #[test]
    fn confidence_interval_of_a_mean() {
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12);
        assert!((h - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{h}");
        assert_eq!(mean_ci95(&[5.0]), (5.0, 0.0));
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
