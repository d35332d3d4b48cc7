//! Decision latency: from a load step on the workers (their pages switch from idle to 90 % KV
//! usage) to the new desired value in GetMetrics, as a function of scrapeIntervalSeconds.
//!
//!   cargo bench --bench decision_latency
//!
//! Prints a Markdown table (BENCHMARKS.md).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use keda_llm_scaler::clock::Stopwatch;
use keda_llm_scaler::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use keda_llm_scaler::service::grpc::pb::{GetMetricsRequest, ScaledObjectRef};
use keda_llm_scaler::service::serve::ServeOptions;
use tokio::net::TcpListener;

fn pages() -> (String, String) {
    let idle = support::vllm_capture();
    let hot = idle
        .lines()
        .map(|l| {
            if l.starts_with("vllm:kv_cache_usage_perc{") {
                let (head, _) = l.rsplit_once(' ').unwrap_or((l, ""));
                format!("{head} 0.9")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    (idle, hot)
}

fn main() {
    support::block_on(run());
}

async fn run() {
    let (idle, hot) = pages();
    let current = Arc::new(Mutex::new(idle.clone()));
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(p): State<Arc<Mutex<String>>>| async move {
                p.lock().map(|g| g.clone()).unwrap_or_default()
            }),
        )
        .with_state(current.clone());
    let wl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let waddr = wl.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(wl, app).await });
    let targets = (0..4)
        .map(|_| format!("http://{waddr}/metrics"))
        .collect::<Vec<_>>();

    println!(
        "| scrapeIntervalSeconds | runs | mean s | max s | mean / interval |\n|---|---|---|---|---|"
    );
    for interval in [0.25, 0.5, 1.0, 2.0, 5.0] {
        let (grpc, stop) = support::start_scaler(ServeOptions::default()).await;
        let mut client = ExternalScalerClient::new(support::connect(grpc).await);
        let mut lat = Vec::new();
        for run in 0..5 {
            // Distinct targets per run (a query string) so each run is a fresh controller.
            let md: HashMap<String, String> = [
                (
                    "targets".to_string(),
                    targets
                        .iter()
                        .enumerate()
                        .map(|(i, t)| format!("{t}?run={run}&w={i}"))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                ("scrapeIntervalSeconds".to_string(), interval.to_string()),
                ("scaleDownWindowSeconds".to_string(), "0".to_string()),
            ]
            .into_iter()
            .collect();
            let r = ScaledObjectRef {
                name: format!("lat-{run}"),
                namespace: "bench".into(),
                scaler_metadata: md,
            };
            *current.lock().expect("lock") = idle.clone();
            let ask = |c: &mut ExternalScalerClient<tonic::transport::Channel>| {
                let r = r.clone();
                let mut c = c.clone();
                async move {
                    c.get_metrics(GetMetricsRequest {
                        scaled_object_ref: Some(r),
                        metric_name: "llm-desired-replicas".into(),
                    })
                    .await
                    .map(|x| x.into_inner().metric_values[0].metric_value)
                    .unwrap_or(-1)
                }
            };
            // Settle on the idle answer for two cycles, then step the load at the middles of five
            // equal slices of a cycle: a phase of exactly 0 lands on a tick, where a millisecond
            // of jitter flips the wait between nothing and a whole interval.
            let _ = ask(&mut client).await;
            tokio::time::sleep(Duration::from_secs_f64(
                interval * (2.0 + (f64::from(run) + 0.5) / 5.0),
            ))
            .await;
            let before = ask(&mut client).await;
            *current.lock().expect("lock") = hot.clone();
            let watch = Stopwatch::start();
            loop {
                if ask(&mut client).await > before {
                    break;
                }
                if watch.elapsed() > Duration::from_secs_f64(interval * 5.0 + 5.0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            lat.push(watch.elapsed().as_secs_f64());
        }
        stop.cancel();
        let mean = lat.iter().sum::<f64>() / lat.len() as f64;
        let max = lat.iter().copied().fold(0.0, f64::max);
        println!(
            "| {interval} | {} | {mean:.3} | {max:.3} | {:.2} |",
            lat.len(),
            mean / interval
        );
    }
}
