//! Forecast: each load quantity's level, trend and noise, and the upper band of what it will be
//! one capacity lead time from now (when capacity ordered now starts serving).
//!
//! The level is an EWMA of [`LEVEL_TAU_MS`]; the trend an EWMA of the level's slope and the
//! noise an EWMA of the absolute deviation from the level, both over the lead time (at least
//! [`TREND_TAU_MIN_MS`]). The upper band is `max(now, level) + max(0, trend) x lead + BAND_Z x
//! noise`: a falling trend is never extrapolated (a forecast drop is not a reason to remove
//! capacity; the scale-down guard waits to see it).
//!
//! The burst memory holds what could come back faster than capacity follows. Once a burst has
//! recurred it is the peak, decayed (or held whole across a lull a burst recurred after).
//! Until then it is the peak, but never more than the largest rise seen within about one lead
//! time above the value now: a load that climbed to its peak slower than capacity comes (a
//! day's curve, a ramp) is followed back up by the trend, so holding its peak on the way down
//! would only cost GPUs, while a burst's rise is its whole height, and is held.

use serde::Serialize;

use super::constants::{
    BAND_Z, LEVEL_TAU_MS, PEAK_TAU_MS, RECURRENCE_MAX_MS, RENEW_SHARE, RISE_SPAN_LEADS,
    TREND_TAU_MIN_MS,
};

/// One quantity's forecast state.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Band {
    /// Smoothed level (`None` before the first observation).
    pub level: Option<f64>,
    /// Slope of the level, units per second.
    pub trend: f64,
    /// Mean absolute deviation of observations from the level.
    pub noise: f64,
    /// The highest value seen, decayed over [`PEAK_TAU_MS`] once [`Band::recurrence_ms`] has
    /// passed without it coming back.
    pub peak: f64,
    /// Time since a value last reached [`RENEW_SHARE`] of the peak, ms.
    pub since_peak_ms: f64,
    /// The last gap after which the peak came back (a burst that recurred), ms: the peak is
    /// held at full strength this long after it was last seen (0: none recurred yet).
    pub recurrence_ms: f64,
    /// A floor under the values: it drops to a lower value at once and rises towards higher
    /// ones over [`RISE_SPAN_LEADS`] lead times, so a value's excess over it approximates its
    /// rise within one lead time.
    pub floor: f64,
    /// The largest excess of a value over [`Band::floor`], decayed as the peak is: how far the
    /// load has shown it can rise before capacity ordered at the rise's start serves.
    pub rise: f64,
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
                peak: x,
                floor: x,
                ..Band::default()
            };
        };
        if dt_ms == 0 {
            return *self;
        }
        let slow = lead_ms.max(TREND_TAU_MIN_MS);
        let next = level + alpha(dt_ms, LEVEL_TAU_MS) * (x - level);
        let slope = (next - level) * 1000.0 / dt_ms as f64;
        let a = alpha(dt_ms, slow);
        let dt = dt_ms as f64;
        let mut band = Band {
            level: Some(next),
            trend: self.trend + a * (slope - self.trend),
            noise: self.noise + a * ((x - next).abs() - self.noise),
            since_peak_ms: self.since_peak_ms + dt,
            floor: x.min(self.floor + alpha(dt_ms, RISE_SPAN_LEADS * slow) * (x - self.floor)),
            ..*self
        };
        // A burst that comes back after a lull longer than a lead time has recurred: the
        // next lull is expected to last as long, so the peak is held whole for that long
        // (capacity given up in it would be needed again before it could return). Only a
        // return faster than the level follows is a burst's (the value leads its level by
        // more than the renewal band): a ramp back up is the trend's, which capacity follows.
        if x >= RENEW_SHARE * self.peak {
            if band.since_peak_ms >= lead_ms.max(TREND_TAU_MIN_MS)
                && x - level > (1.0 - RENEW_SHARE) * self.peak
            {
                band.recurrence_ms = band.since_peak_ms.min(RECURRENCE_MAX_MS);
            }
            band.since_peak_ms = 0.0;
        }
        if band.since_peak_ms > band.recurrence_ms {
            let decay = (-dt / PEAK_TAU_MS).exp();
            band.peak *= decay;
            band.rise *= decay;
        }
        // The peak is of what was seen, not of the band: a band mid-burst carries the burst's
        // slope over a whole lead time, and holding that for minutes would hold a guess.
        band.peak = band.peak.max(x);
        band.rise = band.rise.max(x - self.floor);
        band
    }

    /// What a removal plans for: the upper band, or the burst memory if higher (the decayed
    /// recent peak; before any burst has recurred, no more of it than the largest rise within
    /// a lead time above the value now).
    pub fn held(&self, now: f64, lead_ms: f64, trend_share: f64) -> f64 {
        let memory = if self.recurrence_ms > 0.0 {
            self.peak
        } else {
            self.peak
                .min(now.max(self.level.unwrap_or(now)) + self.rise)
        };
        self.upper(now, lead_ms, trend_share).max(memory)
    }

    /// The upper band `lead_ms` ahead, given the value now, extrapolating `trend_share` of
    /// the trend (the share of such rises that came, `trend_skill`).
    pub fn upper(&self, now: f64, lead_ms: f64, trend_share: f64) -> f64 {
        let level = self.level.unwrap_or(now);
        let rise = self.trend.max(0.0) * trend_share.clamp(0.0, 1.0) * lead_ms / 1000.0;
        now.max(level) + rise + BAND_Z * self.noise
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
        assert!((b.upper(100.0, 60_000.0, 1.0) - 100.0).abs() < 1e-6);
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
        let up = b.upper(x, 60_000.0, 1.0);
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
        assert!(b.upper(x, 60_000.0, 1.0) >= b.level.unwrap_or(0.0));
    }

    #[test]
    fn noise_widens_the_band() {
        let mut b = Band::default();
        for i in 0..200 {
            let x = if i % 2 == 0 { 90.0 } else { 110.0 };
            b = b.observe(x, 5000, 60_000.0);
        }
        assert!(b.noise > 5.0 && b.noise < 15.0, "{b:?}");
        assert!(b.upper(100.0, 60_000.0, 1.0) > 105.0);
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
        let held = b.held(100.0, 60_000.0, 1.0);
        assert!(held > 0.65 * peak && held < 0.75 * peak, "{held} of {peak}");
        for _ in 0..120 {
            b = b.observe(100.0, 5000, 60_000.0);
        }
        let held = b.held(100.0, 60_000.0, 1.0);
        assert!(held > 0.3 * peak && held < 0.45 * peak, "{held} of {peak}");
    }

    #[test]
    fn a_burst_that_recurs_is_held_whole_for_its_recurrence() {
        let quiet =
            |b: Band, secs: u64| (0..secs / 5).fold(b, |b, _| b.observe(100.0, 5000, 60_000.0));
        let burst = |b: Band| (0..6).fold(b, |b, _| b.observe(1000.0, 5000, 60_000.0));
        let b = burst(quiet(Band::default(), 60));
        assert_eq!(b.recurrence_ms, 0.0);
        // The first lull decays the peak as before (ten minutes: e^(-2/3) = 0.51) ...
        let b = quiet(b, 600);
        assert!(b.peak > 0.45 * 1000.0 && b.peak < 0.56 * 1000.0, "{b:?}");
        // ... and the burst comes back after it: a recurrence of ten minutes (and 30 s of
        // the burst's own rise, which the lull had not ended yet).
        let b = burst(b);
        assert!((b.recurrence_ms - 605_000.0).abs() < 1.0, "{b:?}");
        // The next lull holds the peak whole for that long, then decays it.
        let held = quiet(b, 600);
        assert_eq!(held.peak, 1000.0);
        let later = quiet(held, 900);
        assert!(later.peak < 0.45 * 1000.0, "{later:?}");
    }

    #[test]
    fn a_ramp_back_to_the_peak_is_not_a_recurring_burst() {
        // Up to 1000 and down over ten minutes each way, twice: the level follows the
        // ramp, so nothing recurs and the peak decays as a peak does.
        let mut b = Band::default();
        for _ in 0..2 {
            for i in 0..=120 {
                b = b.observe(100.0 + 7.5 * f64::from(i), 5000, 60_000.0);
            }
            for i in (0..=120).rev() {
                b = b.observe(100.0 + 7.5 * f64::from(i), 5000, 60_000.0);
            }
        }
        assert_eq!(b.recurrence_ms, 0.0, "{b:?}");
    }

    #[test]
    fn a_peak_climbed_to_slower_than_a_lead_time_is_not_held_on_the_way_down() {
        // A day's curve: 100 -> 1000 over 40 minutes (0.375/s, 23 a lead time), an hour at the
        // top, then down to 500 over 20 minutes. Five minutes into the descent the memory
        // holds the descent's own level plus a lead time's rise (and the band), not the top.
        let mut b = Band::default();
        let step = |b: Band, x: f64| b.observe(x, 5000, 60_000.0);
        for i in 0..=480 {
            b = step(b, 100.0 + 900.0 * f64::from(i) / 480.0);
        }
        for _ in 0..720 {
            b = step(b, 1000.0);
        }
        let mut x = 1000.0;
        for _ in 0..60 {
            x -= 500.0 / 240.0;
            b = step(b, x);
        }
        assert!(b.peak > 0.7 * 1000.0, "{b:?}");
        let held = b.held(x, 60_000.0, 1.0);
        assert!(held < x + 60.0, "{held} at {x}: {b:?}");
    }

    #[test]
    fn a_burst_is_held_whole_on_the_way_down() {
        let mut b = Band::default();
        for _ in 0..60 {
            b = b.observe(100.0, 5000, 60_000.0);
        }
        for _ in 0..6 {
            b = b.observe(1000.0, 5000, 60_000.0);
        }
        for _ in 0..12 {
            b = b.observe(100.0, 5000, 60_000.0);
        }
        // The rise was the burst's whole height: the memory is the peak's, decayed a minute.
        let held = b.held(100.0, 60_000.0, 1.0);
        assert!(
            (held - b.peak).abs() < 1e-9 && held > 0.9 * 1000.0,
            "{held}: {b:?}"
        );
    }

    #[test]
    fn a_recurring_burst_is_held_whole_when_the_lull_falls_below_its_rise() {
        // Bursts from 200 to 1000 recur after ten-minute lulls; then the lull falls to 10.
        // A burst may now rise from nearly nothing: the memory is the peak, not 10 + 800.
        let run =
            |b: Band, x: f64, secs: u64| (0..secs / 5).fold(b, |b, _| b.observe(x, 5000, 60_000.0));
        let mut b = run(Band::default(), 200.0, 120);
        for _ in 0..2 {
            b = run(run(b, 1000.0, 30), 200.0, 600);
        }
        b = run(b, 1000.0, 30);
        assert!(b.recurrence_ms > 0.0, "{b:?}");
        b = run(b, 10.0, 120);
        assert_eq!(b.held(10.0, 60_000.0, 1.0), b.peak);
        assert!(b.peak >= 1000.0, "{b:?}");
    }

    #[test]
    fn garbage_reads_as_nothing_not_as_infinity() {
        let b = Band::default().observe(f64::NAN, 0, 60_000.0);
        assert_eq!(b.level, Some(0.0));
        let b = b.observe(f64::INFINITY, 5000, 60_000.0);
        assert_eq!(b.level, Some(0.0));
    }
}
