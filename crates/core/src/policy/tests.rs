//! Policy rules with hand-worked numbers, and properties over random signal sequences.

use proptest::prelude::*;

use super::*;

const TICK: u64 = 5_000;

fn cfg() -> PolicyConfig {
    PolicyConfig {
        max_replicas: 64,
        ..PolicyConfig::default()
    }
}

/// A fleet of `ready` fresh workers with `running`/`waiting` totals.
fn sig(ready: usize, running: f64, waiting: f64) -> Signals {
    Signals {
        running,
        waiting,
        fresh_workers: ready,
        discovered_workers: ready,
        ..Signals::default()
    }
}

/// Runs `decide` over ticks where the ready count follows the previous answer (instant pods),
/// returning the answers.
fn run(
    cfg: &PolicyConfig,
    start_ready: u32,
    load: impl Fn(u64) -> (f64, f64),
    ticks: u64,
) -> Vec<u32> {
    let mut st = PolicyState::default();
    let mut ready = start_ready;
    let mut out = Vec::new();
    for i in 0..ticks {
        let now = i * TICK;
        let (running, waiting) = load(now);
        let (d, next) = decide(cfg, &st, &sig(ready as usize, running, waiting), now);
        st = next;
        ready = d.desired;
        out.push(d.desired);
    }
    out
}

#[test]
fn concurrency_candidate_by_hand() {
    // 48 per replica at 0.8 = 38.4 in flight per replica; 100 in flight -> ceil(2.60) = 3.
    let (d, _) = decide(&cfg(), &PolicyState::default(), &sig(2, 100.0, 0.0), 0);
    assert_eq!(d.candidates.concurrency, Some(3));
    assert_eq!(
        (d.desired, d.reason, d.binding),
        (3, Reason::ScaleUp, Binding::Concurrency)
    );
}

#[test]
fn scale_up_is_rate_limited_from_supply() {
    // 1000 in flight needs 27; from 2 replicas at most max(2 x 2, 2 + 4) = 6.
    let (d, _) = decide(&cfg(), &PolicyState::default(), &sig(2, 1000.0, 0.0), 0);
    assert_eq!(d.desired, 6);
    assert!(d.clamps.contains(&Clamp::RateUp));
}

#[test]
fn pending_replicas_count_as_supply_until_they_time_out() {
    let c = cfg();
    let (d, st) = decide(&c, &PolicyState::default(), &sig(2, 100.0, 0.0), 0);
    assert_eq!(d.desired, 3);
    // The third replica is still starting: same need, no second scale-up.
    let (d, st) = decide(&c, &st, &sig(2, 100.0, 0.0), TICK);
    assert_eq!((d.desired, d.inputs.pending, d.inputs.supply), (3, 1, 3));
    assert!(d.clamps.contains(&Clamp::PendingHold));
    // It never arrives: after pendingTimeoutSeconds it stops counting and is reported.
    let (d, _) = decide(&c, &st, &sig(2, 100.0, 0.0), c.pending_timeout_ms + 1);
    assert_eq!((d.inputs.pending, d.inputs.pending_expired), (0, 1));
    assert_eq!((d.desired, d.reason), (3, Reason::CapacityBlocked));
}

#[test]
fn kv_candidate_by_hand() {
    // 4 replicas at 90 % KV = 3.6 replica-fractions against 0.8 -> ceil(4.5) = 5.
    let s = Signals {
        kv_usage_mean: Some(0.9),
        kv_usage_max: Some(0.9),
        ..sig(4, 0.0, 0.0)
    };
    let (d, _) = decide(&cfg(), &PolicyState::default(), &s, 0);
    assert_eq!(
        (d.candidates.kv_cache, d.desired, d.binding),
        (Some(5), 5, Binding::KvCache)
    );
}

#[test]
fn latency_guard_needs_two_ticks_of_breach_while_backlogged() {
    // 8 replicas, 20 running + 20 waiting (a backlog: at least 2 waiting per replica):
    // the guard, after two ticks of breach, asks 8 + ceil(0.25 x 8) = 10; the backlog
    // candidate, after three ticks, 8 + ceil(20 / 38.4) = 9.
    let c = cfg();
    let s = Signals {
        ttft_seconds: Some(0.8),
        ..sig(8, 20.0, 20.0)
    };
    let (d, st) = decide(&c, &PolicyState::default(), &s, 0);
    assert_eq!(
        (d.candidates.latency, d.candidates.backlog, d.desired),
        (None, None, 8)
    );
    let (d, st) = decide(&c, &st, &s, TICK);
    assert_eq!(
        (d.candidates.latency, d.candidates.backlog),
        (Some(10), None)
    );
    assert_eq!((d.desired, d.binding), (10, Binding::Latency));
    // The two added replicas are starting: the guard does not add again for the same breach.
    let (d, _) = decide(&c, &st, &s, 2 * TICK);
    assert_eq!(
        (d.candidates.latency, d.candidates.backlog),
        (None, Some(9))
    );
    assert_eq!(d.desired, 10);
    // A few waiting requests are arrivals between engine steps, not a backlog: no breach.
    let calm = Signals {
        ttft_seconds: Some(0.8),
        ..sig(8, 20.0, 3.0)
    };
    let (_, st) = decide(&c, &PolicyState::default(), &calm, 0);
    assert_eq!(decide(&c, &st, &calm, TICK).0.candidates.latency, None);
}

#[test]
fn scale_down_waits_for_the_window_then_steps_by_ten_percent() {
    // 10 replicas, 100 in flight: down band 48 x 0.6 = 28.8 per replica, so down to 4 would
    // be allowed (25 < 28.8); steps are max(1, 10 %) = 1 per 120 s after a 300 s window.
    let answers = run(&cfg(), 10, |_| (100.0, 0.0), 200);
    let first_down = answers.iter().position(|d| *d < 10).unwrap();
    assert_eq!(first_down as u64 * TICK, 300_000);
    assert_eq!(answers[first_down], 9);
    let second = answers.iter().position(|d| *d < 9).unwrap();
    assert_eq!((second - first_down) as u64 * TICK, 120_000);
    assert_eq!(*answers.last().unwrap(), 4);
}

#[test]
fn no_scale_down_while_queue_or_ttft_near_slo() {
    // A backlog (two waiting requests per serving replica) blocks scale-down...
    let queued = run(&cfg(), 10, |_| (100.0, 20.0), 200);
    assert!(queued.iter().all(|d| *d >= 10), "backlog: {queued:?}");
    // ...a request or two caught between engine steps at the scrape instant does not.
    let transit = run(&cfg(), 10, |_| (100.0, 2.0), 200);
    assert!(
        transit.last().is_some_and(|d| *d < 10),
        "transient waiting: {transit:?}"
    );
    let c = cfg();
    let mut st = PolicyState::default();
    for i in 0..200 {
        let s = Signals {
            ttft_seconds: Some(0.4),
            ..sig(10, 100.0, 0.0)
        };
        let (d, next) = decide(&c, &st, &s, i * TICK);
        assert_eq!(d.desired, 10, "TTFT at 80 % of the SLO blocks scale-down");
        st = next;
    }
}

#[test]
fn no_scale_down_soon_after_a_scale_up() {
    // Burst at t=0 (up to 6), relief right after: the down-freeze holds for 600 s.
    let answers = run(
        &cfg(),
        3,
        |t| if t == 0 { (200.0, 0.0) } else { (10.0, 0.0) },
        200,
    );
    assert_eq!(answers[0], 6);
    let first_down = answers.iter().position(|d| *d < 6).unwrap() as u64 * TICK;
    assert!(first_down >= 600_000, "{first_down}");
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
fn capacity_calibrates_down_when_ttft_breaches_at_low_utilisation() {
    // TTFT 1.0 s against 0.5 s at 50 % utilisation: capacity x max(0.8, 0.5) = 38.4.
    let s = Signals {
        ttft_seconds: Some(1.0),
        ..sig(2, 38.4, 0.0)
    };
    let (d, st) = decide(&cfg(), &PolicyState::default(), &s, 0);
    assert!((d.inputs.capacity_per_replica - 38.4).abs() < 1e-9);
    // Never below 0.5 x seed.
    let mut st = st;
    for i in 1..50 {
        st = decide(&cfg(), &st, &s, i * TICK).1;
    }
    assert!((st.capacity - 24.0).abs() < 1e-9);
}

fn arb_signals() -> impl Strategy<Value = (usize, usize, f64, f64, Option<f64>, Option<f64>)> {
    (
        1usize..30,
        0usize..30,
        0.0f64..2000.0,
        0.0f64..50.0,
        proptest::option::of(0.0f64..1.0),
        proptest::option::of(0.0f64..5.0),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn bounds_always_hold_and_stale_or_queued_never_scales_down(
        min in 0u32..5, span in 0u32..20,
        seq in proptest::collection::vec(arb_signals(), 1..60),
    ) {
        let c = PolicyConfig { min_replicas: min, max_replicas: min + span.max(1), ..PolicyConfig::default() };
        let mut st = PolicyState::default();
        let mut prev: Option<u32> = None;
        for (i, (total, fresh, running, waiting, kv, ttft)) in seq.into_iter().enumerate() {
            let fresh = fresh.min(total);
            let s = Signals { discovered_workers: total, fresh_workers: fresh, running, waiting, kv_usage_mean: kv, kv_usage_max: kv, ttft_seconds: ttft, ..Signals::default() };
            let (d, next) = decide(&c, &st, &s, i as u64 * TICK);
            prop_assert!(d.desired >= c.min_replicas && d.desired <= c.max_replicas);
            if let Some(p) = prev {
                let stale = fresh == 0 || fresh * 2 < total;
                if stale || waiting > 0.0 {
                    prop_assert!(d.desired >= p.min(c.max_replicas), "fell from {p} to {} (stale {stale}, waiting {waiting})", d.desired);
                }
            }
            prev = Some(d.desired);
            st = next;
        }
    }

    #[test]
    fn noisy_constant_load_never_reverses(base in 10.0f64..1500.0, seed in 0u64..1000) {
        // +-10 % deterministic noise around a constant load, pods ready instantly.
        let noise = |t: u64| {
            let x = (t / TICK).wrapping_mul(6364136223846793005).wrapping_add(seed.wrapping_mul(1442695040888963407));
            ((x >> 33) % 2001) as f64 / 10000.0 - 0.1
        };
        let answers = run(&PolicyConfig { max_replicas: 100, ..PolicyConfig::default() }, 1, |t| (base * (1.0 + noise(t)), 0.0), 300);
        // Ignore the initial climb; after it, the direction must never flip.
        let mut last_dir = 0i8;
        let mut reversals = 0;
        for w in answers.windows(2) {
            let dir = (w[1] as i64 - w[0] as i64).signum() as i8;
            if dir != 0 {
                if last_dir != 0 && dir != last_dir { reversals += 1; }
                last_dir = dir;
            }
        }
        prop_assert_eq!(reversals, 0, "{:?}", answers);
    }

    #[test]
    fn step_up_reaches_the_need_within_the_rate_limit_bound(from in 1u32..6, load in 100.0f64..3000.0) {
        let c = PolicyConfig { max_replicas: 200, ..PolicyConfig::default() };
        let need = FleetTotal(load).replicas_needed(PerReplica(c.concurrency_per_replica), c.scale_up_utilization);
        let answers = run(&c, from, |_| (load, 0.0), 40);
        // Each tick at least doubles supply (or adds 4): reaching `need` from `from` takes at
        // most ceil(log2(need / from)) + 1 ticks when pods are ready by the next tick.
        let bound = (f64::from(need.max(1)) / f64::from(from)).log2().ceil().max(0.0) as usize + 1;
        let reached = answers.iter().position(|d| *d >= need.min(c.max_replicas));
        prop_assert!(reached.is_some_and(|i| i < bound), "need {need} from {from}: {answers:?} (bound {bound})");
    }

    #[test]
    fn step_down_follows_within_window_plus_one_step(high in 400.0f64..1500.0, ratio in 0.05f64..0.4) {
        let c = PolicyConfig { max_replicas: 100, ..PolicyConfig::default() };
        // Settle at the high load for longer than the post-scale-up hold, then drop.
        let drop_at = 900_000u64;
        let answers = run(&c, 1, |t| if t < drop_at { (high, 0.0) } else { (high * ratio, 0.0) }, 400);
        let before = answers[(drop_at / TICK) as usize - 1];
        let limit = ((drop_at + c.scale_down_window_ms + c.scale_down_step_ms) / TICK) as usize;
        prop_assert!(answers[..=limit].iter().skip((drop_at / TICK) as usize).any(|d| *d < before), "no scale-down after the drop: {answers:?}");
    }
}

#[test]
fn frontend_queue_wakes_a_fleet_at_zero_workers() {
    use crate::extract::{Engine, extract};
    use crate::fleet::{Fleet, Observation, SignalConfig, TargetRole};
    // Zero workers discovered; the Dynamo frontend still exists and has requests queued.
    let sc = SignalConfig {
        ttft_quantile: 0.95,
        window_ms: 60_000,
        ttft_min_samples: 20.0,
    };
    let page = "dynamo_frontend_queued_requests{model=\"qwen/qwen3-0.6b\"} 3\ndynamo_frontend_inflight_requests{model=\"qwen/qwen3-0.6b\"} 3\n";
    let mut fleet = Fleet::default();
    let obs = Observation {
        id: "http://fe:8000/metrics".into(),
        role: TargetRole::Frontend,
        outcome: Ok(extract(page, Engine::Dynamo, None).metrics),
        parse_errors: 0,
    };
    fleet.apply_cycle(&sc, 0, vec![obs]);
    let s = fleet.signals(&sc);
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
    // The fresh frontend sees every request: its queue is evidence, and asks for capacity.
    assert_eq!((d.reason, d.desired), (Reason::ScaleUp, 1));
    // An idle frontend at zero workers is evidence of no demand: the fleet may stay at zero.
    let idle = "dynamo_frontend_queued_requests{model=\"qwen/qwen3-0.6b\"} 0\ndynamo_frontend_inflight_requests{model=\"qwen/qwen3-0.6b\"} 0\n";
    let mut fleet = Fleet::default();
    fleet.apply_cycle(
        &sc,
        0,
        vec![Observation {
            id: "http://fe:8000/metrics".into(),
            role: TargetRole::Frontend,
            outcome: Ok(extract(idle, Engine::Dynamo, None).metrics),
            parse_errors: 0,
        }],
    );
    let (d, _) = decide(&c, &PolicyState::default(), &fleet.signals(&sc), 0);
    assert_eq!((d.desired, d.active), (0, false));
    assert_ne!(d.reason, Reason::DataStale);
    // No workers and no frontend: nothing is known, and nothing is given up.
    let (d, _) = decide(&c, &PolicyState::default(), &Signals::default(), 0);
    assert_eq!(d.reason, Reason::DataStale);
}

#[test]
fn starting_pods_are_pending_supply_not_stale_data() {
    let c = cfg();
    // 2 serving replicas, demand needing 6: the answer goes to 6.
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
    // Restart: no memory; 8 pods discovered, none has answered yet.
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
    // 10 replicas, 100 in flight would step down after the window (see above); with one of the
    // ten stale (a timeout, or a page with a negative gauge) the answer never falls.
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
