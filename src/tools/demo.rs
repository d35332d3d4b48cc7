//! `keda-llm-scaler demo`: everything on loopback, in real time, with no cluster.
//!
//! - simulated vLLM workers (the simulator's engine model, driven by the wall clock), each
//!   serving its own `/metrics` over HTTP on a loopback port while its pod is ready;
//! - a Prometheus-style HTTP service-discovery endpoint listing the ready pods;
//! - the real scaler (`serve`) on loopback ports;
//! - a KEDA + HPA emulator calling the scaler over gRPC (GetMetricSpec, GetMetrics, IsActive)
//!   and resizing the simulated fleet, pods taking `pod_start_s` to become ready;
//! - a live terminal view through a load burst, then an HTML report.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
use crate::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use crate::service::grpc::pb::{GetMetricsRequest, ScaledObjectRef};
use crate::service::serve::{self, ServeOptions};
use crate::sim::keda::{Behavior, Fallback, FallbackBehavior, Hpa, HpaSpec, Keda, MetricKind};
use crate::sim::report::{Chart, PALETTE, Series, page_start};
use crate::sim::rng::Rng;
use crate::sim::worker::{EngineParams, Event, Worker};

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
    /// Reason code of the answer.
    pub reason: String,
    /// Binding signal.
    pub binding: String,
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
    pub history: serde_json::Value,
}

struct Pod {
    worker: Worker,
    ready_at_us: u64,
    ready: bool,
    listener: Option<std::net::TcpListener>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
    step_end_us: Option<u64>,
}

struct World {
    params: EngineParams,
    pods: BTreeMap<u64, Pod>,
    next_pod: u64,
    spec: u32,
    arrivals: HashMap<u64, u64>,
    next_req: u64,
    ttfts: VecDeque<(u64, f64)>,
    events: Vec<Event>,
    pod_start_us: u64,
    shutdown: CancellationToken,
    world: Option<Arc<Mutex<World>>>,
}

fn lock(w: &Mutex<World>) -> std::sync::MutexGuard<'_, World> {
    // The world's invariants hold between statements; a panicking holder cannot break them.
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl World {
    fn add_pod(&mut self, now_us: u64, ready: bool) -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a pod port")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let id = self.next_pod;
        self.next_pod += 1;
        self.pods.insert(
            id,
            Pod {
                worker: Worker::new(),
                ready_at_us: if ready {
                    now_us
                } else {
                    now_us + self.pod_start_us
                },
                ready: false,
                listener: Some(listener),
                addr,
                server: None,
                step_end_us: None,
            },
        );
        Ok(())
    }

    fn set_spec(&mut self, target: u32, now_us: u64) -> anyhow::Result<()> {
        let have = self.pods.len() as u32;
        for _ in have..target {
            self.add_pod(now_us, false)?;
        }
        if target < have {
            let mut order: Vec<(bool, u64)> =
                self.pods.iter().map(|(id, p)| (p.ready, *id)).collect();
            // Not-ready pods first, then the newest.
            order.sort_by_key(|(ready, id)| (*ready, std::cmp::Reverse(*id)));
            for (_, id) in order.into_iter().take((have - target) as usize) {
                if let Some(mut p) = self.pods.remove(&id) {
                    if let Some(s) = p.server.take() {
                        s.abort();
                    }
                    for (req, _) in p.worker.drain() {
                        self.arrivals.remove(&req);
                    }
                }
            }
        }
        self.spec = target;
        Ok(())
    }

    fn route(&mut self, now_us: u64) {
        let id = self.next_req;
        self.next_req += 1;
        let best = self
            .pods
            .iter()
            .filter(|(_, p)| p.ready)
            .min_by_key(|(id, p)| (p.worker.running() + p.worker.waiting(), **id))
            .map(|(id, _)| *id);
        if let Some(pid) = best
            && let Some(p) = self.pods.get_mut(&pid)
        {
            p.worker.enqueue(id, now_us, 512, 128);
            self.arrivals.insert(id, now_us);
        }
    }

    /// Advances every engine to `now_us` and brings pods whose start time passed into service.
    fn advance(&mut self, now_us: u64) {
        let ids: Vec<u64> = self.pods.keys().copied().collect();
        for id in ids {
            let Some(p) = self.pods.get_mut(&id) else {
                continue;
            };
            if !p.ready && p.ready_at_us <= now_us {
                p.ready = true;
                if let (Some(l), Some(world)) = (p.listener.take(), self.world.clone()) {
                    p.server = serve_pod(l, id, world, self.shutdown.clone()).ok();
                }
            }
            loop {
                match p.step_end_us {
                    Some(end) if end <= now_us => {
                        p.worker.end_step(end, &mut self.events);
                        p.step_end_us = p.worker.begin_step(&self.params).map(|d| end + d);
                    }
                    Some(_) => break,
                    None => {
                        p.step_end_us = p.worker.begin_step(&self.params).map(|d| now_us + d);
                        break;
                    }
                }
            }
        }
        let overhead = self.params.api_overhead_s;
        for e in self.events.drain(..) {
            if let Event::FirstToken { id } = e
                && let Some(arrived) = self.arrivals.get(&id)
            {
                self.ttfts
                    .push_back((now_us, (now_us - arrived) as f64 / 1e6 + overhead));
            }
            if let Event::Finished { id } = e {
                self.arrivals.remove(&id);
            }
        }
        while self
            .ttfts
            .front()
            .is_some_and(|(t, _)| now_us.saturating_sub(*t) > 10_000_000)
        {
            self.ttfts.pop_front();
        }
    }

    fn true_p95(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.ttfts.iter().map(|(_, x)| *x).collect();
        if v.len() < 5 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * 0.95).round() as usize)
            .copied()
    }
}

async fn pod_metrics(
    State((world, id)): State<(Arc<Mutex<World>>, u64)>,
) -> axum::response::Response {
    let w = lock(&world);
    match w.pods.get(&id) {
        Some(p) => {
            let mut page = String::with_capacity(8 << 10);
            p.worker.render(&w.params, &mut page);
            ([("content-type", "text/plain; version=0.0.4")], page).into_response()
        }
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

fn serve_pod(
    listener: std::net::TcpListener,
    id: u64,
    world: Arc<Mutex<World>>,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/metrics", get(pod_metrics))
        .with_state((world, id));
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    }))
}

async fn sd(State(world): State<Arc<Mutex<World>>>) -> axum::Json<serde_json::Value> {
    let w = lock(&world);
    let targets: Vec<String> = w
        .pods
        .values()
        .filter(|p| p.ready)
        .map(|p| p.addr.to_string())
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

async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    match http.get(url).send().await {
        Ok(r) => r
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Runs the demo; returns what happened.
pub async fn run(args: &DemoArgs, shutdown: CancellationToken) -> anyhow::Result<Outcome> {
    crate::service::tls::install_crypto_provider();
    let watch = Stopwatch::start();
    let now_us = || u64::try_from(watch.elapsed().as_micros()).unwrap_or(u64::MAX);
    let world = Arc::new(Mutex::new(World {
        params: EngineParams::default(),
        pods: BTreeMap::new(),
        next_pod: 0,
        spec: 1,
        arrivals: HashMap::new(),
        next_req: 0,
        ttfts: VecDeque::new(),
        events: Vec::new(),
        pod_start_us: (args.pod_start_seconds.max(0.0) * 1e6) as u64,
        shutdown: shutdown.clone(),
        world: None,
    }));
    {
        let mut w = lock(&world);
        w.world = Some(world.clone());
        w.add_pod(0, true)?;
        w.advance(0);
    }

    // Service discovery and the scaler.
    let (sd_l, sd_addr) = local_listener().await?;
    let sd_app = Router::new()
        .route("/sd", get(sd))
        .with_state(world.clone());
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

    let mut hpa = Hpa::new(HpaSpec {
        min: 1,
        max: args.max_replicas,
        behavior: Some(Behavior::keda_llm_scaler()),
        metric: MetricKind::ExternalAverageValue { target: 1.0 },
        tolerance: 0.1,
    });
    let mut keda = Keda::new(
        1.0,
        Some(Fallback {
            failure_threshold: 3,
            replicas: 4,
            behavior: FallbackBehavior::CurrentReplicasIfHigher,
        }),
    );
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
        {
            let mut w = lock(&world);
            while next_arrival_s <= t {
                w.route((next_arrival_s * 1e6) as u64);
                next_arrival_s += rng.exp(rate(next_arrival_s).max(0.1));
            }
            w.advance(t_us);
        }
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
            let mut w = lock(&world);
            let c = w.spec;
            let s = w.pods.len() as u32;
            let ready = w.pods.values().filter(|p| p.ready).count() as u32;
            let value = keda.metric_for_hpa(answer, c);
            let next = hpa.sync((t * 1000.0) as u64, c, s, ready, value);
            if next != c {
                actions.push((t, c, next));
                w.set_spec(next, t_us)?;
            }
        }
        if t >= next_sample {
            next_sample += 1.0;
            let debug = get_json(&http, &format!("http://{http_addr}/debug/scaledobjects")).await;
            let entry = debug
                .as_array()
                .and_then(|a| a.first())
                .cloned()
                .unwrap_or_default();
            let sig = &entry["signals"];
            let (spec, ready, waiting, true_p95) = {
                let w = lock(&world);
                (
                    w.spec,
                    w.pods.values().filter(|p| p.ready).count() as u32,
                    w.pods.values().map(|p| p.worker.waiting() as u32).sum(),
                    w.true_p95(),
                )
            };
            let sample = Sample {
                t_s: t,
                load_rps: rate(t),
                spec,
                ready,
                desired: last_desired,
                scaler_ttft_s: sig["ttft_seconds"].as_f64(),
                true_ttft_p95_s: true_p95,
                kv_mean: sig["kv_usage_mean"].as_f64(),
                kv_max: sig["kv_usage_max"].as_f64(),
                waiting,
                reason: entry["reason"].as_str().unwrap_or("-").to_string(),
                binding: entry["binding"].as_str().unwrap_or("-").to_string(),
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
                    sample.reason,
                    sample.binding
                );
            }
            samples.push(sample);
        }
    }
    let history = get_json(&http, &format!("http://{http_addr}/debug/scaledobjects")).await;
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
            .as_array()
            .and_then(|a| a.first())
            .map(|e| e["history"].clone())
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
    for e in o.history.as_array().into_iter().flatten() {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>\n",
            e["desired"],
            e["reason"].as_str().unwrap_or(""),
            e["binding"].as_str().unwrap_or(""),
            e["detail"].as_str().unwrap_or("").replace('<', "&lt;")
        ));
    }
    h.push_str("</table></body></html>\n");
    h
}
