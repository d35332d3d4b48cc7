//! llm-d's KEDA + EPP queue trigger with its pending-aware overshoot guard (llm-d
//! `guides/workload-autoscaling/keda-epp/`; arena.md): `demand = max(queue / 1, running / 16)`
//! replicas, and the formula `demand <= replicas ? demand : max(demand - pending, replicas)`
//! with `pending` the replicas asked for and not yet available, through an `AverageValue`
//! target of 1; scale-up window 0, KEDA polling 15 s, `cooldownPeriod` 300 s (the HPA's 300 s
//! scale-down window). The queue is the router's flow-control queue; here, the engines'
//! waiting requests. Knob: running requests per replica.

use crate::autoscaler::{Autoscaler, HpaLoop, View};
use crate::keda::{Behavior, MetricKind, PolicyKind};

use super::{Knob, Rival, Setup, rules};

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
    let behavior = Behavior {
        up: rules(
            0,
            &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        ),
        down: rules(300, &[(PolicyKind::Percent, 100, 15)]),
    };
    Box::new(QueueGuard {
        hpa: HpaLoop::new(s.cluster.hpa(
            s.min,
            s.max,
            Some(behavior),
            MetricKind::ExternalAverageValue { target: 1.0 },
        )),
        per_replica: v[0].max(1.0),
        period_ms: s.polling_ms,
    })
}

struct QueueGuard {
    hpa: HpaLoop,
    per_replica: f64,
    period_ms: u64,
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

impl Autoscaler for QueueGuard {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![self.period_ms]
    }

    fn tick(&mut self, _: usize, view: &View<'_>) -> Option<u32> {
        let (Some(q), Some(r)) = (
            view.prom.sum_waiting(view.now_ms),
            view.prom.sum_running(view.now_ms),
        ) else {
            return self.hpa.sync(view, None);
        };
        let pending = view.provisioned.saturating_sub(view.ready);
        let d = guarded(q, r, self.per_replica, view.provisioned, pending);
        self.hpa.sync(view, Some(d))
    }

    fn metric(&self) -> Option<f64> {
        self.hpa.last
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
