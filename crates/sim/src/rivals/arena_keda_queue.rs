//! The Autoscaling Arena's KEDA/HPA port ("keda-default", NVIDIA Dynamo Planner Gym, Dynamo
//! docs v1.6-1.7 planner examples; arena.md): `AverageValue` on the fleet's summed
//! `vllm:num_requests_waiting`, target 5 per replica, HPA v2 math with tolerance 0.1,
//! scale-up stabilisation 0 s with max(4 pods, 100 %) per 15 s, scale-down stabilisation
//! 300 s; a missing metric holds; KEDA polls every 15 s. Knob: the target.

use crate::autoscaler::Autoscaler;
use crate::keda::{Behavior, MetricKind};

use super::{Knob, Rival, Setup, hpa_driven};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "arena-keda-queue",
    source: "NVIDIA Autoscaling Arena keda-default (Dynamo Planner Gym)",
    knobs: &[Knob {
        name: "target",
        default: 5.0,
        grid: &[0.5, 1.0, 2.0, 5.0, 10.0],
        tuned: 0.5,
    }],
    build,
};

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    // Up max(4 pods, 100 %) per 15 s without a window, down after a 300 s window: the
    // Kubernetes defaults.
    let behavior = Behavior::kubernetes_defaults();
    hpa_driven::build(
        s,
        behavior,
        MetricKind::ExternalAverageValue { target: v[0] },
        Box::new(|view| view.prom.sum_waiting(view.now_ms)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gauges, setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn sixty_waiting_on_two_replicas_at_target_five_goes_to_six_then_twelve() {
        let mut prom = Prometheus::new(600_000);
        prom.ingest(1, gauges(10_000, 40.0, 0.0, 0.0));
        prom.ingest(2, gauges(10_000, 20.0, 0.0, 0.0));
        let engine = Default::default();
        let mut r = build(&setup(), &[5.0]);
        // ceil(60 / 5) = 12, limited to max(2 + 4, 2 x 2) = 6 in the first 15 s.
        assert_eq!(r.tick(0, &view(&prom, &engine, 15_000, 2, 2, 2)), Some(6));
        prom.ingest(1, gauges(25_000, 40.0, 0.0, 0.0));
        prom.ingest(2, gauges(25_000, 20.0, 0.0, 0.0));
        assert_eq!(r.tick(0, &view(&prom, &engine, 30_000, 6, 2, 6)), Some(12));
        // Inside the 10 % band (58 / 5 / 12 = 0.97): hold.
        prom.ingest(1, gauges(40_000, 38.0, 0.0, 0.0));
        assert_eq!(r.tick(0, &view(&prom, &engine, 45_000, 12, 12, 12)), None);
        // No series: the metric is missing and the HPA holds.
        let empty = Prometheus::new(600_000);
        assert_eq!(r.tick(0, &view(&empty, &engine, 60_000, 12, 12, 12)), None);
    }
}
