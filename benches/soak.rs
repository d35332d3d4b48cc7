//! Bounded soak on loopback: steady RPC load and worker churn for a few minutes; reports RPC
//! errors and resident memory over time.
//!
//!   cargo bench --bench soak                 # 3 minutes
//!   SOAK_SECONDS=600 cargo bench --bench soak
//!
//! 50 ScaledObjects discover their workers through HTTP service discovery; every 5 s each one's
//! set of 4 workers rotates through 12 (targets arrive and depart, as pods do), while a client
//! sends 500 GetMetrics/s plus IsActive and GetMetricSpec.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use keda_llm_scaler::clock::Stopwatch;
use keda_llm_scaler::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use keda_llm_scaler::service::grpc::pb::{GetMetricsRequest, ScaledObjectRef};
use keda_llm_scaler::service::serve::ServeOptions;
use tokio::net::TcpListener;

fn main() {
    support::block_on(run());
}

async fn run() {
    let secs: f64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(180.0);
    let sos = 50usize;
    let page = Arc::new(support::vllm_capture());
    let start = Stopwatch::start();
    let wl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let waddr = wl.local_addr().expect("addr");
    let p = page.clone();
    let app = Router::new()
        .route(
            "/w/{id}/metrics",
            get(move |Path(_id): Path<u32>| {
                let p = p.clone();
                async move { (*p).clone() }
            }),
        )
        .route(
            "/sd/{so}",
            get(move |Path(so): Path<usize>| async move {
                // Four of twelve workers, rotating every 5 s.
                let epoch = (start.elapsed().as_secs() / 5) as usize;
                let targets: Vec<String> = (0..4)
                    .map(|k| format!("http://{waddr}/w/{}/metrics", so * 12 + (epoch + k) % 12))
                    .collect();
                axum::Json(serde_json::json!([{ "targets": targets }]))
            }),
        );
    tokio::spawn(async move { axum::serve(wl, app).await });

    let (grpc, stop) = support::start_scaler(ServeOptions {
        // Every ScaledObject of the soak lives in one namespace.
        scrape: keda_llm_scaler::fetch::scrape::ScrapeLimits {
            concurrency_per_namespace: keda_llm_scaler::fetch::scrape::DEFAULT_CONCURRENCY,
            ..Default::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let mut client = ExternalScalerClient::new(support::connect(grpc).await);
    let refs: Vec<ScaledObjectRef> = (0..sos)
        .map(|s| ScaledObjectRef {
            name: format!("soak-{s}"),
            namespace: "soak".into(),
            scaler_metadata: HashMap::from([
                ("httpSd".to_string(), format!("http://{waddr}/sd/{s}")),
                ("scrapeIntervalSeconds".to_string(), "1".to_string()),
            ]),
        })
        .collect();
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let mut next_sample = 0.0;
    let mut i = 0usize;
    let watch = Stopwatch::start();
    while watch.elapsed().as_secs_f64() < secs {
        tick.tick().await;
        let r = refs[i % sos].clone();
        i += 1;
        let mut c = client.clone();
        let every_tenth = i.is_multiple_of(10);
        let (ok, errors) = (ok.clone(), errors.clone());
        tokio::spawn(async move {
            let a = match c
                .get_metrics(GetMetricsRequest {
                    scaled_object_ref: Some(r.clone()),
                    metric_name: "llm-desired-replicas".into(),
                })
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    if errors.load(Ordering::Relaxed) < 3 {
                        eprintln!("GetMetrics {}: {e}", r.name);
                    }
                    false
                }
            };
            let b = if every_tenth {
                c.is_active(r.clone()).await.is_ok() && c.get_metric_spec(r).await.is_ok()
            } else {
                true
            };
            if a && b {
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        });
        let t = watch.elapsed().as_secs_f64();
        if t >= next_sample {
            next_sample += 10.0;
            samples.push((t, support::rss_mib()));
        }
    }
    // Let the calls still in flight finish before the server stops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = client.get_metric_spec(refs[0].clone()).await;
    stop.cancel();
    println!(
        "soak: {secs:.0} s, {sos} ScaledObjects via httpSd with 4-of-12 worker churn every 5 s"
    );
    println!(
        "RPC calls ok {} / failed {}",
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    println!("| t s | RSS MiB |\n|---|---|");
    for (t, m) in &samples {
        println!("| {t:.0} | {m:.1} |");
    }
}
