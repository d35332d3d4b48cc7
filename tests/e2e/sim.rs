//! The simulator, record/replay and the demo, end to end: the scaler's own code in the loop.

use keda_llm_scaler::core::policy::Reason;
use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use keda_llm_scaler::cli::{Cli, Command};
use keda_llm_scaler::sim::load::{self, Lengths, Shape};
use keda_llm_scaler::sim::rivals::{self, Entry};
use keda_llm_scaler::sim::rng::Rng;
use keda_llm_scaler::sim::run::{OraclePlan, Scenario, SimParams};
use keda_llm_scaler::sim::{self, Comparison, arena};
use keda_llm_scaler::tools::demo::DemoArgs;
use keda_llm_scaler::tools::recording::{self, FORMAT, Header, VERSION, Writer};
use keda_llm_scaler::tools::replay::{RecordArgs, replay};
use keda_llm_scaler::tools::simulate::SimulateArgs;
use tokio_util::sync::CancellationToken;

use crate::common::{Mode, VLLM, Worker, fixture, temp_dir};

fn simulate_args(extra: &[&str]) -> SimulateArgs {
    let mut argv = vec!["keda-llm-scaler", "simulate", "--report", "-"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv)
        .expect("simulate flags parse")
        .command
    {
        Command::Simulate(a) => a,
        _ => unreachable!("simulate parses to Simulate"),
    }
}

fn poisson(rate: f64, duration_s: f64, outages: Vec<(f64, f64)>, seed: u64) -> Scenario {
    let mut rng = Rng::new(seed);
    Scenario {
        name: "test".into(),
        requests: load::synthetic(
            &Shape::Poisson { rate },
            duration_s,
            &Lengths::Fixed {
                prompt: 512,
                generate: 128,
            },
            &mut rng,
        ),
        duration_s,
        outages,
        onsets: Vec::new(),
    }
}

/// Runs `policies` with a fixed plan of `n` replicas a minute standing in for the oracle's
/// (these tests are not about the oracle; `arena` tests it), so they do not pay for its search.
fn run(sc: &Scenario, p: &SimParams, policies: &[&str], seed: u64, n: u32) -> Comparison {
    let entries: Vec<Entry> = policies
        .iter()
        .map(|name| rivals::resolve(name).expect("known policy"))
        .collect();
    let minutes = (sc.duration_s / 60.0).ceil() as usize;
    let plan = OraclePlan {
        per_minute: vec![n; minutes],
        target: 0.99,
        infeasible_minutes: 0,
    };
    sim::compare_with_plan(sc, p, &entries, seed, plan)
}

#[test]
fn during_a_metrics_outage_ours_never_scales_down_and_the_reference_design_does() {
    let p = simulate_args(&["--warmup-seconds", "0"])
        .params()
        .expect("params");
    // Three replicas' worth of load; all scrapes fail from 300 s to 900 s.
    let sc = poisson(150.0, 1200.0, vec![(300.0, 600.0)], 3);
    let c = run(&sc, &p, &["keda-llm-scaler", "keda-prometheus-ttft"], 3, 3);
    let (ours, reference) = (&c.runs[0].scores, &c.runs[1].scores);
    assert_eq!(ours.scale_downs_during_outage, 0, "{ours:?}");
    assert!(
        reference.scale_downs_during_outage > 0,
        "the Prometheus TTFT trigger reads an empty result as 0 and scales in: {reference:?}"
    );
    assert!(
        ours.good_rate > reference.good_rate,
        "{ours:?} {reference:?}"
    );
    // And the answer during the outage was the held value, data_stale, not a guess.
    let stale: Vec<_> = c.runs[0]
        .decisions
        .iter()
        .filter(|d| d.t_s >= 300.0 && d.t_s < 900.0)
        .collect();
    assert!(
        stale.iter().any(|d| d.reason == Reason::DataStale),
        "{stale:?}"
    );
}

#[test]
fn a_seed_fixes_the_whole_table_and_every_contestant_runs() {
    let p = simulate_args(&["--warmup-seconds", "60"])
        .params()
        .expect("params");
    let names: Vec<String> = rivals::every_entry(true)
        .into_iter()
        .map(|e| e.label)
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let sc = poisson(60.0, 300.0, Vec::new(), 9);
    let a = run(&sc, &p, &names, 9, 2);
    let b = run(&sc, &p, &names, 9, 2);
    let json = |c: &Comparison| {
        let rows: Vec<_> = c
            .runs
            .iter()
            .map(|r| arena::summarize(&r.scores.policy, std::slice::from_ref(&r.scores)))
            .collect();
        serde_json::to_string(&rows).expect("json")
    };
    assert_eq!(json(&a), json(&b));
    let other = run(&poisson(60.0, 300.0, Vec::new(), 10), &p, &names, 10, 2);
    assert_ne!(json(&a), json(&other));
    // The --json contract: one object per policy with the documented fields and names.
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json(&a)).expect("array");
    let got: Vec<&str> = rows
        .iter()
        .map(|r| r["policy"].as_str().expect("policy"))
        .collect();
    assert_eq!(got, names);
    for want in [
        "keda-llm-scaler",
        "static-peak",
        "static-mean",
        "keda-prometheus-ttft",
        "keda-prometheus-queue",
        "hpa-kv",
        "arena-keda-queue",
        "dynamo-hpa-ttft",
        "llmd-slo-aware",
        "llmd-queue-guard",
        "kserve-concurrency",
        "knative-kpa",
        "mpc-planner",
        "dynamo-planner-load",
        "oracle",
        "mpc-planner@tuned",
    ] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    for r in &rows {
        for k in [
            "seeds",
            "good_rate",
            "good_rate_ci95",
            "goodput_per_gpu_second",
            "goodput_per_gpu_second_ci95",
            "gpu_hours",
            "oracle_gpu_hours",
            "slo_attainment_windows",
            "slo_attainment_requests",
            "reversals_per_hour",
            "actions_per_hour",
            "scale_downs_during_outage",
            "timed_out",
        ] {
            assert!(r[k].is_number(), "{k} missing in {r}");
        }
        // Every contestant served this light load (under one replica's capacity).
        assert!(r["good_rate"].as_f64() > Some(0.5), "{r}");
    }
}

#[test]
fn replaying_a_simulated_recording_reproduces_the_decisions() {
    let args = simulate_args(&["--record", "unused.jsonl.zst"]);
    let p = args.params().expect("params");
    assert!(p.record);
    let sc = Scenario {
        onsets: vec![200.0],
        ..poisson(0.0, 1.0, Vec::new(), 1)
    };
    let mut rng = Rng::new(4);
    let requests = load::synthetic(
        &Shape::Step {
            base: 80.0,
            factor: 3.0,
            at_s: 200.0,
        },
        600.0,
        &Lengths::Fixed {
            prompt: 512,
            generate: 128,
        },
        &mut rng,
    );
    let sc = Scenario {
        requests,
        duration_s: 600.0,
        ..sc
    };
    let c = run(&sc, &p, &["keda-llm-scaler"], 4, 2);
    let ours = &c.runs[0];
    assert!(!ours.frames.is_empty());
    let mut metadata = BTreeMap::new();
    for (k, v) in [
        ("engine", "vllm"),
        ("model", "Qwen/Qwen3-0.6B"),
        ("minReplicas", "1"),
        ("maxReplicas", "32"),
        ("ttftTargetMs", "500"),
        ("hpaTolerance", "0"),
        ("targets", "recorded:1"),
    ] {
        metadata.insert(k.to_string(), v.to_string());
    }
    let mut w = Writer::new(
        Vec::new(),
        &Header {
            format: FORMAT.into(),
            version: VERSION,
            source: "simulated".into(),
            created_unix: 0.0,
            interval_s: 5.0,
            metadata: metadata.clone(),
            note: String::new(),
        },
    )
    .expect("writer");
    for (t, s) in &ours.frames {
        w.cycle(*t, s.iter().cloned().map(Into::into).collect())
            .expect("cycle");
    }
    let bytes = w.finish().expect("finish");
    let rec = recording::read(&bytes[..]).expect("read back");
    let rows = replay(&rec, &metadata, "base").expect("replay");
    // Every decision change the simulation saw, the replay makes at the same time.
    let mut changes = Vec::new();
    let mut prev: Option<(u32, Reason)> = None;
    for r in &rows {
        if prev != Some((r.desired, r.reason)) {
            changes.push((r.t_s, r.desired, r.reason));
        }
        prev = Some((r.desired, r.reason));
    }
    let simulated: Vec<(f64, u32, Reason)> = ours
        .decisions
        .iter()
        .map(|d| (d.t_s, d.desired, d.reason))
        .collect();
    assert_eq!(changes, simulated);
    assert!(
        simulated.iter().any(|d| d.1 > simulated[0].1),
        "the step scaled up: {simulated:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_scrapes_real_http_workers_and_replay_reads_it() {
    let page = fixture(VLLM);
    let (workers, _) = Worker::fleet(2, &page).await;
    let dead = Worker::start(Mode::Status(503)).await;
    let dir = temp_dir("record");
    let out = dir.join("rec.jsonl.zst");
    let targets: Vec<String> = workers.iter().chain([&dead]).map(Worker::target).collect();
    let argv = [
        "keda-llm-scaler".to_string(),
        "record".into(),
        "--out".into(),
        out.display().to_string(),
        "--set".into(),
        format!("targets={}", targets.join(",")),
        "--interval".into(),
        "0.2".into(),
        "--duration".into(),
        "1.5".into(),
    ];
    let args: RecordArgs = match Cli::try_parse_from(argv).expect("record flags").command {
        Command::Record(a) => a,
        _ => unreachable!(),
    };
    keda_llm_scaler::tools::replay::run_record(&args, CancellationToken::new())
        .await
        .expect("record");
    let rec = recording::read_file(&out).expect("readable");
    assert_eq!(rec.header.source, "record");
    assert!(rec.frames.len() >= 5, "{} cycles", rec.frames.len());
    let first = &rec.frames[0];
    assert_eq!(first.arrived.len(), 3);
    let bodies: Vec<_> = first
        .scrapes
        .iter()
        .filter_map(|s| s.body.as_deref())
        .collect();
    assert_eq!(
        bodies,
        [page.as_str(), page.as_str()],
        "bodies are kept byte for byte"
    );
    let failed = first
        .scrapes
        .iter()
        .find(|s| s.body.is_none())
        .expect("the 503 worker");
    assert_eq!(failed.error_kind.as_deref(), Some("http_status"));
    let rows = replay(&rec, &rec.header.metadata, "base").expect("replay");
    assert_eq!(rows.len(), rec.frames.len());
    assert_eq!(rows[0].fresh_workers, 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_drives_the_real_scaler_over_grpc_through_a_burst() {
    let dir = temp_dir("demo");
    let report = dir.join("demo.html");
    let argv = [
        "keda-llm-scaler".to_string(),
        "demo".into(),
        "--duration".into(),
        "22".into(),
        "--burst-start".into(),
        "3".into(),
        "--burst-end".into(),
        "13".into(),
        "--burst-factor".into(),
        "3".into(),
        "--pod-start-seconds".into(),
        "2".into(),
        "--hpa-sync-seconds".into(),
        "1".into(),
        "--quiet".into(),
        "--report".into(),
        report.display().to_string(),
    ];
    let args: DemoArgs = match Cli::try_parse_from(argv).expect("demo flags").command {
        Command::Demo(a) => a,
        _ => unreachable!(),
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        keda_llm_scaler::tools::demo::run(&args, CancellationToken::new()),
    )
    .await
    .expect("finishes")
    .expect("runs");
    assert!(outcome.rpcs >= 30, "{} RPCs", outcome.rpcs);
    assert_eq!(outcome.rpc_errors, 0);
    let peak = outcome
        .samples
        .iter()
        .filter_map(|s| s.desired)
        .max()
        .unwrap_or(0);
    assert!(
        peak >= 2,
        "the burst (3x one replica's base load) scaled up: {:?}",
        outcome.samples
    );
    assert!(outcome.actions.iter().any(|(_, from, to)| to > from));
    assert!(
        outcome.samples.iter().any(|s| s.ready >= 2),
        "new pods became ready and served"
    );
    let html = std::fs::read_to_string(&report).expect("report written");
    assert!(html.contains("<svg") && html.contains("Desired against ready"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dynamo_workers_behind_a_frontend_scale_like_plain_vllm() {
    let vllm = simulate_args(&["--warmup-seconds", "60"])
        .params()
        .expect("params");
    let dynamo = simulate_args(&["--engine", "dynamo", "--warmup-seconds", "60"])
        .params()
        .expect("params");
    assert!(dynamo.dynamo && !dynamo.scaler.frontends.is_empty());
    let sc = poisson(150.0, 600.0, Vec::new(), 5);
    let a = run(&sc, &vllm, &["keda-llm-scaler"], 5, 2);
    let b = run(&sc, &dynamo, &["keda-llm-scaler"], 5, 2);
    for c in [&a, &b] {
        let s = &c.runs[0].scores;
        assert!(s.good_rate > 0.95, "{s:?}");
        assert!(
            c.runs[0]
                .decisions
                .iter()
                .all(|d| d.reason != Reason::DataStale)
        );
    }
    // The Dynamo run read TTFT from the frontend's histogram (its buckets differ from vLLM's),
    // so the two scalers saw different quantiles for the same load.
    let ttft = |c: &Comparison| {
        c.runs[0]
            .timeline
            .iter()
            .filter_map(|t| t.scaler_ttft_s)
            .collect::<Vec<_>>()
    };
    assert!(!ttft(&b).is_empty());
    assert_ne!(ttft(&a), ttft(&b));
}

#[test]
fn a_dynamo_fleet_cools_down_to_zero_and_its_frontend_queue_wakes_it() {
    let p = simulate_args(&["--engine", "dynamo", "--min-replicas", "0"])
        .params()
        .expect("params");
    // Load for 300 s, silence for 900 s, load again for 300 s.
    let mut first = poisson(60.0, 300.0, Vec::new(), 6);
    let second = poisson(60.0, 300.0, Vec::new(), 7);
    first
        .requests
        .extend(second.requests.iter().map(|r| load::Request {
            arrival_us: r.arrival_us + 1_200_000_000,
            ..*r
        }));
    let sc = Scenario {
        duration_s: 1500.0,
        ..first
    };
    let c = run(&sc, &p, &["keda-llm-scaler"], 6, 1);
    let actions = &c.runs[0].actions;
    let to_zero = actions
        .iter()
        .find(|a| a.to == 0)
        .expect("cooled down to zero");
    assert!(to_zero.t_s > 600.0 && to_zero.t_s < 1200.0, "{actions:?}");
    let wake = actions
        .iter()
        .find(|a| a.from == 0)
        .expect("woken from zero");
    assert!(wake.t_s >= 1200.0 && wake.t_s < 1240.0, "{actions:?}");
    assert_eq!(wake.to, 1);
}

#[test]
fn the_oracle_meets_its_target_on_every_development_load() {
    // Every development load, shortened to 15 minutes (the suite runs them whole): the
    // oracle's executed plan must reach the per-minute target it was sized for, over the run.
    let p = simulate_args(&["--warmup-seconds", "120"])
        .params()
        .expect("params");
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces");
    let mut loads = Vec::new();
    let mut mix = None;
    for name in [
        "AzureLLMInferenceTrace_conv.csv",
        "AzureLLMInferenceTrace_code.csv",
    ] {
        let text = std::fs::read_to_string(shared.join(name)).expect("dev trace");
        let rows = load::parse_trace(&text).expect("parses");
        if mix.is_none() {
            mix = Some(std::sync::Arc::new(sim::scenarios::trace_mix(&rows)));
        }
        let (scale, _) = sim::scenarios::auto_rate_scale(&rows, 1.0, 8, &p, 1);
        loads.push(arena::Load::Trace {
            name: name.into(),
            rows: std::sync::Arc::new(rows),
            scale,
            speedup: 1.0,
            spread_s: load::COPY_SPREAD_S,
            duration_s: Some(900.0),
        });
    }
    for kind in sim::scenarios::SYNTHETIC {
        loads.push(arena::Load::Synthetic {
            kind: kind.into(),
            mix: mix.clone(),
            duration_s: Some(900.0),
        });
    }
    let oracle = [rivals::resolve("oracle").expect("oracle")];
    for l in &loads {
        let (sc, scored) = l.build(&p, 1, false).expect("builds");
        let c = sim::compare(&sc, &scored, &oracle, 1);
        let s = &c.runs[0].scores;
        assert!(
            s.good_rate >= c.oracle.target - 0.005 || c.oracle.infeasible_minutes > 0,
            "{}: oracle good-rate {:.4} below its target {} ({:?})",
            c.scenario,
            s.good_rate,
            c.oracle.target,
            c.oracle.per_minute
        );
        assert_eq!(
            c.oracle.infeasible_minutes, 0,
            "{}: within the bounds",
            c.scenario
        );
    }
}

#[test]
fn a_scale_down_kills_what_the_removed_pod_held_and_scores_it_failed() {
    // Four replicas busy with long answers, then a plan of one: the removed pods' requests,
    // first tokens and all, are failures, not successes.
    let p = simulate_args(&["--warmup-seconds", "0"])
        .params()
        .expect("params");
    let mut rng = Rng::new(2);
    let requests = load::synthetic(
        &Shape::Poisson { rate: 40.0 },
        240.0,
        &Lengths::Fixed {
            prompt: 256,
            generate: 2000,
        },
        &mut rng,
    );
    let sc = Scenario {
        name: "long answers".into(),
        requests,
        duration_s: 240.0,
        outages: Vec::new(),
        onsets: Vec::new(),
    };
    let plan = OraclePlan {
        per_minute: vec![4, 1, 1, 1],
        target: 0.99,
        infeasible_minutes: 0,
    };
    let oracle = [rivals::resolve("oracle").expect("oracle")];
    let c = sim::compare_with_plan(&sc, &p, &oracle, 2, plan);
    let s = &c.runs[0].scores;
    assert!(s.killed > 50, "{s:?}");
    assert!(
        s.good_rate < 1.0 - s.killed as f64 / s.requests as f64 + 1e-9,
        "{s:?}"
    );
}

#[test]
fn a_load_too_large_to_hold_is_refused_with_the_flag_named() {
    let dir = temp_dir("sim-huge");
    let trace = dir.join("t.csv");
    std::fs::write(
        &trace,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n0,100,10\n1,100,10\n",
    )
    .expect("write");
    let t = trace.to_string_lossy().to_string();
    let args = simulate_args(&["--trace", &t, "--rate-scale", "1e9"]);
    let e = keda_llm_scaler::tools::simulate::run(&args).expect_err("refused");
    assert!(e.to_string().contains("--rate-scale"), "{e}");
    let args = simulate_args(&["--scenario", "poisson", "--duration", "1e12"]);
    let e = keda_llm_scaler::tools::simulate::run(&args).expect_err("refused");
    assert!(e.to_string().contains("--duration"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
