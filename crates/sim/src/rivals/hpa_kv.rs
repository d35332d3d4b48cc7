//! An HPA on the pods' mean KV-cache usage through prometheus-adapter (`Pods` metric
//! `vllm:kv_cache_usage_perc`, `AverageValue` 0.5), the Kubernetes default behavior; no series
//! means no metric and the HPA holds. The memory-pressure design of GKE's and KServe's vLLM
//! autoscaling guides. Knob: the target.

use crate::autoscaler::Autoscaler;
use crate::keda::{Behavior, MetricKind};

use super::{Knob, Rival, Setup, hpa_driven};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "hpa-kv",
    source: "HPA + prometheus-adapter on vllm:kv_cache_usage_perc (GKE/KServe vLLM guides)",
    knobs: &[Knob {
        name: "target",
        default: 0.5,
        grid: &[0.05, 0.1, 0.2, 0.3, 0.5],
        tuned: 0.05,
    }],
    build,
};

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    // Through prometheus-adapter: no series, no metric, and the HPA holds.
    hpa_driven::build(
        s,
        Behavior::kubernetes_defaults(),
        MetricKind::PodsAverage { target: v[0] },
        Box::new(|view| view.prom.mean_kv(view.now_ms)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gauges, setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn mean_usage_of_point_eight_over_target_half_on_four_ready_asks_for_seven() {
        let mut prom = Prometheus::new(600_000);
        for (i, kv) in [0.9, 0.7, 0.8, 0.8].into_iter().enumerate() {
            prom.ingest(i as u64, gauges(10_000, 0.0, 0.0, kv));
        }
        let engine = Default::default();
        let mut r = build(&setup(), &[0.5]);
        // ceil(0.8 / 0.5 x 4) = ceil(6.4) = 7.
        assert_eq!(r.tick(0, &view(&prom, &engine, 15_000, 4, 4, 4)), Some(7));
        // No series: no metric, hold.
        let empty = Prometheus::new(600_000);
        assert_eq!(r.tick(0, &view(&empty, &engine, 30_000, 7, 7, 7)), None);
    }
}
