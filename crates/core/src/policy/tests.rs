//! Whole-pipeline tests of `decide`: hand-worked decisions, and properties over random signal
//! sequences (bounds, no scale-down on stale data or under a growing backlog, no reversal under
//! +-10 % noise, an unneeded order withdrawn within one decision).

use proptest::prelude::*;

use super::*;

const TICK: u64 = 5_000;

fn cfg() -> PolicyConfig {
    PolicyConfig {
        max_replicas: 64,
        ..PolicyConfig::default()
    }
}

/// A fleet of `ready` fresh workers with `running`/`waiting` totals and a measured TTFT of
/// 0.3 s (inside the 0.5 s SLO, with no room to explore).
fn sig(ready: usize, running: f64, waiting: f64) -> Signals {
    Signals {
        running,
        waiting,
        fresh_workers: ready,
        discovered_workers: ready,
        ttft_seconds: Some(0.3),
        ttft_samples: 100.0,
        ..Signals::default()
    }
}

/// Runs `decide` over ticks where the ready count follows the previous answer (instant pods),
/// returning the answers.
fn run(
    cfg: &PolicyConfig,
    start_ready: u32,
    load: impl Fn(u64) -> Signals,
    ticks: u64,
) -> Vec<u32> {
    run_decisions(cfg, start_ready, load, ticks)
        .iter()
        .map(|d| d.desired)
        .collect()
}

/// [`run`], returning the decisions.
fn run_decisions(
    cfg: &PolicyConfig,
    start_ready: u32,
    load: impl Fn(u64) -> Signals,
    ticks: u64,
) -> Vec<Decision> {
    let mut st = PolicyState::default();
    let mut ready = start_ready;
    let mut out = Vec::new();
    for i in 0..ticks {
        let now = i * TICK;
        let s = Signals {
            fresh_workers: ready as usize,
            discovered_workers: ready as usize,
            ..load(now)
        };
        let (d, next) = decide(cfg, &st, &s, now);
        st = next;
        ready = d.desired;
        out.push(d);
    }
    out
}

/// A token-counting vLLM fleet's signals at `prompt` tokens/s, `rps` requests/s.
fn tokens(prompt: f64, rps: f64, running: f64, waiting: f64, ttft: f64) -> Signals {
    Signals {
        running,
        waiting,
        token_counters: true,
        prompt_token_rate: prompt,
        recent_prompt_token_rate: prompt,
        request_rate: rps,
        recent_request_rate: rps,
        latest_request_rate: rps,
        ttft_seconds: Some(ttft),
        ttft_samples: 100.0,
        ..Signals::default()
    }
}

#[test]
fn the_concurrency_fallback_sizes_a_fleet_without_token_counters() {
    // 48 per replica at the 0.8 ceiling = 38.4 in flight per replica; 100 in flight -> 3.
    let (d, _) = decide(&cfg(), &PolicyState::default(), &sig(2, 100.0, 0.0), 0);
    assert_eq!(d.candidates.concurrency, Some(3));
    assert_eq!(d.candidates.prefill, None);
    assert_eq!(
        (d.desired, d.reason, d.binding),
        (3, Reason::ScaleUp, Binding::Concurrency)
    );
    assert!(
        d.detail.contains("no completions or token counters yet"),
        "{}",
        d.detail
    );
    // Requests in flight alone (no TTFT measured yet, no queue) are not evidence of need.
    let blind = Signals {
        ttft_seconds: None,
        ..sig(2, 100.0, 0.0)
    };
    assert_eq!(
        decide(&cfg(), &PolicyState::default(), &blind, 0).0.desired,
        2
    );
}

#[test]
fn a_saturated_fleet_teaches_its_throughput_and_is_sized_in_rates() {
    let c = cfg();
    // 4 replicas, 40 waiting (a real queue), serving 100 req/s and 80 k prompt tokens/s.
    let busy = Signals {
        fresh_workers: 4,
        discovered_workers: 4,
        ..tokens(80_000.0, 100.0, 200.0, 40.0, 0.9)
    };
    let mut st = PolicyState::default();
    for i in 0..3 {
        st = decide(&c, &st, &busy, i * TICK).1;
    }
    let (d, st) = decide(&c, &st, &busy, 3 * TICK);
    // A queue for 15 s (the recent part of the window): 25 req/s and 20 k tokens/s per replica.
    assert_eq!(st.learned.requests.saturated, 25.0);
    assert_eq!(st.learned.prompt_tokens.saturated, 20_000.0);
    // Planned at the 0.8 ceiling: 20 req/s per replica; arrivals 100 + the queue drained in
    // 60 s (0.67/s) and the band's noise: at least ceil(100.67 / 20) = 6.
    assert_eq!(d.inputs.requests_capacity_per_replica, Some(20.0));
    assert!(d.inputs.need >= 6, "{}", d.detail);
    // The rates size it (the latency guard, breached and waiting on the orders it placed,
    // only keeps them).
    let by_rate = d.candidates.requests.max(d.candidates.prefill);
    assert!(by_rate.is_some_and(|n| n >= 6), "{}", d.detail);
    assert!(d.desired >= 6, "{}", d.detail);
    assert!(d.detail.contains("at 20.0/replica"), "{}", d.detail);
}

#[test]
fn arrivals_are_completions_plus_the_growth_of_requests_in_flight() {
    let c = cfg();
    let fleet = |running: f64, waiting: f64, growth: f64| Signals {
        fresh_workers: 4,
        discovered_workers: 4,
        recent_in_flight_growth: growth,
        latest_in_flight_growth: growth,
        recent_first_token_rate: Some(100.0),
        ..tokens(80_000.0, 100.0, running, waiting, 0.9)
    };
    // A burst of long prompts: 100 completions/s while requests in flight grow by 20/s (the
    // running batch fills before the queue): 120 arrived, and the forecast plans for them.
    let (d, st) = decide(&c, &PolicyState::default(), &fleet(300.0, 40.0, 20.0), 0);
    assert!(
        d.inputs.forecast_request_rate.is_some_and(|r| r >= 120.0),
        "{}",
        d.detail
    );
    // 20/s came and were not prefilled yet: at 800 tokens a prompt, 16 000 tokens/s more
    // than the counter shows.
    assert!(
        d.inputs
            .forecast_prefill_tokens_per_s
            .is_some_and(|p| p >= 96_000.0),
        "{}",
        d.detail
    );
    // The backlog drains, 50 fewer in flight each second: the completions include 50/s of
    // backlog, which is not load that recurs: 50 arrived, and the level falls below the
    // completions.
    let level = st.forecast.requests.level.unwrap_or(0.0);
    let (_, st) = decide(&c, &st, &fleet(150.0, 0.0, -50.0), TICK);
    assert!(
        st.forecast.requests.level.unwrap_or(f64::MAX) < 100.0,
        "{:?} after {level}",
        st.forecast.requests
    );
    // A burst that the recent span's average has not caught up with: the latest growth wins.
    let burst = Signals {
        latest_in_flight_growth: 200.0,
        ..fleet(300.0, 40.0, 20.0)
    };
    let (d, _) = decide(&c, &PolicyState::default(), &burst, 0);
    assert!(
        d.inputs.forecast_request_rate.is_some_and(|r| r >= 300.0),
        "{}",
        d.detail
    );
}

#[test]
fn a_drain_that_just_ended_is_not_arrivals() {
    // 13 replicas drained a backlog: 72.5 completions a second over the recent 15 s while
    // requests in flight fell by 46.6 a second (26 arrived); in the latest 5 s the queue is
    // gone, 20 complete a second and in flight falls by 10 (10 arrived). The recent
    // completions paired with the latest growth would read 62.5 arrivals, and the burst
    // memory would hold them for a quarter of an hour.
    let s = Signals {
        fresh_workers: 13,
        discovered_workers: 13,
        recent_in_flight_growth: -46.6,
        latest_in_flight_growth: -10.0,
        latest_request_rate: 20.0,
        ..tokens(700_000.0, 72.5, 20.0, 0.0, 0.3)
    };
    let (d, st) = decide(&cfg(), &PolicyState::default(), &s, 0);
    let f = d.inputs.forecast_request_rate.unwrap_or(f64::MAX);
    assert!((f - 25.9).abs() < 1e-6, "{}", d.detail);
    assert!((st.forecast.requests.peak - 25.9).abs() < 1e-6, "{st:?}");
}

#[test]
fn a_removal_undone_for_distress_within_its_trial_is_a_probe_that_failed() {
    // A fleet learned to serve 100 requests/s a replica well; it probes down, and the KV
    // cache of the smaller fleet fills at the same load: the rate per remaining replica is
    // remembered as bad, so the probe is not repeated.
    let mut st = PolicyState::default();
    st.learned.requests.good = 100.0;
    st.learned.prompt_tokens.good = 80_000.0;
    st.last_desired = Some(4);
    st.last_ready = Some(5);
    st.last_ms = Some(55_000);
    st.timers.last_down_ms = Some(30_000);
    let filling = Signals {
        fresh_workers: 4,
        discovered_workers: 4,
        kv_usage_mean: Some(0.9),
        kv_usage_max: Some(0.93),
        ..tokens(360_000.0, 450.0, 400.0, 0.0, 0.1)
    };
    let (d, next) = decide(&cfg(), &st, &filling, 60_000);
    assert!(d.desired > 4, "{}", d.detail);
    assert_eq!(d.binding, Binding::KvCache, "{}", d.detail);
    // 450/s over the 4 replicas the removal left.
    assert_eq!(next.learned.requests.bad, Some(112.5));
    assert_eq!(next.learned.requests.good, 100.0);
    // The same scale-up for a forecast that rose is not a failed probe.
    let rising = Signals {
        kv_usage_mean: Some(0.1),
        kv_usage_max: Some(0.1),
        ..tokens(800_000.0, 700.0, 100.0, 0.0, 0.1)
    };
    let rising = Signals {
        fresh_workers: 4,
        discovered_workers: 4,
        ..rising
    };
    let (d, next) = decide(&cfg(), &st, &rising, 60_000);
    assert!(d.desired > 4, "{}", d.detail);
    assert_eq!(next.learned.requests.bad, None, "{}", d.detail);
}

#[test]
fn a_settled_fleet_whose_requests_in_flight_keep_growing_marks_its_rate_bad() {
    // 4 replicas served 50 requests/s each well; now 240/s complete while the requests in
    // flight grow by 30/s over the whole window (a running batch filling past the decode
    // knee), TTFT still well within the SLO: the arrivals per replica are a breaking rate.
    let mut st = PolicyState::default();
    st.learned.requests.good = 50.0;
    st.learned.prompt_tokens.good = 50_000.0;
    st.last_desired = Some(4);
    st.last_ready = Some(4);
    st.last_ms = Some(55_000);
    let at = |recent: f64, latest: f64, window: f64| Signals {
        fresh_workers: 4,
        discovered_workers: 4,
        recent_in_flight_growth: recent,
        latest_in_flight_growth: latest,
        window_in_flight_growth: window,
        ..tokens(240_000.0, 240.0, 600.0, 0.0, 0.1)
    };
    let (d, next) = decide(&cfg(), &st, &at(30.0, 30.0, 30.0), 60_000);
    let bad = next.learned.requests.bad;
    assert!(bad.is_some_and(|b| b >= 60.0), "{bad:?}: {}", d.detail);
    assert_eq!(next.learned.requests.good, 50.0, "{}", d.detail);
    // A burst's onset grows them over the newest seconds only: it is planned for (the
    // latest growth is an arrival), and it is no knee.
    let (d, next) = decide(&cfg(), &st, &at(2.0, 60.0, 1.0), 60_000);
    assert_eq!(next.learned.requests.bad, None, "{}", d.detail);
    // Nor is a fleet that kept up over the window and grows over its recent part: it
    // vouches for nothing either, since its latency is on borrowed time.
    let (d, next) = decide(&cfg(), &st, &at(30.0, 30.0, 1.0), 60_000);
    assert_eq!(next.learned.requests.bad, None, "{}", d.detail);
    assert_eq!(next.learned.requests.good, 50.0, "{}", d.detail);
}

#[test]
fn the_latency_guard_keeps_its_order_and_waits_a_window_after_pods_join() {
    let c = cfg();
    // 4 replicas serving 40 in flight well within the model, but preempting: the guard adds
    // 25 % (1).
    let preempting = |ready: usize| Signals {
        preemption_rate: 2.0,
        ..sig(ready, 40.0, 0.0)
    };
    let (d, st) = decide(&c, &PolicyState::default(), &preempting(4), 0);
    assert_eq!(
        (d.desired, d.binding),
        (5, Binding::Latency),
        "{}",
        d.detail
    );
    // Still preempting while the pod starts: the order is kept (the model alone would
    // withdraw it), and nothing is added on top of it.
    let (d, st) = decide(&c, &st, &preempting(4), TICK);
    assert_eq!(d.desired, 5, "{}", d.detail);
    assert_eq!(d.inputs.withdrawn, 0, "{}", d.detail);
    // The pod joined; the old replicas still preempt what they took before, which another
    // replica would not relieve: no second step within the TTFT window.
    let mut st = st;
    for i in 2..12 {
        let (d, next) = decide(&c, &st, &preempting(5), i * TICK);
        st = next;
        assert!(d.desired <= 5, "{}", d.detail);
        assert_ne!(d.binding, Binding::Latency, "{}", d.detail);
    }
    // A window later it is this fleet's harm again, and the guard steps.
    let (d, _) = decide(&c, &st, &preempting(5), 14 * TICK);
    assert_eq!(
        (d.desired, d.binding),
        (7, Binding::Latency),
        "{}",
        d.detail
    );
}

#[test]
fn preemptions_of_a_cache_that_has_room_again_are_the_past() {
    // 8 replicas that preempted within the window. With the fullest cache at 4 % (a backlog's
    // full caches drained) that is history: no guard. At 82 %, above the KV target of 0.8 the
    // sizing plans for (which alone asks for ceil(8 x 0.82 / 0.8) = 9), it is the present: the
    // guard adds 25 % (2).
    let c = cfg();
    let preempted = |kv: f64| Signals {
        preemption_rate: 2.0,
        kv_usage_mean: Some(kv),
        kv_usage_max: Some(kv),
        ..sig(8, 80.0, 0.0)
    };
    let (d, _) = decide(&c, &PolicyState::default(), &preempted(0.04), 0);
    assert_ne!(d.binding, Binding::Latency, "{}", d.detail);
    assert_eq!(d.desired, 8, "{}", d.detail);
    let (d, _) = decide(&c, &PolicyState::default(), &preempted(0.82), 0);
    assert_eq!(
        (d.desired, d.binding),
        (10, Binding::Latency),
        "{}",
        d.detail
    );
}

#[test]
fn a_fleet_within_its_slo_probes_down_in_bounded_steps() {
    // 10 replicas serving 100 req/s with TTFT far under the SLO: the best-seen rate is 10 a
    // replica; each step plans at most 1.5 x 0.85 = 1.275 x that, and waits a TTFT window
    // before the new rate counts as seen.
    let c = cfg();
    let mut st = PolicyState::default();
    let mut ready = 10u32;
    let mut answers = Vec::new();
    for i in 0..120 {
        let s = Signals {
            fresh_workers: ready as usize,
            discovered_workers: ready as usize,
            ..tokens(50_000.0, 100.0, 100.0, 0.0, 0.05)
        };
        let (d, next) = decide(&c, &st, &s, i * TICK);
        st = next;
        ready = d.desired;
        answers.push(d.desired);
    }
    assert!(answers.windows(2).all(|w| w[1] <= w[0]), "{answers:?}");
    for w in answers.windows(2).filter(|w| w[1] < w[0]) {
        assert!(f64::from(w[0]) / f64::from(w[1]) <= 1.3, "{answers:?}");
    }
    // One probe per TTFT window at most: the new rate must be seen before the next.
    let downs: Vec<usize> = (1..answers.len())
        .filter(|&i| answers[i] < answers[i - 1])
        .collect();
    for w in downs.windows(2) {
        assert!((w[1] - w[0]) as u64 * TICK >= 60_000, "{answers:?}");
    }
    assert!(*answers.last().unwrap_or(&10) < 8, "{answers:?}");
}

#[test]
fn an_order_the_fleet_no_longer_needs_is_withdrawn() {
    // 2 busy workers ask for 5; the pods never come (an HPA clamped lower, a quota), and the
    // load goes. While the order is on time (two lead times: 120 s before any order filled)
    // it is kept only for what the remembered burst needs; once late, only for the forecast,
    // so the answer is back at 2 two lead times after the ask, never keeping an order the plan
    // does not need, and not pendingTimeoutSeconds (600 s) of holding everything.
    let c = cfg();
    let (d, mut st) = decide(&c, &PolicyState::default(), &sig(2, 190.0, 0.0), 0);
    assert_eq!(d.desired, 5);
    let late_at = (constants::LATE_ORDER_LEADS * constants::LEAD_TIME_PRIOR_MS) as u64;
    let mut back_at = None;
    for i in 1..=120 {
        let (d, next) = decide(&c, &st, &sig(2, 5.0, 0.0), i * TICK);
        st = next;
        // Within one decision of the plan: never an order the plan does not need.
        let plan = if i * TICK < late_at {
            d.inputs.down_target
        } else {
            d.inputs.keep_target
        };
        assert!(d.desired <= plan.clamp(2, 5), "{}", d.detail);
        if d.desired == 2 {
            assert_eq!(d.reason, Reason::Withdrawn, "{}", d.detail);
            back_at = Some(i);
            break;
        }
    }
    // 190 in flight needs 5 at the down headroom (32.6 each); the forecast's level (10 s
    // time constant) and its band are below 65 within a minute, so the order goes as soon as
    // it is late: 120 s, 24 decisions.
    assert!(
        back_at.is_some_and(|i| i * TICK <= late_at + TICK),
        "{back_at:?}"
    );
}

#[test]
fn a_scale_down_waits_one_lead_time_then_removes_what_the_plan_allows_at_once() {
    let c = cfg();
    let mut st = PolicyState::default();
    let mut ready = 10u32;
    let mut answers = Vec::new();
    for i in 0..40 {
        let (d, next) = decide(&c, &st, &sig(ready as usize, 30.0, 0.0), i * TICK);
        st = next;
        ready = d.desired;
        answers.push(d.desired);
    }
    // 30 in flight at 48 x 0.8 x 0.85 per replica needs 1; the prior lead time is 60 s.
    assert!(answers[..12].iter().all(|d| *d == 10), "{answers:?}");
    assert_eq!(answers[12], 1, "{answers:?}");
}

#[test]
fn the_lead_time_is_learned_from_orders_that_fill() {
    let c = cfg();
    let (d, mut st) = decide(&c, &PolicyState::default(), &sig(2, 190.0, 0.0), 0);
    assert_eq!(d.desired, 5);
    // The three pods start serving 90 s later.
    for i in 1..18 {
        st = decide(&c, &st, &sig(2, 190.0, 0.0), i * TICK).1;
    }
    let (d, st) = decide(&c, &st, &sig(5, 190.0, 0.0), 18 * TICK);
    assert_eq!(st.learned.lead_ms, Some(90_000.0));
    assert!((d.inputs.lead_time_s - 90.0).abs() < 1e-9);
}

#[test]
fn stale_data_holds_then_goes_unavailable() {
    let c = cfg();
    let (d, st) = decide(&c, &PolicyState::default(), &sig(4, 200.0, 0.0), 0);
    assert_eq!(d.desired, 6);
    let stale = Signals {
        fresh_workers: 1,
        discovered_workers: 4,
        ..Signals::default()
    };
    let (d, st) = decide(&c, &st, &stale, TICK);
    assert_eq!(
        (d.desired, d.reason, d.unavailable),
        (6, Reason::DataStale, false)
    );
    let (d, _) = decide(&c, &st, &stale, TICK + c.stale_hold_ms + 1);
    assert!(d.unavailable);
}

#[test]
fn stale_fleet_scales_up_when_the_fresh_subset_alone_proves_overload() {
    // 1 of 4 fresh, carrying 100 in flight: 100 per replica > 38.4, extrapolated 400 -> 11,
    // rate-limited from supply 4 to 8.
    let s = Signals {
        running: 100.0,
        fresh_workers: 1,
        discovered_workers: 4,
        ..Signals::default()
    };
    let (d, _) = decide(&cfg(), &PolicyState::default(), &s, 0);
    assert_eq!((d.desired, d.reason), (8, Reason::DataStale));
}

#[test]
fn bounds_and_hpa_tolerance() {
    let c = PolicyConfig {
        min_replicas: 2,
        max_replicas: 5,
        ..cfg()
    };
    assert_eq!(
        decide(&c, &PolicyState::default(), &sig(1, 0.0, 0.0), 0)
            .0
            .desired,
        2
    );
    assert_eq!(
        decide(&c, &PolicyState::default(), &sig(5, 1000.0, 0.0), 0)
            .0
            .desired,
        5
    );
    // 10 ready, need 11: inside a 10 % band the HPA would ignore it; push to 12.
    let t = PolicyConfig {
        hpa_tolerance: 0.1,
        ..cfg()
    };
    let (d, _) = decide(&t, &PolicyState::default(), &sig(10, 400.0, 0.0), 0);
    assert_eq!(d.candidates.concurrency, Some(11));
    assert_eq!(d.desired, 12);
    assert!(d.clamps.contains(&Clamp::HpaTolerance));
}

#[test]
fn headroom_adds_warm_capacity_on_top_of_the_need() {
    let c = PolicyConfig {
        headroom_fraction: 0.5,
        spare_replicas: 1,
        ..cfg()
    };
    // Need 3 (100 in flight), x 1.5 = 4.5 -> 5, + 1 = 6.
    let (d, _) = decide(&c, &PolicyState::default(), &sig(6, 100.0, 0.0), 0);
    assert_eq!((d.inputs.need, d.desired), (3, 6));
    assert!(d.clamps.contains(&Clamp::Headroom));
}

#[test]
fn warm_capacity_is_added_once_while_the_latency_guard_waits_on_its_orders() {
    // The guard holds what is on order (the supply) while its pods are on their way; that
    // supply already carries the spare replica, so the spare does not go on top again at each
    // decision (node provisioning, ramp seed 1 with spareReplicas=1: 8 -> 32 in two minutes
    // while the orders waited for nodes).
    let c = PolicyConfig {
        spare_replicas: 1,
        headroom_fraction: 0.25,
        ..cfg()
    };
    let preempting = Signals {
        preemption_rate: 2.0,
        ..sig(4, 40.0, 0.0)
    };
    let (first, mut st) = decide(&c, &PolicyState::default(), &preempting, 0);
    assert_eq!(first.binding, Binding::Latency, "{}", first.detail);
    for i in 1..24 {
        let (d, next) = decide(&c, &st, &preempting, i * TICK);
        st = next;
        assert!(
            d.desired <= first.desired,
            "{} after {}",
            d.detail,
            first.detail
        );
    }
}

#[test]
fn a_long_lead_time_narrows_the_probe_past_the_rates_served_well() {
    // Served 50 requests/s a replica well; latency has room. With pods that start in a minute
    // the plan may run a replica at up to 75; where capacity takes ten minutes (GPU nodes) a
    // probe past the knee would cost ten minutes of slow requests, so it goes 7.5 % past.
    let mut st = PolicyState::default();
    st.learned.requests.good = 50.0;
    let roomy = Signals {
        fresh_workers: 4,
        discovered_workers: 4,
        ..tokens(40_000.0, 160.0, 40.0, 0.0, 0.1)
    };
    let capacity = |lead_ms: f64| {
        let mut st = st.clone();
        st.learned.lead_ms = Some(lead_ms);
        let (d, _) = decide(&cfg(), &st, &roomy, 0);
        assert!(d.inputs.exploring, "{}", d.detail);
        d.inputs.requests_capacity_per_replica.unwrap_or(0.0)
    };
    assert!((capacity(60_000.0) - 75.0).abs() < 1e-9);
    assert!((capacity(600_000.0) - 53.75).abs() < 1e-9);
}

#[test]
fn starting_pods_are_pending_supply_not_stale_data() {
    let c = cfg();
    let (d, st) = decide(&c, &PolicyState::default(), &sig(2, 200.0, 0.0), 0);
    assert_eq!(d.desired, 6);
    // The 4 new pods are listed by the headless Service but refuse scrapes while they load.
    let starting = Signals {
        starting_workers: 4,
        discovered_workers: 6,
        ..sig(2, 200.0, 0.0)
    };
    let (d, _) = decide(&c, &st, &starting, TICK);
    assert_ne!(d.reason, Reason::DataStale, "{}", d.detail);
    assert_eq!(
        (d.inputs.ready, d.inputs.starting, d.inputs.pending),
        (2, 4, 4)
    );
    assert_eq!(
        d.desired, 6,
        "no second scale-up for capacity already coming"
    );
}

#[test]
fn a_scaler_restarted_into_an_outage_holds_every_discovered_pod() {
    let blind = Signals {
        discovered_workers: 8,
        starting_workers: 8,
        fresh_workers: 0,
        ..Signals::default()
    };
    let (d, _) = decide(&cfg(), &PolicyState::default(), &blind, 0);
    assert_eq!((d.desired, d.reason), (8, Reason::DataStale));
}

#[test]
fn one_stale_or_invalid_worker_blocks_a_scale_down() {
    let c = cfg();
    let mut st = PolicyState::default();
    for i in 0..200 {
        let s = Signals {
            fresh_workers: 9,
            ..sig(10, 90.0, 0.0)
        };
        let (d, next) = decide(&c, &st, &s, i * TICK);
        assert_eq!(d.desired, 10, "tick {i}: {}", d.detail);
        st = next;
    }
}

#[test]
fn frontend_queue_wakes_a_fleet_at_zero_workers() {
    use crate::extract::{Engine, extract};
    use crate::fleet::{Fleet, Observation, SignalConfig, TargetRole};
    let sc = SignalConfig {
        ttft_quantile: 0.95,
        window_ms: 60_000,
        ttft_min_samples: 20.0,
    };
    let frontend = |page: &str| {
        let mut fleet = Fleet::default();
        fleet.apply_cycle(
            &sc,
            0,
            vec![Observation {
                id: "http://fe:8000/metrics".into(),
                role: TargetRole::Frontend,
                outcome: Ok(extract(page, Engine::Dynamo, None).metrics),
                parse_errors: 0,
            }],
        );
        fleet.signals(&sc)
    };
    let s = frontend(
        "dynamo_frontend_queued_requests{model=\"qwen/qwen3-0.6b\"} 3\ndynamo_frontend_inflight_requests{model=\"qwen/qwen3-0.6b\"} 3\n",
    );
    assert_eq!((s.waiting, s.discovered_workers), (3.0, 0));
    let c = PolicyConfig {
        min_replicas: 0,
        ..cfg()
    };
    let (d, _) = decide(&c, &PolicyState::default(), &s, 0);
    assert!(
        d.active,
        "the frontend queue activates the fleet so KEDA scales 0 -> 1"
    );
    assert_eq!((d.reason, d.desired), (Reason::ScaleUp, 1));
    let idle = frontend(
        "dynamo_frontend_queued_requests{model=\"qwen/qwen3-0.6b\"} 0\ndynamo_frontend_inflight_requests{model=\"qwen/qwen3-0.6b\"} 0\n",
    );
    let (d, _) = decide(&c, &PolicyState::default(), &idle, 0);
    assert_eq!((d.desired, d.active), (0, false));
    assert_ne!(d.reason, Reason::DataStale);
    let (d, _) = decide(&c, &PolicyState::default(), &Signals::default(), 0);
    assert_eq!(d.reason, Reason::DataStale);
}

fn arb_signals() -> impl Strategy<Value = (usize, usize, f64, f64, Option<f64>, Option<f64>, f64)> {
    (
        1usize..30,
        0usize..30,
        0.0f64..2000.0,
        0.0f64..50.0,
        proptest::option::of(0.0f64..1.0),
        proptest::option::of(0.0f64..5.0),
        0.0f64..200_000.0,
    )
}

/// Deterministic +-10 % noise.
fn noise(t: u64, seed: u64) -> f64 {
    let x = (t / TICK)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(seed.wrapping_mul(1442695040888963407));
    ((x >> 33) % 2001) as f64 / 10000.0 - 0.1
}

fn reversals(answers: &[u32]) -> usize {
    let mut last_dir = 0i64;
    let mut n = 0;
    for w in answers.windows(2) {
        let dir = (i64::from(w[1]) - i64::from(w[0])).signum();
        if dir != 0 {
            if last_dir != 0 && dir != last_dir {
                n += 1;
            }
            last_dir = dir;
        }
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn bounds_always_hold_and_stale_data_never_scales_down(
        min in 0u32..5, span in 0u32..20,
        seq in proptest::collection::vec(arb_signals(), 1..60),
    ) {
        let c = PolicyConfig { min_replicas: min, max_replicas: min + span.max(1), ..PolicyConfig::default() };
        let mut st = PolicyState::default();
        let mut prev: Option<u32> = None;
        for (i, (total, fresh, running, waiting, kv, ttft, prompt)) in seq.into_iter().enumerate() {
            let fresh = fresh.min(total);
            let s = Signals { discovered_workers: total, fresh_workers: fresh, running, waiting, kv_usage_mean: kv, kv_usage_max: kv, ttft_seconds: ttft, token_counters: true, prompt_token_rate: prompt, request_rate: prompt / 500.0, ..Signals::default() };
            let (d, next) = decide(&c, &st, &s, i as u64 * TICK);
            prop_assert!(d.desired >= c.min_replicas && d.desired <= c.max_replicas);
            if let Some(p) = prev {
                let partial = fresh < total;
                let backlog = waiting >= 2.0 * total as f64;
                // Below the serving fleet never on partial data or a backlog (withdrawing an
                // order that serves nobody is not a scale-down).
                if partial || backlog {
                    prop_assert!(d.desired >= p.min(c.max_replicas).min(total.max(c.min_replicas as usize) as u32), "fell from {p} to {} (fresh {fresh}/{total}, waiting {waiting}): {}", d.desired, d.detail);
                }
            }
            prev = Some(d.desired);
            st = next;
        }
    }

    #[test]
    fn no_scale_down_while_a_backlog_grows(ready in 2u32..20, start in 0.0f64..100.0, rate in 1.0f64..50.0) {
        let c = PolicyConfig { max_replicas: 20, ..PolicyConfig::default() };
        let mut st = PolicyState::default();
        let mut last = None;
        for i in 0..100u64 {
            let waiting = 2.0 * f64::from(ready) + start + rate * i as f64;
            let s = Signals { fresh_workers: ready as usize, discovered_workers: ready as usize, ..tokens(10_000.0, 20.0, 50.0, waiting, 2.0) };
            let (d, next) = decide(&c, &st, &s, i * TICK);
            if let Some(p) = last {
                prop_assert!(d.desired >= p, "fell from {p} to {} under a growing queue: {}", d.desired, d.detail);
            }
            last = Some(d.desired);
            st = next;
        }
    }

    #[test]
    fn noisy_constant_load_never_reverses(base in 10.0f64..1500.0, seed in 0u64..1000, with_tokens in any::<bool>()) {
        let c = PolicyConfig { max_replicas: 100, ..PolicyConfig::default() };
        let answers = run(&c, 1, |t| {
            let k = 1.0 + noise(t, seed);
            if with_tokens {
                tokens(base * 100.0 * k, base * k / 5.0, base * k, 0.0, 0.05)
            } else {
                sig(0, base * k, 0.0)
            }
        }, 300);
        prop_assert_eq!(reversals(&answers), 0, "{:?}", answers);
    }

    #[test]
    fn an_unneeded_order_is_withdrawn_within_one_decision(ready in 1u32..10, extra in 1u32..20, rest in 0.0f64..1.0) {
        let c = PolicyConfig { max_replicas: 64, ..PolicyConfig::default() };
        // Demand that needs ready + extra; the pods never come; then a lower load.
        let busy = sig(ready as usize, 38.4 * f64::from(ready + extra), 0.0);
        let (d, mut st) = decide(&c, &PolicyState::default(), &busy, 0);
        prop_assert!(d.desired > ready);
        let low = sig(ready as usize, 38.4 * f64::from(ready) * rest * 0.5, 0.0);
        let mut back = false;
        let (mut placed, mut last) = (0u64, d.desired);
        for i in 1..=240u64 {
            let (d, next) = decide(&c, &st, &low, i * TICK);
            st = next;
            // Every order the plan does not need is gone at the decision that finds it so:
            // the remembered burst's plan while an order is on time, the forecast's once the
            // newest is late.
            if d.desired > last {
                placed = i * TICK;
            }
            last = d.desired;
            let late = i * TICK >= placed + (constants::LATE_ORDER_LEADS * constants::LEAD_TIME_PRIOR_MS) as u64;
            let plan = if late { d.inputs.keep_target } else { d.inputs.down_target };
            prop_assert!(d.desired <= plan.max(ready), "{}", d.detail);
            back |= d.desired == ready;
        }
        prop_assert!(back);
    }

    #[test]
    fn step_up_reaches_the_need_within_the_rate_limit_bound(from in 1u32..6, load in 100.0f64..3000.0) {
        let c = PolicyConfig { max_replicas: 200, ..PolicyConfig::default() };
        let need = FleetTotal(load).replicas_needed(PerReplica(c.concurrency_per_replica), constants::MAX_UTILIZATION);
        let answers = run(&c, from, |_| sig(0, load, 0.0), 40);
        // Each tick at least doubles supply (or adds 4): reaching `need` from `from` takes at
        // most ceil(log2(need / from)) + 1 ticks when pods are ready by the next tick.
        let bound = (f64::from(need.max(1)) / f64::from(from)).log2().ceil().max(0.0) as usize + 1;
        let reached = answers.iter().position(|d| *d >= need.min(c.max_replicas));
        prop_assert!(reached.is_some_and(|i| i < bound), "need {need} from {from}: {answers:?} (bound {bound})");
    }

    #[test]
    fn a_drop_is_followed_within_one_lead_time_of_the_plan_allowing_it(high in 400.0f64..1500.0, ratio in 0.05f64..0.4) {
        let c = PolicyConfig { max_replicas: 100, ..PolicyConfig::default() };
        let drop_at = 300_000u64;
        let ds = run_decisions(&c, 1, |t| sig(0, if t < drop_at { high } else { high * ratio }, 0.0), 400);
        let answers: Vec<u32> = ds.iter().map(|d| d.desired).collect();
        let first = (drop_at / TICK) as usize;
        let before = answers[first - 1];
        // After the drop the plan falls as the remembered peak decays; once it allows a
        // removal, the removal comes one lead time (60 s before any order has filled) and a
        // decision later, and the answer never rises again.
        let allows = (first..ds.len()).find(|&i| ds[i].inputs.down_target < ds[i].desired.max(1));
        prop_assert!(allows.is_some(), "the plan never allowed a removal: {answers:?}");
        let allows = allows.unwrap_or(first);
        let limit = (allows + (60_000 / TICK) as usize + 1).min(answers.len() - 1);
        prop_assert!(answers[..=limit].iter().skip(first).any(|d| *d < before), "no scale-down within a lead time of the plan allowing one: {answers:?}");
        prop_assert!(answers[first..].windows(2).all(|w| w[1] <= w[0]), "{answers:?}");
    }
}

/// Folds `ticks` decisions' loads into the forecasts (arrivals of `rps` requests a second of
/// 10 k prompt tokens each, `None`: none known; a KV summed over replicas of `kv` caches and
/// 40 requests in flight per cache), one lead time of 60 s; returns the state and the last
/// memory a removal would plan for.
fn remember(ticks: u64, load: impl Fn(u64) -> (Option<f64>, f64)) -> (PolicyState, Loads) {
    let mut st = PolicyState::default();
    let mut held = Loads::default();
    for i in 0..ticks {
        let (rps, kv) = load(i);
        let o = Observed {
            kv_sum: Some(FleetTotal(kv)),
            demand: FleetTotal(40.0 * kv),
            ..Observed::default()
        };
        let mut next = st.clone();
        held = forecast(
            &st,
            &mut next,
            &o,
            (rps, rps.map(|r| r * 10_000.0)),
            (0.0, 0.0),
            TICK,
            i * TICK,
            60_000.0,
        )
        .1;
        st = next;
    }
    (st, held)
}

#[test]
fn a_backlog_drained_into_the_caches_is_not_remembered_as_load() {
    // Long context seed 1: arrivals steady at 25 req/s (250 k prompt tokens/s) before, during
    // and after a backlog; draining it into the new replicas' caches took the KV summed over
    // replicas to 8 caches' worth for half a minute, then back to 1. The arrivals show no
    // burst to remember, so neither does KV: the memory a removal plans for is what 25 req/s
    // take now, not the drained backlog's 8 caches, which held 13 replicas for 15 minutes
    // where 5 served.
    let (st, held) = remember(120, |i| {
        (Some(25.0), if (24..30).contains(&i) { 8.0 } else { 1.0 })
    });
    // Seven and a half minutes later the KV band's own peak is still 8 x e^(-1/2) = 4.9 ...
    assert!(st.forecast.kv.peak > 4.5, "{:?}", st.forecast.kv);
    // ... but what is held for the removal is the cache the arrivals fill now, with its band.
    assert!(held.kv.is_some_and(|kv| kv < 2.0), "{held:?}");
    assert!(held.demand < 80.0, "{held:?}");
}

#[test]
fn a_burst_of_arrivals_is_remembered_in_kv_at_the_footprint_now() {
    // The same fleet after a real burst: arrivals 25 -> 75 req/s for a minute and back, KV
    // with them (1 -> 3 caches). Afterwards the arrivals' memory is the burst's (about 3x
    // the load now, decayed), and the KV held is 3x the cache in use now, bounded by the KV
    // band's own memory.
    let (st, held) = remember(60, |i| {
        if (24..36).contains(&i) {
            (Some(75.0), 3.0)
        } else {
            (Some(25.0), 1.0)
        }
    });
    let kv = held.kv.unwrap_or(0.0);
    assert!(kv > 2.0, "{held:?}");
    assert!(
        kv <= st.forecast.kv.held(1.0, 60_000.0, 1.0) + 1e-9,
        "{held:?}"
    );
}

#[test]
fn without_arrivals_requests_in_flight_keep_their_own_memory() {
    // A fleet with no completions or token counters yet (the concurrency fallback): in flight
    // is the only measure of its load, so a rise in it is remembered as it was before v2.8
    // (proptest `noisy_constant_load_never_reverses` found v2.8's first version removing the
    // replica a noisy 32-in-flight load had just been given: 1 -> 2 -> 1).
    let (_, held) = remember(24, |i| (None, if (6..9).contains(&i) { 2.5 } else { 0.75 }));
    assert!(held.demand > 90.0, "{held:?}");
}
