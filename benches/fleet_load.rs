//! Load driver (not criterion: it measures a server under load, not a function): the real
//! scaler on loopback with N ScaledObjects over a fleet of simulated vLLM workers serving the
//! 57 KB vLLM 0.19.1 capture, a tonic client driving GetMetrics / GetMetricSpec / IsActive
//! from many concurrent tasks, and, in the same run, the PromQL query KEDA's Prometheus
//! scaler would send for the same fleet against a real Prometheus on loopback.
//!
//!   cargo bench --bench fleet_load                        # 1,000 ScaledObjects, 1,000 workers
//!   FLEET_SOS=100 FLEET_WORKERS=1000 cargo bench --bench fleet_load
//!
//! Prints a Markdown table (BENCHMARKS.md). Needs `prometheus` on PATH for the PromQL column
//! (scripts/setup-test-deps.sh installs it); without it that column is skipped.

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use hdrhistogram::Histogram;
use keda_llm_scaler::clock::Stopwatch;
use keda_llm_scaler::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use keda_llm_scaler::service::grpc::pb::{GetMetricsRequest, ScaledObjectRef};
use keda_llm_scaler::service::serve::ServeOptions;
use tokio::net::TcpListener;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the ")".
    (ticks(11) + ticks(12)) / 100.0
}

struct Stats(Histogram<u64>, u64);

fn summary(name: &str, s: &Stats, secs: f64) -> String {
    let q = |p: f64| s.0.value_at_quantile(p) as f64 / 1000.0;
    format!(
        "| {name} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} |",
        s.1 as f64 / secs,
        q(0.5),
        q(0.99),
        q(0.999),
        s.0.max() as f64 / 1000.0
    )
}

async fn drive<F, Fut>(tasks: usize, secs: f64, f: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let (mut n, mut i) = (0u64, t);
            let watch = Stopwatch::start();
            while watch.elapsed().as_secs_f64() < secs {
                let one = Stopwatch::start();
                assert!(f(i).await, "RPC failed");
                let _ = h.record(one.elapsed().as_micros().max(1) as u64);
                n += 1;
                i += tasks;
            }
            (h, n)
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut total = 0;
    for h in handles {
        let (h, n) = h.await.expect("task");
        all.add(&h).expect("same bounds");
        total += n;
    }
    Stats(all, total)
}

fn main() {
    support::block_on(run());
}

async fn run() {
    let sos = env_usize("FLEET_SOS", 1000);
    let workers = env_usize("FLEET_WORKERS", 1000);
    let secs = env_usize("FLEET_SECONDS", 10) as f64;
    let tasks = env_usize("FLEET_TASKS", 16);
    let interval = std::env::var("FLEET_SCRAPE_INTERVAL").unwrap_or_else(|_| "5".into());

    // One HTTP server, one path per worker.
    let body = Arc::new(support::vllm_capture());
    let pages = body.clone();
    let app = Router::new().route(
        "/w/{id}/metrics",
        get(move |Path(_id): Path<u32>| {
            let b = pages.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    (*b).clone(),
                )
            }
        }),
    );
    let wl = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind workers");
    let waddr = wl.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(wl, app).await });

    let rss_before = support::rss_mib();
    let (grpc, stop) = support::start_scaler(ServeOptions {
        first_decision_wait: Duration::from_secs(5),
        // Every ScaledObject of the load lives in one namespace.
        registry: keda_llm_scaler::service::controller::RegistrySettings {
            max_controllers_per_namespace:
                keda_llm_scaler::service::controller::DEFAULT_MAX_CONTROLLERS,
            ..Default::default()
        },
        scrape: keda_llm_scaler::fetch::scrape::ScrapeLimits {
            concurrency_per_namespace: keda_llm_scaler::fetch::scrape::DEFAULT_CONCURRENCY,
            ..Default::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let channel = support::connect(grpc).await;
    // Workers are split evenly across ScaledObjects (each worker belongs to one).
    let refs: Arc<Vec<ScaledObjectRef>> = Arc::new(
        (0..sos)
            .map(|s| {
                let mine: Vec<String> = (0..workers)
                    .filter(|w| w % sos == s)
                    .map(|w| format!("http://{waddr}/w/{w}/metrics"))
                    .collect();
                let targets = if mine.is_empty() {
                    format!("http://{waddr}/w/{s}/metrics")
                } else {
                    mine.join(",")
                };
                let md: HashMap<String, String> = [
                    ("targets".to_string(), targets),
                    ("scrapeIntervalSeconds".to_string(), interval.clone()),
                    ("maxReplicas".to_string(), "100".to_string()),
                ]
                .into_iter()
                .collect();
                ScaledObjectRef {
                    name: format!("so-{s}"),
                    namespace: "bench".into(),
                    scaler_metadata: md,
                }
            })
            .collect(),
    );
    // Warm up: every controller has decided at least once.
    let mut client = ExternalScalerClient::new(channel.clone());
    for r in refs.iter() {
        client
            .get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(r.clone()),
                metric_name: "llm-desired-replicas".into(),
            })
            .await
            .expect("warm-up GetMetrics");
    }
    // Let scrape cycles run, then measure the scaler's CPU per cycle with no RPC load.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cycle_s: f64 = interval.parse().unwrap_or(5.0);
    let idle_window = (3.0 * cycle_s).max(10.0);
    let cpu0 = cpu_seconds();
    tokio::time::sleep(Duration::from_secs_f64(idle_window)).await;
    let cpu_per_cycle = (cpu_seconds() - cpu0) / (idle_window / cycle_s);
    let rss = support::rss_mib();

    let mut rows = Vec::new();
    let refs2 = refs.clone();
    let ch = channel.clone();
    let gm = drive(tasks, secs, move |i| {
        let mut c = ExternalScalerClient::new(ch.clone());
        let r = refs2[i % refs2.len()].clone();
        async move {
            c.get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(r),
                metric_name: "llm-desired-replicas".into(),
            })
            .await
            .is_ok()
        }
    })
    .await;
    rows.push(summary("GetMetrics", &gm, secs));
    let refs2 = refs.clone();
    let ch = channel.clone();
    let gs = drive(tasks, secs, move |i| {
        let mut c = ExternalScalerClient::new(ch.clone());
        let r = refs2[i % refs2.len()].clone();
        async move { c.get_metric_spec(r).await.is_ok() }
    })
    .await;
    rows.push(summary("GetMetricSpec", &gs, secs));
    let refs2 = refs.clone();
    let ch = channel.clone();
    let ia = drive(tasks, secs, move |i| {
        let mut c = ExternalScalerClient::new(ch.clone());
        let r = refs2[i % refs2.len()].clone();
        async move { c.is_active(r).await.is_ok() }
    })
    .await;
    rows.push(summary("IsActive", &ia, secs));

    // What KEDA actually sends for 1,000 ScaledObjects is far less than the maximum: each HPA
    // sync (15 s) makes ~3 calls per ScaledObject, ~200/s. Open loop at a fixed rate.
    let rate = env_usize("FLEET_OPEN_LOOP_RPS", 1000);
    let mut open = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let watch = Stopwatch::start();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while watch.elapsed().as_secs_f64() < secs {
        tick.tick().await;
        let mut c = ExternalScalerClient::new(channel.clone());
        let r = refs[sent as usize % refs.len()].clone();
        let tx = tx.clone();
        sent += 1;
        tokio::spawn(async move {
            let one = Stopwatch::start();
            let ok = c
                .get_metrics(GetMetricsRequest {
                    scaled_object_ref: Some(r),
                    metric_name: "llm-desired-replicas".into(),
                })
                .await
                .is_ok();
            assert!(ok, "RPC failed");
            let _ = tx.send(one.elapsed().as_micros().max(1) as u64);
        });
    }
    drop(tx);
    while let Some(v) = rx.recv().await {
        let _ = open.record(v);
    }
    rows.push(summary(
        &format!("GetMetrics, open loop at {rate}/s"),
        &Stats(open, sent),
        secs,
    ));

    // The same question asked of a real Prometheus scraping the same fleet.
    let promql = promql_latency(waddr, workers.min(200), secs).await;

    println!(
        "\nfleet: {sos} ScaledObjects, {workers} workers serving the 57 KB vLLM capture, scrape every {interval} s; {tasks} concurrent client tasks on one HTTP/2 connection, 2 runtime threads shared with the server"
    );
    println!(
        "scaler process (server + driver + fake workers): RSS {rss:.1} MiB at steady state (before start {rss_before:.1} MiB); CPU per scrape-and-decide cycle of the whole fleet, no RPC load: {cpu_per_cycle:.3} s\n"
    );
    println!(
        "| RPC | per second | p50 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|"
    );
    for r in &rows {
        println!("{r}");
    }
    if let Some(p) = promql {
        println!("{p}");
        let ratio = p
            .split('|')
            .nth(3)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / (gm.0.value_at_quantile(0.5) as f64 / 1000.0);
        println!("\nPromQL p50 / GetMetrics p50: {ratio:.0}x");
    }
    stop.cancel();
}

async fn promql_latency(waddr: std::net::SocketAddr, workers: usize, secs: f64) -> Option<String> {
    let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let dir = std::env::temp_dir().join(format!("kls-bench-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    // One scrape job per worker path (Prometheus has one metrics_path per job).
    let mut cfg = String::from("global:\n  scrape_interval: 1s\nscrape_configs:\n");
    for w in 0..workers {
        cfg.push_str(&format!(
            "  - job_name: w{w}\n    metrics_path: /w/{w}/metrics\n    static_configs:\n      - targets: ['{waddr}']\n"
        ));
    }
    std::fs::write(dir.join("p.yml"), cfg).ok()?;
    let mut child = Command::new(bin)
        .arg(format!("--config.file={}", dir.join("p.yml").display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let http = reqwest::Client::new();
    let q = "histogram_quantile(0.95%2C%20sum%20by%20(le)%20(rate(%7B__name__%3D%22vllm%3Atime_to_first_token_seconds_bucket%22%7D%5B5m%5D)))";
    let url = format!("http://127.0.0.1:{port}/api/v1/query?query={q}");
    let http2 = http.clone();
    let stats = drive(4, secs, move |_| {
        let h = http2.clone();
        let u = url.clone();
        async move {
            match h.get(&u).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            }
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Some(summary(
        &format!("PromQL TTFT p95 over {workers} workers (4 tasks)"),
        &stats,
        secs,
    ))
}
