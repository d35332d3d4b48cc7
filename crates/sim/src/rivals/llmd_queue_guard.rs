//! llm-d's KEDA + EPP queue trigger with its pending-aware overshoot guard (llm-d
//! `guides/workload-autoscaling/keda-epp/`; arena.md): `demand = max(queue / 1, running / 16)`
//! replicas, and the formula `demand <= replicas ? demand : max(demand - pending, replicas)`
//! with `pending` the replicas asked for and not yet available, through an `AverageValue`
//! target of 1; scale-up window 0, KEDA polling 15 s, `cooldownPeriod` 300 s (the HPA's 300 s
//! scale-down window). The queue is the router's flow-control queue; here, the engines'
//! waiting requests. Knob: running requests per replica.

use crate::autoscaler::Autoscaler;
use crate::keda::{Behavior, MetricKind};

use super::{Knob, Rival, Setup, hpa_driven};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "llmd-queue-guard",
    source: "llm-d guides/workload-autoscaling/keda-epp",
    knobs: &[Knob {
        name: "running_per_replica",
        default: 16.0,
        grid: &[8.0, 16.0, 32.0, 64.0, 128.0],
        tuned: 8.0,
    }],
    build,
};

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    // Up max(4 pods, 100 %) per 15 s without a window, down after a 300 s window: the
    // Kubernetes defaults.
    let behavior = Behavior::kubernetes_defaults();
    let per_replica = v[0].max(1.0);
    hpa_driven::build(
        s,
        behavior,
        MetricKind::ExternalAverageValue { target: 1.0 },
        Box::new(move |view| {
            let q = view.prom.sum_waiting(view.now_ms)?;
            let r = view.prom.sum_running(view.now_ms)?;
            let pending = view.provisioned.saturating_sub(view.ready);
            Some(guarded(q, r, per_replica, view.provisioned, pending))
        }),
    )
}

/// The guarded demand, replicas.
fn guarded(queue: f64, running: f64, per_replica: f64, replicas: u32, pending: u32) -> f64 {
    let demand = (queue / 1.0).max(running / per_replica);
    let replicas = f64::from(replicas);
    if demand <= replicas {
        demand
    } else {
        (demand - f64::from(pending)).max(replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_replicas_are_subtracted_only_above_the_current_count() {
        // 3 waiting, 160 running at 16 per replica: demand 10 on 4 replicas, 3 pending -> 7.
        assert_eq!(guarded(3.0, 160.0, 16.0, 4, 3), 7.0);
        // Never below the current count while demand exceeds it.
        assert_eq!(guarded(0.0, 80.0, 16.0, 4, 3), 4.0);
        // Below the current count: the demand itself.
        assert_eq!(guarded(1.0, 32.0, 16.0, 4, 3), 2.0);
    }
}
