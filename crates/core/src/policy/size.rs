//! Size: the fewest replicas that serve the forecast load within the SLOs.
//!
//! Each resource proposes `ceil(load / (capacity x share))`: requests per second and prompt
//! tokens per second against the rates [`Learned`] has bracketed (raised by exploration while
//! latency has room), KV usage against `kvCacheTarget`, and, only while no rate capacity is
//! known, requests in flight against the concurrency fallback. The largest is the binding one.
//! `share` is 1 to scale up and [`DOWN_HEADROOM`] to plan a removal, so that the next scale-up
//! is a real rise away.
//!
//! The SLO's utilisation ceiling comes from the queueing model every planner in arena.md uses
//! in some form: a replica at utilisation `rho` answers in `base / (1 - rho)`, so TTFT within
//! `ttftTargetMs` is `rho <= 1 - base / SLO` (the same for ITL), clamped to
//! [[`MIN_UTILIZATION`], [`MAX_UTILIZATION`]]; it bounds how far past a saturated throughput a
//! plan may go, and predicts the latency at the answer.
//!
//! [`DOWN_HEADROOM`]: super::constants::DOWN_HEADROOM

use super::constants::{MAX_UTILIZATION, MIN_UTILIZATION};
use super::learn::{Bracket, Learned};
use super::types::{Binding, Candidates, FleetTotal, PerReplica, PolicyConfig};

/// Forecast loads, fleet totals.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Loads {
    /// Requests arriving per second (`None`: none completed yet).
    pub requests: Option<f64>,
    /// Prompt tokens arriving per second (`None`: no token counters).
    pub prefill: Option<f64>,
    /// Requests in flight.
    pub demand: f64,
    /// KV usage, replica-fractions (`None`: no KV gauge).
    pub kv: Option<f64>,
}

/// How the sizing may read what it has learned this decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mode {
    /// Share of each capacity to plan for (1 up; less for a removal).
    pub share: f64,
    /// Latency has room: plan this share past the best-seen rates (0: not), see
    /// `learn::explore_margin`.
    pub explore: f64,
    /// The concurrency fallback may ask for more than the fleet has (it needs a measured
    /// TTFT or a queue; requests in flight alone, at a first scrape, are not evidence).
    pub fallback_may_raise: bool,
}

/// The sizing's answer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sizing {
    /// Replicas needed (before headroom and bounds).
    pub need: u32,
    /// Which resource asked for the most.
    pub binding: Binding,
    /// Every candidate.
    pub candidates: Candidates,
    /// The utilisation ceiling the SLOs allow.
    pub ceiling: f64,
    /// Per-replica request rate planned with (`None`: not known).
    pub requests_capacity: Option<f64>,
    /// Per-replica prompt-token rate planned with.
    pub prefill_capacity: Option<f64>,
}

/// The highest utilisation at which `base / (1 - rho)` stays within `target`.
pub fn ceiling_for(base_s: Option<f64>, target_s: f64) -> f64 {
    match base_s {
        Some(b) if target_s > 0.0 => (1.0 - b / target_s).clamp(MIN_UTILIZATION, MAX_UTILIZATION),
        _ => MAX_UTILIZATION,
    }
}

/// `base / (1 - rho)`, or `None` past saturation.
pub fn predicted(base_s: Option<f64>, rho: f64) -> Option<f64> {
    let b = base_s?;
    (rho < 1.0).then(|| b / (1.0 - rho.max(0.0)))
}

/// The utilisation ceiling both SLOs allow.
fn slo_ceiling(cfg: &PolicyConfig, learned: &Learned) -> f64 {
    ceiling_for(learned.ttft_base_s, cfg.ttft_target_s)
        .min(ceiling_for(learned.itl_base_s, cfg.itl_target_s))
}

/// Sizes for `now` at the mode's rates plus what `remembered` asks above it at the rates
/// already served well: the knee is probed with the load at hand, never with a burst that
/// may come back. Pure.
pub fn size_remembered(
    cfg: &PolicyConfig,
    learned: &Learned,
    now: &Loads,
    remembered: &Loads,
    mode: Mode,
) -> Sizing {
    let ceiling = slo_ceiling(cfg, learned);
    // The excess planned at the known rate is the excess scaled up by probe / known.
    let ratio = |b: &Bracket| match (b.capacity(mode.explore, ceiling), b.capacity(0.0, ceiling)) {
        (Some(probe), Some(known)) if known > 0.0 => probe / known,
        _ => 1.0,
    };
    let blend =
        |n: Option<f64>, r: Option<f64>, k: f64| n.map(|n| n + (r.unwrap_or(n) - n).max(0.0) * k);
    let loads = Loads {
        requests: blend(now.requests, remembered.requests, ratio(&learned.requests)),
        prefill: blend(
            now.prefill,
            remembered.prefill,
            ratio(&learned.prompt_tokens),
        ),
        demand: remembered.demand.max(now.demand),
        kv: match (now.kv, remembered.kv) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
    };
    size(cfg, learned, &loads, mode)
}

/// Sizes for `loads`. Pure.
pub fn size(cfg: &PolicyConfig, learned: &Learned, loads: &Loads, mode: Mode) -> Sizing {
    let ceiling = slo_ceiling(cfg, learned);
    let requests_capacity = learned.requests.capacity(mode.explore, ceiling);
    let prefill_capacity = learned.prompt_tokens.capacity(mode.explore, ceiling);
    let by_rate = |load: Option<f64>, cap: Option<f64>| match (load, cap) {
        (Some(l), Some(c)) if c > 0.0 => {
            Some(FleetTotal(l).replicas_needed(PerReplica(c), mode.share))
        }
        _ => None,
    };
    let requests = by_rate(loads.requests, requests_capacity);
    let prefill = by_rate(loads.prefill, prefill_capacity);
    let concurrency = (requests.is_none() && prefill.is_none()).then(|| {
        FleetTotal(loads.demand).replicas_needed(
            PerReplica(learned.concurrency(cfg)),
            MAX_UTILIZATION * mode.share,
        )
    });
    let kv_cache = loads
        .kv
        .map(|kv| FleetTotal(kv).replicas_needed(PerReplica(1.0), cfg.kv_target * mode.share));
    let mut need = 0;
    let mut binding = Binding::None;
    let fallback = if mode.fallback_may_raise || mode.share < 1.0 {
        concurrency
    } else {
        None
    };
    for (b, c) in [
        (Binding::Requests, requests),
        (Binding::Prefill, prefill),
        (Binding::Concurrency, fallback),
        (Binding::KvCache, kv_cache),
    ] {
        if let Some(c) = c
            && c > need
        {
            need = c;
            binding = b;
        }
    }
    Sizing {
        need,
        binding,
        candidates: Candidates {
            requests,
            prefill,
            concurrency,
            kv_cache,
            latency: None,
        },
        ceiling,
        requests_capacity,
        prefill_capacity,
    }
}

/// Predicted TTFT and ITL with `replicas` serving `loads`, against the saturated throughput
/// (`None` until the fleet has been seen saturated and the base latencies are known).
pub fn predict(learned: &Learned, loads: &Loads, replicas: u32) -> (Option<f64>, Option<f64>) {
    let sat = learned.requests.saturated;
    let Some(rate) = loads.requests.filter(|_| sat > 0.0) else {
        return (None, None);
    };
    let rho = rate / f64::from(replicas.max(1)) / sat;
    (
        predicted(learned.ttft_base_s, rho),
        predicted(learned.itl_base_s, rho),
    )
}

#[cfg(test)]
mod tests {
    use super::super::constants::EXPLORE;
    use super::super::learn::Bracket;
    use super::*;

    const UP: Mode = Mode {
        share: 1.0,
        explore: 0.0,
        fallback_may_raise: true,
    };

    #[test]
    fn the_slo_sets_how_hot_a_replica_may_run() {
        // Base TTFT 0.05 s against 0.5 s allows 0.9, capped at 0.8; base 1.2 s against a 2 s
        // SLO allows 0.4; a base above the SLO cannot be bought back below 0.3.
        assert_eq!(ceiling_for(Some(0.05), 0.5), MAX_UTILIZATION);
        assert!((ceiling_for(Some(1.2), 2.0) - 0.4).abs() < 1e-12);
        assert_eq!(ceiling_for(Some(3.0), 2.0), MIN_UTILIZATION);
        assert_eq!(ceiling_for(None, 0.5), MAX_UTILIZATION);
    }

    #[test]
    fn a_remembered_burst_is_planned_at_the_rate_served_well_and_the_load_at_hand_is_probed() {
        let cfg = PolicyConfig::default();
        let learned = Learned {
            requests: Bracket {
                good: 10.0,
                ..Bracket::default()
            },
            ..Learned::default()
        };
        let now = Loads {
            requests: Some(100.0),
            ..Loads::default()
        };
        let remembered = Loads {
            requests: Some(160.0),
            ..Loads::default()
        };
        let probe = Mode {
            explore: EXPLORE,
            ..UP
        };
        // Probing at 15 a replica: 100 / 15 = 6.7 for the load at hand, and the burst's other
        // 60 at the 10 served well: 6, so 13 (not 160 / 15 = 11, nor 160 / 10 = 16).
        let s = size_remembered(&cfg, &learned, &now, &remembered, probe);
        assert_eq!(s.need, 13);
        assert_eq!(size_remembered(&cfg, &learned, &now, &now, probe).need, 7);
        assert_eq!(
            size_remembered(&cfg, &learned, &now, &remembered, UP).need,
            16
        );
    }

    #[test]
    fn learned_rates_size_the_fleet_and_the_heavier_resource_binds() {
        let cfg = PolicyConfig::default();
        let learned = Learned {
            requests: Bracket {
                good: 40.0,
                ..Bracket::default()
            },
            prompt_tokens: Bracket {
                good: 20_000.0,
                ..Bracket::default()
            },
            ..Learned::default()
        };
        // 200 req/s over 40 = 5; 130 k tokens/s over 20 k = 6.5 -> 7 (long prompts bind).
        let loads = Loads {
            requests: Some(200.0),
            prefill: Some(130_000.0),
            demand: 900.0,
            kv: Some(2.0),
        };
        let s = size(&cfg, &learned, &loads, UP);
        assert_eq!((s.need, s.binding), (7, Binding::Prefill));
        assert_eq!(s.candidates.requests, Some(5));
        assert_eq!(s.candidates.concurrency, None);
        assert_eq!(s.candidates.kv_cache, Some(3));
        // Exploring: 20 k x 1.5 = 30 k -> 5; planning a removal at 0.85: 130 / 25.5 = 5.1 -> 6.
        let explore = Mode {
            explore: EXPLORE,
            ..UP
        };
        assert_eq!(
            size(&cfg, &learned, &loads, explore).candidates.prefill,
            Some(5)
        );
        let down = Mode {
            share: 0.85,
            ..explore
        };
        assert_eq!(
            size(&cfg, &learned, &loads, down).candidates.prefill,
            Some(6)
        );
    }

    #[test]
    fn without_rate_capacity_requests_in_flight_size_it_given_evidence() {
        let cfg = PolicyConfig::default();
        // 48 per replica at the 0.8 ceiling = 38.4; 100 in flight -> 3.
        let loads = Loads {
            demand: 100.0,
            ..Loads::default()
        };
        let s = size(&cfg, &Learned::default(), &loads, UP);
        assert_eq!((s.need, s.binding), (3, Binding::Concurrency));
        // In flight alone, with no TTFT and no queue, does not raise the fleet, but does
        // hold a removal back: 100 / (48 x 0.68) = 3.06 -> 4.
        let blind = Mode {
            fallback_may_raise: false,
            ..UP
        };
        assert_eq!(size(&cfg, &Learned::default(), &loads, blind).need, 0);
        let down = Mode {
            share: 0.85,
            ..blind
        };
        assert_eq!(size(&cfg, &Learned::default(), &loads, down).need, 4);
    }

    #[test]
    fn latency_is_predicted_from_the_saturated_throughput() {
        let learned = Learned {
            requests: Bracket {
                saturated: 50.0,
                ..Bracket::default()
            },
            ttft_base_s: Some(0.1),
            ..Learned::default()
        };
        let loads = Loads {
            requests: Some(300.0),
            ..Loads::default()
        };
        // 8 replicas: 37.5 each of 50 = 0.75; 0.1 / 0.25 = 0.4 s.
        let (ttft, itl) = predict(&learned, &loads, 8);
        assert!((ttft.unwrap_or(0.0) - 0.4).abs() < 1e-9);
        assert_eq!(itl, None);
        assert_eq!(predict(&Learned::default(), &loads, 8), (None, None));
    }
}
