//! Untrusted metadata: the target allow-list (checked on resolved addresses), link-local
//! refusal, and the metadata-size and series-per-page limits, all visible to the author.

use std::sync::Arc;
use std::time::Duration;

use keda_llm_scaler::allow::AllowList;
use keda_llm_scaler::scrape::ScrapeLimits;
use keda_llm_scaler::serve::ServeOptions;
use tonic::Code;

use crate::common::*;

async fn scaler_with(allow: &str, max_series: usize) -> Scaler {
    Scaler::start_with(ServeOptions {
        first_decision_wait: Duration::from_millis(1500),
        scrape: ScrapeLimits {
            allow: Arc::new(AllowList::parse(allow).expect("allow-list")),
            max_series,
            ..ScrapeLimits::default()
        },
        ..ServeOptions::default()
    })
    .await
}

fn stale_kinds(e: &serde_json::Value) -> Vec<String> {
    e["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            t["stale_reason"]["kind"]
                .as_str()
                .unwrap_or("fresh")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_outside_the_allow_list_are_refused_where_the_author_sees_it() {
    let worker = Worker::start(Mode::Page(fixture(VLLM))).await;
    let port = worker.addr.port();

    // An IP literal outside the networks: INVALID_ARGUMENT naming the key, on every RPC.
    let scaler = scaler_with("10.0.0.0/8,.svc.cluster.local", 50_000).await;
    let mut client = scaler.client().await;
    let err = client
        .get_metric_spec(so_ref("lit", &[("targets", &worker.target())]))
        .await
        .expect_err("loopback is outside 10.0.0.0/8");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("targets") && err.message().contains("--allow-targets"),
        "{}",
        err.message()
    );

    // A name that resolves outside: a per-target `not_allowed`, the answer holds.
    let r = so_ref(
        "name",
        &[
            ("targets", &format!("localhost:{port}")),
            ("scrapeIntervalSeconds", "0.2"),
        ],
    );
    client
        .get_metric_spec(r.clone())
        .await
        .expect("metadata is valid");
    let _ = client
        .get_metrics(metrics_req(&r, "llm-desired-replicas"))
        .await;
    let e = scaler
        .wait_debug("name", 5.0, |e| {
            stale_kinds(e).contains(&"not_allowed".to_string())
        })
        .await;
    assert_eq!(e["reason"], "data_stale", "{e:#}");

    // Service discovery of a name outside the suffixes whose addresses are outside too.
    let r = so_ref(
        "svc",
        &[
            ("service", "localhost"),
            ("port", &port.to_string()),
            ("scrapeIntervalSeconds", "0.2"),
        ],
    );
    client.get_metric_spec(r.clone()).await.expect("valid");
    let _ = client
        .get_metrics(metrics_req(&r, "llm-desired-replicas"))
        .await;
    scaler
        .wait_debug("svc", 5.0, |e| e["reason"] == "data_stale")
        .await;
    let metrics = scaler.http_get("/metrics").await;
    assert!(
        metrics.contains("keda_llm_scaler_scrapes_total{namespace=\"llm\",scaledobject=\"name\",kind=\"not_allowed\"}"),
        "{}",
        metrics.lines().filter(|l| l.contains("scrapes_total")).collect::<Vec<_>>().join("\n")
    );
    scaler.shutdown.cancel();

    // Inside the allow-list, the same worker is scraped.
    let scaler = scaler_with("127.0.0.0/8", 50_000).await;
    let mut client = scaler.client().await;
    let r = so_ref(
        "ok",
        &[
            ("targets", &format!("localhost:{port}")),
            ("scrapeIntervalSeconds", "0.2"),
        ],
    );
    client.get_metric_spec(r.clone()).await.expect("valid");
    let _ = client
        .get_metrics(metrics_req(&r, "llm-desired-replicas"))
        .await;
    scaler
        .wait_debug("ok", 5.0, |e| e["signals"]["fresh_workers"] == 1)
        .await;
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_local_metadata_endpoints_are_refused_even_without_an_allow_list() {
    let scaler = scaler_with("", 50_000).await;
    let mut client = scaler.client().await;
    let err = client
        .get_metric_spec(so_ref(
            "imds",
            &[("targets", "http://169.254.169.254/metadata/instance")],
        ))
        .await
        .expect_err("instance metadata endpoint");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("targets"), "{}", err.message());
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_metadata_and_label_explosions_are_bounded() {
    let page = fixture(VLLM);
    // 60,000 distinct series of a family the scaler does not even read.
    let mut exploded = page.clone();
    for i in 0..60_000 {
        exploded.push_str(&format!(
            "vllm:request_params_n_bucket{{engine=\"0\",le=\"{i}\",model_name=\"m\"}} 1\n"
        ));
    }
    let good = Worker::start(Mode::Page(page)).await;
    let bomb = Worker::start(Mode::Page(exploded)).await;
    let scaler = scaler_with("", 50_000).await;
    let mut client = scaler.client().await;

    let huge = "x".repeat(70 << 10);
    let err = client
        .get_metric_spec(so_ref(
            "big",
            &[("targets", &good.target()), ("model", &huge)],
        ))
        .await
        .expect_err("70 KiB of metadata");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("key `model`"), "{}", err.message());

    let r = so_ref(
        "bomb",
        &[
            ("targets", &format!("{},{}", good.target(), bomb.target())),
            ("scrapeIntervalSeconds", "0.2"),
        ],
    );
    client.get_metric_spec(r.clone()).await.expect("valid");
    let _ = client
        .get_metrics(metrics_req(&r, "llm-desired-replicas"))
        .await;
    let e = scaler
        .wait_debug("bomb", 5.0, |e| {
            stale_kinds(e).contains(&"too_many_series".to_string())
        })
        .await;
    assert_eq!(e["signals"]["fresh_workers"], 1);
    scaler.shutdown.cancel();
}
