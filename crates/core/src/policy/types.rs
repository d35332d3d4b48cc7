//! The policy's vocabulary, shared by every stage: typed quantities, the configuration, and
//! what a decision says (reason, binding, clamps, inputs).
//!
//! Signals are typed as [`FleetTotal`] (extensive) or [`PerReplica`] (intensive); the only
//! conversions between them go through a replica count, so adding a fraction to a total does
//! not compile.

use serde::{Deserialize, Serialize};

/// An extensive quantity: a sum over replicas (requests in flight, KV tokens in use).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
pub struct FleetTotal(pub f64);

/// An intensive quantity: per replica (KV fraction, requests per replica).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
pub struct PerReplica(pub f64);

impl FleetTotal {
    /// Spread over `replicas`.
    pub fn per(self, replicas: u32) -> PerReplica {
        PerReplica(self.0 / f64::from(replicas.max(1)))
    }

    /// Replicas needed so that each carries at most `capacity * utilization`.
    pub fn replicas_needed(self, capacity: PerReplica, utilization: f64) -> u32 {
        let per = capacity.0 * utilization;
        if per <= 0.0 || !self.0.is_finite() {
            return 0;
        }
        // The epsilon keeps an exact fit (e.g. 8.0 / 4.0) from rounding up on float noise.
        to_count((self.0 / per - 1e-9).ceil())
    }
}

impl PerReplica {
    /// Total over `replicas`.
    pub fn times(self, replicas: u32) -> FleetTotal {
        FleetTotal(self.0 * f64::from(replicas))
    }
}

fn to_count(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

/// Policy parameters (validated by `config`; defaults and reasons in the README).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyConfig {
    /// Lower bound of the answer.
    pub min_replicas: u32,
    /// Upper bound of the answer.
    pub max_replicas: u32,
    /// TTFT SLO, seconds.
    pub ttft_target_s: f64,
    /// Inter-token latency SLO (mean), seconds.
    pub itl_target_s: f64,
    /// KV usage fraction to keep each replica under.
    pub kv_target: f64,
    /// Warm capacity: a share of the need added on top.
    pub headroom_fraction: f64,
    /// Warm capacity: replicas added on top.
    pub spare_replicas: u32,
    /// Seed of the concurrency fallback (requests in flight per replica at the TTFT knee).
    pub concurrency_per_replica: f64,
    /// The TTFT window, ms: a TTFT measured within this long of a backlog or a scale-up still
    /// holds requests from that episode and says nothing about per-replica capacity.
    pub ttft_window_ms: u64,
    /// How long a lower need must hold before replicas are removed, ms; `None`: one learned
    /// capacity lead time (the deprecated `scaleDownWindowSeconds` sets it).
    pub scale_down_hold_ms: Option<u64>,
    /// Up at most this multiple of supply per decision.
    pub max_scale_up_factor: f64,
    /// ... or this many replicas, whichever is larger.
    pub max_scale_up_step: u32,
    /// An ordered replica not serving by then stops counting as supply, ms.
    pub pending_timeout_ms: u64,
    /// After this long without fresh data GetMetrics is unavailable, ms.
    pub stale_hold_ms: u64,
    /// Demand seen within this window keeps the fleet active, ms.
    pub activation_window_ms: u64,
    /// HPA tolerance of the cluster (0 when `behavior.*.tolerance: 0` is supported).
    pub hpa_tolerance: f64,
    /// Hash of the metadata this config came from, for the explanation record.
    pub config_hash: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            min_replicas: 1,
            max_replicas: 10,
            ttft_target_s: 0.5,
            itl_target_s: 0.05,
            kv_target: 0.8,
            headroom_fraction: 0.0,
            spare_replicas: 0,
            concurrency_per_replica: 48.0,
            ttft_window_ms: 60_000,
            scale_down_hold_ms: None,
            max_scale_up_factor: 2.0,
            max_scale_up_step: 4,
            pending_timeout_ms: 600_000,
            stale_hold_ms: 120_000,
            activation_window_ms: 300_000,
            hpa_tolerance: 0.0,
            config_hash: String::new(),
        }
    }
}

/// Reason code of a decision. Bounded set: used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No change.
    Steady,
    /// Capacity added.
    ScaleUp,
    /// Capacity removed.
    ScaleDown,
    /// A lower need exists but the scale-down guard holds it (stale worker, queue, TTFT,
    /// an order on its way, or the hold of one lead time has not passed).
    ScaleDownBlocked,
    /// Data is missing or stale: holding.
    DataStale,
    /// Ordered replicas did not arrive within `pendingTimeoutSeconds` and are still needed.
    CapacityBlocked,
    /// `minReplicas`/`maxReplicas` set the answer.
    Bounds,
    /// Ordered replicas the fleet no longer needs were withdrawn (no serving replica removed).
    Withdrawn,
}

impl Reason {
    /// Every reason, for metric label sets.
    pub const ALL: [Reason; 8] = [
        Reason::Steady,
        Reason::ScaleUp,
        Reason::ScaleDown,
        Reason::ScaleDownBlocked,
        Reason::DataStale,
        Reason::CapacityBlocked,
        Reason::Bounds,
        Reason::Withdrawn,
    ];

    /// Stable label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Steady => "steady",
            Reason::ScaleUp => "scale_up",
            Reason::ScaleDown => "scale_down",
            Reason::ScaleDownBlocked => "scale_down_blocked",
            Reason::DataStale => "data_stale",
            Reason::CapacityBlocked => "capacity_blocked",
            Reason::Bounds => "bounds",
            Reason::Withdrawn => "withdrawn",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource (or guard) whose candidate is the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// Requests per second against the learned per-replica rate.
    Requests,
    /// Prompt tokens per second against the learned per-replica rate.
    Prefill,
    /// Requests in flight against the concurrency capacity (the fallback).
    Concurrency,
    /// KV usage against the KV target.
    KvCache,
    /// The latency guard (TTFT breach while queueing, KV near full, preemptions).
    Latency,
    /// No resource asked for more than the minimum.
    #[default]
    None,
}

impl Binding {
    /// Every binding, for metric label sets.
    pub const ALL: [Binding; 6] = [
        Binding::Requests,
        Binding::Prefill,
        Binding::Concurrency,
        Binding::KvCache,
        Binding::Latency,
        Binding::None,
    ];

    /// Stable label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Requests => "requests",
            Binding::Prefill => "prefill",
            Binding::Concurrency => "concurrency",
            Binding::KvCache => "kv_cache",
            Binding::Latency => "latency",
            Binding::None => "none",
        }
    }
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A constraint that changed (or held) the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clamp {
    /// Scale-up limited by `maxScaleUpFactor` / `maxScaleUpStep`.
    RateUp,
    /// The need is covered by replicas on order.
    PendingHold,
    /// Orders the fleet no longer needs were withdrawn.
    Withdrawn,
    /// The scale-down plan has not held for one lead time yet.
    Stabilization,
    /// A stale worker, a queue, TTFT near the SLO or an order on its way forbid a removal.
    ScaleDownGuard,
    /// `headroomPercent` / `spareReplicas` added capacity.
    Headroom,
    /// Raised to `minReplicas`.
    Min,
    /// Lowered to `maxReplicas`.
    Max,
    /// Held on stale data.
    HoldStale,
    /// Ordered replicas never arrived.
    CapacityBlocked,
    /// Raised past the HPA tolerance band so the move is not ignored.
    HpaTolerance,
}

/// Candidate replica counts per resource (`None`: not sized by it).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Candidates {
    /// From requests per second against the learned per-replica rate.
    pub requests: Option<u32>,
    /// From prompt tokens per second against the learned per-replica rate.
    pub prefill: Option<u32>,
    /// From requests in flight against the concurrency capacity (the fallback while no rate
    /// capacity is known).
    pub concurrency: Option<u32>,
    /// From KV usage against `kvCacheTarget`.
    pub kv_cache: Option<u32>,
    /// From the latency guard (TTFT breach while queueing, KV full, preemptions).
    pub latency: Option<u32>,
}

/// The inputs and model values a decision used, for the explanation record.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Inputs {
    /// Requests in flight (running + waiting), extrapolated to all ready replicas.
    pub demand: FleetTotal,
    /// Requests waiting.
    pub queue: FleetTotal,
    /// Completions per second, recent.
    pub request_rate: f64,
    /// Prompt tokens prefilled per second, recent (`None`: no token counters).
    pub prompt_tokens_per_s: Option<f64>,
    /// KV usage summed over ready replicas (in replica-fractions).
    pub kv_sum: Option<FleetTotal>,
    /// Max KV fraction of any fresh replica.
    pub kv_max: Option<PerReplica>,
    /// TTFT quantile, seconds (None: undefined).
    pub ttft_seconds: Option<f64>,
    /// Mean ITL, seconds (None: undefined).
    pub itl_seconds: Option<f64>,
    /// Completions in the TTFT window.
    pub ttft_samples: f64,
    /// Fresh workers.
    pub fresh_workers: u32,
    /// Workers serving: discovered and answered a scrape at least once.
    pub ready: u32,
    /// Discovered workers that never answered yet (starting pods).
    pub starting: u32,
    /// Ordered replicas on their way (counted as supply).
    pub pending: u32,
    /// Ordered replicas that never arrived (not counted).
    pub pending_expired: u32,
    /// Orders withdrawn by this decision.
    pub withdrawn: u32,
    /// ready + pending.
    pub supply: u32,
    /// The concurrency fallback's capacity per replica.
    pub capacity_per_replica: f64,
    /// Requests per second per replica planned with (`None`: not learned yet).
    pub requests_capacity_per_replica: Option<f64>,
    /// Prompt tokens per second per replica planned with (`None`: not learned yet).
    pub prefill_capacity_tokens_per_s: Option<f64>,
    /// Forecast upper band of arriving requests per second.
    pub forecast_request_rate: Option<f64>,
    /// Forecast upper band of arriving prompt tokens per second.
    pub forecast_prefill_tokens_per_s: Option<f64>,
    /// Forecast upper band of requests in flight.
    pub forecast_demand: f64,
    /// The capacity lead time the forecast looks ahead, seconds.
    pub lead_time_s: f64,
    /// The share of each trend the forecast extrapolates (the trend skill; 1 until a
    /// prediction has come due).
    pub trend_share: f64,
    /// Utilisation ceiling the SLOs allow of a saturated throughput.
    pub utilization_ceiling: f64,
    /// Planning past the best-seen rates (latency has room).
    pub exploring: bool,
    /// Predicted TTFT at the answer, seconds (`None` until saturation and base latency are
    /// known).
    pub predicted_ttft_s: Option<f64>,
    /// Predicted ITL at the answer, seconds.
    pub predicted_itl_s: Option<f64>,
    /// Replicas the sizing asked for, before headroom and bounds.
    pub need: u32,
    /// The plan removals go down to (at the down headroom, the recent peak remembered).
    pub down_target: u32,
    /// The fleet, serving and ordered, the forecast alone needs (at the down headroom):
    /// orders past it are withdrawn.
    pub keep_target: u32,
}

/// One decision with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Replica count to report to KEDA.
    pub desired: u32,
    /// Whether the fleet has demand (IsActive).
    pub active: bool,
    /// Data stale for longer than `stale_hold`: GetMetrics should fail so that KEDA's
    /// `fallback` takes over.
    pub unavailable: bool,
    /// Reason code.
    pub reason: Reason,
    /// The binding resource.
    pub binding: Binding,
    /// Every candidate.
    pub candidates: Candidates,
    /// Constraints applied.
    pub clamps: Vec<Clamp>,
    /// Inputs used.
    pub inputs: Inputs,
    /// Hash of the configuration.
    pub config_hash: String,
    /// One line for humans.
    pub detail: String,
}
