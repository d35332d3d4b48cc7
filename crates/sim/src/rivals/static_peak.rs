//! A static fleet sized for the peak: the busiest minute of the SLO-feasible plan, held for
//! the whole run (what a team without an autoscaler provisions).

use crate::autoscaler::{Autoscaler, View};

use super::{Rival, Setup};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "static-peak",
    source: "static provisioning for the busiest minute (the oracle's peak)",
    knobs: &[],
    build,
};

fn build(s: &Setup, _: &[f64]) -> Box<dyn Autoscaler> {
    Box::new(Static(s.plan.peak()))
}

/// A fixed fleet of this many replicas.
pub(super) struct Static(pub(super) u32);

impl Autoscaler for Static {
    fn clocks_ms(&self) -> Vec<u64> {
        Vec::new()
    }

    fn initial_replicas(&self, _steady: u32) -> u32 {
        self.0
    }

    fn tick(&mut self, _: usize, _: &View<'_>) -> Option<u32> {
        None
    }
}
