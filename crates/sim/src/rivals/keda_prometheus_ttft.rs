//! The seed's reference design, as Microsoft's and NVIDIA's AKS guides publish it: KEDA's
//! Prometheus trigger on `histogram_quantile(0.95, sum(rate(vllm:time_to_first_token_seconds_bucket[5m])) by (le))`,
//! threshold 0.5 (s), `metricType: AverageValue` (KEDA's default), `ignoreNullValues` true (an
//! empty result reads 0), the Kubernetes default HPA behavior. AverageValue divides a latency
//! by the replica count, which is why the design scales oddly (autoscaling-design.md §7); it is
//! ported as published. Knob: the threshold.

use crate::autoscaler::Autoscaler;
use crate::keda::{Behavior, MetricKind};

use super::{Knob, Rival, Setup, hpa_driven};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "keda-prometheus-ttft",
    source: "AKS + KEDA TTFT guide (the seed's reference design); KEDA prometheus scaler",
    knobs: &[Knob {
        name: "threshold",
        default: 0.5,
        grid: &[0.05, 0.1, 0.25, 0.5],
        tuned: 0.05,
    }],
    build,
};

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    // ignoreNullValues: an empty or NaN result is 0.
    hpa_driven::build(
        s,
        Behavior::kubernetes_defaults(),
        MetricKind::ExternalAverageValue { target: v[0] },
        Box::new(|view| {
            Some(
                view.prom
                    .ttft_quantile(view.now_ms, 300_000, 0.95)
                    .unwrap_or(0.0),
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{buckets, gauges, setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn a_p95_of_two_seconds_over_average_value_half_a_second_asks_for_four() {
        // 100 requests, all in (1.0, 2.5] s: p95 = 1.0 + 0.95 x 1.5 ~ 2.43 s; AverageValue 0.5
        // -> ceil(2.43 / 0.5) = 5, clamped by the default up policy max(4 pods, 100 %) from 2
        // -> 4... the rate limit lets 2 -> max(2 + 4, 2 x 2) = 6, so 5.
        let mut prom = Prometheus::new(600_000);
        let mut a = gauges(1_000, 0.0, 0.0, 0.0);
        a.ttft = buckets(12, 0);
        let mut b = gauges(15_000, 0.0, 0.0, 0.0);
        b.ttft = buckets(12, 100);
        prom.ingest(1, a);
        prom.ingest(1, b);
        let engine = Default::default();
        let mut r = build(&setup(), &[0.5]);
        assert_eq!(r.tick(0, &view(&prom, &engine, 15_000, 2, 2, 2)), Some(5));
        // No traffic: the result is empty, read as 0, and the fleet goes to the minimum once
        // the 300 s down stabilisation has passed.
        let empty = Prometheus::new(600_000);
        assert_eq!(r.tick(0, &view(&empty, &engine, 30_000, 5, 5, 5)), None);
        assert_eq!(r.tick(0, &view(&empty, &engine, 330_000, 5, 5, 5)), Some(1));
    }
}
