//! Just enough of a Prometheus server for the baselines that scale through one: per-pod series
//! scraped on an interval, `histogram_quantile(q, sum by (le) (rate(x_bucket[w])))` over them,
//! and instant `sum`/`avg` of gauges with the 5-minute lookback and staleness of departed
//! targets. Rates are taken without Prometheus' extrapolation at the window edges, which does
//! not move a quantile when series cover the window alike.

use std::collections::{BTreeMap, VecDeque};

use crate::core::histogram::Histogram;

use super::worker::{ITL_BUCKETS, TTFT_BUCKETS};

/// One scrape of one pod: the families the rivals query, as Prometheus stores them.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Scrape time, ms.
    pub t_ms: u64,
    /// Cumulative `time_to_first_token_seconds` buckets (index 22 = +Inf).
    pub ttft: [u64; 23],
    /// Cumulative `inter_token_latency_seconds` buckets (index 19 = +Inf).
    pub itl: [u64; 20],
    /// `num_requests_waiting`.
    pub waiting: f64,
    /// `num_requests_running`.
    pub running: f64,
    /// `kv_cache_usage_perc`.
    pub kv: f64,
    /// `prompt_tokens_total`.
    pub prompt_tokens: u64,
    /// `generation_tokens_total`.
    pub generation_tokens: u64,
    /// `request_success_total`.
    pub success: u64,
}

/// A histogram family the rivals take quantiles of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramFamily {
    /// `time_to_first_token_seconds`.
    Ttft,
    /// `inter_token_latency_seconds`.
    Itl,
}

/// A counter family the rivals take rates of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterFamily {
    /// `prompt_tokens_total`.
    PromptTokens,
    /// `generation_tokens_total`.
    GenerationTokens,
    /// `request_success_total`.
    Success,
}

#[derive(Debug, Default, Clone)]
struct Series {
    samples: VecDeque<Sample>,
    ended_ms: Option<u64>,
}

/// Scraped series keyed by pod, plus the frontend's arrival counter.
#[derive(Debug, Default, Clone)]
pub struct Prometheus {
    series: BTreeMap<u64, Series>,
    arrivals: VecDeque<(u64, u64)>,
    retention_ms: u64,
}

/// Prometheus' lookback for instant vectors.
const LOOKBACK_MS: u64 = 300_000;

impl Prometheus {
    /// Keeps `retention_ms` of samples (at least the lookback).
    pub fn new(retention_ms: u64) -> Prometheus {
        Prometheus {
            series: BTreeMap::new(),
            arrivals: VecDeque::new(),
            retention_ms: retention_ms.max(LOOKBACK_MS),
        }
    }

    /// Stores a scrape of pod `id`.
    pub fn ingest(&mut self, id: u64, sample: Sample) {
        let s = self.series.entry(id).or_default();
        s.ended_ms = None;
        let cutoff = sample.t_ms.saturating_sub(self.retention_ms);
        while s.samples.front().is_some_and(|x| x.t_ms < cutoff) {
            s.samples.pop_front();
        }
        s.samples.push_back(sample);
    }

    /// Stores a scrape of the frontend's cumulative request counter.
    pub fn ingest_arrivals(&mut self, t_ms: u64, total: u64) {
        let cutoff = t_ms.saturating_sub(self.retention_ms);
        while self.arrivals.front().is_some_and(|x| x.0 < cutoff) {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((t_ms, total));
    }

    /// Marks pod `id` gone (its series goes stale).
    pub fn end(&mut self, id: u64, t_ms: u64) {
        if let Some(s) = self.series.get_mut(&id) {
            s.ended_ms.get_or_insert(t_ms);
        }
    }

    /// Drops series with nothing inside the retention.
    pub fn compact(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        self.series
            .retain(|_, s| s.samples.back().is_some_and(|x| x.t_ms >= cutoff));
    }

    /// First and last sample of each series inside `(now - window, now]`.
    fn windowed(&self, now_ms: u64, window_ms: u64) -> impl Iterator<Item = (&Sample, &Sample)> {
        let from = now_ms.saturating_sub(window_ms);
        self.series.values().filter_map(move |s| {
            let mut in_window = s
                .samples
                .iter()
                .filter(|x| x.t_ms > from && x.t_ms <= now_ms);
            let first = in_window.next()?;
            let last = in_window.next_back()?;
            Some((first, last))
        })
    }

    /// `histogram_quantile(q, sum by (le) (rate(family_bucket[window])))`; `None` when the
    /// query would be empty or NaN.
    pub fn quantile(
        &self,
        family: HistogramFamily,
        now_ms: u64,
        window_ms: u64,
        q: f64,
    ) -> Option<f64> {
        let bounds: &[f64] = match family {
            HistogramFamily::Ttft => &TTFT_BUCKETS,
            HistogramFamily::Itl => &ITL_BUCKETS,
        };
        let mut sum = vec![0.0f64; bounds.len() + 1];
        let mut any = false;
        for (first, last) in self.windowed(now_ms, window_ms) {
            any = true;
            let (a, b): (&[u64], &[u64]) = match family {
                HistogramFamily::Ttft => (&first.ttft, &last.ttft),
                HistogramFamily::Itl => (&first.itl, &last.itl),
            };
            for (i, acc) in sum.iter_mut().enumerate() {
                *acc += b[i].saturating_sub(a[i]) as f64;
            }
        }
        if !any {
            return None;
        }
        let pairs = bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(sum)
            .collect();
        Histogram::from_pairs(pairs).quantile(q).map(|x| x.value)
    }

    /// `histogram_quantile(q, ...time_to_first_token_seconds...)` (see [`Self::quantile`]).
    pub fn ttft_quantile(&self, now_ms: u64, window_ms: u64, q: f64) -> Option<f64> {
        self.quantile(HistogramFamily::Ttft, now_ms, window_ms, q)
    }

    /// `sum(rate(family[window]))` per second; `None` without two samples of any series.
    pub fn rate(&self, family: CounterFamily, now_ms: u64, window_ms: u64) -> Option<f64> {
        let mut total = 0.0;
        let mut any = false;
        for (first, last) in self.windowed(now_ms, window_ms) {
            let pick = |x: &Sample| match family {
                CounterFamily::PromptTokens => x.prompt_tokens,
                CounterFamily::GenerationTokens => x.generation_tokens,
                CounterFamily::Success => x.success,
            };
            let dt = (last.t_ms - first.t_ms) as f64 / 1000.0;
            if dt > 0.0 {
                any = true;
                total += pick(last).saturating_sub(pick(first)) as f64 / dt;
            }
        }
        any.then_some(total)
    }

    /// The latest scrape of the frontend's cumulative request counter: (time ms, total).
    pub fn arrivals_latest(&self) -> Option<(u64, u64)> {
        self.arrivals.back().copied()
    }

    /// The latest sample of every live series within the lookback (an instant vector).
    pub fn instant(&self, now_ms: u64) -> impl Iterator<Item = &Sample> + '_ {
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

    /// `sum(num_requests_waiting)`.
    pub fn sum_waiting(&self, now_ms: u64) -> Option<f64> {
        let v: Vec<f64> = self.instant(now_ms).map(|x| x.waiting).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }

    /// `sum(num_requests_running)`.
    pub fn sum_running(&self, now_ms: u64) -> Option<f64> {
        let v: Vec<f64> = self.instant(now_ms).map(|x| x.running).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }

    /// `avg(kv_cache_usage_perc)`.
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
            itl: [0; 20],
            waiting,
            running: 0.0,
            kv: 0.5,
            prompt_tokens: t_ms,
            generation_tokens: 0,
            success: fast + slow,
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
        // rate(): 100 successes over 14 s on pod 1, none on pod 2.
        let r = p
            .rate(CounterFamily::Success, 15_000, 300_000)
            .expect("rate");
        assert!((r - 100.0 / 14.0).abs() < 1e-9, "{r}");
        // No requests: empty, as the real query is NaN.
        p.ingest(1, sample(30_000, 90, 10, 0.0));
        assert_eq!(p.ttft_quantile(30_000, 10_000, 0.95), None);
        // Pod 1 leaves: its gauge vanishes at once; after 5 min nothing is left.
        p.end(1, 31_000);
        assert_eq!(p.sum_waiting(31_000), Some(1.0));
        assert_eq!(p.sum_waiting(15_000 + 300_001), None);
    }
}
