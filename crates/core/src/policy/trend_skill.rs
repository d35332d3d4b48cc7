//! Trend skill: how much of the rise the forecast's trend extrapolated over a lead time the
//! arrivals went on to deliver.
//!
//! The upper band carries the trend a whole lead time ahead, which is right on a ramp and
//! wrong on a burst that turns within its lead time: a minute-long climb extrapolated for
//! another minute orders replicas that arrive after the load has gone (on the Azure code trace,
//! about every five minutes, each an order withdrawn half a minute later: two reversals). Which
//! of the two a fleet's traffic is, is a fact about the traffic that shows one lead time after
//! each prediction, so it is learned: every prediction of a rise that stands out of the noise
//! is scored when it comes due, by how much of it the level delivered, and the trend is
//! extrapolated at the delivered share of the predicted rises (never more than all of it),
//! recent ones weighing most. Before any prediction has come due the share is 1 (the plain
//! trend), and a band's first lead time is its start-up, not the traffic's: no prediction.
//!
//! The share is the arrivals' and applies to the arrival bands (requests, prompt tokens).
//! Requests in flight and the KV cache also grow while a fleet falls behind (a backlog that
//! lasts until capacity comes, whatever the arrivals do next): their trends are extrapolated
//! whole. Damping them too cost the diurnal day 2 points with node provisioning, where every
//! order waits minutes for a node while the caches fill.

use std::collections::VecDeque;

use serde::Serialize;

use super::constants::{
    SKILL_PENDING_MAX, SKILL_PRIOR, SKILL_SURPLUS_MAX, SKILL_TAU_MS, SKILL_Z, TREND_TAU_MIN_MS,
};
use super::forecast::{Band, alpha};

/// A predicted rise waiting for its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Prediction {
    /// When it comes due (made plus the lead time then), ms.
    due_ms: u64,
    /// The level it was made at.
    level: f64,
    /// The rise the trend extrapolated over the lead time.
    rise: f64,
}

/// The trend's record on one load (the arrivals).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TrendSkill {
    /// Predictions not yet due, oldest first (at most [`SKILL_PENDING_MAX`]).
    pending: VecDeque<Prediction>,
    /// When the newest prediction was recorded, ms.
    last_ms: Option<u64>,
    /// When the band was first seen, ms: its trend is its own start-up for a lead time.
    first_ms: Option<u64>,
    /// Decayed sum of the predicted rises that came due, each as a share of the value it
    /// predicted (so that loads of any size weigh alike).
    pub predicted: f64,
    /// Decayed sum of what the level delivered of them, on the same scale.
    pub delivered: f64,
}

impl TrendSkill {
    /// The share of the trend to extrapolate: delivered over predicted, with
    /// [`SKILL_PRIOR`] of each so that the first predictions only move it part of the way.
    pub fn share(&self) -> f64 {
        ((self.delivered + SKILL_PRIOR) / (self.predicted + SKILL_PRIOR)).clamp(0.0, 1.0)
    }

    /// Scores the predictions due by `now_ms` against `band` (already updated with the value
    /// now), then records the band's own prediction over `lead_ms` if it stands out of the
    /// noise. Predictions are recorded at most every [`SKILL_PENDING_MAX`]th of a lead time,
    /// so the book stays bounded whatever the lead.
    pub fn observe(&self, band: &Band, dt_ms: u64, now_ms: u64, lead_ms: f64) -> TrendSkill {
        let mut next = self.clone();
        let Some(level) = band.level else {
            return next;
        };
        let first = *next.first_ms.get_or_insert(now_ms);
        let keep = 1.0 - alpha(dt_ms, SKILL_TAU_MS);
        next.predicted *= keep;
        next.delivered *= keep;
        while let Some(p) = next.pending.front().copied() {
            if p.due_ms > now_ms {
                break;
            }
            next.pending.pop_front();
            let scale = p.level + p.rise;
            next.predicted += p.rise / scale;
            // A rise that came faster than predicted makes up for one that fell short (the
            // ratio estimates what comes of a prediction); at most twice over, so that one
            // step after a flat trend does not outweigh a record of bursts.
            next.delivered += (level - p.level).clamp(0.0, SKILL_SURPLUS_MAX * p.rise) / scale;
        }
        let rise = band.trend.max(0.0) * lead_ms / 1000.0;
        let spacing = lead_ms / SKILL_PENDING_MAX as f64;
        let spaced = self
            .last_ms
            .is_none_or(|t| now_ms.saturating_sub(t) as f64 >= spacing);
        let settled = now_ms.saturating_sub(first) as f64 >= lead_ms;
        // A trend fitted to noise extrapolates a rise that grows as the square root of the
        // horizon (a random walk's): the bar a prediction must clear to say something grows
        // with it, from SKILL_Z noise units at the trend's shortest horizon.
        let bar = SKILL_Z * band.noise * (lead_ms / TREND_TAU_MIN_MS).max(1.0).sqrt();
        // The bar is never negative (noise is a mean absolute deviation), so clearing it is a
        // rise; an infinite one (a broken band) is no prediction.
        if rise.is_finite() && rise > bar && spaced && settled {
            if next.pending.len() >= SKILL_PENDING_MAX {
                next.pending.pop_front();
            }
            next.pending.push_back(Prediction {
                due_ms: now_ms.saturating_add(lead_ms as u64),
                level,
                rise,
            });
            next.last_ms = Some(now_ms);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEAD: f64 = 60_000.0;

    /// Feeds `xs` at 5 s steps from `t0`; returns the band, the skill and the time after.
    fn feed(
        (mut b, mut s, mut t): (Band, TrendSkill, u64),
        xs: impl IntoIterator<Item = f64>,
    ) -> (Band, TrendSkill, u64) {
        for x in xs {
            t += 5000;
            b = b.observe(x, 5000, LEAD);
            s = s.observe(&b, 5000, t, LEAD);
        }
        (b, s, t)
    }

    #[test]
    fn before_any_prediction_comes_due_the_trend_counts_whole() {
        let s = TrendSkill::default();
        assert_eq!(s.share(), 1.0);
        // The band's first lead time is its start-up: nothing is predicted in it.
        let (b, s, t) = feed((Band::default(), s, 0), std::iter::repeat_n(100.0, 12));
        assert!(s.pending.is_empty(), "{s:?}");
        let (_, s, _) = feed((b, s, t), (0..10).map(|i| 100.0 + 20.0 * f64::from(i)));
        assert!(!s.pending.is_empty(), "{s:?}");
        assert_eq!(s.share(), 1.0);
    }

    #[test]
    fn a_prediction_is_scored_by_what_of_it_came() {
        let at = |level: f64, trend: f64| Band {
            level: Some(level),
            trend,
            ..Band::default()
        };
        // Seen first at 0; at 60 s the trend of 1/s predicts +60 over the 60 s lead (a
        // prediction of 160); at 120 s the level is 130: 30 of it came. On the scale of the
        // value predicted that is 30/160 of 60/160, with a prior of 1 of each:
        // (0.1875 + 1) / (0.375 + 1) = 0.8636.
        let s = TrendSkill::default().observe(&at(100.0, 0.0), 5000, 0, LEAD);
        let s = s.observe(&at(100.0, 1.0), 5000, 60_000, LEAD);
        assert_eq!(s.pending.len(), 1);
        let s = s.observe(&at(130.0, 0.0), 60_000, 120_000, LEAD);
        assert!(s.pending.is_empty());
        assert!((s.share() - 1.1875 / 1.375).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_ramp_delivers_its_trend() {
        // +1 per second for 20 minutes: each prediction comes due at what it said.
        let (_, s, _) = feed(
            (Band::default(), TrendSkill::default(), 0),
            (0..240).map(|i| 100.0 + 5.0 * f64::from(i)),
        );
        assert!(s.predicted > 1.0, "{s:?}");
        assert!(s.share() > 0.9, "{s:?}");
    }

    #[test]
    fn bursts_that_turn_within_a_lead_time_do_not() {
        // 30 s up from 100 to 500, 30 s down, five minutes quiet; six times. The level a
        // lead time after each prediction of the climb is back where it was made.
        let burst = || {
            (0..6)
                .map(|i| 100.0 + 400.0 * f64::from(i) / 6.0)
                .chain((0..6).map(|i| 500.0 - 400.0 * f64::from(i) / 6.0))
                .chain(std::iter::repeat_n(100.0, 60))
        };
        let (_, s, _) = feed(
            (Band::default(), TrendSkill::default(), 0),
            (0..6).flat_map(|_| burst()),
        );
        assert!(s.share() < 0.2, "{s:?}");
    }

    #[test]
    fn noise_predicts_nothing() {
        // +-10 % around a flat load: the trend it makes never stands out of the noise.
        let (_, s, _) = feed(
            (Band::default(), TrendSkill::default(), 0),
            (0..720).map(|i| if i % 2 == 0 { 90.0 } else { 110.0 }),
        );
        assert_eq!(s.predicted, 0.0, "{s:?}");
        assert_eq!(s.share(), 1.0);
    }

    #[test]
    fn the_book_stays_bounded_whatever_the_lead() {
        let mut b = Band::default();
        let mut s = TrendSkill::default();
        // A lead time of 30 minutes, decisions every second, a steady climb.
        for i in 0..10_000u64 {
            b = b.observe(i as f64, 1000, 1_800_000.0);
            s = s.observe(&b, 1000, i * 1000, 1_800_000.0);
            assert!(s.pending.len() <= SKILL_PENDING_MAX);
        }
        // Garbage in the band is no prediction.
        let broken = Band {
            trend: f64::INFINITY,
            ..b
        };
        let t = s.observe(&broken, 1000, 10_000_000, 60_000.0);
        assert!(t.share().is_finite());
    }

    proptest! {
        #[test]
        fn the_share_is_a_share_and_the_book_bounded_whatever_comes(
            steps in proptest::collection::vec(
                (prop_oneof![
                    -1e12f64..1e12,
                    Just(f64::NAN),
                    Just(f64::INFINITY),
                    Just(f64::NEG_INFINITY),
                    Just(0.0),
                ], 0u64..120_000, 1_000.0f64..2_000_000.0),
                1..300,
            ),
        ) {
            let (mut b, mut s, mut t) = (Band::default(), TrendSkill::default(), 0u64);
            for (x, dt, lead) in steps {
                t += dt;
                b = b.observe(x, dt, lead);
                s = s.observe(&b, dt, t, lead);
                let k = s.share();
                prop_assert!(k.is_finite() && (0.0..=1.0).contains(&k), "{k}: {s:?}");
                prop_assert!(s.pending.len() <= SKILL_PENDING_MAX);
                prop_assert!(s.predicted >= 0.0 && s.delivered >= 0.0, "{s:?}");
            }
        }
    }
}
