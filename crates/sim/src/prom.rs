//! Just enough of a Prometheus server for the baselines that scale through one: per-pod series
//! scraped on an interval, `histogram_quantile(q, sum by (le) (rate(x_bucket[w])))` over them,
//! and instant `sum`/`avg` of gauges with the 5-minute lookback and staleness of departed
//! targets. Rates are taken without Prometheus' extrapolation at the window edges, which does
//! not move a quantile when series cover the window alike.

use std::collections::{BTreeMap, VecDeque};

use crate::core::histogram::Histogram;

use super::worker::TTFT_BUCKETS;

/// What one scrape of one pod stored.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Scrape time, ms.
    pub t_ms: u64,
    /// Cumulative TTFT bucket counts (index 22 = +Inf).
    pub ttft: [u64; 23],
    /// `num_requests_waiting`.
    pub waiting: f64,
    /// `num_requests_running`.
    pub running: f64,
    /// `kv_cache_usage_perc`.
    pub kv: f64,
}

#[derive(Debug, Default)]
struct Series {
    samples: VecDeque<Sample>,
    /// Set when the target left service discovery: no instant value afterwards.
    ended_ms: Option<u64>,
}

/// The stored series of every pod.
#[derive(Debug, Default)]
pub struct Prometheus {
    series: BTreeMap<u64, Series>,
    retention_ms: u64,
}

/// Instant-vector lookback (Prometheus' default).
const LOOKBACK_MS: u64 = 300_000;

impl Prometheus {
    /// A server keeping samples for `retention_ms` (at least the longest query window).
    pub fn new(retention_ms: u64) -> Prometheus {
        Prometheus {
            series: BTreeMap::new(),
            retention_ms: retention_ms.max(LOOKBACK_MS),
        }
    }

    /// Stores one scrape of pod `id`.
    pub fn ingest(&mut self, id: u64, sample: Sample) {
        let s = self.series.entry(id).or_default();
        s.ended_ms = None;
        let cutoff = sample.t_ms.saturating_sub(self.retention_ms);
        while s.samples.front().is_some_and(|x| x.t_ms < cutoff) {
            s.samples.pop_front();
        }
        s.samples.push_back(sample);
    }

    /// Pod `id` left discovery at `t_ms` (a staleness marker).
    pub fn end(&mut self, id: u64, t_ms: u64) {
        if let Some(s) = self.series.get_mut(&id) {
            s.ended_ms.get_or_insert(t_ms);
        }
    }

    /// Drops series with no sample in the retention window.
    pub fn compact(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        self.series
            .retain(|_, s| s.samples.back().is_some_and(|x| x.t_ms >= cutoff));
    }

    /// `histogram_quantile(q, sum by (le) (rate(ttft_bucket[window])))`; `None` when the
    /// result is empty or NaN (no requests in the window).
    pub fn ttft_quantile(&self, now_ms: u64, window_ms: u64, q: f64) -> Option<f64> {
        let from = now_ms.saturating_sub(window_ms);
        let mut sum = [0.0f64; 23];
        let mut any = false;
        for s in self.series.values() {
            let mut in_window = s
                .samples
                .iter()
                .filter(|x| x.t_ms > from && x.t_ms <= now_ms);
            let (Some(first), Some(last)) = (in_window.next(), in_window.next_back()) else {
                continue;
            };
            any = true;
            for (i, acc) in sum.iter_mut().enumerate() {
                *acc += last.ttft[i].saturating_sub(first.ttft[i]) as f64;
            }
        }
        if !any {
            return None;
        }
        let pairs = TTFT_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(sum)
            .collect();
        Histogram::from_pairs(pairs).quantile(q).map(|x| x.value)
    }

    fn instant<'a>(&'a self, now_ms: u64) -> impl Iterator<Item = &'a Sample> + 'a {
        self.series.values().filter_map(move |s| {
            if s.ended_ms.is_some_and(|e| e <= now_ms) {
                return None;
            }
            s.samples
                .iter()
                .rev()
                .find(|x| x.t_ms <= now_ms)
                .filter(|x| now_ms - x.t_ms <= LOOKBACK_MS)
        })
    }

    /// `sum(num_requests_waiting)`; `None` when no series has a recent sample.
    pub fn sum_waiting(&self, now_ms: u64) -> Option<f64> {
        let v: Vec<f64> = self.instant(now_ms).map(|x| x.waiting).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }

    /// `avg(kv_cache_usage_perc)`; `None` when no series has a recent sample.
    pub fn mean_kv(&self, now_ms: u64) -> Option<f64> {
        let v: Vec<f64> = self.instant(now_ms).map(|x| x.kv).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, fast: u64, slow: u64, waiting: f64) -> Sample {
        let mut ttft = [0u64; 23];
        // cumulative: fast ones <= 0.1 s (index 7), slow ones <= 1.0 s (index 11)
        for (i, b) in ttft.iter_mut().enumerate() {
            *b = if i >= 11 {
                fast + slow
            } else if i >= 7 {
                fast
            } else {
                0
            };
        }
        Sample {
            t_ms,
            ttft,
            waiting,
            running: 0.0,
            kv: 0.5,
        }
    }

    #[test]
    fn quantile_over_rate_window_and_staleness() {
        let mut p = Prometheus::new(600_000);
        p.ingest(1, sample(1_000, 0, 0, 3.0));
        p.ingest(1, sample(15_000, 90, 10, 4.0));
        p.ingest(2, sample(1_000, 0, 0, 1.0));
        p.ingest(2, sample(15_000, 0, 0, 1.0));
        // 100 observations: rank 95 falls in (0.75, 1.0] at 5/10 of the way.
        let q = p.ttft_quantile(15_000, 300_000, 0.95).expect("data");
        assert!((q - 0.875).abs() < 1e-9, "{q}");
        assert_eq!(p.sum_waiting(15_000), Some(5.0));
        // No requests: empty, as the real query is NaN.
        p.ingest(1, sample(30_000, 90, 10, 0.0));
        assert_eq!(p.ttft_quantile(30_000, 10_000, 0.95), None);
        // Pod 1 leaves: its gauge vanishes at once; after 5 min nothing is left.
        p.end(1, 31_000);
        assert_eq!(p.sum_waiting(31_000), Some(1.0));
        assert_eq!(p.sum_waiting(15_000 + 300_001), None);
    }
}
