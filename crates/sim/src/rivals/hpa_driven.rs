//! What every HPA-driven rival shares: a query over the cluster's Prometheus, taken at each HPA
//! sync and handed to the HPA (KEDA's Prometheus scaler or prometheus-adapter in between). A
//! rival is its query, its metric target and its `behavior`.

use crate::autoscaler::{Autoscaler, HpaLoop, View};
use crate::keda::{Behavior, MetricKind};

use super::Setup;

/// The metric an HPA-driven rival reads at a sync; `None` is a missing metric (the HPA holds).
pub(super) type Query = Box<dyn Fn(&View<'_>) -> Option<f64>>;

/// An HPA-driven rival.
struct HpaDriven {
    hpa: HpaLoop,
    period_ms: u64,
    query: Query,
}

/// Builds one on `s`'s cluster with its `behavior`, `metric` and `query`.
pub(super) fn build(
    s: &Setup,
    behavior: Behavior,
    metric: MetricKind,
    query: Query,
) -> Box<dyn Autoscaler> {
    Box::new(HpaDriven {
        hpa: HpaLoop::new(s.cluster.hpa(s.min, s.max, Some(behavior), metric)),
        period_ms: s.hpa_sync_ms,
        query,
    })
}

impl Autoscaler for HpaDriven {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![self.period_ms]
    }

    fn tick(&mut self, _: usize, view: &View<'_>) -> Option<u32> {
        let value = (self.query)(view);
        self.hpa.sync(view, value)
    }

    fn metric(&self) -> Option<f64> {
        self.hpa.last
    }
}
