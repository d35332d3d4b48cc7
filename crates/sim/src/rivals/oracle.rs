//! The oracle: a clairvoyant, SLO-feasible plan executed the way a perfect autoscaler could.
//! `run::plan_oracle` sizes each minute as the fewest replicas whose requests reach the
//! good-rate target (99 % by default) given the queue carried in from the minute before; this
//! contestant asks for each minute's replicas one lead time ahead (the longest pod start, plus
//! node provisioning where pods wait for nodes) so that they serve from the minute's start, and
//! removes replicas at the minute's start. Its GPU-hours are the arena's yardstick.

use crate::autoscaler::{Autoscaler, View};
use crate::run::OraclePlan;

use super::{Rival, Setup};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: super::ORACLE,
    source: "this arena (crates/sim/src/run.rs, plan_oracle)",
    knobs: &[],
    build,
};

fn build(s: &Setup, _: &[f64]) -> Box<dyn Autoscaler> {
    Box::new(Oracle {
        plan: s.plan.clone(),
        lead_s: s.lead_s,
    })
}

struct Oracle {
    plan: OraclePlan,
    lead_s: f64,
}

impl Autoscaler for Oracle {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![1000]
    }

    fn initial_replicas(&self, _steady: u32) -> u32 {
        self.plan.at(0.0)
    }

    fn tick(&mut self, _: usize, view: &View<'_>) -> Option<u32> {
        // Every minute that starts within one lead time needs its replicas ordered now.
        let t = view.now_ms as f64 / 1e3;
        let (from, to) = ((t / 60.0) as usize, ((t + self.lead_s) / 60.0) as usize);
        Some(
            (from..=to)
                .map(|m| self.plan.at(m as f64 * 60.0))
                .max()
                .unwrap_or(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{setup, view};
    use super::*;

    #[test]
    fn asks_one_lead_time_ahead_and_shrinks_on_the_minute() {
        // Plan 2, 4, 8, 3 by minute; lead 75 s.
        let s = setup();
        let mut o = build(&s, &[]);
        let (prom, engine) = (Default::default(), Default::default());
        let at = |o: &mut Box<dyn Autoscaler>, t_s: u64| {
            o.tick(0, &view(&prom, &engine, t_s * 1000, 2, 2, 2))
        };
        assert_eq!(at(&mut o, 0), Some(4), "minute 1 (4) is within 75 s");
        assert_eq!(
            at(&mut o, 50),
            Some(8),
            "minute 2 (8) is within 75 s of 50 s"
        );
        assert_eq!(at(&mut o, 130), Some(8));
        assert_eq!(
            at(&mut o, 180),
            Some(3),
            "down at minute 3's start, not before"
        );
        // Plan 8, 2, 8: the dip is never taken when the next rise is within the lead.
        let mut s = setup();
        s.plan.per_minute = vec![8, 2, 8];
        let mut o = build(&s, &[]);
        assert_eq!(at(&mut o, 45), Some(8));
    }
}
