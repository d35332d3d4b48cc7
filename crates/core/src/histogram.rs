//! Cumulative histograms as exposed by Prometheus clients, their deltas between scrapes, and
//! the quantile interpolation of PromQL's `histogram_quantile`.
//!
//! Buckets are never hard-coded: every bound comes from a scraped `le` label.

/// A cumulative histogram: `(upper bound, cumulative count)` sorted by bound, the last bound
/// being `+Inf` when the source exposed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Sorted by bound, strictly increasing bounds.
    pub buckets: Vec<(f64, f64)>,
}

/// Why two snapshots of one series could not be subtracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaError {
    /// Some cumulative count went down: the process restarted (counter reset).
    CounterReset,
    /// The set of `le` bounds changed between the scrapes.
    BucketsChanged,
}

/// A quantile read from a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantile {
    /// Interpolated value (seconds for TTFT).
    pub value: f64,
    /// The rank fell in the `+Inf` bucket: the true value is at least `value`.
    pub saturated: bool,
}

impl Histogram {
    /// Builds a histogram from unsorted `(le, count)` pairs: NaN bounds or counts are dropped,
    /// duplicate bounds keep their first occurrence, and cumulative counts are forced
    /// monotone (a non-monotone page is a client bug; the running max keeps the math sound).
    pub fn from_pairs(mut pairs: Vec<(f64, f64)>) -> Self {
        pairs.retain(|(le, count)| !le.is_nan() && count.is_finite() && *count >= 0.0);
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut running = 0.0_f64;
        for (_, count) in &mut pairs {
            running = running.max(*count);
            *count = running;
        }
        Histogram { buckets: pairs }
    }

    /// Total observations: the `+Inf` bucket, or the last bucket when `+Inf` is missing.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, c)| *c)
    }

    /// Whether both histograms have the same bounds.
    pub fn same_bounds(&self, other: &Histogram) -> bool {
        self.buckets.len() == other.buckets.len()
            && self
                .buckets
                .iter()
                .zip(&other.buckets)
                .all(|(a, b)| a.0 == b.0)
    }

    /// `self - earlier`, bucket by bucket, the way `increase()` reads two points of a counter.
    pub fn delta_since(&self, earlier: &Histogram) -> Result<Histogram, DeltaError> {
        if !self.same_bounds(earlier) {
            return Err(DeltaError::BucketsChanged);
        }
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for ((le, now), (_, then)) in self.buckets.iter().zip(&earlier.buckets) {
            if now < then {
                return Err(DeltaError::CounterReset);
            }
            buckets.push((*le, now - then));
        }
        Ok(Histogram { buckets })
    }

    /// Cumulative count at `bound`, using the largest own bound `<= bound` (a lower bound
    /// on the true count; exact when `bound` is one of ours).
    pub fn cumulative_at(&self, bound: f64) -> f64 {
        let idx = self.buckets.partition_point(|(le, _)| *le <= bound);
        if idx == 0 {
            0.0
        } else {
            self.buckets[idx - 1].1
        }
    }

    /// Adds `other` into `self`. Equal bound sets add bucket by bucket; different sets are
    /// merged over the union of bounds with [`Histogram::cumulative_at`], which stays
    /// monotone and never invents observations below a bound.
    pub fn add(&mut self, other: &Histogram) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
            return;
        }
        if self.same_bounds(other) {
            for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
                mine.1 += theirs.1;
            }
            return;
        }
        let mut bounds: Vec<f64> = self
            .buckets
            .iter()
            .chain(&other.buckets)
            .map(|(le, _)| *le)
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let merged = bounds
            .into_iter()
            .map(|le| (le, self.cumulative_at(le) + other.cumulative_at(le)))
            .collect();
        self.buckets = merged;
    }

    /// The `q`-quantile with PromQL `histogram_quantile` semantics: linear interpolation
    /// inside the bucket holding rank `q * count`, 0 as the lower edge of the first bucket,
    /// and the largest finite bound when the rank lands in `+Inf`.
    ///
    /// Returns `None` when the histogram holds no observations (no evidence, never zero).
    ///
    /// ```
    /// use keda_llm_scaler_core::histogram::Histogram;
    /// // 100 observations: 80 under 0.25 s, 95 under 0.5 s, 100 under 1 s.
    /// let h = Histogram::from_pairs(vec![(0.25, 80.0), (0.5, 95.0), (1.0, 100.0), (f64::INFINITY, 100.0)]);
    /// // rank 95 is the top of the (0.25, 0.5] bucket.
    /// assert_eq!(h.quantile(0.95).unwrap().value, 0.5);
    /// // rank 90: 10 of its 15 observations into (0.25, 0.5] -> 0.25 + 0.25 * 10/15.
    /// assert!((h.quantile(0.90).unwrap().value - (0.25 + 0.25 * 10.0 / 15.0)).abs() < 1e-12);
    /// ```
    pub fn quantile(&self, q: f64) -> Option<Quantile> {
        let total = self.count();
        if total.is_nan() || total <= 0.0 || self.buckets.is_empty() || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let idx = self
            .buckets
            .iter()
            .position(|(_, c)| *c >= rank)
            .unwrap_or(self.buckets.len() - 1);
        let (upper, cum) = self.buckets[idx];
        if upper.is_infinite() {
            let last_finite = self.buckets[..idx]
                .iter()
                .rev()
                .map(|(le, _)| *le)
                .find(|le| le.is_finite())
                .unwrap_or(0.0);
            return Some(Quantile {
                value: last_finite,
                saturated: true,
            });
        }
        let (lower, below) = if idx == 0 {
            (0.0_f64.min(upper), 0.0)
        } else {
            self.buckets[idx - 1]
        };
        if idx == 0 && upper <= 0.0 {
            return Some(Quantile {
                value: upper,
                saturated: false,
            });
        }
        let in_bucket = cum - below;
        let value = if in_bucket > 0.0 {
            lower + (upper - lower) * ((rank - below) / in_bucket)
        } else {
            upper
        };
        Some(Quantile {
            value,
            saturated: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn quantile_matches_hand_worked_promql() {
        // vLLM capture TTFT buckets (917 requests): rank 0.95*917 = 871.15 lies in (1.0, 2.5]
        // with 837 below and 41 inside: 1.0 + 1.5 * (871.15 - 837) / 41.
        let h = Histogram::from_pairs(vec![
            (0.02, 16.0),
            (0.04, 732.0),
            (0.06, 801.0),
            (0.08, 805.0),
            (0.1, 805.0),
            (0.25, 808.0),
            (0.5, 818.0),
            (0.75, 827.0),
            (1.0, 837.0),
            (2.5, 878.0),
            (5.0, 917.0),
            (INF, 917.0),
        ]);
        let q = h.quantile(0.95).unwrap();
        assert!((q.value - (1.0 + 1.5 * (871.15 - 837.0) / 41.0)).abs() < 1e-9);
        assert!(!q.saturated);
    }

    #[test]
    fn rank_in_inf_bucket_is_saturated_at_last_finite_bound() {
        let h = Histogram::from_pairs(vec![(10.0, 1.0), (30.0, 2.0), (INF, 100.0)]);
        assert_eq!(
            h.quantile(0.95),
            Some(Quantile {
                value: 30.0,
                saturated: true
            })
        );
    }

    #[test]
    fn empty_is_undefined_not_zero() {
        assert_eq!(Histogram::default().quantile(0.95), None);
        let zero = Histogram::from_pairs(vec![(1.0, 0.0), (INF, 0.0)]);
        assert_eq!(zero.quantile(0.95), None);
    }

    #[test]
    fn le_zero_first_bucket() {
        // Dynamo starts at le="0": all mass at zero reads 0, not a negative interpolation.
        let h = Histogram::from_pairs(vec![(0.0, 5.0), (0.0022, 5.0), (INF, 5.0)]);
        assert_eq!(h.quantile(0.5).unwrap().value, 0.0);
    }

    #[test]
    fn deltas_detect_resets_and_bucket_changes() {
        let a = Histogram::from_pairs(vec![(1.0, 5.0), (INF, 10.0)]);
        let b = Histogram::from_pairs(vec![(1.0, 7.0), (INF, 15.0)]);
        assert_eq!(
            b.delta_since(&a).unwrap().buckets,
            vec![(1.0, 2.0), (INF, 5.0)]
        );
        assert_eq!(a.delta_since(&b), Err(DeltaError::CounterReset));
        let c = Histogram::from_pairs(vec![(2.0, 7.0), (INF, 15.0)]);
        assert_eq!(c.delta_since(&a), Err(DeltaError::BucketsChanged));
    }

    #[test]
    fn merging_different_bound_sets_stays_monotone() {
        let mut a = Histogram::from_pairs(vec![(0.5, 1.0), (1.0, 2.0), (INF, 2.0)]);
        let b = Histogram::from_pairs(vec![(0.47, 3.0), (1.0, 4.0), (INF, 4.0)]);
        a.add(&b);
        assert_eq!(
            a.buckets,
            vec![(0.47, 3.0), (0.5, 4.0), (1.0, 6.0), (INF, 6.0)]
        );
    }

    proptest! {
        #[test]
        fn quantile_lies_within_its_bucket(
            counts in proptest::collection::vec(0u32..50, 1..20),
            q in 0.01f64..0.99,
        ) {
            let mut cum = 0.0;
            let mut pairs = Vec::new();
            for (i, c) in counts.iter().enumerate() {
                cum += f64::from(*c);
                pairs.push((0.01 * (i as f64 + 1.0).powi(2), cum));
            }
            pairs.push((INF, cum));
            let h = Histogram::from_pairs(pairs);
            match h.quantile(q) {
                None => prop_assert_eq!(cum, 0.0),
                Some(got) => {
                    let rank = q * cum;
                    let idx = h.buckets.iter().position(|(_, c)| *c >= rank).unwrap();
                    let upper = h.buckets[idx].0;
                    let lower = if idx == 0 { 0.0 } else { h.buckets[idx - 1].0 };
                    prop_assert!(got.value >= lower - 1e-12 && got.value <= upper + 1e-12);
                }
            }
        }

        #[test]
        fn merged_count_is_the_sum(
            a in proptest::collection::vec(0u32..20, 1..8),
            b in proptest::collection::vec(0u32..20, 1..8),
        ) {
            let build = |v: &Vec<u32>, scale: f64| {
                let mut cum = 0.0;
                let mut pairs: Vec<(f64, f64)> = v.iter().enumerate().map(|(i, c)| {
                    cum += f64::from(*c);
                    (scale * (i as f64 + 1.0), cum)
                }).collect();
                pairs.push((INF, cum));
                Histogram::from_pairs(pairs)
            };
            let mut x = build(&a, 0.1);
            let y = build(&b, 0.15);
            let total = x.count() + y.count();
            x.add(&y);
            prop_assert_eq!(x.count(), total);
            prop_assert!(x.buckets.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
        }
    }
}
