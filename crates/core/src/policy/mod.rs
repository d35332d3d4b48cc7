//! The decision policy: `(config, previous state, signals, now) -> (decision, new state)`.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. A pipeline of small stages, each a
//! file with its own tests (the model, and why each constant has its value, are in
//! `docs/policy.md`):
//!
//! 1. [`observe`]: the signals as fleet totals, and whether they may be acted on;
//! 2. [`learn`]: per-replica prefill capacity (prompt tokens/s), the concurrency fallback, the
//!    base TTFT and ITL, the capacity lead time;
//! 3. [`forecast`]: each load's upper band one lead time ahead;
//! 4. [`size`]: the fewest replicas whose predicted TTFT and ITL meet their SLOs at that load;
//! 5. [`order_book`]: ordered replicas count as supply on their way; unneeded ones are
//!    withdrawn;
//! 6. [`guard`]: a removal only when the plan after it holds for one lead time, all at once;
//! 7. [`bounds`]: headroom, the scale-up rate limit, min/max, the HPA tolerance band;
//! 8. [`explain`]: the reason, derived once from the outcome, and the detail line.
//!
//! Stale data holds; it never scales down. The learned state ([`learn::Learned`]), the
//! forecasts, the order book and the timers ([`guard::Timers`]) are separate types in
//! [`PolicyState`].
//!
//! The vocabulary every stage shares (typed quantities, the configuration, the decision and
//! its explanation) is in [`types`].

pub mod bounds;
pub mod constants;
pub mod explain;
pub mod forecast;
pub mod guard;
pub mod learn;
pub mod observe;
pub mod order_book;
pub mod size;
pub mod trend_skill;
pub mod types;

use serde::Serialize;

use super::fleet::Signals;
use constants::{
    BREACH_FACTOR, BREACH_TICKS, DOWN_HEADROOM, DOWN_TTFT_SHARE, DRAIN_S, EXPLORE_SHARE,
    GUARD_STEP, KEEPING_UP_SHARE, KV_FULL, LATE_ORDER_LEADS, MAX_UTILIZATION,
};
use forecast::Forecasts;
use guard::{Timers, Verdict};
use learn::{Evidence, Learned};
use observe::{Observed, observe};
use order_book::OrderBook;
use size::{Loads, Mode, Sizing};
use trend_skill::TrendSkill;
pub use types::{
    Binding, Candidates, Clamp, Decision, FleetTotal, Inputs, PerReplica, PolicyConfig, Reason,
};
/// State carried between decisions. Small and serialisable.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PolicyState {
    /// The last answer.
    pub last_desired: Option<u32>,
    /// Time of the last decision, ms.
    pub last_ms: Option<u64>,
    /// Ready replicas at the last decision.
    pub last_ready: Option<u32>,
    /// What the fleet has shown about itself.
    pub learned: Learned,
    /// Load forecasts.
    pub forecast: Forecasts,
    /// How much of the arrivals' extrapolated rises came: the arrival bands (requests,
    /// prompt tokens) extrapolate that share of their trends.
    pub trend_skill: TrendSkill,
    /// Replicas ordered and not serving yet.
    pub orders: OrderBook,
    /// Timers.
    pub timers: Timers,
}

impl PolicyState {
    /// Records the answer `desired` after `last`: a rise is an order for what neither the
    /// `ready` replicas nor the book already cover, and restarts the scale-down hold.
    fn answer(&mut self, desired: u32, last: u32, ready: u32, now_ms: u64) {
        if desired > last {
            let on_order = ready + self.orders.outstanding();
            self.orders.place(now_ms, desired.saturating_sub(on_order));
            self.timers.last_up_ms = Some(now_ms);
            self.timers.down_since_ms = None;
            self.timers.down_target = 0;
        }
        self.last_desired = Some(desired);
    }
}

/// Whether the fleet has demand now or had it within the activation window.
pub fn is_active(cfg: &PolicyConfig, s: &Signals, now_ms: u64) -> bool {
    s.waiting + s.running > 0.0
        || s.request_rate > 0.0
        || s.last_demand_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < cfg.activation_window_ms)
}

/// One decision. Pure.
pub fn decide(
    cfg: &PolicyConfig,
    state: &PolicyState,
    s: &Signals,
    now_ms: u64,
) -> (Decision, PolicyState) {
    let mut next = state.clone();
    let dt = state.last_ms.map_or(0, |t| now_ms.saturating_sub(t));
    next.last_ms = Some(now_ms);
    let o = observe(s);
    let max = cfg.max_replicas.max(cfg.min_replicas);
    // After a restart the last answer is unknown: the fleet as found is the floor.
    let last = state
        .last_desired
        .unwrap_or(o.discovered.clamp(cfg.min_replicas, max));
    let arrived = o.ready.saturating_sub(state.last_ready.unwrap_or(o.ready));
    let (book, standing) =
        state
            .orders
            .reconcile(last, o.ready, arrived, now_ms, cfg.pending_timeout_ms);
    next.orders = book;
    if state.last_ready.is_some_and(|r| r > o.ready) {
        next.timers.ready_fell_ms = Some(now_ms);
    }
    if state.last_ready.is_some_and(|r| r < o.ready) {
        next.timers.ready_rose_ms = Some(now_ms);
    }
    next.last_ready = Some(o.ready);
    let active = is_active(cfg, s, now_ms);
    let mut inputs = Inputs {
        demand: o.demand,
        queue: o.queue,
        request_rate: o.recent_request_rate,
        prompt_tokens_per_s: o.recent_prompt_tokens,
        kv_sum: o.kv_sum,
        kv_max: o.kv_max,
        ttft_seconds: o.ttft_s,
        itl_seconds: o.itl_s,
        ttft_samples: s.ttft_samples,
        fresh_workers: o.fresh,
        ready: o.ready,
        starting: o.starting,
        pending: standing.live,
        pending_expired: standing.expired,
        supply: o.ready.saturating_add(standing.live),
        capacity_per_replica: state.learned.concurrency(cfg),
        lead_time_s: state.learned.lead_ms() / 1e3,
        trend_share: state.trend_skill.share(),
        ..Inputs::default()
    };
    if !o.data_fresh {
        return hold_stale(cfg, state, next, &o, last, inputs, active, now_ms);
    }
    next.timers.stale_since_ms = None;

    // Arrivals are conserved over the span of the recent rates (observe): what completed
    // plus what grew in flight, and in tokens what was prefilled plus the prompts that came
    // and are not prefilled yet, at the mean prompt.
    let tokens_per_request = o
        .tokens_per_request
        .unwrap_or(state.learned.tokens_per_request);
    let arrivals_rps = o.recent_arrivals;
    let arrivals_tps = o
        .recent_prompt_tokens
        .map(|p| (p + o.recent_unprefilled_growth * tokens_per_request).max(0.0));

    // Learn.
    let evidence = evidence(
        cfg,
        state,
        &mut next,
        &o,
        (arrivals_rps, arrivals_tps.unwrap_or(0.0)),
        standing.filled_lead_ms,
        now_ms,
        dt,
    );
    next.learned = state.learned.learn(cfg, &o, evidence);
    let lead = next.learned.lead_ms();

    // Forecast the arrivals; a standing queue to drain goes on top, not into the forecast (a
    // backlog is a one-off need, not load that recurs or trends).
    let drain = o.queue.0 / DRAIN_S;
    let requests_now =
        (o.recent_request_rate > 0.0 || next.learned.knows_rates()).then_some(arrivals_rps);
    let (loads, held) = forecast(
        state,
        &mut next,
        &o,
        (requests_now, arrivals_tps),
        (drain, drain * tokens_per_request),
        dt,
        now_ms,
        lead,
    );

    // Size. Exploring past the best-seen rates needs latency with room, or a removal on trial
    // that has not broken anything yet.
    let under = |v: Option<f64>, target: f64, share: f64| v.is_none_or(|v| v < share * target);
    let roomy = o.ttft_s.is_some()
        && under(o.ttft_s, cfg.ttft_target_s, EXPLORE_SHARE)
        && under(o.itl_s, cfg.itl_target_s, EXPLORE_SHARE);
    let trial_ok = evidence.trial
        && !o.backlogged
        && under(o.ttft_s, cfg.ttft_target_s, DOWN_TTFT_SHARE)
        && under(o.itl_s, cfg.itl_target_s, DOWN_TTFT_SHARE);
    let mode = Mode {
        share: 1.0,
        explore: if roomy || trial_ok {
            learn::explore_margin(lead)
        } else {
            0.0
        },
        fallback_may_raise: o.ttft_s.is_some() || o.backlogged,
    };
    let up = size::size(cfg, &next.learned, &loads, mode);
    let down_mode = Mode {
        share: DOWN_HEADROOM,
        ..mode
    };
    // Orders, which serve nobody yet, are kept only while the forecast needs them. Removals
    // also keep what the decayed recent peak needs (a serving replica given up before the
    // next burst takes a lead time to come back), at the rates already served well: the knee
    // is probed with the load at hand, never with a burst that may come back.
    let keep = size::size(cfg, &next.learned, &loads, down_mode);
    let down = size::size_remembered(cfg, &next.learned, &loads, &held, down_mode);
    let supply = inputs.supply;
    // A TTFT breach, a full KV cache or preemptions are the model's error only if this fleet
    // was serving for the whole window: after pods joined, the window's TTFT is the smaller
    // fleet's, and the old replicas' caches hold (and preempt) the backlog they took before,
    // which more replicas do not relieve and the sizing already counts.
    let joined = guard::within(next.timers.ready_rose_ms, now_ms, cfg.ttft_window_ms);
    // Preemptions are counted over the window: where the fullest cache is now within the KV
    // target the sizing plans for, they are a full cache's past (a backlog's, drained), not
    // this fleet's present.
    let preempting = o.preemption_rate > 0.0 && o.kv_max.is_none_or(|k| k.0 > cfg.kv_target);
    let guard = !joined
        && (next.timers.breach_ticks >= BREACH_TICKS
            || o.kv_max.is_some_and(|k| k.0 >= KV_FULL)
            || preempting);
    // The guard adds capacity beyond what the model asks for, but not again while earlier
    // additions are on their way (the TTFT it reacts to was measured without them); while it
    // still holds it keeps what is on order, which the model alone would withdraw at once.
    let latency = guard.then(|| {
        if standing.live == 0 {
            supply + (f64::from(o.ready) * GUARD_STEP).ceil().max(1.0) as u32
        } else {
            supply
        }
    });
    let mut sizing: Sizing = up;
    sizing.candidates.latency = latency;
    if let Some(l) = latency
        && l > sizing.need
    {
        sizing.need = l;
        sizing.binding = Binding::Latency;
    }
    // A removal undone within its trial, for what the fleet itself shows (its KV cache
    // filling, its latency) rather than for a forecast that rose, was a probe past the knee:
    // the rates it led to (per replica it left, so only at the first scale-up after it) are
    // remembered as bad, so it is not made again (each attempt is two reversals).
    let first_up_since_removal = state.timers.last_up_ms < state.timers.last_down_ms;
    let distress = matches!(sizing.binding, Binding::KvCache | Binding::Latency);
    if evidence.trial && first_up_since_removal && distress && sizing.need > last {
        let after = f64::from(last.max(1));
        next.learned
            .unhealthy_at((arrivals_rps / after, arrivals_tps.unwrap_or(0.0) / after));
    }
    let mut clamps = Vec::new();
    // Warm capacity goes on the model's need. The guard's candidate is a fleet total (the
    // supply, which already carries the warm capacity asked for before, plus its step):
    // headroom on top of it would compound at every decision while its orders wait.
    let need = bounds::with_headroom(cfg, up.need).max(latency.unwrap_or(0));
    if need > sizing.need {
        clamps.push(Clamp::Headroom);
    }
    let down_target = bounds::with_headroom(cfg, down.need).max(need);
    let keep_target = bounds::with_headroom(cfg, keep.need).max(need);

    // Order book, then the scale-down guard.
    let targets = Targets {
        need,
        down: down_target,
        keep: keep_target,
    };
    let (mut desired, removed) = act(
        cfg,
        &mut next,
        &o,
        standing,
        last,
        targets,
        lead,
        now_ms,
        &mut clamps,
        &mut inputs,
    );
    if standing.expired > 0 {
        clamps.push(Clamp::CapacityBlocked);
    }
    desired = bounds::bound(cfg, desired, o.ready, &mut clamps);
    next.answer(desired, last, o.ready, now_ms);
    if removed {
        next.timers.last_down_ms = Some(now_ms);
    }

    let (predicted_ttft_s, predicted_itl_s) = size::predict(&next.learned, &loads, desired);
    inputs.capacity_per_replica = next.learned.concurrency(cfg);
    inputs.requests_capacity_per_replica = sizing.requests_capacity;
    inputs.prefill_capacity_tokens_per_s = sizing.prefill_capacity;
    inputs.forecast_request_rate = loads.requests;
    inputs.forecast_prefill_tokens_per_s = loads.prefill;
    inputs.forecast_demand = loads.demand;
    inputs.lead_time_s = lead / 1e3;
    inputs.trend_share = next.trend_skill.share();
    inputs.utilization_ceiling = sizing.ceiling;
    inputs.exploring = mode.explore > 0.0;
    inputs.predicted_ttft_s = predicted_ttft_s;
    inputs.predicted_itl_s = predicted_itl_s;
    inputs.need = sizing.need;
    inputs.down_target = down_target;
    inputs.keep_target = keep_target;
    let reason = explain::reason(explain::Outcome {
        desired,
        last,
        removed,
        clamps: &clamps,
        stale: false,
    });
    let detail = explain::detail(reason, desired, sizing.binding, &inputs, o.token_counters);
    (
        Decision {
            desired,
            active,
            unavailable: false,
            reason,
            binding: sizing.binding,
            candidates: sizing.candidates,
            clamps,
            inputs,
            config_hash: cfg.config_hash.clone(),
            detail,
        },
        next,
    )
}

/// The timers a fresh observation moves (backlog, breach), and what it tells the learning.
#[allow(clippy::too_many_arguments)]
fn evidence(
    cfg: &PolicyConfig,
    state: &PolicyState,
    next: &mut PolicyState,
    o: &Observed,
    arrivals: (f64, f64),
    filled_lead_ms: Option<f64>,
    now_ms: u64,
    dt: u64,
) -> Evidence {
    if o.backlogged {
        next.timers.last_backlog_ms = Some(now_ms);
        next.timers.backlog_since_ms.get_or_insert(now_ms);
    } else {
        next.timers.backlog_since_ms = None;
    }
    let breach = o.backlogged
        && o.ttft_s
            .is_some_and(|t| t > BREACH_FACTOR * cfg.ttft_target_s);
    next.timers.breach_ticks = if breach {
        state.timers.breach_ticks.saturating_add(1)
    } else {
        0
    };
    let within_window = |t: Option<u64>| guard::within(t, now_ms, cfg.ttft_window_ms);
    let ready = f64::from(o.ready.max(1));
    Evidence {
        dt_ms: dt,
        // Pods that joined or left within the window changed the fleet the latency describes.
        settled: !within_window(next.timers.last_backlog_ms)
            && !within_window(next.timers.ready_changed_ms())
            && !within_window(state.timers.last_up_ms)
            && !within_window(state.timers.last_down_ms),
        // A removal is on trial for a window after it was asked for and for a window after
        // the replica it asked for left (a KV cache fills over a minute after the fleet
        // shrank, not at the answer).
        trial: within_window(state.timers.last_down_ms)
            || (next.timers.ready_fell_ms >= state.timers.last_down_ms
                && state.timers.last_down_ms.is_some()
                && within_window(next.timers.ready_fell_ms)),
        // Latency within the SLOs describes this fleet at this rate or a harder one unless
        // replicas left within the window (then fewer carried the load than before): pods
        // that joined, or a backlog that drained, only made the window's latency worse.
        // It also has to be keeping up: a fleet whose running batch grows (a KV cache filling
        // after a removal) serves its latency on borrowed time.
        served_well: !within_window(next.timers.ready_fell_ms)
            && !within_window(state.timers.last_down_ms)
            && o.in_flight_growth.max(o.window_in_flight_growth)
                <= KEEPING_UP_SHARE * o.recent_request_rate,
        filling: o.recent_request_rate > 0.0
            && o.sustained_in_flight_growth > KEEPING_UP_SHARE * o.recent_request_rate,
        // The recent rate is a saturated replica's only if the queue stood, and the fleet
        // stayed the same size, for all of it (pods joining under a queue start empty).
        saturated: [next.timers.backlog_since_ms, next.timers.ready_changed_ms()]
            .iter()
            .all(|&t| !guard::within(t, now_ms, cfg.ttft_window_ms / crate::fleet::RECENT_SHARE))
            && next.timers.backlog_since_ms.is_some(),
        filled_lead_ms,
        arrivals: (arrivals.0 / ready, arrivals.1 / ready),
    }
}

/// Folds this decision's arrivals into the forecasts; returns the upper bands one lead time
/// ahead (to scale up on) and what a removal plans for: for the arrivals the same or their
/// decayed recent peak, whichever is higher, and for requests in flight and KV what that
/// remembered arrival rate would take at their footprint now (at most their own memory),
/// the arrivals with the backlog's `drain` (requests/s, prompt tokens/s) on top.
#[allow(clippy::too_many_arguments)]
fn forecast(
    state: &PolicyState,
    next: &mut PolicyState,
    o: &Observed,
    (requests_now, prefill_now): (Option<f64>, Option<f64>),
    (drain_rps, drain_tps): (f64, f64),
    dt: u64,
    now_ms: u64,
    lead: f64,
) -> (Loads, Loads) {
    if let Some(x) = requests_now {
        next.forecast.requests = state.forecast.requests.observe(x, dt, lead);
        next.trend_skill = state
            .trend_skill
            .observe(&next.forecast.requests, dt, now_ms, lead);
    }
    // The arrivals extrapolate the share of their trend that has come; in flight and KV grow
    // while the fleet falls behind too, which lasts until capacity comes: their trend whole.
    let k = next.trend_skill.share();
    if let Some(x) = prefill_now {
        next.forecast.prefill = state.forecast.prefill.observe(x, dt, lead);
    }
    next.forecast.demand = state.forecast.demand.observe(o.demand.0, dt, lead);
    if let Some(kv) = o.kv_sum {
        next.forecast.kv = state.forecast.kv.observe(kv.0, dt, lead);
    }
    let loads = Loads {
        requests: requests_now.map(|x| next.forecast.requests.upper(x, lead, k) + drain_rps),
        prefill: prefill_now.map(|x| next.forecast.prefill.upper(x, lead, k) + drain_tps),
        demand: next.forecast.demand.upper(o.demand.0, lead, 1.0),
        kv: o.kv_sum.map(|kv| next.forecast.kv.upper(kv.0, lead, 1.0)),
    };
    // The burst memory is of arrivals, which do not depend on the fleet. Requests in flight and
    // KV in use grow whenever the fleet falls behind: their peaks are a backlog's (long context
    // seed 1: a drained queue filled 12 new replicas' caches to 8 caches' worth, and that peak
    // held 13 replicas for 15 minutes where 5 served). What they remember is what the
    // remembered arrivals would take at the footprint per arrival now, never more than their
    // own memory (a trickle's footprint times a burst's ratio would be noise times a lot).
    // Where no arrivals are known (no completions or token counters yet: the concurrency
    // fallback), requests in flight are the only measure of the load, and keep their memory.
    let requests = requests_now.map(|x| next.forecast.requests.held(x, lead, k) + drain_rps);
    let prefill = prefill_now.map(|x| next.forecast.prefill.held(x, lead, k) + drain_tps);
    let excess = |held: Option<f64>, now: Option<f64>| match (held, now) {
        (Some(h), Some(n)) if n > 0.0 && h.is_finite() => h / n,
        _ => 1.0,
    };
    let remembered = excess(requests, loads.requests)
        .max(excess(prefill, loads.prefill))
        .max(1.0);
    let arrivals_known = requests.is_some() || prefill.is_some();
    let recall = |own: f64, band: f64| {
        if arrivals_known {
            (band * remembered).min(own)
        } else {
            own
        }
    };
    let held = Loads {
        requests,
        prefill,
        demand: recall(
            next.forecast.demand.held(o.demand.0, lead, 1.0),
            loads.demand,
        ),
        kv: o
            .kv_sum
            .zip(loads.kv)
            .map(|(now, kv)| recall(next.forecast.kv.held(now.0, lead, 1.0), kv)),
    };
    (loads, held)
}

/// The targets: the need to scale up to, the plan a removal may go down to, and the fleet
/// (serving and ordered) the forecast alone needs, which orders past it are withdrawn to.
#[derive(Debug, Clone, Copy)]
struct Targets {
    need: u32,
    down: u32,
    keep: u32,
}

/// Scale up past supply, or withdraw orders the plan does not need and let the guard judge a
/// removal. Returns the answer before bounds, and whether serving replicas were removed.
#[allow(clippy::too_many_arguments)]
fn act(
    cfg: &PolicyConfig,
    next: &mut PolicyState,
    o: &Observed,
    standing: order_book::Standing,
    last: u32,
    t: Targets,
    lead: f64,
    now_ms: u64,
    clamps: &mut Vec<Clamp>,
    inputs: &mut Inputs,
) -> (u32, bool) {
    let mut desired = last;
    let mut removed = false;
    let (need, down_target) = (t.need, t.down);
    let supply = o.ready.saturating_add(standing.live);
    if need > supply && need > last {
        desired = bounds::rate_up(cfg, supply, need, clamps).max(last);
    } else {
        if need > o.ready && standing.live > 0 {
            clamps.push(Clamp::PendingHold);
        }
        // Orders the plan no longer needs go at once (they serve nobody yet); never on
        // partial data or while a queue stands. Orders on time are kept for the remembered
        // burst as serving replicas are; late ones only for the forecast.
        if o.all_fresh && !o.backlogged && next.orders.outstanding() > 0 {
            let on_time = next.orders.younger_than(now_ms, LATE_ORDER_LEADS * lead);
            let keep = t
                .keep
                .saturating_sub(o.ready)
                .max(on_time.min(t.down.saturating_sub(o.ready)));
            let withdrawn = next.orders.withdraw(keep);
            if withdrawn > 0 {
                inputs.withdrawn = withdrawn;
                clamps.push(Clamp::Withdrawn);
                desired = desired.saturating_sub(withdrawn).max(o.ready);
            }
        }
        let live = standing.live.min(next.orders.outstanding());
        let floor = cfg.min_replicas.max(1);
        let hold_ms = cfg.scale_down_hold_ms.unwrap_or(lead as u64);
        let (verdict, timers) = guard::judge(
            &next.timers,
            down_target.max(floor),
            desired,
            guard::blocked(cfg, o, live),
            now_ms,
            hold_ms,
        );
        next.timers.down_since_ms = timers.down_since_ms;
        next.timers.down_target = timers.down_target;
        match verdict {
            Verdict::Remove(to) => {
                removed = to < desired;
                desired = to.min(desired);
            }
            Verdict::Held(c) => clamps.push(c),
            Verdict::NoNeed => {}
        }
    }
    (desired, removed)
}

/// Not enough fresh data: hold every discovered pod, scale up only when the fresh subset
/// alone proves overload, and after `staleHoldSeconds` tell KEDA there is no answer.
#[allow(clippy::too_many_arguments)]
fn hold_stale(
    cfg: &PolicyConfig,
    state: &PolicyState,
    mut next: PolicyState,
    o: &Observed,
    last: u32,
    inputs: Inputs,
    active: bool,
    now_ms: u64,
) -> (Decision, PolicyState) {
    let max = cfg.max_replicas.max(cfg.min_replicas);
    let since = *next.timers.stale_since_ms.get_or_insert(now_ms);
    next.timers.down_since_ms = None;
    next.timers.down_target = 0;
    // Every discovered pod counts here: with no data, none of them may be given up.
    let held = last.max(o.discovered).clamp(cfg.min_replicas, max);
    let mut clamps = vec![Clamp::HoldStale];
    let overload = o.fresh > 0
        && (state.learned.utilization(cfg, o) > MAX_UTILIZATION
            || o.kv_max.is_some_and(|k| k.0 >= KV_FULL));
    let mut desired = held;
    if overload {
        let need = o
            .demand
            .replicas_needed(PerReplica(state.learned.concurrency(cfg)), MAX_UTILIZATION)
            .max(held + 1);
        let supply = o.ready.saturating_add(inputs.pending);
        desired = bounds::rate_up(cfg, supply, need, &mut clamps)
            .clamp(cfg.min_replicas, max)
            .max(held);
    }
    next.answer(desired, last, o.ready, now_ms);
    let detail = format!(
        "{} of {} workers fresh: holding {held}{}",
        o.fresh,
        o.ready,
        if desired > held {
            format!(", fresh subset overloaded: {desired}")
        } else {
            String::new()
        }
    );
    (
        Decision {
            desired,
            active,
            // With no earlier answer (a restart) there is nothing safe to report: a guess
            // below the running fleet would be a scale-down on missing data, so KEDA gets
            // an error (the HPA keeps its replicas; fallback engages after its threshold).
            unavailable: state.last_ms.is_none()
                || now_ms.saturating_sub(since) > cfg.stale_hold_ms,
            reason: explain::reason(explain::Outcome {
                desired,
                last,
                removed: false,
                clamps: &clamps,
                stale: true,
            }),
            binding: Binding::None,
            candidates: Candidates::default(),
            clamps,
            inputs,
            config_hash: cfg.config_hash.clone(),
            detail,
        },
        next,
    )
}

#[cfg(test)]
mod tests;
