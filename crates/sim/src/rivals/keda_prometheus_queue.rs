//! KEDA's Prometheus trigger on the fleet's queue, `sum(vllm:num_requests_waiting)`, threshold
//! 10 per replica (`AverageValue`), the Kubernetes default HPA behavior: the queue-depth design
//! of KEDA's and vLLM production-stack's examples. Knob: the threshold.

use crate::autoscaler::Autoscaler;
use crate::keda::{Behavior, MetricKind};

use super::{Knob, Rival, Setup, hpa_driven};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "keda-prometheus-queue",
    source: "KEDA prometheus scaler on vllm:num_requests_waiting (vLLM production-stack tutorial)",
    knobs: &[Knob {
        name: "threshold",
        default: 10.0,
        grid: &[0.5, 1.0, 2.0, 5.0, 10.0],
        tuned: 0.5,
    }],
    build,
};

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    hpa_driven::build(
        s,
        Behavior::kubernetes_defaults(),
        MetricKind::ExternalAverageValue { target: v[0] },
        Box::new(|view| Some(view.prom.sum_waiting(view.now_ms).unwrap_or(0.0))),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gauges, setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn forty_five_waiting_at_threshold_ten_asks_for_five() {
        let mut prom = Prometheus::new(600_000);
        prom.ingest(1, gauges(10_000, 30.0, 0.0, 0.0));
        prom.ingest(2, gauges(10_000, 15.0, 0.0, 0.0));
        let engine = Default::default();
        let mut r = build(&setup(), &[10.0]);
        assert_eq!(r.tick(0, &view(&prom, &engine, 15_000, 3, 3, 3)), Some(5));
    }
}
