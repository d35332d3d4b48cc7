//! Dynamo Planner's reactive load mode (Dynamo `planner-guide.md`, `planner-design.md`;
//! arena.md), a direct planner every 5 s: from each engine's load (its waiting and running
//! requests and KV tokens, read through Prometheus) and the pre-deployment profile it
//! estimates that engine's TTFT (queued prefill work plus one prefill) and ITL (its decode
//! step); +1 replica when every engine's estimate exceeds the TTFT or ITL SLA, -1 when every
//! engine is under SLA x 0.8 on both; no new action while the previous one is pending. The
//! planner also reads the frontend's observed TTFT (its SLA mode's correction): a fleet whose
//! observed median TTFT over the last minute exceeds the SLA scales up even when the engines'
//! own queues look short (a saturated API server queues in front of them). The throughput
//! mode's 180 s predictive floor is not ported (it is optional). Knob: the scale-down factor.

use crate::autoscaler::{Autoscaler, View};
use crate::score::Slo;

use super::plant::{Mix, prefill_s};
use super::{Knob, Rival, Setup};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "dynamo-planner-load",
    source: "NVIDIA Dynamo planner-guide.md / planner-design.md (load-based mode)",
    knobs: &[Knob {
        name: "down_factor",
        default: 0.8,
        grid: &[0.15, 0.3, 0.5, 0.8],
        tuned: 0.15,
    }],
    build,
};

/// Planner period.
const PERIOD_MS: u64 = 5000;

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    Box::new(LoadPlanner {
        slo: s.slo,
        down_factor: v[0].clamp(0.05, 1.0),
        mix: None,
        last: None,
    })
}

struct LoadPlanner {
    slo: Slo,
    down_factor: f64,
    mix: Option<Mix>,
    last: Option<f64>,
}

/// One engine's estimated TTFT and ITL, seconds.
fn estimate(
    e: &crate::worker::EngineParams,
    mix: Mix,
    waiting: f64,
    running: f64,
    kv: f64,
) -> (f64, f64) {
    let t_prefill = prefill_s(e, mix.isl);
    // Chunked prefill packs prompts into steps: the queue drains at the prefill rate.
    let prefill_tok_s = mix.isl / e.prefill_s(0, mix.isl.max(1.0) as u32).max(1e-9);
    let ttft = t_prefill + waiting * mix.isl / prefill_tok_s;
    let itl = e.step_s(
        0.0,
        running.max(0.0) as usize,
        (kv * e.kv_capacity_tokens as f64) as u64,
    );
    (ttft, itl)
}

impl Autoscaler for LoadPlanner {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![PERIOD_MS]
    }

    fn tick(&mut self, _: usize, view: &View<'_>) -> Option<u32> {
        if view.spec > view.ready || view.provisioned > view.ready {
            return None;
        }
        let mix = Mix::observe(view.prom, view.now_ms, self.mix);
        self.mix = Some(mix);
        let estimates: Vec<(f64, f64)> = view
            .prom
            .instant(view.now_ms)
            .map(|s| estimate(view.engine, mix, s.waiting, s.running, s.kv))
            .collect();
        if estimates.is_empty() {
            return None;
        }
        self.last = estimates.iter().map(|e| e.0).reduce(f64::max);
        let (ttft, itl) = (self.slo.ttft_s, self.slo.itl_s);
        let observed = view
            .prom
            .quantile(crate::prom::HistogramFamily::Ttft, view.now_ms, 60_000, 0.5)
            .unwrap_or(0.0);
        if observed > ttft || estimates.iter().all(|&(t, i)| t > ttft || i > itl) {
            return Some(view.spec + 1);
        }
        let f = self.down_factor;
        if view.spec > 1
            && observed < ttft * f
            && estimates.iter().all(|&(t, i)| t < ttft * f && i < itl * f)
        {
            return Some(view.spec - 1);
        }
        None
    }

    fn metric(&self) -> Option<f64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gauges, setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn one_step_up_when_every_engine_is_over_and_nothing_while_pending() {
        let engine = crate::worker::EngineParams::default();
        let mix = Mix {
            isl: 1000.0,
            osl: 200.0,
        };
        // 150 prompts of 1000 tokens queued at ~376 k tok/s: ~0.4 s + 3.7 ms.
        let (t, _) = estimate(&engine, mix, 150.0, 10.0, 0.1);
        assert!(
            (t - (0.0037 + 150.0 * 1000.0 / 376_000.0)).abs() < 0.01,
            "{t}"
        );
        let mut prom = Prometheus::new(600_000);
        prom.ingest(1, gauges(10_000, 300.0, 100.0, 0.3));
        prom.ingest(2, gauges(10_000, 250.0, 100.0, 0.3));
        let mut p = build(&setup(), &[0.8]);
        assert_eq!(p.tick(0, &view(&prom, &engine, 15_000, 2, 2, 2)), Some(3));
        assert_eq!(
            p.tick(0, &view(&prom, &engine, 20_000, 3, 2, 3)),
            None,
            "pending"
        );
        // One engine under the SLA: no scale-up.
        prom.ingest(2, gauges(20_000, 0.0, 10.0, 0.01));
        assert_eq!(p.tick(0, &view(&prom, &engine, 25_000, 3, 3, 3)), None);
        // Every engine well under: one down.
        prom.ingest(1, gauges(25_000, 0.0, 10.0, 0.01));
        prom.ingest(3, gauges(25_000, 0.0, 10.0, 0.01));
        assert_eq!(p.tick(0, &view(&prom, &engine, 30_000, 3, 3, 3)), Some(2));
    }
}
