//! A static fleet sized for the mean: the SLO-feasible plan's mean replica count, rounded up.

use crate::autoscaler::Autoscaler;

use super::static_peak::Static;
use super::{Rival, Setup};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "static-mean",
    source: "static provisioning for the mean load (the oracle's mean)",
    knobs: &[],
    build,
};

fn build(s: &Setup, _: &[f64]) -> Box<dyn Autoscaler> {
    Box::new(Static(s.plan.mean()))
}
