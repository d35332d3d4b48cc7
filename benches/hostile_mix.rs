//! Hostile-mix soak on loopback: resident memory over time while the scaler scrapes the pages
//! and serves the clients an attacker would send, next to one legitimate ScaledObject whose
//! answers must keep coming.
//!
//!   cargo bench --bench hostile_mix                  # 2 minutes
//!   HOSTILE_SECONDS=600 cargo bench --bench hostile_mix
//!
//! The mix: a 350 KB line of 50,000 escaped label values; a page of 45,000 TTFT buckets; both
//! at a 50 ms interval with a one-hour window; 64 targets that accept and never answer
//! (interval 700 s, timeout 600 s); NaN and negative gauges; 300 GetMetricSpec calls with
//! fresh names in one namespace (past its controller limit); 100 silent TCP connections on the
//! gRPC port. The victim is a plain ScaledObject in another namespace, polled 20 times a second.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keda_llm_scaler::clock::Stopwatch;
use keda_llm_scaler::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use keda_llm_scaler::service::grpc::pb::{GetMetricsRequest, ScaledObjectRef};
use keda_llm_scaler::service::serve::ServeOptions;
use tokio::net::TcpListener;

fn main() {
    support::block_on(run());
}

fn so(name: &str, namespace: &str, md: &[(&str, String)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: name.into(),
        namespace: namespace.into(),
        scaler_metadata: md
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<HashMap<_, _>>(),
    }
}

fn set(page: &str, name: &str, value: &str) -> String {
    page.lines()
        .map(|l| match l.rsplit_once(' ') {
            Some((head, _)) if l.starts_with(name) => format!("{head} {value}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn run() {
    let secs: f64 = std::env::var("HOSTILE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120.0);
    let page = support::vllm_capture();
    let mut escaped = page.clone();
    escaped.push_str("vllm:num_requests_waiting{");
    escaped.push_str(&"a=\"\\n\",".repeat(50_000));
    escaped.push_str("} 1\n");
    let mut buckets = page.clone();
    for i in 0..45_000 {
        buckets.push_str(&format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"9\",le=\"{i}\"}} {i}\n"
        ));
    }
    let nan = set(&page, "vllm:num_requests_running", "NaN");
    let neg = set(&page, "vllm:num_requests_waiting", "-100000");
    let pages: Arc<HashMap<&'static str, String>> = Arc::new(HashMap::from([
        ("good", page),
        ("escaped", escaped),
        ("buckets", buckets),
        ("nan", nan),
        ("neg", neg),
    ]));
    let p = pages.clone();
    let app = Router::new()
        .route(
            "/{kind}/metrics",
            get(
                move |axum::extract::Path(kind): axum::extract::Path<String>| {
                    let p = p.clone();
                    async move { p.get(kind.as_str()).cloned().unwrap_or_default() }
                },
            ),
        )
        .route(
            "/hang/{i}/metrics",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                ""
            }),
        );
    let wl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let w = wl.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(wl, app).await });

    let rss_start = support::rss_mib();
    let (grpc, stop) = support::start_scaler(ServeOptions::default()).await;
    let channel = support::connect(grpc).await;
    let mut client = ExternalScalerClient::new(channel.clone());
    let fast = |t: String| {
        vec![
            ("targets", t),
            ("scrapeIntervalSeconds", "0.05".to_string()),
            ("scrapeTimeoutSeconds", "0.05".to_string()),
            ("ttftWindowSeconds", "3600".to_string()),
        ]
    };
    for kind in ["escaped", "buckets", "nan", "neg"] {
        let _ = client
            .get_metric_spec(so(
                kind,
                "evil",
                &fast(format!("http://{w}/{kind}/metrics")),
            ))
            .await;
    }
    let hang: Vec<String> = (0..64)
        .map(|i| format!("http://{w}/hang/{i}/metrics"))
        .collect();
    let _ = client
        .get_metric_spec(so(
            "greedy",
            "evil",
            &[
                ("targets", hang.join(",")),
                ("scrapeIntervalSeconds", "700".into()),
                ("scrapeTimeoutSeconds", "600".into()),
                ("ttftWindowSeconds", "1800".into()),
            ],
        ))
        .await;
    let mut refused = 0;
    for i in 0..300 {
        let md = [("targets", format!("http://{w}/good/metrics"))];
        if client
            .get_metric_spec(so(&format!("flood-{i}"), "evil", &md))
            .await
            .is_err()
        {
            refused += 1;
        }
    }
    let mut idle = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(grpc).await {
            idle.push(s);
        }
    }

    let victim = so(
        "victim",
        "llm",
        &[
            ("targets", format!("http://{w}/good/metrics")),
            ("scrapeIntervalSeconds", "1".into()),
        ],
    );
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, f, v) = (ok.clone(), failed.clone(), victim.clone());
    let mut c = ExternalScalerClient::new(channel);
    let poller = tokio::spawn(async move {
        loop {
            let r = c
                .get_metrics(GetMetricsRequest {
                    scaled_object_ref: Some(v.clone()),
                    metric_name: "llm-desired-replicas".into(),
                })
                .await;
            if r.is_ok() { &o } else { &f }.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    println!("hostile mix for {secs:.0} s: {refused} of 300 flood ScaledObjects refused");
    println!("| t (s) | RSS (MiB) | victim GetMetrics ok | failed |");
    println!("|---:|---:|---:|---:|");
    let clock = Stopwatch::start();
    let mut next = 0.0;
    while clock.elapsed().as_secs_f64() < secs {
        if clock.elapsed().as_secs_f64() >= next {
            println!(
                "| {:.0} | {:.1} | {} | {} |",
                clock.elapsed().as_secs_f64(),
                support::rss_mib(),
                ok.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            );
            next += 10.0;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "start RSS {rss_start:.1} MiB (before the scaler), end {:.1} MiB; victim {} ok, {} failed",
        support::rss_mib(),
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    poller.abort();
    drop(idle);
    stop.cancel();
}
