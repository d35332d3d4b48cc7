//! Dynamo's HPA + prometheus-adapter variant of the reference design (Dynamo docs,
//! kubernetes-operator `autoscaling.md`; arena.md): the frontend's TTFT p95
//! (`histogram_quantile(0.95, sum(rate(dynamo_frontend_time_to_first_token_seconds_bucket[5m])) by (le))`)
//! as an External metric with a `Value` target of 500m; scale-up 2 pods per 30 s without
//! stabilisation; scale-down 1 pod per 30 s with a 60 s window. No data: the adapter returns
//! nothing and the HPA holds. Knob: the target.

use crate::autoscaler::Autoscaler;
use crate::keda::{Behavior, MetricKind, PolicyKind};

use super::{Knob, Rival, Setup, hpa_driven, rules};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "dynamo-hpa-ttft",
    source: "Dynamo docs, kubernetes-operator autoscaling.md (HPA + prometheus-adapter)",
    knobs: &[Knob {
        name: "target",
        default: 0.5,
        grid: &[0.1, 0.15, 0.25, 0.5],
        tuned: 0.15,
    }],
    build,
};

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    let behavior = Behavior {
        up: rules(0, &[(PolicyKind::Pods, 2, 30)]),
        down: rules(60, &[(PolicyKind::Pods, 1, 30)]),
    };
    hpa_driven::build(
        s,
        behavior,
        MetricKind::ExternalValue { target: v[0] },
        Box::new(|view| view.prom.ttft_quantile(view.now_ms, 300_000, 0.95)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{buckets, gauges, setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn value_target_scales_the_ready_count_two_pods_at_a_time() {
        // p95 in (0.75, 1.0]: 0.75 + 0.95 x 0.25 = 0.9875 s; Value 0.5 on 3 ready pods ->
        // ceil(1.975 x 3) = 6, limited to +2 per 30 s -> 5.
        let mut prom = Prometheus::new(600_000);
        let mut a = gauges(1_000, 0.0, 0.0, 0.0);
        a.ttft = buckets(11, 0);
        let mut b = gauges(15_000, 0.0, 0.0, 0.0);
        b.ttft = buckets(11, 100);
        prom.ingest(1, a);
        prom.ingest(1, b);
        let engine = Default::default();
        let mut r = build(&setup(), &[0.5]);
        assert_eq!(r.tick(0, &view(&prom, &engine, 15_000, 3, 3, 3)), Some(5));
        // 15 s later the +2 of the last 30 s is used up.
        assert_eq!(r.tick(0, &view(&prom, &engine, 30_000, 5, 3, 5)), None);
    }
}
