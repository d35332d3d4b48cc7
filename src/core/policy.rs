//! The decision policy: `(config, previous state, signals, now) -> (decision, new state)`.
//!
//! First version (issue #2): desired = max of the KV- and TTFT-driven needs, clamped to
//! `[minReplicas, maxReplicas]`; a lower need must hold for the whole scale-down window
//! before the answer falls; stale data holds the last answer.

use serde::Serialize;

use super::fleet::Signals;

/// Policy parameters (validated by `config`).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Lower bound of the answer.
    pub min_replicas: u32,
    /// Upper bound of the answer.
    pub max_replicas: u32,
    /// TTFT SLO, seconds.
    pub ttft_target_s: f64,
    /// KV usage fraction to keep each replica under.
    pub kv_target: f64,
    /// How long a lower need must hold before scaling down, ms.
    pub scale_down_window_ms: u64,
    /// After this long without fresh data, the decision is reported unavailable, ms.
    pub stale_hold_ms: u64,
    /// Demand seen within this window keeps the fleet active, ms.
    pub activation_window_ms: u64,
}

/// Why the desired count is what it is. Bounded set: used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// First decision, or no change: the answer equals the current need.
    Steady,
    /// The KV need binds.
    KvPressure,
    /// The TTFT guard added capacity.
    TtftGuard,
    /// A lower need has not yet held for the whole scale-down window.
    ScaleDownWindow,
    /// Data is missing or stale: the last answer holds.
    DataStale,
    /// Clamped to `minReplicas` or `maxReplicas`.
    Bounds,
}

impl Reason {
    /// Every reason, for metric label sets.
    pub const ALL: [Reason; 6] = [
        Reason::Steady,
        Reason::KvPressure,
        Reason::TtftGuard,
        Reason::ScaleDownWindow,
        Reason::DataStale,
        Reason::Bounds,
    ];

    /// Stable label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Steady => "steady",
            Reason::KvPressure => "kv_pressure",
            Reason::TtftGuard => "ttft_guard",
            Reason::ScaleDownWindow => "scale_down_window",
            Reason::DataStale => "data_stale",
            Reason::Bounds => "bounds",
        }
    }
}

/// The output of one decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Replica count to report to KEDA.
    pub desired: u32,
    /// Whether the fleet has demand (IsActive).
    pub active: bool,
    /// Why.
    pub reason: Reason,
    /// Human-readable explanation.
    pub detail: String,
    /// Data has been stale for longer than `stale_hold`: GetMetrics should fail so that
    /// KEDA's `fallback` takes over.
    pub unavailable: bool,
}

/// State carried between decisions. Small and serialisable.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyState {
    /// The last answer.
    pub last_desired: Option<u32>,
    /// Since when the need has been below the last answer, ms.
    pub lower_since_ms: Option<u64>,
    /// Since when data has been stale, ms.
    pub stale_since_ms: Option<u64>,
}

/// Whether the fleet has demand now or had it within the activation window.
pub fn is_active(cfg: &PolicyConfig, s: &Signals, now_ms: u64) -> bool {
    s.waiting + s.running > 0.0
        || s.request_rate > 0.0
        || s.last_demand_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < cfg.activation_window_ms)
}

/// Data is usable when at least half the workers answered this cycle.
fn data_is_fresh(s: &Signals) -> bool {
    s.fresh_workers > 0 && s.fresh_workers * 2 >= s.total_workers
}

/// One decision. Pure.
pub fn decide(
    cfg: &PolicyConfig,
    state: &PolicyState,
    s: &Signals,
    now_ms: u64,
) -> (Decision, PolicyState) {
    let current = u32::try_from(s.total_workers).unwrap_or(u32::MAX);
    let last = state.last_desired.unwrap_or(current.max(cfg.min_replicas));
    let clamp = |n: u32| n.clamp(cfg.min_replicas, cfg.max_replicas.max(cfg.min_replicas));
    let active = is_active(cfg, s, now_ms);
    let mut next = state.clone();

    if !data_is_fresh(s) {
        let since = *next.stale_since_ms.get_or_insert(now_ms);
        let held = clamp(last.max(current));
        next.last_desired = Some(held);
        next.lower_since_ms = None;
        let decision = Decision {
            desired: held,
            active,
            reason: Reason::DataStale,
            detail: format!(
                "{} of {} workers fresh: holding {held}",
                s.fresh_workers, s.total_workers
            ),
            unavailable: now_ms.saturating_sub(since) > cfg.stale_hold_ms,
        };
        return (decision, next);
    }
    next.stale_since_ms = None;

    let replicas = f64::from(current.max(1));
    let kv_need = s
        .kv_usage_mean
        .map(|kv| (kv * replicas / cfg.kv_target - 1e-9).ceil().max(0.0) as u32)
        .unwrap_or(0);
    let ttft_breach = s.ttft_seconds.is_some_and(|t| t > cfg.ttft_target_s) && s.waiting > 0.0;
    let ttft_need = if ttft_breach { current + 1 } else { 0 };
    let (need, mut reason) = if ttft_need > kv_need {
        (ttft_need, Reason::TtftGuard)
    } else {
        (kv_need, Reason::KvPressure)
    };
    let bounded = clamp(need);
    if bounded != need {
        reason = Reason::Bounds;
    }

    let desired = if bounded >= last {
        next.lower_since_ms = None;
        if bounded == last && reason != Reason::Bounds {
            reason = Reason::Steady;
        }
        bounded
    } else {
        let since = *next.lower_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) >= cfg.scale_down_window_ms {
            next.lower_since_ms = None;
            bounded
        } else {
            reason = Reason::ScaleDownWindow;
            last
        }
    };
    next.last_desired = Some(desired);
    let detail = format!(
        "need {need} (kv {kv_need}, ttft {ttft_need}); {} workers; answer {desired}",
        s.total_workers
    );
    (
        Decision {
            desired,
            active,
            reason,
            detail,
            unavailable: false,
        },
        next,
    )
}
