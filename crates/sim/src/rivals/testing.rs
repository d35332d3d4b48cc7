//! Helpers for the rivals' hand-worked tests: a Prometheus holding chosen samples, a view of it.

use crate::autoscaler::View;
use crate::prom::{Prometheus, Sample};
use crate::run::RecordedScrape;
use crate::worker::EngineParams;

/// A sample with gauges `waiting`, `running`, `kv` and no histograms.
pub fn gauges(t_ms: u64, waiting: f64, running: f64, kv: f64) -> Sample {
    Sample {
        t_ms,
        ttft: [0; 23],
        itl: [0; 20],
        waiting,
        running,
        kv,
        prompt_tokens: 0,
        generation_tokens: 0,
        success: 0,
    }
}

/// Cumulative buckets with `n` observations in bucket `i` and after.
pub fn buckets<const N: usize>(i: usize, n: u64) -> [u64; N] {
    let mut b = [0u64; N];
    for (j, x) in b.iter_mut().enumerate() {
        if j >= i {
            *x = n;
        }
    }
    b
}

/// No pages: the rivals never scrape the workers themselves.
pub fn no_pages() -> Vec<RecordedScrape> {
    Vec::new()
}

/// A view at `now_ms` of a fleet with `spec`, `ready` and `provisioned` replicas.
pub fn view<'a>(
    prom: &'a Prometheus,
    engine: &'a EngineParams,
    now_ms: u64,
    spec: u32,
    ready: u32,
    provisioned: u32,
) -> View<'a> {
    View {
        now_ms,
        spec,
        ready,
        provisioned,
        prom,
        engine,
        in_flight: Some(0.0),
        pages: &no_pages,
    }
}

/// A setup with bounds 1..=32 on a cluster with per-direction tolerance, SLOs 500 ms / 50 ms.
pub fn setup() -> super::Setup {
    use crate::core::extract::Engine;
    use crate::core::fleet::SignalConfig;
    use crate::core::policy::PolicyConfig;
    super::Setup {
        min: 1,
        max: 32,
        cluster: crate::keda::Cluster::PER_DIRECTION,
        slo: crate::score::Slo {
            ttft_s: 0.5,
            itl_s: 0.05,
        },
        polling_ms: 15_000,
        hpa_sync_ms: 15_000,
        cold_start_s: 60.0,
        lead_s: 75.0,
        plan: crate::run::OraclePlan {
            per_minute: vec![2, 4, 8, 3],
            target: 0.99,
            infeasible_minutes: 0,
        },
        scaler: crate::run::ScalerUnderTest {
            engine: Engine::Vllm,
            model: None,
            frontends: Vec::new(),
            signal: SignalConfig {
                ttft_quantile: 0.95,
                window_ms: 60_000,
                ttft_min_samples: 20.0,
            },
            policy: PolicyConfig::default(),
            scrape_interval_ms: 5000,
        },
        record: false,
    }
}
