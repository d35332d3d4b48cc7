//! `keda-llm-scaler simulate`: the file and terminal side of the arena (reading traces, picking
//! contestants, printing tables and JSON, writing reports). Everything it runs is the pure
//! simulator crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::clock::Stopwatch;
use crate::config::ScalerConfig;
use crate::sim::arena::{self, Load, LoadResult, Spread as Seeds, Summary};
use crate::sim::keda::Cluster;
use crate::sim::load::{self, COPY_SPREAD_S, Lengths};
use crate::sim::rivals::{self, Entry, OURS};
use crate::sim::run::{NodeParams, SimParams, Spread};
use crate::sim::scenarios::{self, SYNTHETIC};
use crate::sim::score::Slo;
use crate::sim::worker::{EngineParams, Gpu};
use crate::sim::{self, Comparison};

/// Flags of `simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// A trace with the Azure columns (TIMESTAMP,ContextTokens,GeneratedTokens).
    #[arg(long, conflicts_with = "scenario")]
    pub trace: Option<PathBuf>,
    /// A synthetic scenario.
    #[arg(long, value_parser = SYNTHETIC)]
    pub scenario: Option<String>,
    /// The scenario's request sizes drawn from this trace's, as the suite draws them from the
    /// conversation trace (default: the scenario's own mix).
    #[arg(long, requires = "scenario")]
    pub sizes_from: Option<PathBuf>,
    /// Trace rate multiplier, or `auto` to put the busiest minute at --target-peak replicas.
    #[arg(long, default_value = "auto")]
    pub rate_scale: String,
    /// With `--rate-scale auto`: replicas' worth of work in the trace's busiest minute.
    #[arg(long, default_value_t = 8)]
    pub target_peak: u32,
    /// Spread of a scaled trace's copies: each copy is shifted by an offset uniform within
    /// +-this many seconds.
    #[arg(long, default_value_t = COPY_SPREAD_S)]
    pub copy_spread_seconds: f64,
    /// Time compression of a trace.
    #[arg(long, default_value_t = 1.0)]
    pub speedup: f64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seeds per load (mean and 95 % confidence interval of every score).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Simulated seconds of arrivals (default: the trace's span, or the scenario's length).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Run every contestant at its defaults.
    #[arg(long)]
    pub compare: bool,
    /// With --compare: also every rival at its tuned point.
    #[arg(long)]
    pub tuned: bool,
    /// Contestants to run (`NAME`, `NAME@tuned`, `NAME@knob=value`); repeatable.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Scoring TTFT SLO, ms (independent of any contestant's configuration).
    #[arg(long)]
    pub slo_ttft_ms: Option<f64>,
    /// Scoring mean inter-token latency SLO, ms.
    #[arg(long, default_value_t = 50.0)]
    pub slo_itl_ms: f64,
    /// A client gives up on a request after this long.
    #[arg(long, default_value_t = 60.0)]
    pub client_timeout_seconds: f64,
    /// Seconds at the start that are not scored.
    #[arg(long, default_value_t = 600.0)]
    pub warmup_seconds: f64,
    /// The oracle's per-minute good-rate target.
    #[arg(long, default_value_t = 0.99)]
    pub oracle_target: f64,
    /// The cluster's HPA: `per-direction` (Kubernetes >= 1.35 with KEDA >= 2.18) or a number,
    /// the cluster-wide tolerance of an older cluster (0.1).
    #[arg(long, default_value = "per-direction")]
    pub k8s_tolerance: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// HTML report path, or `-` for none.
    #[arg(long, default_value = "simulation.html")]
    pub report: String,
    /// keda-llm-scaler's ScaledObject metadata, KEY=VALUE; repeatable.
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// The GPU of every worker.
    #[arg(long, default_value = "h100-nvl", value_parser = ["h100-nvl", "h100-sxm", "h200"])]
    pub gpu: String,
    /// API server processes per pod (vLLM's `--api-server-count`; one passes ~95 req/s at
    /// 512/128).
    #[arg(long, default_value_t = crate::sim::worker::DEFAULT_API_SERVERS)]
    pub api_servers: u32,
    /// Mean pod start (model load), seconds.
    #[arg(long, default_value_t = 60.0)]
    pub pod_start_seconds: f64,
    /// Pod starts are drawn uniformly within +-this share of the mean.
    #[arg(long, default_value_t = 0.25)]
    pub pod_start_jitter: f64,
    /// Pods may need new GPU nodes (cluster autoscaler).
    #[arg(long)]
    pub node_provisioning: bool,
    /// Shortest GPU node provisioning, seconds.
    #[arg(long, default_value_t = 300.0)]
    pub node_seconds_min: f64,
    /// Longest GPU node provisioning, seconds.
    #[arg(long, default_value_t = 660.0)]
    pub node_seconds_max: f64,
    /// GPU nodes that exist from the start.
    #[arg(long, default_value_t = 2)]
    pub warm_nodes: u32,
    /// Replica bounds.
    #[arg(long, default_value_t = 1)]
    pub min_replicas: u32,
    /// Replica bounds.
    #[arg(long, default_value_t = 32)]
    pub max_replicas: u32,
    /// Metric outages, START+LENGTH seconds; repeatable.
    #[arg(long = "outage")]
    pub outages: Vec<String>,
    /// Write keda-llm-scaler's scrapes as a recording.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Write the whole comparison (timelines, decisions) as JSON.
    #[arg(long)]
    pub details: Option<PathBuf>,
    /// Worker metric dialect.
    #[arg(long, default_value = "vllm", value_parser = ["vllm", "dynamo"])]
    pub engine: String,
    /// Print the single-replica calibration curve and exit.
    #[arg(long)]
    pub calibration: bool,
    /// Run the whole arena: every development trace and scenario, every contestant (defaults
    /// and tuned), --seeds seeds; writes suite.md, suite.json and suite.html to --out.
    #[arg(long, conflicts_with_all = ["trace", "scenario", "tune"])]
    pub suite: bool,
    /// Tune every rival (or those named by --policy) over its grid on the development loads and
    /// print the grids.
    #[arg(long, conflicts_with_all = ["trace", "scenario"])]
    pub tune: bool,
    /// Where --suite and --tune find the development traces.
    #[arg(long, default_value = "../shared/traces")]
    pub traces_dir: PathBuf,
    /// Where --suite and --tune write their files.
    #[arg(long, default_value = "arena")]
    pub out: PathBuf,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Parses `--k8s-tolerance`.
fn cluster(s: &str) -> anyhow::Result<Cluster> {
    if s == "per-direction" {
        return Ok(Cluster::PER_DIRECTION);
    }
    let t: f64 = s
        .parse()
        .ok()
        .filter(|t: &f64| (0.0..=0.5).contains(t))
        .with_context(|| {
            format!("--k8s-tolerance {s:?}: `per-direction` or a number in [0, 0.5]")
        })?;
    Ok(Cluster {
        tolerance: t,
        per_direction: false,
    })
}

impl SimulateArgs {
    /// The scoring TTFT SLO, seconds.
    fn slo_ttft_s(&self) -> f64 {
        self.slo_ttft_ms.unwrap_or(500.0) / 1e3
    }

    /// The simulation's parameters, keda-llm-scaler configured from the same metadata a
    /// ScaledObject would carry (with the `hpaTolerance` the README gives for the cluster,
    /// and `ttftTargetMs` the scoring SLO, unless `--set` says otherwise).
    pub fn params(&self) -> anyhow::Result<SimParams> {
        let cluster = cluster(&self.k8s_tolerance)?;
        let gpu = Gpu::from_name(&self.gpu).context("--gpu")?;
        anyhow::ensure!(
            (1..=64).contains(&self.api_servers),
            "--api-servers must be in 1..=64"
        );
        let engine = EngineParams {
            api_servers: self.api_servers,
            ..EngineParams::for_gpu(gpu)
        };
        let mut md: BTreeMap<String, String> = BTreeMap::new();
        md.insert("targets".into(), "sim-worker:8000".into());
        md.insert("minReplicas".into(), self.min_replicas.to_string());
        md.insert("maxReplicas".into(), self.max_replicas.to_string());
        md.insert("engine".into(), self.engine.clone());
        md.insert("model".into(), engine.model.clone());
        md.insert(
            "ttftTargetMs".into(),
            format!("{}", self.slo_ttft_s() * 1e3),
        );
        md.insert(
            "hpaTolerance".into(),
            if cluster.per_direction {
                "0".into()
            } else {
                format!("{}", cluster.tolerance)
            },
        );
        if self.engine == "dynamo" {
            md.insert("frontendTargets".into(), "sim-frontend:8000".into());
        }
        let before = md.get("ttftTargetMs").cloned();
        crate::config::set_pairs(&mut md, &self.sets, "--set")?;
        let follows = md.get("ttftTargetMs") == before.as_ref();
        let scaler = ScalerConfig::from_metadata(&md, &BTreeMap::new()).context("--set")?;
        anyhow::ensure!(
            self.min_replicas <= self.max_replicas && self.max_replicas >= 1,
            "--min-replicas must not exceed --max-replicas (>= 1)"
        );
        anyhow::ensure!(
            self.client_timeout_seconds > 0.0 && self.slo_itl_ms > 0.0,
            "--client-timeout-seconds and --slo-itl-ms must be positive"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.pod_start_jitter) && self.pod_start_seconds >= 0.0,
            "--pod-start-jitter must be in [0, 1) and --pod-start-seconds >= 0"
        );
        anyhow::ensure!(
            self.oracle_target > 0.0 && self.oracle_target <= 1.0,
            "--oracle-target must be in (0, 1]"
        );
        let (m, j) = (self.pod_start_seconds, self.pod_start_jitter);
        Ok(SimParams {
            engine,
            pod_start: Spread {
                min_s: m * (1.0 - j),
                max_s: m * (1.0 + j),
            },
            nodes: self.node_provisioning.then(|| NodeParams {
                provision: Spread {
                    min_s: self.node_seconds_min,
                    max_s: self.node_seconds_max.max(self.node_seconds_min),
                },
                warm_nodes: self.warm_nodes,
                idle_release_s: 600.0,
            }),
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            slo: Slo {
                ttft_s: self.slo_ttft_s(),
                itl_s: self.slo_itl_ms / 1e3,
            },
            client_timeout_s: self.client_timeout_seconds,
            warmup_s: self.warmup_seconds.max(0.0),
            cluster,
            scaler: scaler.under_test(),
            polling_s: 15.0,
            hpa_sync_s: 15.0,
            prom_scrape_s: 15.0,
            sample_s: 10.0,
            record: self.record.is_some(),
            dynamo: self.engine == "dynamo",
            oracle_target: self.oracle_target,
            scaler_follows_slo: follows,
        })
    }

    fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    fn seeds(&self) -> Seeds {
        Seeds {
            first_seed: self.seed,
            seeds: self.seeds.max(1),
            threads: self.threads(),
            slo_fixed: self.slo_ttft_ms.is_some(),
        }
    }

    /// The contestants asked for.
    fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        if !self.policies.is_empty() {
            return self
                .policies
                .iter()
                .map(|n| rivals::resolve(n).map_err(|e| anyhow::anyhow!("--policy: {e}")))
                .collect();
        }
        if self.compare || self.suite {
            return Ok(rivals::every_entry(self.tuned || self.suite));
        }
        Ok(vec![
            rivals::resolve(OURS).map_err(anyhow::Error::msg)?,
            rivals::resolve(rivals::ORACLE).map_err(anyhow::Error::msg)?,
        ])
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

fn read_trace(path: &Path) -> anyhow::Result<Vec<load::TraceRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    load::parse_trace(&text).with_context(|| path.display().to_string())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// A trace as an arena load, its rate scale resolved.
fn trace_load(
    args: &SimulateArgs,
    params: &SimParams,
    path: &Path,
    rows: Vec<load::TraceRow>,
) -> anyhow::Result<Load> {
    anyhow::ensure!(args.speedup > 0.0, "--speedup must be positive");
    anyhow::ensure!(
        args.copy_spread_seconds >= 0.0,
        "--copy-spread-seconds must be >= 0"
    );
    let scale = if args.rate_scale == "auto" {
        scenarios::auto_rate_scale(&rows, args.speedup, args.target_peak, params, args.seed).0
    } else {
        let s: f64 = args
            .rate_scale
            .parse()
            .with_context(|| format!("--rate-scale {:?}: a number or auto", args.rate_scale))?;
        anyhow::ensure!(s > 0.0 && s.is_finite(), "--rate-scale must be positive");
        s
    };
    // Every request is kept in memory for its fate: refuse a load that could not fit rather
    // than die allocating it.
    anyhow::ensure!(
        rows.len() as f64 * scale <= MAX_REQUESTS,
        "--rate-scale {scale:.1} makes {:.0} requests of {} rows; at most {MAX_REQUESTS:.0}",
        rows.len() as f64 * scale,
        rows.len()
    );
    Ok(Load::Trace {
        name: file_name(path),
        rows: Arc::new(rows),
        scale,
        speedup: args.speedup,
        spread_s: args.copy_spread_seconds,
        duration_s: args.duration,
    })
}

/// Most requests one load may hold (each keeps ~40 bytes of fate for scoring).
const MAX_REQUESTS: f64 = 50e6;

/// Longest simulated load, seconds (a week).
const MAX_DURATION_S: f64 = 7.0 * 86_400.0;

/// The one load of a plain `simulate` run.
fn single_load(args: &SimulateArgs, params: &SimParams) -> anyhow::Result<Load> {
    if let Some(d) = args.duration {
        anyhow::ensure!(
            d > 0.0 && d <= MAX_DURATION_S,
            "--duration {d}: must be in (0, {MAX_DURATION_S}] seconds"
        );
    }
    if let Some(path) = &args.trace {
        let rows = read_trace(path)?;
        return trace_load(args, params, path, rows);
    }
    let mix = match &args.sizes_from {
        Some(path) => Some(Arc::new(scenarios::trace_mix(&read_trace(path)?))),
        None => None,
    };
    Ok(Load::Synthetic {
        kind: args.scenario.clone().unwrap_or_else(|| "step".to_string()),
        mix,
        duration_s: args.duration,
    })
}

/// The development loads: every trace in --traces-dir, then every synthetic scenario with the
/// request sizes of the conversation trace (or the first trace).
fn development_loads(args: &SimulateArgs, params: &SimParams) -> anyhow::Result<Vec<Load>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&args.traces_dir)
        .with_context(|| format!("reading {}", args.traces_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort();
    let mut loads = Vec::new();
    let mut mix: Option<Arc<Lengths>> = None;
    for path in &paths {
        let rows = read_trace(path)?;
        if mix.is_none() || file_name(path).contains("conv") {
            mix = Some(Arc::new(scenarios::trace_mix(&rows)));
        }
        loads.push(trace_load(args, params, path, rows)?);
    }
    // Synthetic shapes carry the conversation trace's request sizes (the long-context
    // scenario has its own mix).
    for kind in SYNTHETIC {
        loads.push(Load::Synthetic {
            kind: kind.to_string(),
            mix: mix.clone(),
            duration_s: None,
        });
    }
    Ok(loads)
}

/// The plain-text table of one load.
pub fn table(load: &str, rows: &[Summary]) -> String {
    let mut out = format!("load: {load}\n");
    let _ = writeln!(
        out,
        "{:<30} {:>5} {:>14} {:>13} {:>7} {:>7} {:>8} {:>6} {:>6} {:>5} {:>7} {:>6}",
        "policy",
        "seeds",
        "good-rate",
        "goodput/GPU-s",
        "gpu_h",
        "oracle",
        "windows",
        "act/h",
        "rev/h",
        "out↓",
        "timeout",
        "killed"
    );
    for s in rows {
        let _ = writeln!(
            out,
            "{:<30} {:>5} {:>7.1}%±{:>4.1} {:>7.3}±{:>5.3} {:>7.2} {:>7.2} {:>7.1}% {:>6.1} {:>6.1} {:>5} {:>7.0} {:>6.0}",
            s.policy,
            s.seeds,
            s.good_rate * 100.0,
            s.good_rate_ci95 * 100.0,
            s.goodput_per_gpu_second,
            s.goodput_per_gpu_second_ci95,
            s.gpu_hours,
            s.oracle_gpu_hours,
            s.slo_attainment_windows * 100.0,
            s.actions_per_hour,
            s.reversals_per_hour,
            s.scale_downs_during_outage,
            s.timed_out,
            s.killed,
        );
    }
    out
}

/// The suite's Markdown: one table per load.
pub fn markdown(results: &[LoadResult]) -> String {
    let mut out = String::new();
    for r in results {
        let _ = writeln!(
            out,
            "#### {} (SLO TTFT {:.0} ms, ITL {:.0} ms)\n\n| policy | good-rate | goodput / GPU-s | GPU-hours | oracle GPU-h | windows in SLO | reversals/h | actions/h | outage ↓ |\n|---|---|---|---|---|---|---|---|---|",
            r.load,
            r.slo.ttft_s * 1e3,
            r.slo.itl_s * 1e3
        );
        for s in &r.summaries {
            let name = if s.policy == OURS {
                format!("**{}**", s.policy)
            } else {
                s.policy.clone()
            };
            let _ = writeln!(
                out,
                "| {name} | {:.1} % ± {:.1} | {:.3} ± {:.3} | {:.2} ± {:.2} | {:.2} | {:.1} % | {:.1} | {:.1} | {} |",
                s.good_rate * 100.0,
                s.good_rate_ci95 * 100.0,
                s.goodput_per_gpu_second,
                s.goodput_per_gpu_second_ci95,
                s.gpu_hours,
                s.gpu_hours_ci95,
                s.oracle_gpu_hours,
                s.slo_attainment_windows * 100.0,
                s.reversals_per_hour,
                s.actions_per_hour,
                s.scale_downs_during_outage
            );
        }
        out.push('\n');
    }
    out
}

fn write_recording(
    path: &Path,
    args: &SimulateArgs,
    params: &SimParams,
    comparison: &Comparison,
) -> anyhow::Result<()> {
    use crate::tools::recording::{FORMAT, Header, VERSION, Writer};
    let ours = comparison
        .runs
        .iter()
        .find(|r| r.scores.policy == OURS)
        .context("--record needs the keda-llm-scaler policy in the run")?;
    let mut metadata: BTreeMap<String, String> = BTreeMap::new();
    metadata.insert("engine".into(), args.engine.clone());
    metadata.insert("model".into(), params.engine.model.clone());
    if params.dynamo {
        metadata.insert("frontendTargets".into(), "sim-frontend:8000".into());
    }
    metadata.insert("minReplicas".into(), params.min_replicas.to_string());
    metadata.insert("maxReplicas".into(), params.max_replicas.to_string());
    metadata.insert(
        "ttftTargetMs".into(),
        format!("{}", params.scaler.policy.ttft_target_s * 1e3),
    );
    metadata.insert(
        "hpaTolerance".into(),
        format!("{}", params.scaler.policy.hpa_tolerance),
    );
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
            comparison.scenario, comparison.seed
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

fn calibration(args: &SimulateArgs, params: &SimParams) -> anyhow::Result<()> {
    let rates = [
        1.0, 16.0, 64.0, 128.0, 192.0, 224.0, 256.0, 272.0, 288.0, 304.0, 320.0, 352.0,
    ];
    let curve = sim::load_curve(
        params,
        &Lengths::Fixed {
            prompt: 512,
            generate: 128,
        },
        &rates,
        args.duration.unwrap_or(300.0),
        args.seed,
    );
    let anchors = sim::calibration::anchors(params);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"curve": curve, "anchors": anchors}))?
        );
        return Ok(());
    }
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
    println!("\n{}", sim::calibration::markdown(&anchors));
    Ok(())
}

fn suite(args: &SimulateArgs, params: &SimParams) -> anyhow::Result<()> {
    let watch = Stopwatch::start();
    let loads = development_loads(args, params)?;
    let entries = args.entries()?;
    let results = arena::run_loads(&loads, params, &entries, &[], args.seeds())
        .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let md = markdown(&results);
    std::fs::write(args.out.join("suite.md"), &md)?;
    std::fs::write(
        args.out.join("suite.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    let mut html = sim::report::page_start("keda-llm-scaler arena suite");
    for r in &results {
        if let Some((c, p)) = &r.first {
            html.push_str(&sim::report::section(c, p));
        }
    }
    html.push_str(sim::report::FOOTER);
    std::fs::write(args.out.join("suite.html"), html)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{md}");
    }
    eprintln!(
        "suite: {} loads x {} contestants x {} seeds in {:.0} s on {} threads; {}",
        loads.len(),
        entries.len(),
        args.seeds.max(1),
        watch.elapsed().as_secs_f64(),
        args.threads(),
        args.out.display()
    );
    Ok(())
}

fn tune(args: &SimulateArgs, params: &SimParams) -> anyhow::Result<()> {
    let watch = Stopwatch::start();
    let loads = development_loads(args, params)?;
    // `--policy NAME` narrows the tuning to those rivals.
    let tunable: Vec<&'static rivals::Rival> = rivals::REGISTRY
        .iter()
        .copied()
        .filter(|r| !r.knobs.is_empty())
        .filter(|r| args.policies.is_empty() || args.policies.iter().any(|n| n == r.name))
        .collect();
    let tunings =
        arena::tune(&tunable, &loads, params, args.seeds()).map_err(anyhow::Error::msg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tunings)?);
    } else {
        for t in &tunings {
            println!("{}: chosen {}", t.rival, t.chosen);
            for (label, rate, gp) in &t.grid {
                println!(
                    "  {label:<44} good-rate {:>5.1} %  goodput/GPU-s {gp:.3}",
                    rate * 100.0
                );
            }
        }
    }
    eprintln!(
        "tune: {} rivals on {} loads in {:.0} s",
        tunings.len(),
        loads.len(),
        watch.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `simulate`.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let watch = Stopwatch::start();
    let params = args.params()?;
    if args.calibration {
        return calibration(args, &params);
    }
    if args.suite {
        return suite(args, &params);
    }
    if args.tune {
        return tune(args, &params);
    }
    let entries = args.entries()?;
    let load = single_load(args, &params)?;
    let outages: Vec<(f64, f64)> = args
        .outages
        .iter()
        .map(|s| parse_outage(s))
        .collect::<anyhow::Result<_>>()?;
    if args.record.is_some() && args.seeds > 1 {
        bail!("--record records one seed; drop --seeds");
    }
    let mut loads = arena::run_loads(&[load], &params, &entries, &outages, args.seeds())
        .map_err(anyhow::Error::msg)?;
    let Some(LoadResult {
        summaries: results,
        first: Some((comparison, scored)),
        ..
    }) = loads.pop()
    else {
        bail!("no seed ran");
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&comparison.scenario, &results));
    }
    if let Some(path) = &args.record {
        write_recording(path, args, &scored, &comparison)?;
    }
    if let Some(path) = &args.details {
        std::fs::write(path, serde_json::to_vec(&comparison)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.report != "-" {
        let html = crate::sim::report::html(&comparison, &scored);
        std::fs::write(&args.report, html).with_context(|| format!("writing {}", args.report))?;
        eprintln!("report: {}", args.report);
    }
    eprintln!(
        "simulated {} contestants x {} seeds x {:.0} s of {} requests in {:.1} s",
        entries.len(),
        args.seeds.max(1),
        comparison.duration_s,
        comparison.requests,
        watch.elapsed().as_secs_f64()
    );
    Ok(())
}
