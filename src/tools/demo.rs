//! `keda-llm-scaler demo`: everything on loopback, in real time, with no cluster.
//!
//! - simulated vLLM workers (the simulator's engine model, driven by the wall clock), each
//!   serving its own `/metrics` over HTTP on a loopback port while its pod is ready;
//! - a Prometheus-style HTTP service-discovery endpoint listing the ready pods;
//! - the real scaler (`serve`) on loopback ports;
//! - a KEDA + HPA emulator calling the scaler over gRPC (GetMetricSpec, GetMetrics, IsActive)
//!   and resizing the simulated fleet, pods taking `pod_start_s` to become ready;
//! - a live terminal view through a load burst, then an HTML report.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Stopwatch;
use crate::core::cycle::HistoryEntry;
use crate::core::policy::{Binding, Reason};
use crate::service::admin::DebugEntryView;
use crate::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use crate::service::grpc::pb::{GetMetricsRequest, ScaledObjectRef};
use crate::service::serve::{self, ServeOptions};
use crate::sim::keda::{Cluster, hpa_for_keda_llm_scaler, keda_for_keda_llm_scaler};
use crate::sim::live::{Change, LiveFleet};
use crate::sim::report::{Chart, PALETTE, Series, esc, page_start};
use crate::sim::rng::Rng;
use crate::sim::worker::EngineParams;

/// Settings of a demo run.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Length of the run, seconds.
    #[arg(long, default_value_t = 75.0)]
    pub duration: f64,
    /// Burst start, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub burst_start: f64,
    /// Burst end, seconds.
    #[arg(long, default_value_t = 40.0)]
    pub burst_end: f64,
    /// Load during the burst as a multiple of the base load.
    #[arg(long, default_value_t = 4.0)]
    pub burst_factor: f64,
    /// Base load, requests per second (512 in / 128 out each).
    #[arg(long, default_value_t = 40.0)]
    pub base_rps: f64,
    /// Seconds from a new pod to serving.
    #[arg(long, default_value_t = 8.0)]
    pub pod_start_seconds: f64,
    /// HPA sync period of the emulator, seconds (15 in a cluster; shorter so the demo is short).
    #[arg(long, default_value_t = 3.0)]
    pub hpa_sync_seconds: f64,
    /// Most replicas.
    #[arg(long, default_value_t = 8)]
    pub max_replicas: u32,
    /// Extra ScaledObject metadata for the scaler, `key=value` (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Where the HTML report goes ("-" for none).
    #[arg(long, default_value = "demo.html")]
    pub report: String,
    /// No live view (tests).
    #[arg(long)]
    pub quiet: bool,
    /// Random seed of the arrivals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One second of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since start.
    pub t_s: f64,
    /// Offered load, requests per second.
    pub load_rps: f64,
    /// Spec replicas (what the emulated HPA set).
    pub spec: u32,
    /// Ready pods.
    pub ready: u32,
    /// The scaler's answer.
    pub desired: Option<u32>,
    /// TTFT quantile the scaler computed.
    pub scaler_ttft_s: Option<f64>,
    /// True p95 TTFT of requests whose first token came in the last 10 s.
    pub true_ttft_p95_s: Option<f64>,
    /// Mean KV usage the scaler saw.
    pub kv_mean: Option<f64>,
    /// Max KV usage the scaler saw.
    pub kv_max: Option<f64>,
    /// Waiting requests (fleet).
    pub waiting: u32,
    /// Reason code of the answer (none before the first decision).
    pub reason: Option<Reason>,
    /// Binding signal.
    pub binding: Option<Binding>,
}

/// What a demo run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// One sample per second.
    pub samples: Vec<Sample>,
    /// Failed RPCs.
    pub rpc_errors: u32,
    /// RPCs made.
    pub rpcs: u32,
    /// Scale actions the emulated HPA took (time, from, to).
    pub actions: Vec<(f64, u32, u32)>,
    /// The scaler's decision history from its debug API at the end.
    pub history: Vec<HistoryEntry>,
}

/// The fleet and its HTTP edge, shared by the demo's loop and its servers.
struct Shared {
    fleet: Mutex<LiveFleet>,
    /// The `/metrics` server of every serving pod, by pod id.
    servers: Mutex<BTreeMap<u64, (SocketAddr, JoinHandle<()>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each holder leaves the state whole between statements; a panicking one cannot break it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Follows the fleet's changes on the network: a started pod gets a loopback `/metrics` server
/// (and so a discovery entry), a removed one loses it.
fn apply(
    shared: &Arc<Shared>,
    changes: Vec<Change>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    for change in changes {
        match change {
            Change::Started(id) => {
                let listener =
                    std::net::TcpListener::bind("127.0.0.1:0").context("binding a pod port")?;
                listener.set_nonblocking(true)?;
                let addr = listener.local_addr()?;
                let server = serve_pod(listener, id, shared.clone(), shutdown.clone())?;
                lock(&shared.servers).insert(id, (addr, server));
            }
            Change::Removed(id) => {
                if let Some((_, server)) = lock(&shared.servers).remove(&id) {
                    server.abort();
                }
            }
        }
    }
    Ok(())
}

async fn pod_metrics(State((shared, id)): State<(Arc<Shared>, u64)>) -> axum::response::Response {
    let mut page = String::with_capacity(8 << 10);
    if lock(&shared.fleet).render(id, &mut page) {
        ([("content-type", "text/plain; version=0.0.4")], page).into_response()
    } else {
        axum::http::StatusCode::NOT_FOUND.into_response()
    }
}

fn serve_pod(
    listener: std::net::TcpListener,
    id: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/metrics", get(pod_metrics))
        .with_state((shared, id));
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    }))
}

/// Prometheus HTTP service discovery over the serving pods, as the scaler's `httpSd` reads it.
async fn sd(State(shared): State<Arc<Shared>>) -> axum::Json<serde_json::Value> {
    let targets: Vec<String> = lock(&shared.servers)
        .values()
        .map(|(addr, _)| addr.to_string())
        .collect();
    axum::Json(serde_json::json!([{ "targets": targets, "labels": {"job": "demo"} }]))
}

async fn local_listener() -> anyhow::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding loopback")?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// The scaler's debug API, read into its typed view (a field the server renamed fails here).
async fn debug_entries(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<DebugEntryView>> {
    let body = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    serde_json::from_str(&body).with_context(|| format!("{url}: not the debug API's shape"))
}

/// Runs the demo; returns what happened.
pub async fn run(args: &DemoArgs, shutdown: CancellationToken) -> anyhow::Result<Outcome> {
    crate::service::tls::install_crypto_provider();
    let watch = Stopwatch::start();
    let now_us = || u64::try_from(watch.elapsed().as_micros()).unwrap_or(u64::MAX);
    let shared = Arc::new(Shared {
        fleet: Mutex::new(LiveFleet::new(
            EngineParams::default(),
            (args.pod_start_seconds.max(0.0) * 1e6) as u64,
        )),
        servers: Mutex::new(BTreeMap::new()),
    });
    let started = {
        let mut fleet = lock(&shared.fleet);
        fleet.add_pod(0, true);
        fleet.advance(0)
    };
    apply(&shared, started, &shutdown)?;

    // Service discovery and the scaler.
    let (sd_l, sd_addr) = local_listener().await?;
    let sd_app = Router::new()
        .route("/sd", get(sd))
        .with_state(shared.clone());
    let sd_stop = shutdown.clone();
    let sd_task = tokio::spawn(async move {
        let _ = axum::serve(sd_l, sd_app)
            .with_graceful_shutdown(async move { sd_stop.cancelled().await })
            .await;
    });
    let (grpc_l, grpc_addr) = local_listener().await?;
    let (http_l, http_addr) = local_listener().await?;
    let scaler_stop = shutdown.child_token();
    let scaler = tokio::spawn(serve::run(
        ServeOptions::default(),
        grpc_l,
        http_l,
        scaler_stop.clone(),
    ));

    let mut metadata: HashMap<String, String> = [
        ("scalerAddress", format!("{grpc_addr}")),
        ("httpSd", format!("http://{sd_addr}/sd")),
        ("engine", "vllm".into()),
        ("model", EngineParams::default().model),
        ("minReplicas", "1".into()),
        ("maxReplicas", args.max_replicas.to_string()),
        ("scrapeIntervalSeconds", "1".into()),
        ("scrapeTimeoutSeconds", "0.5".into()),
        ("ttftWindowSeconds", "10".into()),
        ("ttftMinSamples", "20".into()),
        ("scaleDownWindowSeconds", "10".into()),
        ("postScaleUpHoldSeconds", "10".into()),
        ("scaleDownStepSeconds", "3".into()),
        ("scaleDownMaxPercent", "50".into()),
        ("pendingTimeoutSeconds", "30".into()),
        ("activationWindowSeconds", "30".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    crate::config::set_pairs(&mut metadata, &args.sets, "--set")?;
    let so = ScaledObjectRef {
        name: "qwen3-demo".into(),
        namespace: "demo".into(),
        scaler_metadata: metadata,
    };
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = ExternalScalerClient::connect(format!("http://{grpc_addr}")).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = client.context("the scaler did not accept gRPC connections")?;

    // The same control plane the simulator emulates for keda-llm-scaler.
    let mut hpa = hpa_for_keda_llm_scaler(Cluster::PER_DIRECTION, 1, args.max_replicas);
    let mut keda = keda_for_keda_llm_scaler(Cluster::PER_DIRECTION);
    let http = reqwest::Client::new();
    let mut rng = Rng::new(args.seed);
    let mut next_arrival_s = rng.exp(args.base_rps.max(0.1));
    let rate = |t: f64| {
        if t >= args.burst_start && t < args.burst_end {
            args.base_rps * args.burst_factor
        } else {
            args.base_rps
        }
    };
    let mut samples = Vec::new();
    let mut actions = Vec::new();
    let (mut rpcs, mut rpc_errors) = (0u32, 0u32);
    let mut next_sync = args.hpa_sync_seconds;
    let mut next_sample = 1.0;
    let mut last_desired: Option<u32> = None;
    if !args.quiet {
        println!(
            "keda-llm-scaler demo: scaler gRPC {grpc_addr}, admin http://{http_addr}, {:.0} s with a x{:.0} burst at {:.0}-{:.0} s",
            args.duration, args.burst_factor, args.burst_start, args.burst_end
        );
        println!(
            "{:>5} {:>9} {:>10} {:>10} {:>11} {:>6} {:>8} {:>10}  why",
            "t", "load/s", "TTFT p95", "true p95", "KV mean/max", "queue", "desired", "ready/spec",
        );
    }
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let t_us = now_us();
        let t = t_us as f64 / 1e6;
        if t >= args.duration {
            break;
        }
        let changes = {
            let mut fleet = lock(&shared.fleet);
            while next_arrival_s <= t {
                fleet.route((next_arrival_s * 1e6) as u64);
                next_arrival_s += rng.exp(rate(next_arrival_s).max(0.1));
            }
            fleet.advance(t_us)
        };
        apply(&shared, changes, &shutdown)?;
        if t >= next_sync {
            next_sync += args.hpa_sync_seconds;
            // The metrics adapter's query: GetMetricSpec, GetMetrics and IsActive.
            rpcs += 3;
            let spec_ok = client.get_metric_spec(so.clone()).await.is_ok();
            let answer = client
                .get_metrics(GetMetricsRequest {
                    scaled_object_ref: Some(so.clone()),
                    metric_name: "s0-llm-desired-replicas".into(),
                })
                .await
                .map_err(|_| ())
                .and_then(|r| {
                    r.into_inner()
                        .metric_values
                        .first()
                        .map(|v| v.metric_value_float)
                        .ok_or(())
                });
            let active_ok = client.is_active(so.clone()).await.is_ok();
            rpc_errors += u32::from(!spec_ok) + u32::from(answer.is_err()) + u32::from(!active_ok);
            last_desired = answer.ok().map(|v| v as u32);
            let changes = {
                let mut fleet = lock(&shared.fleet);
                let (c, s, ready) = (fleet.spec(), fleet.pods(), fleet.ready());
                let value = keda.metric_for_hpa(answer, c);
                let next = hpa.sync((t * 1000.0) as u64, c, s, ready, value);
                if next == c {
                    Vec::new()
                } else {
                    actions.push((t, c, next));
                    fleet.set_spec(next, t_us)
                }
            };
            apply(&shared, changes, &shutdown)?;
        }
        if t >= next_sample {
            next_sample += 1.0;
            let debug =
                debug_entries(&http, &format!("http://{http_addr}/debug/scaledobjects")).await?;
            let entry = debug.first();
            let sig = entry.map(|e| &e.signals);
            let (spec, ready, waiting, true_p95) = {
                let fleet = lock(&shared.fleet);
                (
                    fleet.spec(),
                    fleet.ready(),
                    fleet.waiting(),
                    fleet.true_p95(),
                )
            };
            let sample = Sample {
                t_s: t,
                load_rps: rate(t),
                spec,
                ready,
                desired: last_desired,
                scaler_ttft_s: sig.and_then(|s| s.ttft_seconds),
                true_ttft_p95_s: true_p95,
                kv_mean: sig.and_then(|s| s.kv_usage_mean),
                kv_max: sig.and_then(|s| s.kv_usage_max),
                waiting,
                reason: entry.map(|e| e.reason),
                binding: entry.map(|e| e.binding),
            };
            if !args.quiet {
                let ms =
                    |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.0} ms", x * 1e3));
                println!(
                    "{:>4.0}s {:>9.0} {:>10} {:>10} {:>5.2}/{:<5.2} {:>6} {:>8} {:>10}  {} via {}",
                    sample.t_s,
                    sample.load_rps,
                    ms(sample.scaler_ttft_s),
                    ms(sample.true_ttft_p95_s),
                    sample.kv_mean.unwrap_or(0.0),
                    sample.kv_max.unwrap_or(0.0),
                    sample.waiting,
                    sample.desired.map_or("-".into(), |d| d.to_string()),
                    format!("{}/{}", sample.ready, sample.spec),
                    sample.reason.map_or("-", Reason::as_str),
                    sample.binding.map_or("-", Binding::as_str)
                );
            }
            samples.push(sample);
        }
    }
    let history = debug_entries(&http, &format!("http://{http_addr}/debug/scaledobjects")).await?;
    scaler_stop.cancel();
    shutdown.cancel();
    let _ = scaler.await;
    let _ = sd_task.await;
    let outcome = Outcome {
        samples,
        rpc_errors,
        rpcs,
        actions,
        history: history
            .into_iter()
            .next()
            .map(|e| e.history)
            .unwrap_or_default(),
    };
    if args.report != "-" {
        let path = PathBuf::from(&args.report);
        std::fs::write(&path, report(&outcome))
            .with_context(|| format!("writing {}", path.display()))?;
        if !args.quiet {
            println!("report: {}", path.display());
        }
    }
    Ok(outcome)
}

/// The demo's HTML report.
pub fn report(o: &Outcome) -> String {
    let mut h = page_start("keda-llm-scaler demo");
    h.push_str(&format!(
        "<p class=\"note\">Simulated vLLM workers (Qwen3-0.6B/H100 engine model) served real <code>/metrics</code> on loopback; the real scaler scraped them; a KEDA+HPA emulator called it over gRPC ({} RPCs, {} failed) and resized the fleet ({} actions).</p>\n",
        o.rpcs,
        o.rpc_errors,
        o.actions.len()
    ));
    let pts = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        o.samples
            .iter()
            .map(|s| (s.t_s, f(s).unwrap_or(f64::NAN)))
            .collect()
    };
    let series = |name: &str, i: usize, points: Vec<(f64, f64)>, step: bool| Series {
        name: name.into(),
        color: PALETTE[i],
        points,
        step,
        dashed: false,
    };
    let charts = [
        Chart {
            title: "Desired against ready replicas".into(),
            y_label: "replicas".into(),
            series: vec![
                series(
                    "desired (GetMetrics)",
                    0,
                    pts(&|s| s.desired.map(f64::from)),
                    true,
                ),
                series("ready", 5, pts(&|s| Some(f64::from(s.ready))), true),
                series("spec (HPA)", 4, pts(&|s| Some(f64::from(s.spec))), true),
            ],
            log_y: false,
            shaded: Vec::new(),
            markers: Vec::new(),
        },
        Chart {
            title: "TTFT p95: the scaler's bucket estimate, the exact value, and the 500 ms target"
                .into(),
            y_label: "seconds".into(),
            series: vec![
                series("scaler", 0, pts(&|s| s.scaler_ttft_s), false),
                series("exact (last 10 s)", 1, pts(&|s| s.true_ttft_p95_s), false),
                Series {
                    name: "target".into(),
                    color: "#d1242f",
                    points: pts(&|_| Some(0.5)),
                    step: false,
                    dashed: true,
                },
            ],
            log_y: true,
            shaded: Vec::new(),
            markers: Vec::new(),
        },
        Chart {
            title: "Load and queue".into(),
            y_label: "requests".into(),
            series: vec![
                series("offered req/s", 2, pts(&|s| Some(s.load_rps)), true),
                series("waiting", 3, pts(&|s| Some(f64::from(s.waiting))), false),
            ],
            log_y: false,
            shaded: Vec::new(),
            markers: Vec::new(),
        },
        Chart {
            title: "KV-cache pressure (mean and max)".into(),
            y_label: "fraction".into(),
            series: vec![
                series("mean", 0, pts(&|s| s.kv_mean), false),
                series("max", 3, pts(&|s| s.kv_max), false),
            ],
            log_y: false,
            shaded: Vec::new(),
            markers: Vec::new(),
        },
    ];
    for c in &charts {
        h.push_str(&c.svg());
    }
    h.push_str("<h2>The scaler's last decisions (from /debug/scaledobjects)</h2><table><tr><th>desired</th><th>reason</th><th>binding</th><th>explanation</th></tr>\n");
    for e in &o.history {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>\n",
            e.desired,
            e.reason,
            e.binding,
            esc(&e.detail)
        ));
    }
    h.push_str("</table></body></html>\n");
    h
}
