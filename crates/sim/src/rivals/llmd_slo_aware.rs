//! llm-d's SLO-aware control law through KEDA `scalingModifiers` (llm-d/llm-d
//! `guides/workload-autoscaling/README.slo-aware.md`; arena.md):
//! - signal `s = max(p90 TTFT / SLO_ttft, p90 TPOT / SLO_tpot)` from 1-minute histogram rates
//!   (NaN or no traffic reads 0), clamped at 2.0, recorded every 15 s and averaged over 45 s,
//!   on a Prometheus scraping every 5 s;
//! - with `n` provisioned and `r` ready replicas: above the up threshold (0.55)
//!   `d = n + ceil(n (s r/n / 0.55 - 1))`, below the down threshold (0.40)
//!   `d = n - floor(n (1 - s / 0.40))`, else `d = n` (the r/n credit on the way up only);
//! - the HPA: up max(100 %, 4 pods) per 60 s with a 30 s window, down 1 pod per 120 s with a
//!   180 s window.
//!
//! TPOT is read from `vllm:inter_token_latency_seconds`. Knob: the up threshold (the down
//! threshold keeps its 0.40 / 0.55 ratio to it).

use std::collections::VecDeque;

use crate::autoscaler::{Autoscaler, HpaLoop, View};
use crate::keda::{Behavior, MetricKind, PolicyKind};
use crate::prom::HistogramFamily;
use crate::score::Slo;

use super::{Knob, Rival, Setup, rules};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "llmd-slo-aware",
    source: "llm-d guides/workload-autoscaling/README.slo-aware.md",
    knobs: &[Knob {
        name: "up_threshold",
        default: 0.55,
        grid: &[0.3, 0.4, 0.55, 0.7],
        tuned: 0.55,
    }],
    build,
};

/// The signal's clamp.
const S_MAX: f64 = 2.0;
/// Recording-rule evaluations averaged (45 s of 15 s evaluations).
const AVERAGED: usize = 3;
/// The documented thresholds' ratio.
const DOWN_OVER_UP: f64 = 0.40 / 0.55;

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    let behavior = Behavior {
        up: rules(
            30,
            &[(PolicyKind::Percent, 100, 60), (PolicyKind::Pods, 4, 60)],
        ),
        down: rules(180, &[(PolicyKind::Pods, 1, 120)]),
    };
    Box::new(SloAware {
        hpa: HpaLoop::new(s.cluster.hpa(
            s.min,
            s.max,
            Some(behavior),
            MetricKind::ExternalAverageValue { target: 1.0 },
        )),
        slo: s.slo,
        up: v[0],
        down: v[0] * DOWN_OVER_UP,
        recorded: VecDeque::new(),
        period_ms: s.hpa_sync_ms,
    })
}

struct SloAware {
    hpa: HpaLoop,
    slo: Slo,
    up: f64,
    down: f64,
    recorded: VecDeque<f64>,
    period_ms: u64,
}

/// The law: desired replicas for signal `s` with `n` provisioned and `r` ready.
fn law(s: f64, n: u32, r: u32, up: f64, down: f64) -> f64 {
    let nf = f64::from(n.max(1));
    if s > up {
        nf + (nf * (s * (f64::from(r) / nf) / up - 1.0)).ceil()
    } else if s < down {
        nf - (nf * (1.0 - s / down)).floor()
    } else {
        nf
    }
}

impl Autoscaler for SloAware {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![self.period_ms]
    }

    fn prometheus_scrape_ms(&self) -> Option<u64> {
        Some(5000)
    }

    fn tick(&mut self, _: usize, view: &View<'_>) -> Option<u32> {
        let q = |f| view.prom.quantile(f, view.now_ms, 60_000, 0.9);
        let ttft = q(HistogramFamily::Ttft).map_or(0.0, |x| x / self.slo.ttft_s);
        let tpot = q(HistogramFamily::Itl).map_or(0.0, |x| x / self.slo.itl_s);
        let raw = ttft.max(tpot);
        let s = if raw.is_finite() { raw.min(S_MAX) } else { 0.0 };
        self.recorded.push_back(s);
        while self.recorded.len() > AVERAGED {
            self.recorded.pop_front();
        }
        let avg = self.recorded.iter().sum::<f64>() / self.recorded.len() as f64;
        let d = law(avg, view.provisioned, view.ready, self.up, self.down).max(0.0);
        self.hpa.sync(view, Some(d))
    }

    fn metric(&self) -> Option<f64> {
        self.recorded.back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_law_as_written() {
        // s = 1.1 with 4 of 4 ready: 4 + ceil(4 x (1.1 / 0.55 - 1)) = 8.
        assert_eq!(law(1.1, 4, 4, 0.55, 0.40), 8.0);
        // With 2 of 4 ready the credit halves the push: 4 + ceil(4 x (0.55 / 0.55 - 1)) = 4.
        assert_eq!(law(1.1, 4, 2, 0.55, 0.40), 4.0);
        // s = 0.1 on 8: 8 - floor(8 x (1 - 0.25)) = 2.
        assert_eq!(law(0.1, 8, 8, 0.55, 0.40), 2.0);
        // In the band: hold.
        assert_eq!(law(0.5, 5, 5, 0.55, 0.40), 5.0);
    }

    #[test]
    fn a_burst_doubles_then_the_hpa_limits_the_way_down() {
        use super::super::testing::{buckets, gauges, setup, view};
        use crate::prom::Prometheus;
        // TTFT all in (0.5, 0.75]: p90 = 0.5 + 0.9 x 0.25 = 0.725 s -> 1.45 x the SLO.
        let mut prom = Prometheus::new(600_000);
        let mut a = gauges(1_000, 0.0, 0.0, 0.0);
        a.ttft = buckets(10, 0);
        let mut b = gauges(10_000, 0.0, 0.0, 0.0);
        b.ttft = buckets(10, 50);
        prom.ingest(1, a);
        prom.ingest(1, b);
        let engine = Default::default();
        let mut r = build(&setup(), &[0.55]);
        // d = 4 + ceil(4 x (1.45 / 0.55 - 1)) = 4 + 7 = 11, but the 30 s up window still
        // holds the fleet's own 4 ...
        let v = |t| view(&prom, &engine, t, 4, 4, 4);
        assert_eq!(r.tick(0, &v(15_000)), None);
        assert_eq!(r.tick(0, &v(30_000)), None);
        // ... until it has passed; then the up limit max(4 + 4, 2 x 4) = 8 applies.
        assert_eq!(r.tick(0, &v(45_000)), Some(8));
    }
}
