//! `keda-llm-scaler simulate`: the file and terminal side of the simulator (reading traces,
//! building scenarios, printing the table or JSON, writing the report).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::clock::Stopwatch;
use crate::config::ScalerConfig;
use crate::sim::load::{self, Lengths, Shape};
use crate::sim::rng::Rng;
use crate::sim::run::{NodeParams, Policy, Scenario, SimParams};
use crate::sim::worker::EngineParams;
use crate::sim::{self, Comparison};

/// Flags of `simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// CSV with the Azure LLM inference columns (TIMESTAMP,ContextTokens,GeneratedTokens).
    #[arg(long, conflicts_with = "scenario")]
    pub trace: Option<PathBuf>,
    /// Synthetic load instead of a trace.
    #[arg(long, value_parser = ["poisson", "step", "ramp", "sawtooth", "flash", "outage-90s", "outage-10m"])]
    pub scenario: Option<String>,
    /// Multiply the trace's arrival rate by this, or `auto`: the busiest minute needs
    /// `--target-peak` replicas.
    #[arg(long, default_value = "auto")]
    pub rate_scale: String,
    /// Replicas the busiest minute should need with `--rate-scale auto`.
    #[arg(long, default_value_t = 12)]
    pub target_peak: u32,
    /// Compress the trace's time by this factor.
    #[arg(long, default_value_t = 1.0)]
    pub speedup: f64,
    /// Random seed (arrival jitter, synthetic loads, node times).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds (default: the trace's span, or the scenario's own length).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Run every baseline too, on the same load and seed.
    #[arg(long)]
    pub compare: bool,
    /// Run only these policies (repeatable).
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Print the table as a JSON array instead.
    #[arg(long)]
    pub json: bool,
    /// Where to write the HTML report ("-" for none).
    #[arg(long, default_value = "simulation.html")]
    pub report: String,
    /// ScaledObject metadata for keda-llm-scaler, `key=value` (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Pod start and model load, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub pod_start_seconds: f64,
    /// Pods beyond the warm nodes wait for a new GPU node.
    #[arg(long)]
    pub node_provisioning: bool,
    /// Shortest GPU node provisioning time, seconds.
    #[arg(long, default_value_t = 360.0)]
    pub node_seconds_min: f64,
    /// Longest GPU node provisioning time, seconds (uniform between).
    #[arg(long, default_value_t = 360.0)]
    pub node_seconds_max: f64,
    /// Nodes that always exist (with --node-provisioning).
    #[arg(long, default_value_t = 2)]
    pub warm_nodes: u32,
    /// Replica bounds (all policies); 0 lets KEDA scale keda-llm-scaler's fleet to zero after a
    /// 300 s cooldown (only a Dynamo frontend can wake it: worker metrics vanish at zero).
    #[arg(long, default_value_t = 1)]
    pub min_replicas: u32,
    /// Replica bounds (all policies).
    #[arg(long, default_value_t = 24)]
    pub max_replicas: u32,
    /// Extra metrics outage `START+LENGTH` in seconds (repeatable).
    #[arg(long = "outage")]
    pub outages: Vec<String>,
    /// Also write keda-llm-scaler's scrapes as a recording (.jsonl.zst) for `replay`.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Write every run's timeline, decisions and actions as JSON to this file.
    #[arg(long)]
    pub details: Option<PathBuf>,
    /// Worker flavour: plain vLLM, or Dynamo vLLM workers behind a Dynamo frontend (the scaler
    /// then reads TTFT and queue from the frontend, KV from the workers).
    #[arg(long, default_value = "vllm", value_parser = ["vllm", "dynamo"])]
    pub engine: String,
    /// Print one replica's TTFT/TPOT against offered load (512 in / 128 out) and exit.
    #[arg(long)]
    pub calibration: bool,
}

impl SimulateArgs {
    /// The simulation parameters these flags describe.
    pub fn params(&self) -> anyhow::Result<SimParams> {
        let mut md: BTreeMap<String, String> = BTreeMap::new();
        md.insert("targets".into(), "sim-worker:8000".into());
        md.insert("minReplicas".into(), self.min_replicas.to_string());
        md.insert("maxReplicas".into(), self.max_replicas.to_string());
        md.insert("engine".into(), self.engine.clone());
        md.insert("model".into(), EngineParams::default().model);
        if self.engine == "dynamo" {
            md.insert("frontendTargets".into(), "sim-frontend:8000".into());
        }
        crate::config::set_pairs(&mut md, &self.sets, "--set")?;
        let scaler = ScalerConfig::from_metadata(&md, &BTreeMap::new()).context("--set")?;
        anyhow::ensure!(
            self.min_replicas <= self.max_replicas && self.max_replicas >= 1,
            "--min-replicas must not exceed --max-replicas (>= 1)"
        );
        Ok(SimParams {
            engine: EngineParams::default(),
            pod_start_s: self.pod_start_seconds,
            nodes: self.node_provisioning.then(|| NodeParams {
                provision_min_s: self.node_seconds_min,
                provision_max_s: self.node_seconds_max.max(self.node_seconds_min),
                warm_nodes: self.warm_nodes,
                idle_release_s: 600.0,
            }),
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            slo_s: scaler.decision.policy.ttft_target_s,
            scaler: scaler.under_test(),
            polling_s: 15.0,
            hpa_sync_s: 15.0,
            prom_scrape_s: 15.0,
            sample_s: 10.0,
            record: self.record.is_some(),
            dynamo: self.engine == "dynamo",
        })
    }
}

fn parse_outage(s: &str) -> anyhow::Result<(f64, f64)> {
    let (a, b) = s
        .split_once('+')
        .with_context(|| format!("--outage {s:?}: expected START+LENGTH seconds"))?;
    let (a, b): (f64, f64) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a >= 0.0 && b > 0.0, "--outage {s:?}: negative or empty");
    Ok((a, b))
}

/// Builds the scenario the flags describe (the trace, or a synthetic load sized in units of
/// one replica's capacity).
pub fn scenario(
    args: &SimulateArgs,
    params: &SimParams,
) -> anyhow::Result<(Scenario, Option<f64>)> {
    anyhow::ensure!(args.speedup > 0.0, "--speedup must be positive");
    let mut rng = Rng::new(args.seed).fork(0x10ad);
    let outages: Vec<(f64, f64)> = args
        .outages
        .iter()
        .map(|s| parse_outage(s))
        .collect::<anyhow::Result<_>>()?;
    if let Some(path) = &args.trace {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let rows = load::parse_trace(&text).with_context(|| path.display().to_string())?;
        let lengths = Lengths::Empirical(
            rows.iter()
                .step_by((rows.len() / 5000).max(1))
                .map(|r| (r.context.max(1), r.generated.max(1)))
                .collect(),
        );
        let (scale, capacity) = if args.rate_scale == "auto" {
            let cap = sim::calibrate_capacity(params, &lengths, args.seed);
            let span = rows.last().map_or(60.0, |r| r.t_s) / args.speedup;
            let minutes = (span / 60.0).ceil().max(1.0) as usize;
            let mut per_min = vec![0u64; minutes];
            for r in &rows {
                let m = ((r.t_s / args.speedup) / 60.0) as usize;
                if let Some(c) = per_min.get_mut(m.min(minutes - 1)) {
                    *c += 1;
                }
            }
            let peak_rps = per_min.iter().copied().max().unwrap_or(1) as f64 / 60.0;
            (
                f64::from(args.target_peak) * cap / peak_rps.max(1e-9),
                Some(cap),
            )
        } else {
            let s: f64 = args
                .rate_scale
                .parse()
                .with_context(|| format!("--rate-scale {:?}: a number or auto", args.rate_scale))?;
            anyhow::ensure!(s > 0.0, "--rate-scale must be positive");
            (s, None)
        };
        let requests = load::from_trace(&rows, scale, args.speedup, 40_960, &mut rng);
        let span = rows.last().map_or(0.0, |r| r.t_s) / args.speedup;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        return Ok((
            Scenario {
                name: format!("{name} x{scale:.1}"),
                requests,
                duration_s: args.duration.unwrap_or(span + 60.0),
                outages,
                onsets: Vec::new(),
            },
            capacity,
        ));
    }
    let kind = args.scenario.clone().unwrap_or_else(|| "step".to_string());
    let lengths = Lengths::Fixed {
        prompt: 512,
        generate: 128,
    };
    let cap = sim::calibrate_capacity(params, &lengths, args.seed);
    // Loads are sized in replicas' worth of work at 70 % of one replica's capacity.
    let r = |replicas: f64| replicas * cap * 0.7;
    let start = params.pod_start_s;
    let (shape, duration, mut onsets, mut outs) = match kind.as_str() {
        "poisson" => (Shape::Poisson { rate: r(6.0) }, 1800.0, vec![], vec![]),
        "step" => (
            Shape::Step {
                base: r(3.0),
                factor: 4.0,
                at_s: 600.0,
            },
            1800.0,
            vec![600.0],
            vec![],
        ),
        "ramp" => (
            Shape::Ramp {
                from: r(1.0),
                to: r(12.0),
            },
            3600.0,
            vec![],
            vec![],
        ),
        "sawtooth" => (
            Shape::Sawtooth {
                low: r(3.0),
                high: r(9.0),
                period_s: start.max(10.0),
            },
            2400.0,
            vec![],
            vec![],
        ),
        "flash" => (
            Shape::FlashCrowd {
                base: r(2.0),
                peak: r(12.0),
                at_s: 600.0,
                rise_s: 30.0,
                decay_s: 300.0,
            },
            1800.0,
            vec![600.0],
            vec![],
        ),
        "outage-90s" => (
            Shape::Poisson { rate: r(6.0) },
            2400.0,
            vec![],
            vec![(900.0, 90.0)],
        ),
        "outage-10m" => (
            Shape::Poisson { rate: r(6.0) },
            2400.0,
            vec![],
            vec![(900.0, 600.0)],
        ),
        other => bail!("unknown scenario {other:?}"),
    };
    let duration = args.duration.unwrap_or(duration);
    let requests = load::synthetic(&shape, duration, &lengths, &mut rng);
    onsets.retain(|o| *o < duration);
    outs.extend(outages);
    Ok((
        Scenario {
            name: kind,
            requests,
            duration_s: duration,
            outages: outs,
            onsets,
        },
        Some(cap),
    ))
}

/// The table printed by `simulate`.
pub fn table(c: &Comparison) -> String {
    let mut out = format!(
        "scenario: {} | {} requests over {:.0} s | oracle capacity {:.1} req/s per replica, peak {} replicas\n",
        c.scenario,
        c.requests,
        c.duration_s,
        c.oracle.capacity_rps,
        c.oracle.peak()
    );
    out.push_str(&format!(
        "{:<22} {:>8} {:>8} {:>7} {:>7} {:>6} {:>9} {:>5} {:>8} {:>7} {:>8} {:>7}\n",
        "policy",
        "slo_req",
        "slo_win",
        "gpu_h",
        "oracle",
        "over",
        "actions/h",
        "rev",
        "recover",
        "outage↓",
        "p95_s",
        "dropped"
    ));
    for r in &c.runs {
        let s = &r.scores;
        out.push_str(&format!(
            "{:<22} {:>7.1}% {:>7.1}% {:>7.2} {:>7.2} {:>5.2}x {:>9.1} {:>5} {:>7.0}s {:>7} {:>8.3} {:>7}\n",
            s.policy,
            s.slo_attainment_requests * 100.0,
            s.slo_attainment_windows * 100.0,
            s.gpu_hours,
            s.oracle_gpu_hours,
            s.over_provisioning,
            s.actions_per_hour,
            s.reversals_10min,
            s.recover_seconds,
            s.scale_downs_during_outage,
            s.ttft_p95_seconds,
            s.dropped_requests
        ));
    }
    out
}

fn write_recording(
    path: &std::path::Path,
    args: &SimulateArgs,
    params: &SimParams,
    comparison: &Comparison,
) -> anyhow::Result<()> {
    use crate::tools::recording::{FORMAT, Header, VERSION, Writer};
    let ours = comparison
        .runs
        .iter()
        .find(|r| r.scores.policy == Policy::KedaLlmScaler.name())
        .context("--record needs the keda-llm-scaler policy in the run")?;
    let mut metadata: BTreeMap<String, String> = BTreeMap::new();
    metadata.insert("engine".into(), args.engine.clone());
    metadata.insert("model".into(), params.engine.model.clone());
    if params.dynamo {
        metadata.insert("frontendTargets".into(), "sim-frontend:8000".into());
    }
    metadata.insert("minReplicas".into(), params.min_replicas.to_string());
    metadata.insert("maxReplicas".into(), params.max_replicas.to_string());
    crate::config::set_pairs(&mut metadata, &args.sets, "--set")?;
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        source: "simulated".into(),
        created_unix: 0.0,
        interval_s: params.scaler.scrape_interval_ms as f64 / 1000.0,
        metadata,
        note: format!(
            "SIMULATED by keda-llm-scaler simulate (scenario {}, seed {}); not scraped from real servers",
            comparison.scenario, args.seed
        ),
    };
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = Writer::new(std::io::BufWriter::new(file), &header)?;
    for (t, scrapes) in &ours.frames {
        w.cycle(*t, scrapes.iter().cloned().map(Into::into).collect())?;
    }
    let mut out = w.finish()?;
    std::io::Write::flush(&mut out)?;
    eprintln!(
        "recording: {} ({} cycles)",
        path.display(),
        ours.frames.len()
    );
    Ok(())
}

/// Runs `simulate`.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let watch = Stopwatch::start();
    let params = args.params()?;
    if args.calibration {
        let rates = [
            1.0, 8.0, 16.0, 32.0, 48.0, 64.0, 72.0, 80.0, 88.0, 96.0, 104.0, 120.0,
        ];
        let curve = sim::load_curve(
            &params,
            &Lengths::Fixed {
                prompt: 512,
                generate: 128,
            },
            &rates,
            args.duration.unwrap_or(300.0),
            args.seed,
        );
        if args.json {
            println!("{}", serde_json::to_string_pretty(&curve)?);
        } else {
            println!(
                "| offered req/s | served req/s | TTFT p50 ms | TTFT p95 ms | TPOT ms |\n|---|---|---|---|---|"
            );
            for c in &curve {
                println!(
                    "| {:.0} | {:.1} | {:.1} | {:.1} | {:.2} |",
                    c.offered_rps,
                    c.throughput_rps,
                    c.ttft_p50_s * 1e3,
                    c.ttft_p95_s * 1e3,
                    c.tpot_s * 1e3
                );
            }
        }
        return Ok(());
    }
    let policies: Vec<Policy> = if !args.policies.is_empty() {
        args.policies
            .iter()
            .map(|n| {
                Policy::from_name(n).with_context(|| {
                    format!(
                        "--policy {n:?}: one of {}",
                        Policy::ALL.map(|p| p.name()).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    } else if args.compare {
        Policy::ALL.to_vec()
    } else {
        vec![Policy::KedaLlmScaler, Policy::Oracle]
    };
    let (scenario, capacity) = scenario(args, &params)?;
    let comparison = sim::compare_with_capacity(&scenario, &params, &policies, args.seed, capacity);
    if args.json {
        let rows: Vec<&crate::sim::score::Scores> =
            comparison.runs.iter().map(|r| &r.scores).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", table(&comparison));
    }
    if let Some(path) = &args.record {
        write_recording(path, args, &params, &comparison)?;
    }
    if let Some(path) = &args.details {
        std::fs::write(path, serde_json::to_vec(&comparison)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.report != "-" {
        let html = crate::sim::report::html(&comparison, &params);
        std::fs::write(&args.report, html).with_context(|| format!("writing {}", args.report))?;
        eprintln!("report: {}", args.report);
    }
    eprintln!(
        "simulated {} policies x {:.0} s of {} requests in {:.1} s",
        comparison.runs.len(),
        scenario.duration_s,
        scenario.requests.len(),
        watch.elapsed().as_secs_f64()
    );
    Ok(())
}
