//! KServe's LLM autoscaling on in-flight concurrency: KEDA's Prometheus trigger on
//! `sum(vllm:num_requests_running)` with an `AverageValue` target per pod (KServe docs,
//! "Autoscaling with KEDA" for the Hugging Face/vLLM runtime; arena.md), the Kubernetes
//! default HPA behavior. The default target here is Knative's default concurrency target of
//! 100 in-flight requests per pod. Knob: the target.

use crate::autoscaler::Autoscaler;
use crate::keda::{Behavior, MetricKind};

use super::{Knob, Rival, Setup, hpa_driven};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "kserve-concurrency",
    source: "KServe docs, autoscaling with KEDA on vllm:num_requests_running",
    knobs: &[Knob {
        name: "target",
        default: 100.0,
        grid: &[10.0, 25.0, 50.0, 100.0, 200.0],
        tuned: 10.0,
    }],
    build,
};

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    hpa_driven::build(
        s,
        Behavior::kubernetes_defaults(),
        MetricKind::ExternalAverageValue { target: v[0] },
        Box::new(|view| Some(view.prom.sum_running(view.now_ms).unwrap_or(0.0))),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gauges, setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn three_hundred_and_fifty_running_at_target_100_asks_for_four() {
        let mut prom = Prometheus::new(600_000);
        prom.ingest(1, gauges(10_000, 0.0, 200.0, 0.0));
        prom.ingest(2, gauges(10_000, 0.0, 150.0, 0.0));
        let engine = Default::default();
        let mut r = build(&setup(), &[100.0]);
        assert_eq!(r.tick(0, &view(&prom, &engine, 15_000, 2, 2, 2)), Some(4));
    }
}
