//! `replay` and `record`: recordings in and out.
//!
//! Replay feeds each recorded cycle through [`Cycle::step`], the function the live controller
//! calls, on a virtual clock taken from the recording, as fast as the machine allows.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::clock::{self, Stopwatch};
use crate::config::{DecisionConfig, ScalerConfig};
use crate::core::cycle::Cycle;
use crate::core::fleet::Observation;
use crate::core::policy::{Binding, Reason};
use crate::fetch::cycle::fetch_cycle;
use crate::sim::report::{Chart, PALETTE, Series, esc, page_start};
use crate::tools::recording::{self, Header, Recording, Scrape, Writer};

/// One decision of a replay.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Variant name (`base` without variants).
    pub variant: String,
    /// Seconds since the start of the recording.
    pub t_s: f64,
    /// The answer GetMetrics would have given.
    pub desired: u32,
    /// GetMetrics would have said UNAVAILABLE (stale for longer than staleHoldSeconds).
    pub unavailable: bool,
    /// IsActive.
    pub active: bool,
    /// Reason code (serialised as its label).
    pub reason: Reason,
    /// Binding signal (serialised as its label).
    pub binding: Binding,
    /// TTFT quantile, seconds.
    pub ttft_s: Option<f64>,
    /// Completions in the TTFT window.
    pub ttft_samples: f64,
    /// Mean KV usage of fresh workers.
    pub kv_mean: Option<f64>,
    /// Highest KV usage of a fresh worker.
    pub kv_max: Option<f64>,
    /// Requests waiting.
    pub waiting: f64,
    /// Requests running.
    pub running: f64,
    /// Workers with data this cycle.
    pub fresh_workers: usize,
    /// Workers discovered.
    pub discovered_workers: usize,
    /// The explanation line.
    pub detail: String,
}

/// Replays `rec` under `metadata`; pure apart from the work.
pub fn replay(
    rec: &Recording,
    metadata: &BTreeMap<String, String>,
    variant: &str,
) -> anyhow::Result<Vec<Row>> {
    // Replay reads the recorded pages, not the recorded addresses: where to scrape is not needed.
    let cfg = DecisionConfig::from_metadata(metadata, &BTreeMap::new()).context("metadata")?;
    let mut cycle = Cycle::default();
    let mut rows = Vec::with_capacity(rec.frames.len());
    for f in &rec.frames {
        let observations = f
            .scrapes
            .iter()
            .map(|s| {
                Observation::from_page(
                    s.target.clone(),
                    s.target_role(),
                    s.page(),
                    cfg.engine,
                    cfg.model.as_deref(),
                )
            })
            .collect();
        let step = cycle.step(&cfg.signal, &cfg.policy, f.t_ms, observations);
        let (d, s) = (&step.snapshot.decision, &step.snapshot.signals);
        rows.push(Row {
            variant: variant.to_string(),
            t_s: f.t_ms as f64 / 1000.0,
            desired: d.desired,
            unavailable: d.unavailable,
            active: d.active,
            reason: d.reason,
            binding: d.binding,
            ttft_s: s.ttft_seconds,
            ttft_samples: s.ttft_samples,
            kv_mean: s.kv_usage_mean,
            kv_max: s.kv_usage_max,
            waiting: s.waiting,
            running: s.running,
            fresh_workers: s.fresh_workers,
            discovered_workers: s.discovered_workers,
            detail: d.detail.clone(),
        });
    }
    Ok(rows)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// The timeline as CSV.
pub fn to_csv(rows: &[Row]) -> String {
    let mut o = String::from(
        "variant,t_s,desired,unavailable,active,reason,binding,ttft_s,ttft_samples,kv_mean,kv_max,waiting,running,fresh_workers,discovered_workers,detail\n",
    );
    for r in rows {
        o.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.variant),
            r.t_s,
            r.desired,
            r.unavailable,
            r.active,
            r.reason,
            r.binding,
            opt(r.ttft_s),
            r.ttft_samples,
            opt(r.kv_mean),
            opt(r.kv_max),
            r.waiting,
            r.running,
            r.fresh_workers,
            r.discovered_workers,
            csv_field(&r.detail)
        ));
    }
    o
}

/// The replay report: TTFT against its target, KV, queue, desired replicas per variant, and
/// every change with its binding signal and reason.
pub fn html(header: &Header, variants: &[(String, BTreeMap<String, String>, Vec<Row>)]) -> String {
    let mut o = page_start("keda-llm-scaler replay");
    o.push_str(&format!(
        "<p class=\"note\">Recording: source <b>{}</b>{}, {} cycles every {:.1} s. {}</p>\n",
        header.source,
        if header.source == "simulated" {
            " (made by the simulator, not scraped from real servers)"
        } else {
            ""
        },
        variants.first().map_or(0, |v| v.2.len()),
        header.interval_s,
        esc(&header.note)
    ));
    let target_s = variants
        .first()
        .and_then(|v| DecisionConfig::from_metadata(&v.1, &BTreeMap::new()).ok())
        .map_or(0.5, |c| c.policy.ttft_target_s);
    let end = variants
        .first()
        .and_then(|v| v.2.last())
        .map_or(1.0, |r| r.t_s);
    let line = |name: String, i: usize, pts: Vec<(f64, f64)>, step: bool| Series {
        name,
        color: PALETTE[i % PALETTE.len()],
        points: pts,
        step,
        dashed: false,
    };
    let mut desired: Vec<Series> = variants
        .iter()
        .enumerate()
        .map(|(i, (name, _, rows))| {
            line(
                format!("desired ({name})"),
                i,
                rows.iter().map(|r| (r.t_s, f64::from(r.desired))).collect(),
                true,
            )
        })
        .collect();
    if let Some((_, _, rows)) = variants.first() {
        desired.push(Series {
            name: "workers discovered".into(),
            color: "#1a7f37",
            points: rows
                .iter()
                .map(|r| (r.t_s, r.discovered_workers as f64))
                .collect(),
            step: true,
            dashed: true,
        });
    }
    let markers = variants
        .first()
        .map(|(_, _, rows)| {
            rows.windows(2)
                .filter(|w| w[0].desired != w[1].desired || w[0].reason != w[1].reason)
                .map(|w| {
                    (
                        w[1].t_s,
                        format!("{} {} via {}", w[1].desired, w[1].reason, w[1].binding),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    o.push_str(
        &Chart {
            title: "Desired replicas (hover the dotted lines for reason and binding signal)".into(),
            y_label: "replicas".into(),
            series: desired,
            log_y: false,
            shaded: Vec::new(),
            markers,
        }
        .svg(),
    );
    if let Some((_, _, rows)) = variants.first() {
        o.push_str(
            &Chart {
                title: "TTFT quantile against its target".into(),
                y_label: "seconds".into(),
                series: vec![
                    line(
                        "TTFT".into(),
                        0,
                        rows.iter()
                            .map(|r| (r.t_s, r.ttft_s.unwrap_or(f64::NAN)))
                            .collect(),
                        false,
                    ),
                    Series {
                        name: "target".into(),
                        color: "#d1242f",
                        points: vec![(0.0, target_s), (end, target_s)],
                        step: false,
                        dashed: true,
                    },
                ],
                log_y: true,
                shaded: Vec::new(),
                markers: Vec::new(),
            }
            .svg(),
        );
        o.push_str(
            &Chart {
                title: "KV-cache pressure".into(),
                y_label: "fraction".into(),
                series: vec![
                    line(
                        "mean".into(),
                        0,
                        rows.iter()
                            .map(|r| (r.t_s, r.kv_mean.unwrap_or(f64::NAN)))
                            .collect(),
                        false,
                    ),
                    line(
                        "max".into(),
                        3,
                        rows.iter()
                            .map(|r| (r.t_s, r.kv_max.unwrap_or(f64::NAN)))
                            .collect(),
                        false,
                    ),
                ],
                log_y: false,
                shaded: Vec::new(),
                markers: Vec::new(),
            }
            .svg(),
        );
        o.push_str(
            &Chart {
                title: "Queue and running requests".into(),
                y_label: "requests".into(),
                series: vec![
                    line(
                        "waiting".into(),
                        3,
                        rows.iter().map(|r| (r.t_s, r.waiting)).collect(),
                        false,
                    ),
                    line(
                        "running".into(),
                        0,
                        rows.iter().map(|r| (r.t_s, r.running)).collect(),
                        false,
                    ),
                ],
                log_y: false,
                shaded: Vec::new(),
                markers: Vec::new(),
            }
            .svg(),
        );
    }
    for (name, md, rows) in variants {
        o.push_str(&format!(
            "<h2>Changes: {}</h2><p class=\"note\">{}</p><table><tr><th>time (s)</th><th>desired</th><th>reason</th><th>binding</th><th>explanation</th></tr>\n",
            esc(name),
            esc(
                &md.iter()
                    .filter(|(k, _)| *k != "targets")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        ));
        let mut prev: Option<&Row> = None;
        for r in rows {
            if prev.is_none_or(|p| p.desired != r.desired || p.reason != r.reason) {
                o.push_str(&format!(
                    "<tr><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>\n",
                    r.t_s,
                    r.desired,
                    r.reason,
                    r.binding,
                    esc(&r.detail)
                ));
            }
            prev = Some(r);
        }
        o.push_str("</table>\n");
    }
    o.push_str(
        "<p class=\"note\">Generated by <code>keda-llm-scaler replay</code>.</p></body></html>\n",
    );
    o
}

/// Reads `key=value` / `key: value` lines (blank lines and `#` comments skipped), or a JSON
/// object of strings.
pub fn parse_metadata_file(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    if text.trim_start().starts_with('{') {
        let v: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)?;
        return Ok(v
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect());
    }
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        // `key=value` as on the command line, or `key: value` as in a ScaledObject.
        let (k, v) = crate::config::split_pair(l)
            .or_else(|| l.split_once(':').map(|(k, v)| (k.trim(), v.trim())))
            .with_context(|| format!("line {}: expected key=value or key: value", i + 1))?;
        out.insert(k.to_string(), v.trim_matches('"').to_string());
    }
    Ok(out)
}

/// Flags of `replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// A recording (`.jsonl.zst`) from `record` or `simulate --record`.
    pub file: PathBuf,
    /// ScaledObject metadata file (`key=value` lines or a JSON object); default: the recording's.
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Override a metadata key (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Also replay a variant, `NAME:key=value[,key=value...]` on top of the base (repeatable).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// Timeline format.
    #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
    pub format: String,
    /// Where the timeline goes ("-" for stdout).
    #[arg(long, default_value = "-")]
    pub out: String,
    /// Where the HTML report goes ("-" for none).
    #[arg(long, default_value = "replay.html")]
    pub report: String,
}

/// Runs `replay`.
pub fn run_replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let watch = Stopwatch::start();
    let rec = recording::read_file(&args.file).with_context(|| args.file.display().to_string())?;
    if let Some(why) = &rec.truncated {
        eprintln!(
            "replay: recording ends early ({why}); using its {} whole cycles",
            rec.frames.len()
        );
    }
    let mut base = match &args.metadata {
        Some(p) => parse_metadata_file(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| p.display().to_string())?,
        None => rec.header.metadata.clone(),
    };
    crate::config::set_pairs(&mut base, &args.sets, "--set")?;
    let mut variants = vec![("base".to_string(), base.clone())];
    for v in &args.variants {
        let (name, sets) = v
            .split_once(':')
            .with_context(|| format!("--variant {v:?}: expected NAME:key=value,..."))?;
        let mut md = base.clone();
        crate::config::set_pairs(
            &mut md,
            &sets.split(',').map(str::to_string).collect::<Vec<_>>(),
            "--variant",
        )?;
        variants.push((name.to_string(), md));
    }
    let mut results = Vec::new();
    for (name, md) in variants {
        let rows = replay(&rec, &md, &name).with_context(|| format!("variant {name}"))?;
        results.push((name, md, rows));
    }
    let all: Vec<Row> = results.iter().flat_map(|r| r.2.iter().cloned()).collect();
    let text = if args.format == "jsonl" {
        let mut s = String::new();
        for r in &all {
            s.push_str(&serde_json::to_string(r)?);
            s.push('\n');
        }
        s
    } else {
        to_csv(&all)
    };
    if args.out == "-" {
        std::io::stdout().write_all(text.as_bytes())?;
    } else {
        std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out))?;
    }
    if args.report != "-" {
        std::fs::write(&args.report, html(&rec.header, &results))
            .with_context(|| format!("writing {}", args.report))?;
        eprintln!("report: {}", args.report);
    }
    eprintln!(
        "replayed {} cycles x {} variant(s) in {:.2} s",
        rec.frames.len(),
        results.len(),
        watch.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Flags of `record`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// Output file (`.jsonl.zst`).
    #[arg(long, short)]
    pub out: PathBuf,
    /// ScaledObject metadata, `key=value` (repeatable): `targets` or `service` + `port`, and
    /// anything replay should default to.
    #[arg(long = "set", required = true)]
    pub sets: Vec<String>,
    /// Seconds between cycles (default: the metadata's scrapeIntervalSeconds).
    #[arg(long)]
    pub interval: Option<f64>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// A note stored in the header.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// Runs `record`: scrapes what a ScaledObject with this metadata would, until the duration
/// passes or Ctrl-C, finishing the file cleanly either way.
pub async fn run_record(
    args: &RecordArgs,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut md = BTreeMap::new();
    crate::config::set_pairs(&mut md, &args.sets, "--set")?;
    let cfg = ScalerConfig::from_metadata(&md, &BTreeMap::new()).context("--set")?;
    let interval = args
        .interval
        .unwrap_or(cfg.decision.scrape_interval_ms as f64 / 1000.0);
    if !(interval.is_finite() && interval >= 0.05) {
        bail!("--interval must be at least 0.05 s");
    }
    let scraper =
        crate::fetch::scrape::Scraper::new(&crate::fetch::scrape::ScrapeLimits::default())
            .context("building the scrape client")?;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let header = Header {
        format: recording::FORMAT.into(),
        version: recording::VERSION,
        source: "record".into(),
        created_unix: clock::unix_seconds(),
        interval_s: interval,
        metadata: md,
        note: args.note.clone(),
    };
    let mut writer = Writer::new(std::io::BufWriter::new(file), &header)?;
    let start = Stopwatch::start();
    let slots = scraper.slots("record");
    let mut known: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if args
            .duration
            .is_some_and(|d| start.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        let t_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The controller's own fetch cycle: the same discovery, allow-list and failures.
        let scrapes: Vec<Scrape> =
            fetch_cycle(&cfg, &scraper, &slots, known.clone(), Scrape::new).await;
        // As the controller remembers them: every worker target of this cycle.
        known = scrapes
            .iter()
            .filter(|s| s.role == "worker")
            .map(|s| s.target.clone())
            .collect();
        let ok = scrapes.iter().filter(|s| s.body.is_some()).count();
        let n = scrapes.len();
        writer.cycle(t_ms, scrapes)?;
        eprint!(
            "\rrecord: {:>6.0} s  cycle {:>5}  targets {ok}/{n} ok  {:.1} MB raw",
            start.elapsed().as_secs_f64(),
            writer.cycles,
            writer.raw_bytes as f64 / 1e6
        );
    }
    let cycles = writer.cycles;
    let mut out = writer.finish()?;
    out.flush()?;
    eprintln!("\nrecord: wrote {cycles} cycles to {}", args.out.display());
    Ok(())
}
