//! The decision policy: `(config, previous state, signals, now) -> (decision, new state)`.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. The rules, and why each exists,
//! are in `docs/policy.md`. In one paragraph: every signal proposes a replica count
//! (concurrency demand against a self-calibrating per-replica capacity, KV tokens against a
//! target, a persistent backlog to drain, and a latency guard that adds capacity when TTFT
//! breaches the SLO while requests queue); the answer is the max, but only scales up when it
//! exceeds the *supply* (ready replicas plus those requested and still starting), is rate
//! limited, and scales down only when the utilisation projected after the removal stays below
//! the down threshold for a whole window, with nothing queued, TTFT well under the SLO, nothing
//! starting and no recent scale-up. Stale data holds; it never scales down.
//!
//! Signals are typed as [`FleetTotal`] (extensive) or [`PerReplica`] (intensive); the only
//! conversions between them go through a replica count, so adding a fraction to a total does
//! not compile.

use serde::{Deserialize, Serialize};

use super::fleet::Signals;

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
    /// KV usage fraction to keep each replica under.
    pub kv_target: f64,
    /// Utilisation above which capacity is added.
    pub scale_up_utilization: f64,
    /// Projected utilisation after a removal must stay below this.
    pub scale_down_utilization: f64,
    /// Seed of the per-replica concurrency capacity (requests in flight at the TTFT knee).
    pub concurrency_per_replica: f64,
    /// How long the scale-down condition must hold, ms.
    pub scale_down_window_ms: u64,
    /// The TTFT window, ms: a TTFT measured within this long of a backlog or a scale-up still
    /// holds requests from that episode and says nothing about per-replica capacity.
    pub ttft_window_ms: u64,
    /// No scale-down for this long after a scale-up, ms.
    pub post_scale_up_hold_ms: u64,
    /// Period of scale-down steps, ms; each step removes at most max(1, 10 %).
    pub scale_down_step_ms: u64,
    /// Scale-down step as a fraction of ready replicas (at least 1 replica).
    pub scale_down_max_fraction: f64,
    /// Up at most this multiple of supply per decision.
    pub max_scale_up_factor: f64,
    /// ... or this many replicas, whichever is larger.
    pub max_scale_up_step: u32,
    /// A requested replica not serving by then stops counting as supply, ms.
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
            kv_target: 0.8,
            scale_up_utilization: 0.8,
            scale_down_utilization: 0.6,
            concurrency_per_replica: 48.0,
            scale_down_window_ms: 300_000,
            ttft_window_ms: 60_000,
            post_scale_up_hold_ms: 600_000,
            scale_down_step_ms: 120_000,
            scale_down_max_fraction: 0.1,
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
    /// A lower need exists but a scale-down condition (window, queue, TTFT, pending,
    /// post-scale-up hold, step period) does not hold yet.
    ScaleDownBlocked,
    /// Data is missing or stale: holding.
    DataStale,
    /// Requested replicas did not arrive within `pendingTimeoutSeconds`.
    CapacityBlocked,
    /// `minReplicas`/`maxReplicas` set the answer.
    Bounds,
}

impl Reason {
    /// Every reason, for metric label sets.
    pub const ALL: [Reason; 7] = [
        Reason::Steady,
        Reason::ScaleUp,
        Reason::ScaleDown,
        Reason::ScaleDownBlocked,
        Reason::DataStale,
        Reason::CapacityBlocked,
        Reason::Bounds,
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
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signal whose candidate is the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// Requests in flight against per-replica capacity.
    Concurrency,
    /// KV tokens (or fractions) against the KV target.
    KvCache,
    /// A queue that persisted, to be drained.
    Backlog,
    /// The latency guard (TTFT breach while queueing, KV near full, preemptions).
    Latency,
    /// No signal asked for more than the minimum.
    None,
}

impl Binding {
    /// Every binding, for metric label sets.
    pub const ALL: [Binding; 5] = [
        Binding::Concurrency,
        Binding::KvCache,
        Binding::Backlog,
        Binding::Latency,
        Binding::None,
    ];

    /// Stable label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Concurrency => "concurrency",
            Binding::KvCache => "kv_cache",
            Binding::Backlog => "backlog",
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
    /// Scale-down limited to max(1, 10 %) per step period.
    RateDown,
    /// The need is covered by replicas still starting.
    PendingHold,
    /// The scale-down condition has not held for the whole window.
    Stabilization,
    /// Within `postScaleUpHoldSeconds` of a scale-up.
    PostScaleUpHold,
    /// Queue, TTFT or starting replicas forbid a scale-down.
    ScaleDownGuard,
    /// Raised to `minReplicas`.
    Min,
    /// Lowered to `maxReplicas`.
    Max,
    /// Held on stale data.
    HoldStale,
    /// Requested replicas never arrived.
    CapacityBlocked,
    /// Raised past the HPA tolerance band so the move is not ignored.
    HpaTolerance,
}

/// Candidate replica counts per signal (`None`: the signal is unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Candidates {
    /// From requests in flight.
    pub concurrency: Option<u32>,
    /// From KV usage.
    pub kv_cache: Option<u32>,
    /// From a persistent queue.
    pub backlog: Option<u32>,
    /// From the latency guard.
    pub latency: Option<u32>,
    /// While backlogged: from the arrival rate (completions plus queue growth) and the
    /// throughput a saturated replica showed; replaces the concurrency and backlog
    /// candidates, which overstate need when requests pile up.
    pub arrival_rate: Option<u32>,
}

/// The inputs a decision used, for the explanation record.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Inputs {
    /// Requests in flight (running + waiting), extrapolated to all ready replicas.
    pub demand: FleetTotal,
    /// Fast EWMA of demand (scale-up).
    pub demand_fast: FleetTotal,
    /// Estimated arrivals per second (completions plus queue growth).
    pub arrival_rate: f64,
    /// Learned completions per second of one saturated replica (0 = unknown).
    pub throughput_per_replica: f64,
    /// Requests waiting.
    pub queue: FleetTotal,
    /// KV usage summed over ready replicas (in replica-fractions).
    pub kv_sum: Option<FleetTotal>,
    /// Max KV fraction of any fresh replica.
    pub kv_max: Option<PerReplica>,
    /// TTFT quantile, seconds (None: undefined).
    pub ttft_seconds: Option<f64>,
    /// Completions in the TTFT window.
    pub ttft_samples: f64,
    /// Fresh / discovered workers.
    pub fresh_workers: u32,
    /// Workers serving: discovered and answered a scrape at least once (fresh now or not).
    pub ready: u32,
    /// Discovered workers that never answered yet (starting pods; covered by `pending`).
    pub starting: u32,
    /// Requested replicas still starting (counted as supply).
    pub pending: u32,
    /// Requested replicas that never arrived (not counted).
    pub pending_expired: u32,
    /// ready + pending.
    pub supply: u32,
    /// Per-replica concurrency capacity after calibration.
    pub capacity_per_replica: f64,
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
    /// The binding signal.
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

/// A batch of replicas requested at one time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PendingBatch {
    /// When requested, ms.
    pub at_ms: u64,
    /// How many.
    pub count: u32,
}

/// State carried between decisions. Small and serialisable.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PolicyState {
    /// The last answer.
    pub last_desired: Option<u32>,
    /// Time of the last decision, ms.
    pub last_ms: Option<u64>,
    /// Last time a backlog (a real queue) was seen, ms.
    pub last_backlog_ms: Option<u64>,
    /// Fast EWMA of demand (scale-up reacts to max(now, EWMA)).
    pub demand_fast: f64,
    /// Fast EWMA of the KV sum.
    pub kv_fast: f64,
    /// The fleet queue at the previous decision (for the queue's growth rate).
    pub last_queue: f64,
    /// Completions per second one serving replica sustains, learned while backlogged
    /// (0 = not yet seen saturated).
    pub throughput_per_replica: f64,
    /// Consecutive ticks with a non-empty queue.
    pub queue_ticks: u32,
    /// Consecutive ticks with TTFT over 1.1 x SLO while queueing.
    pub breach_ticks: u32,
    /// Calibrated per-replica concurrency capacity (0 = use the seed).
    pub capacity: f64,
    /// Since when every scale-down condition has held, ms.
    pub down_ok_since_ms: Option<u64>,
    /// Last scale-up, ms.
    pub last_up_ms: Option<u64>,
    /// Last scale-down, ms.
    pub last_down_ms: Option<u64>,
    /// Since when data has been stale, ms.
    pub stale_since_ms: Option<u64>,
    /// Requested replicas not yet ready, newest last.
    pub pending: Vec<PendingBatch>,
}

/// Whether the fleet has demand now or had it within the activation window.
pub fn is_active(cfg: &PolicyConfig, s: &Signals, now_ms: u64) -> bool {
    s.waiting + s.running > 0.0
        || s.request_rate > 0.0
        || s.last_demand_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < cfg.activation_window_ms)
}

/// Scale-up looks at max(now, EWMA with this time constant): a burst that was just seen keeps
/// counting for a few ticks. Scale-down needs no EWMA: its condition must hold at every tick
/// of the whole window, which is a max over the window.
const TAU_FAST_MS: f64 = 10_000.0;

fn ewma(prev: f64, x: f64, dt_ms: u64, tau_ms: f64, first: bool) -> f64 {
    if first {
        return x;
    }
    let alpha = 1.0 - (-(dt_ms as f64) / tau_ms).exp();
    prev + alpha * (x - prev)
}

/// Splits the outstanding requests (`last_desired - ready`) into live and expired pending
/// replicas, newest batches first (older requests are the ones most likely filled).
fn pending_split(
    state: &PolicyState,
    ready: u32,
    now_ms: u64,
    timeout_ms: u64,
) -> (u32, u32, Vec<PendingBatch>) {
    let mut outstanding = state.last_desired.unwrap_or(0).saturating_sub(ready);
    let (mut live, mut expired) = (0, 0);
    let mut kept = Vec::new();
    for b in state.pending.iter().rev() {
        if outstanding == 0 {
            break;
        }
        let take = b.count.min(outstanding);
        outstanding -= take;
        if now_ms.saturating_sub(b.at_ms) < timeout_ms {
            live += take;
        } else {
            expired += take;
        }
        kept.push(PendingBatch {
            at_ms: b.at_ms,
            count: take,
        });
    }
    kept.reverse();
    (live, expired, kept)
}

/// One decision. Pure.
pub fn decide(
    cfg: &PolicyConfig,
    state: &PolicyState,
    s: &Signals,
    now_ms: u64,
) -> (Decision, PolicyState) {
    let mut next = state.clone();
    let first = state.last_ms.is_none();
    let dt = state.last_ms.map_or(0, |t| now_ms.saturating_sub(t));
    next.last_ms = Some(now_ms);
    let max = cfg.max_replicas.max(cfg.min_replicas);
    let discovered = u32::try_from(s.discovered_workers).unwrap_or(u32::MAX);
    let starting = u32::try_from(s.starting_workers)
        .unwrap_or(u32::MAX)
        .min(discovered);
    let ready = discovered - starting;
    let fresh = u32::try_from(s.fresh_workers).unwrap_or(u32::MAX);
    // After a restart the last answer is unknown: the fleet as found is the floor.
    let last = state
        .last_desired
        .unwrap_or(discovered.clamp(cfg.min_replicas, max));
    let (pending, pending_expired, batches) =
        pending_split(state, ready, now_ms, cfg.pending_timeout_ms);
    next.pending = batches;
    let supply = ready.saturating_add(pending);
    let capacity = PerReplica(if state.capacity > 0.0 {
        state.capacity
    } else {
        cfg.concurrency_per_replica
    });
    let active = is_active(cfg, s, now_ms);
    let mut clamps = Vec::new();

    // Fleet totals measured on the fresh subset, extrapolated to every ready replica through
    // the per-replica value (stale replicas are assumed as loaded as the fresh ones).
    let fleet = ready.max(fresh);
    // With no worker at all, what was measured is the frontend's fleet-wide view: as is.
    let extrapolate = |measured: f64| {
        if fleet == 0 {
            FleetTotal(measured)
        } else {
            FleetTotal(measured).per(fresh.max(1)).times(fleet)
        }
    };
    let demand = extrapolate(s.waiting + s.running);
    let queue = extrapolate(s.waiting);
    let kv_sum = s.kv_usage_mean.map(|m| PerReplica(m).times(fleet));
    let kv_max = s.kv_usage_max.map(PerReplica);
    let demand_per_replica = demand.per(ready.max(1));

    let mut inputs = Inputs {
        demand,
        queue,
        kv_sum,
        kv_max,
        ttft_seconds: s.ttft_seconds,
        ttft_samples: s.ttft_samples,
        fresh_workers: fresh,
        ready,
        starting,
        pending,
        pending_expired,
        supply,
        capacity_per_replica: capacity.0,
        ..Inputs::default()
    };

    // A fleet scaled to zero has no workers to scrape; a fresh Dynamo frontend still sees every
    // request, so its numbers are evidence (of no demand, or of demand that must wake it).
    let frontend_fresh = s.fresh_frontends > 0 && s.fresh_frontends * 2 >= s.discovered_frontends;
    let data_fresh = (fresh > 0 && fresh * 2 >= ready) || (discovered == 0 && frontend_fresh);
    if !data_fresh {
        let since = *next.stale_since_ms.get_or_insert(now_ms);
        next.down_ok_since_ms = None;
        // Every discovered pod counts here: with no data, none of them may be given up.
        let held = last.max(discovered).clamp(cfg.min_replicas, max);
        clamps.push(Clamp::HoldStale);
        // Scale up only when the fresh subset alone proves overload.
        let overload = fresh > 0
            && (demand_per_replica.0 > capacity.0 * cfg.scale_up_utilization
                || kv_max.is_some_and(|k| k.0 >= 0.95));
        let mut desired = held;
        if overload {
            let need = demand
                .replicas_needed(capacity, cfg.scale_up_utilization)
                .max(held + 1);
            desired = rate_up(cfg, supply.max(1), need, &mut clamps)
                .clamp(cfg.min_replicas, max)
                .max(held);
        }
        if desired > last {
            record_up(&mut next, last, desired, now_ms);
        }
        next.last_desired = Some(desired);
        let detail = format!(
            "{fresh} of {ready} workers fresh: holding {held}{}",
            if desired > held {
                format!(", fresh subset overloaded: {desired}")
            } else {
                String::new()
            }
        );
        return (
            Decision {
                desired,
                active,
                // With no earlier answer (a restart) there is nothing safe to report: a guess
                // below the running fleet would be a scale-down on missing data, so KEDA gets
                // an error (the HPA keeps its replicas; fallback engages after its threshold).
                unavailable: first || now_ms.saturating_sub(since) > cfg.stale_hold_ms,
                reason: Reason::DataStale,
                binding: Binding::None,
                candidates: Candidates::default(),
                clamps,
                inputs,
                config_hash: cfg.config_hash.clone(),
                detail,
            },
            next,
        );
    }
    next.stale_since_ms = None;

    next.demand_fast = ewma(state.demand_fast, demand.0, dt, TAU_FAST_MS, first);
    if let Some(kv) = kv_sum {
        next.kv_fast = ewma(state.kv_fast, kv.0, dt, TAU_FAST_MS, first);
    }
    inputs.demand_fast = FleetTotal(next.demand_fast);
    // Continuous batching admits waiting requests at the next engine step, milliseconds later,
    // so a few waiting at a scrape instant are arrivals in transit, not a backlog. A backlog is
    // at least one waiting request per serving replica.
    let transient_queue = 2.0 * f64::from(ready.max(1));
    let backlogged = queue.0 >= transient_queue;
    if backlogged {
        next.last_backlog_ms = Some(now_ms);
    }
    next.queue_ticks = if backlogged {
        state.queue_ticks.saturating_add(1)
    } else {
        0
    };
    let breach = s.ttft_seconds.is_some_and(|t| t > 1.1 * cfg.ttft_target_s) && backlogged;
    next.breach_ticks = if breach {
        state.breach_ticks.saturating_add(1)
    } else {
        0
    };

    // Online calibration of the per-replica capacity, within [0.5, 1.5] x seed.
    let seed = cfg.concurrency_per_replica;
    let utilization = demand_per_replica.0 / capacity.0;
    let mut calibrated = capacity.0;
    // Only a TTFT measured away from backlogs and scale-ups describes the replicas themselves;
    // right after an overload the window still holds the queued requests' TTFTs.
    let settled = |t: Option<u64>| t.is_none_or(|t| now_ms.saturating_sub(t) >= cfg.ttft_window_ms);
    let quiet = settled(next.last_backlog_ms) && settled(state.last_up_ms);
    if let Some(ttft) = s.ttft_seconds {
        if quiet
            && ttft > cfg.ttft_target_s
            && utilization < cfg.scale_up_utilization
            && demand.0 > 0.0
        {
            calibrated *= (cfg.ttft_target_s / ttft).max(0.8);
        } else if ttft < 0.5 * cfg.ttft_target_s && !backlogged && demand_per_replica.0 > calibrated
        {
            // Replicas are serving this many requests each with TTFT under half the SLO: that
            // is measured capacity, whatever the seed assumed.
            calibrated = demand_per_replica.0;
        } else if ttft < 0.5 * cfg.ttft_target_s && calibrated < seed {
            // Plenty of TTFT headroom: an earlier cut drifts back toward the seed.
            calibrated += (seed - calibrated) * 0.05;
        }
    }
    next.capacity = calibrated.clamp(0.5 * seed, 4.0 * seed);
    let capacity = PerReplica(next.capacity);
    inputs.capacity_per_replica = capacity.0;

    // Candidates.
    let demand_up = FleetTotal(demand.0.max(next.demand_fast));
    let concurrency = demand_up.replicas_needed(capacity, cfg.scale_up_utilization);
    let kv_cache = kv_sum.map(|kv| {
        FleetTotal(kv.0.max(next.kv_fast)).replicas_needed(PerReplica(1.0), cfg.kv_target)
    });
    let mut backlog = (next.queue_ticks >= 3)
        .then(|| ready + queue.replicas_needed(capacity, cfg.scale_up_utilization));
    // Under a backlog every replica runs its batch full and the queue grows with the excess,
    // so requests in flight say how far behind the fleet is, not how many replicas the load
    // needs. Size from rates instead: arrivals = completions + queue growth, served at the
    // throughput replicas showed while saturated, plus draining the queue within a minute.
    next.last_queue = queue.0;
    let growth = if dt > 0 && !first {
        ((queue.0 - state.last_queue) * 1000.0 / dt as f64).max(0.0)
    } else {
        0.0
    };
    let arrivals = s.request_rate + growth;
    inputs.arrival_rate = arrivals;
    if backlogged && ready > 0 && s.request_rate > 0.0 {
        let observed = s.request_rate / f64::from(ready);
        next.throughput_per_replica = if state.throughput_per_replica > 0.0 {
            0.7 * state.throughput_per_replica + 0.3 * observed
        } else {
            observed
        };
    }
    inputs.throughput_per_replica = next.throughput_per_replica;
    let mut concurrency = concurrency;
    let arrival_rate = (backlogged && next.throughput_per_replica > 0.0).then(|| {
        const DRAIN_S: f64 = 60.0;
        let per_replica = next.throughput_per_replica * cfg.scale_up_utilization;
        ((arrivals + queue.0 / DRAIN_S) / per_replica)
            .ceil()
            .max(f64::from(ready) + 1.0) as u32
    });
    if let Some(rate_need) = arrival_rate {
        concurrency = concurrency.min(rate_need);
        backlog = backlog.map(|b| b.min(rate_need));
    }
    let guard =
        next.breach_ticks >= 2 || kv_max.is_some_and(|k| k.0 >= 0.95) || s.preemption_rate > 0.0;
    // The guard adds capacity beyond what the model asks for, but not again while earlier
    // additions are still starting: the TTFT it reacts to was measured without them.
    let latency =
        (guard && pending == 0).then(|| supply + (f64::from(ready) * 0.25).ceil().max(1.0) as u32);
    let candidates = Candidates {
        concurrency: Some(concurrency),
        kv_cache,
        backlog,
        latency,
        arrival_rate,
    };
    let mut binding = Binding::None;
    let mut need = 0;
    for (b, c) in [
        (Binding::Concurrency, Some(concurrency)),
        (Binding::KvCache, kv_cache),
        (Binding::Backlog, backlog),
        (Binding::Latency, latency),
    ] {
        if let Some(c) = c
            && c > need
        {
            need = c;
            binding = b;
        }
    }

    let mut reason;
    let mut desired;
    if need > supply && need > last {
        // Scale up past what is already coming, rate-limited from supply.
        desired = rate_up(cfg, supply.max(1), need, &mut clamps).max(last);
        reason = Reason::ScaleUp;
        next.down_ok_since_ms = None;
    } else {
        desired = last;
        reason = Reason::Steady;
        if need > ready && need <= supply && pending > 0 {
            clamps.push(Clamp::PendingHold);
        }
        // Scale-down: the largest k whose projected utilisation stays under the down band.
        let step = ((f64::from(ready) * cfg.scale_down_max_fraction).floor() as u32).max(1);
        let projected_ok = |k: u32| {
            let left = ready.saturating_sub(k);
            left > 0
                // The same smoothed demand the scale-up side uses, so a removal cannot be undone
                // by the next tick's scale-up on demand that was already known.
                && demand_up.per(left).0 < capacity.0 * cfg.scale_down_utilization
                && kv_sum.is_none_or(|kv| {
                    kv.per(left).0
                        < cfg.kv_target * cfg.scale_down_utilization / cfg.scale_up_utilization
                })
        };
        let floor = cfg.min_replicas.max(1);
        let k_possible = (1..=ready.saturating_sub(floor))
            .take_while(|k| projected_ok(*k))
            .last()
            .unwrap_or(0);
        let want_down = k_possible > 0 && last > floor;
        if want_down {
            let ttft_ok = match s.ttft_seconds {
                Some(t) => t < 0.7 * cfg.ttft_target_s,
                None => true,
            };
            // Any stale or invalid worker blocks a scale-down: its load is only assumed (the
            // contract is no scale-down on missing, stale or invalid data, partial included).
            let all_fresh = fresh >= ready;
            let guards_ok = !backlogged && ttft_ok && pending == 0 && all_fresh;
            let since_up = state
                .last_up_ms
                .map_or(u64::MAX, |t| now_ms.saturating_sub(t));
            let since_down = state
                .last_down_ms
                .map_or(u64::MAX, |t| now_ms.saturating_sub(t));
            if !guards_ok {
                next.down_ok_since_ms = None;
                clamps.push(Clamp::ScaleDownGuard);
                reason = Reason::ScaleDownBlocked;
            } else {
                let ok_since = *next.down_ok_since_ms.get_or_insert(now_ms);
                if now_ms.saturating_sub(ok_since) < cfg.scale_down_window_ms {
                    clamps.push(Clamp::Stabilization);
                    reason = Reason::ScaleDownBlocked;
                } else if since_up < cfg.post_scale_up_hold_ms {
                    clamps.push(Clamp::PostScaleUpHold);
                    reason = Reason::ScaleDownBlocked;
                } else if since_down < cfg.scale_down_step_ms {
                    clamps.push(Clamp::RateDown);
                    reason = Reason::ScaleDownBlocked;
                } else {
                    let k = k_possible.min(step);
                    if k < k_possible {
                        clamps.push(Clamp::RateDown);
                    }
                    desired = ready.saturating_sub(k).max(floor).min(last);
                    reason = Reason::ScaleDown;
                    next.last_down_ms = Some(now_ms);
                }
            }
        } else {
            next.down_ok_since_ms = None;
        }
    }

    if pending_expired > 0 && reason != Reason::ScaleUp {
        clamps.push(Clamp::CapacityBlocked);
        reason = Reason::CapacityBlocked;
    }
    if desired < cfg.min_replicas {
        desired = cfg.min_replicas;
        clamps.push(Clamp::Min);
        reason = Reason::Bounds;
    }
    if desired > max {
        desired = max;
        clamps.push(Clamp::Max);
        reason = Reason::Bounds;
    }
    // On clusters where the HPA tolerance still applies, a move inside the band is ignored:
    // push scale-ups just past it (scale-downs are left alone; removing more is never safer).
    let reference = ready.max(1);
    if cfg.hpa_tolerance > 0.0
        && desired > reference
        && f64::from(desired) / f64::from(reference) - 1.0 <= cfg.hpa_tolerance + 1e-9
    {
        let past = ((f64::from(reference) * (1.0 + cfg.hpa_tolerance)).floor() as u32 + 1).min(max);
        if past > desired {
            desired = past;
            clamps.push(Clamp::HpaTolerance);
        }
    }
    if desired > last {
        record_up(&mut next, last, desired, now_ms);
        if reason == Reason::Steady {
            reason = Reason::ScaleUp;
        }
    }
    next.last_desired = Some(desired);
    let detail = format!(
        "{}: desired {desired} (need {need} via {}; ready {ready}, pending {pending}, demand {:.1}, capacity/replica {:.1})",
        reason.as_str(),
        binding.as_str(),
        demand.0,
        capacity.0
    );
    (
        Decision {
            desired,
            active,
            unavailable: false,
            reason,
            binding,
            candidates,
            clamps,
            inputs,
            config_hash: cfg.config_hash.clone(),
            detail,
        },
        next,
    )
}

fn rate_up(cfg: &PolicyConfig, supply: u32, need: u32, clamps: &mut Vec<Clamp>) -> u32 {
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

fn record_up(next: &mut PolicyState, last: u32, desired: u32, now_ms: u64) {
    next.pending.push(PendingBatch {
        at_ms: now_ms,
        count: desired - last,
    });
    next.last_up_ms = Some(now_ms);
    next.down_ok_since_ms = None;
}

#[cfg(test)]
mod tests;
