//! Bounds: the user's headroom, the scale-up rate limit, `minReplicas`/`maxReplicas`, and the
//! HPA tolerance band of clusters that still apply one.

use super::types::{Clamp, PolicyConfig};

/// The need plus the user's warm capacity: `ceil(need x (1 + headroomPercent / 100)) +
/// spareReplicas` (nothing added to a need of zero: a fleet with no demand has nothing to
/// cover).
pub fn with_headroom(cfg: &PolicyConfig, need: u32) -> u32 {
    if need == 0 {
        return 0;
    }
    let scaled = (f64::from(need) * (1.0 + cfg.headroom_fraction) - 1e-9).ceil();
    let scaled = if scaled >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        scaled as u32
    };
    scaled.saturating_add(cfg.spare_replicas)
}

/// At most `maxScaleUpFactor x supply` or `supply + maxScaleUpStep` per decision.
pub fn rate_up(cfg: &PolicyConfig, supply: u32, need: u32, clamps: &mut Vec<Clamp>) -> u32 {
    let supply = supply.max(1);
    let by_factor = (f64::from(supply) * cfg.max_scale_up_factor).floor() as u32;
    let limit = by_factor
        .max(supply.saturating_add(cfg.max_scale_up_step))
        .max(supply + 1);
    if need > limit {
        clamps.push(Clamp::RateUp);
        limit
    } else {
        need
    }
}

/// `minReplicas`/`maxReplicas`, then the HPA tolerance: on clusters where it still applies, a
/// move inside the band is ignored, so scale-ups are pushed just past it (scale-downs are left
/// alone; removing more is never safer).
pub fn bound(cfg: &PolicyConfig, desired: u32, ready: u32, clamps: &mut Vec<Clamp>) -> u32 {
    let max = cfg.max_replicas.max(cfg.min_replicas);
    let mut d = desired;
    if d < cfg.min_replicas {
        d = cfg.min_replicas;
        clamps.push(Clamp::Min);
    }
    if d > max {
        d = max;
        clamps.push(Clamp::Max);
    }
    let reference = ready.max(1);
    if cfg.hpa_tolerance > 0.0
        && d > reference
        && f64::from(d) / f64::from(reference) - 1.0 <= cfg.hpa_tolerance + 1e-9
    {
        let past = ((f64::from(reference) * (1.0 + cfg.hpa_tolerance)).floor() as u32 + 1).min(max);
        if past > d {
            d = past;
            clamps.push(Clamp::HpaTolerance);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_a_share_then_spares() {
        let cfg = PolicyConfig {
            headroom_fraction: 0.2,
            spare_replicas: 1,
            ..PolicyConfig::default()
        };
        // 7 x 1.2 = 8.4 -> 9, plus 1 spare.
        assert_eq!(with_headroom(&cfg, 7), 10);
        assert_eq!(with_headroom(&cfg, 0), 0);
        // 5 x 1.2 = 6 exactly: not 7.
        assert_eq!(with_headroom(&cfg, 5), 7);
    }

    #[test]
    fn scale_up_is_limited_from_supply() {
        let cfg = PolicyConfig::default();
        let mut clamps = Vec::new();
        // From 1: max(1 x 2, 1 + 4) = 5.
        assert_eq!(rate_up(&cfg, 1, 78, &mut clamps), 5);
        assert_eq!(clamps, vec![Clamp::RateUp]);
        // From 10: max(20, 14) = 20.
        assert_eq!(rate_up(&cfg, 10, 15, &mut Vec::new()), 15);
    }

    #[test]
    fn a_small_scale_up_is_pushed_past_the_hpa_band() {
        let cfg = PolicyConfig {
            hpa_tolerance: 0.1,
            max_replicas: 64,
            ..PolicyConfig::default()
        };
        let mut clamps = Vec::new();
        // 10 -> 11 is within 10 %: the HPA would ignore it; 12 is past it.
        assert_eq!(bound(&cfg, 11, 10, &mut clamps), 12);
        assert_eq!(clamps, vec![Clamp::HpaTolerance]);
        assert_eq!(bound(&cfg, 9, 10, &mut Vec::new()), 9);
        let mut clamps = Vec::new();
        assert_eq!(bound(&cfg, 100, 10, &mut clamps), 64);
        assert_eq!(clamps, vec![Clamp::Max]);
    }
}
