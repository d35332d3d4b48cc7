//! The development loads: the synthetic stressors and scenarios a real fleet sees, sized in
//! replicas' worth of work for their request mix, and a trace scaled to a target peak.

use crate::load::{self, Lengths, Request, Shape, TraceRow};
use crate::rng::Rng;
use crate::run::{Scenario, SimParams};

/// Every synthetic scenario, by name.
pub const SYNTHETIC: [&str; 9] = [
    "poisson",
    "step",
    "ramp",
    "sawtooth",
    "flash",
    "outage-90s",
    "outage-10m",
    "diurnal",
    "long-context",
];

/// A synthetic load's share of one replica's capacity per replica of work it is sized in.
const LOAD_PER_REPLICA: f64 = 0.7;

/// The scoring TTFT SLO the field uses for long prompts (the Autoscaling Arena's 2 s).
pub const LONG_CONTEXT_TTFT_SLO_S: f64 = 2.0;

/// A synthetic scenario and the SLO the field scores it at.
#[derive(Debug, Clone)]
pub struct Built {
    /// The scenario.
    pub scenario: Scenario,
    /// The TTFT SLO the field scores this kind of load at, when it differs from the default.
    pub ttft_slo_s: Option<f64>,
}

/// The long-context mix: log-normal prompts (median 8 k tokens, up to 32 k), chat-sized
/// outputs.
pub fn long_context_mix(rng: &mut Rng) -> Lengths {
    load::long_context_lengths(8000.0, 0.6, 32_768, &[64, 128, 256, 512], 4000, rng)
}

/// Builds synthetic scenario `kind`; `mix` draws request sizes (512/128 tokens when `None`;
/// the long-context scenario has its own), `duration_s` overrides its length.
pub fn synthetic(
    kind: &str,
    params: &SimParams,
    mix: Option<&Lengths>,
    duration_s: Option<f64>,
    seed: u64,
) -> Result<Built, String> {
    let mut rng = Rng::new(seed).fork(0x10ad);
    let fixed = Lengths::Fixed {
        prompt: 512,
        generate: 128,
    };
    let (lengths, ttft_slo_s) = match kind {
        "long-context" => (long_context_mix(&mut rng), Some(LONG_CONTEXT_TTFT_SLO_S)),
        _ => (mix.cloned().unwrap_or(fixed), None),
    };
    let mut sizing = params.clone();
    if let Some(s) = ttft_slo_s {
        sizing.slo.ttft_s = s;
    }
    let cap = crate::calibrate_capacity(&sizing, &lengths, seed);
    let r = |replicas: f64| replicas * cap * LOAD_PER_REPLICA;
    let start = params.pod_start.mean();
    let (shape, duration, onsets, outages) = match kind {
        "poisson" => (Shape::Poisson { rate: r(6.0) }, 1800.0, vec![], vec![]),
        "step" => (
            Shape::Step {
                base: r(3.0),
                factor: 4.0,
                at_s: 1200.0,
            },
            2400.0,
            vec![1200.0],
            vec![],
        ),
        "ramp" => (
            Shape::Ramp {
                from: r(1.0),
                to: r(12.0),
            },
            3600.0,
            vec![],
            vec![],
        ),
        "sawtooth" => (
            Shape::Sawtooth {
                low: r(3.0),
                high: r(9.0),
                period_s: (4.0 * start).max(60.0),
            },
            3000.0,
            vec![],
            vec![],
        ),
        "flash" => (
            Shape::FlashCrowd {
                base: r(2.0),
                peak: r(12.0),
                at_s: 1200.0,
                rise_s: 30.0,
                decay_s: 300.0,
            },
            2400.0,
            vec![1200.0],
            vec![],
        ),
        "outage-90s" => (
            Shape::Poisson { rate: r(6.0) },
            2400.0,
            vec![],
            vec![(1200.0, 90.0)],
        ),
        "outage-10m" => (
            Shape::Poisson { rate: r(6.0) },
            2400.0,
            vec![],
            vec![(1200.0, 600.0)],
        ),
        // A day compressed into 2 hours (--duration 86400 runs the whole day): from 25 % of
        // the peak at 04:00 to 10 replicas' worth at 16:00.
        "diurnal" => (
            Shape::Diurnal {
                peak: r(10.0),
                trough: 0.25,
            },
            2.0 * 3600.0,
            vec![],
            vec![],
        ),
        "long-context" => (
            Shape::Sawtooth {
                low: r(2.0),
                high: r(6.0),
                period_s: 1200.0,
            },
            3600.0,
            vec![],
            vec![],
        ),
        other => {
            return Err(format!(
                "unknown scenario {other:?}; one of {}",
                SYNTHETIC.join(", ")
            ));
        }
    };
    let duration = duration_s.unwrap_or(duration);
    let requests = load::synthetic(&shape, duration, &lengths, &mut rng);
    let name = match kind {
        "diurnal" => "diurnal (synthetic day)".to_string(),
        "long-context" => "long-context (synthetic)".to_string(),
        k => k.to_string(),
    };
    Ok(Built {
        scenario: Scenario {
            name,
            requests,
            duration_s: duration,
            outages,
            onsets: onsets.into_iter().filter(|o| *o < duration).collect(),
        },
        ttft_slo_s,
    })
}

/// A trace's request sizes, sampled (at most 5000 pairs).
pub fn trace_mix(rows: &[TraceRow]) -> Lengths {
    Lengths::Empirical(
        rows.iter()
            .step_by((rows.len() / 5000).max(1))
            .map(|r| (r.context.max(1), r.generated.max(1)))
            .collect(),
    )
}

/// The rate scale that puts a trace's busiest minute at `target_peak` replicas' worth of one
/// replica's calibrated capacity for its mix.
pub fn auto_rate_scale(
    rows: &[TraceRow],
    speedup: f64,
    target_peak: u32,
    params: &SimParams,
    seed: u64,
) -> (f64, f64) {
    let cap = crate::calibrate_capacity(params, &trace_mix(rows), seed);
    let span = rows.last().map_or(60.0, |r| r.t_s) / speedup;
    let minutes = (span / 60.0).ceil().max(1.0) as usize;
    let mut per_min = vec![0u64; minutes];
    for r in rows {
        let m = ((r.t_s / speedup) / 60.0) as usize;
        if let Some(c) = per_min.get_mut(m.min(minutes - 1)) {
            *c += 1;
        }
    }
    let peak_rps = per_min.iter().copied().max().unwrap_or(1) as f64 / 60.0;
    (f64::from(target_peak) * cap / peak_rps.max(1e-9), cap)
}

/// Largest prompt a trace row may carry (the model's context).
pub const MAX_PROMPT: u32 = 40_960;

/// A trace at `scale` (copies at independent offsets within +-`spread_s`) and `speedup`.
pub fn trace(
    name: &str,
    rows: &[TraceRow],
    scale: f64,
    speedup: f64,
    spread_s: f64,
    duration_s: Option<f64>,
    seed: u64,
) -> Scenario {
    let mut rng = Rng::new(seed).fork(0x10ad);
    let requests: Vec<Request> =
        load::from_trace(rows, scale, speedup, MAX_PROMPT, spread_s, &mut rng);
    let span = rows.last().map_or(0.0, |r| r.t_s) / speedup;
    Scenario {
        name: format!("{name} x{scale:.1}"),
        requests,
        duration_s: duration_s.unwrap_or(span + 60.0),
        outages: Vec::new(),
        onsets: Vec::new(),
    }
}
