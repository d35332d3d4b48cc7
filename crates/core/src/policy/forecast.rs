//! Forecast: each load quantity's level, trend and noise, and the upper band of what it will be
//! one capacity lead time from now (when capacity ordered now starts serving).
//!
//! The level is an EWMA of [`LEVEL_TAU_MS`]; the trend an EWMA of the level's slope and the
//! noise an EWMA of the absolute deviation from the level, both over the lead time (at least
//! [`TREND_TAU_MIN_MS`]). The upper band is `max(now, level) + max(0, trend) x lead + BAND_Z x
//! noise`: a falling trend is never extrapolated (a forecast drop is not a reason to remove
//! capacity; the scale-down guard waits to see it).

use serde::Serialize;

use super::constants::{BAND_Z, LEVEL_TAU_MS, PEAK_TAU_MS, TREND_TAU_MIN_MS};

/// One quantity's forecast state.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Band {
    /// Smoothed level (`None` before the first observation).
    pub level: Option<f64>,
    /// Slope of the level, units per second.
    pub trend: f64,
    /// Mean absolute deviation of observations from the level.
    pub noise: f64,
    /// The highest value seen, decayed over [`PEAK_TAU_MS`].
    pub peak: f64,
}

/// The weight of an observation `dt_ms` after the last in an EWMA of time constant `tau_ms`.
pub(super) fn alpha(dt_ms: u64, tau_ms: f64) -> f64 {
    1.0 - (-(dt_ms as f64) / tau_ms).exp()
}

impl Band {
    /// Folds in `x` observed `dt_ms` after the previous observation.
    pub fn observe(&self, x: f64, dt_ms: u64, lead_ms: f64) -> Band {
        let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
        let Some(level) = self.level else {
            return Band {
                level: Some(x),
                trend: 0.0,
                noise: 0.0,
                peak: x,
            };
        };
        if dt_ms == 0 {
            return *self;
        }
        let slow = lead_ms.max(TREND_TAU_MIN_MS);
        let next = level + alpha(dt_ms, LEVEL_TAU_MS) * (x - level);
        let slope = (next - level) * 1000.0 / dt_ms as f64;
        let a = alpha(dt_ms, slow);
        let mut band = Band {
            level: Some(next),
            trend: self.trend + a * (slope - self.trend),
            noise: self.noise + a * ((x - next).abs() - self.noise),
            peak: self.peak * (-(dt_ms as f64) / PEAK_TAU_MS).exp(),
        };
        // The peak is of what was seen, not of the band: a band mid-burst carries the burst's
        // slope over a whole lead time, and holding that for minutes would hold a guess.
        band.peak = band.peak.max(x);
        band
    }

    /// What a removal plans for: the upper band, or the decayed recent peak if higher.
    pub fn held(&self, now: f64, lead_ms: f64) -> f64 {
        self.upper(now, lead_ms).max(self.peak)
    }

    /// The upper band `lead_ms` ahead, given the value now.
    pub fn upper(&self, now: f64, lead_ms: f64) -> f64 {
        let level = self.level.unwrap_or(now);
        now.max(level) + self.trend.max(0.0) * lead_ms / 1000.0 + BAND_Z * self.noise
    }
}

/// The forecasts the sizing reads.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Forecasts {
    /// Arriving requests per second.
    pub requests: Band,
    /// Prefill demand, prompt tokens per second.
    pub prefill: Band,
    /// Requests in flight.
    pub demand: Band,
    /// KV usage summed over replicas.
    pub kv: Band,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_load_forecasts_itself() {
        let mut b = Band::default();
        for _ in 0..100 {
            b = b.observe(100.0, 5000, 60_000.0);
        }
        assert!((b.upper(100.0, 60_000.0) - 100.0).abs() < 1e-6);
    }

    #[test]
    fn a_ramp_is_extrapolated_over_the_lead_time() {
        // +1 per second for 10 minutes: the level lags by about tau x slope = 10, the trend
        // converges to 1/s, so 60 s ahead the band is at least now + 60 - lag.
        let mut b = Band::default();
        let mut x = 0.0;
        for _ in 0..120 {
            x += 5.0;
            b = b.observe(x, 5000, 60_000.0);
        }
        assert!((b.trend - 1.0).abs() < 0.05, "{b:?}");
        let up = b.upper(x, 60_000.0);
        assert!(up >= x + 55.0 && up <= x + 75.0, "{up} from {x}");
    }

    #[test]
    fn a_fall_is_not_extrapolated() {
        let mut b = Band::default();
        let mut x = 1000.0;
        for _ in 0..60 {
            x -= 10.0;
            b = b.observe(x, 5000, 60_000.0);
        }
        assert!(b.trend < 0.0);
        // The band stays at or above the level: never below what was just seen.
        assert!(b.upper(x, 60_000.0) >= b.level.unwrap_or(0.0));
    }

    #[test]
    fn noise_widens_the_band() {
        let mut b = Band::default();
        for i in 0..200 {
            let x = if i % 2 == 0 { 90.0 } else { 110.0 };
            b = b.observe(x, 5000, 60_000.0);
        }
        assert!(b.noise > 5.0 && b.noise < 15.0, "{b:?}");
        assert!(b.upper(100.0, 60_000.0) > 105.0);
    }

    #[test]
    fn a_peak_is_held_and_decays_over_minutes() {
        let mut b = Band::default();
        for _ in 0..12 {
            b = b.observe(100.0, 5000, 60_000.0);
        }
        b = b.observe(1000.0, 5000, 60_000.0);
        let peak = b.peak;
        assert!(peak >= 1000.0);
        // Five minutes of 100 later most of the burst is still remembered (e^(-1/3) = 0.72);
        // fifteen minutes later the held value is near peak / e, still far above the load.
        for _ in 0..60 {
            b = b.observe(100.0, 5000, 60_000.0);
        }
        let held = b.held(100.0, 60_000.0);
        assert!(held > 0.65 * peak && held < 0.75 * peak, "{held} of {peak}");
        for _ in 0..120 {
            b = b.observe(100.0, 5000, 60_000.0);
        }
        let held = b.held(100.0, 60_000.0);
        assert!(held > 0.3 * peak && held < 0.45 * peak, "{held} of {peak}");
    }

    #[test]
    fn garbage_reads_as_nothing_not_as_infinity() {
        let b = Band::default().observe(f64::NAN, 0, 60_000.0);
        assert_eq!(b.level, Some(0.0));
        let b = b.observe(f64::INFINITY, 5000, 60_000.0);
        assert_eq!(b.level, Some(0.0));
    }
}
