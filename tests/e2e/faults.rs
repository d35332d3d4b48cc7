//! Broken workers: hanging, garbage, 500s, gone. The answer holds or rises, never falls on
//! bad data; the reason is visible in the debug API and in metrics; RPCs never wait on scrapes.

use std::time::Duration;

use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_scale_down_on_stale_data_and_reasons_are_visible() {
    let idle = fixture(VLLM);
    let hot = set_value(&idle, "vllm:kv_cache_usage_perc", 0.9);
    let (workers, targets) = Worker::fleet(3, &hot).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let r = so_ref(
        "faults",
        &[
            ("targets", &targets),
            ("scrapeIntervalSeconds", "0.1"),
            ("scrapeTimeoutSeconds", "0.08"),
            ("scaleDownWindowSeconds", "0"),
            ("staleHoldSeconds", "600"),
        ],
    );
    client.get_metric_spec(r.clone()).await.unwrap();
    scaler
        .wait_debug("faults", 5.0, |e| e["desired_replicas"] == 4)
        .await;

    // Two of three workers break in different ways while the third goes idle: the fresh
    // third alone would ask for 1 replica; with 1 of 3 fresh the answer must hold at 4.
    workers[0].set(Mode::Page(idle.clone()));
    workers[1].set(Mode::Hang);
    workers[2].set(Mode::Page(
        "<html>502 Bad Gateway</html>\n{{{ garbage".into(),
    ));
    let e = scaler
        .wait_debug("faults", 5.0, |e| {
            e["signals"]["fresh_workers"] == 1 && e["reason"] == "data_stale"
        })
        .await;
    let kinds: Vec<String> = e["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["stale_reason"]["kind"]
                .as_str()
                .unwrap_or("fresh")
                .to_string()
        })
        .collect();
    assert!(
        kinds.contains(&"timeout".to_string()) && kinds.contains(&"no_known_metrics".to_string()),
        "{kinds:?}"
    );
    for _ in 0..20 {
        let started = keda_llm_scaler::clock::Stopwatch::start();
        assert_eq!(
            desired(&mut client, &r).await,
            (4, 4.0),
            "held on stale data"
        );
        // A hanging worker never delays an RPC: the answer comes from the snapshot.
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "GetMetrics took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    workers[1].set(Mode::Status(500));
    workers[2].stop();
    let e = scaler
        .wait_debug("faults", 5.0, |e| {
            let kinds: Vec<&str> = e["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t["stale_reason"]["kind"].as_str())
                .collect();
            kinds.contains(&"http_status") && kinds.contains(&"connect")
        })
        .await;
    assert_eq!(e["desired_replicas"], 4);
    let metrics = scaler.http_get("/metrics").await;
    for needle in [
        r#"keda_llm_scaler_scrapes_total{namespace="llm",scaledobject="faults",kind="timeout"}"#,
        r#"keda_llm_scaler_scrapes_total{namespace="llm",scaledobject="faults",kind="no_known_metrics"}"#,
        r#"keda_llm_scaler_scrapes_total{namespace="llm",scaledobject="faults",kind="http_status"}"#,
        r#"keda_llm_scaler_data_stale{namespace="llm",scaledobject="faults"} 1"#,
    ] {
        assert!(metrics.contains(needle), "missing {needle}");
    }

    // Control: with every worker fresh and idle, the same policy does scale down, so the
    // hold above was the stale-data rule and not an accident.
    let replacement = Worker::start(Mode::Page(idle.clone())).await;
    workers[1].set(Mode::Page(idle.clone()));
    let targets2 = format!(
        "{},{},{}",
        workers[0].target(),
        workers[1].target(),
        replacement.target()
    );
    let r2 = so_ref(
        "faults",
        &[
            ("targets", &targets2),
            ("scrapeIntervalSeconds", "0.1"),
            ("scaleDownWindowSeconds", "0"),
            ("scaleDownStepSeconds", "0"),
            ("scaleDownMaxPercent", "100"),
        ],
    );
    client.get_metric_spec(r2.clone()).await.unwrap();
    scaler
        .wait_debug("faults", 5.0, |e| {
            e["signals"]["fresh_workers"] == 3 && e["desired_replicas"] == 1
        })
        .await;
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outage_turns_into_unavailable_for_keda_fallback() {
    let worker = Worker::start(Mode::Page(fixture(VLLM))).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let target = worker.target();
    let r = so_ref(
        "outage",
        &[
            ("targets", &target),
            ("scrapeIntervalSeconds", "0.1"),
            ("staleHoldSeconds", "0.5"),
        ],
    );
    assert_eq!(desired(&mut client, &r).await, (1, 1.0));
    worker.stop();
    scaler
        .wait_debug("outage", 5.0, |e| e["reason"] == "data_stale")
        .await;
    scaler
        .wait_debug("outage", 5.0, |e| e["unavailable"] == true)
        .await;
    let err = client
        .get_metrics(metrics_req(&r, "llm-desired-replicas"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    // GetMetricSpec keeps answering so that KEDA's fallback counter can engage (keda#8056).
    assert_eq!(
        client
            .get_metric_spec(r)
            .await
            .unwrap()
            .into_inner()
            .metric_specs
            .len(),
        1
    );
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_service_is_resolved_by_dns() {
    let worker = Worker::start(Mode::Page(fixture(VLLM))).await;
    let port = worker.addr.port().to_string();
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let r = so_ref(
        "dns",
        &[
            ("service", "localhost"),
            ("port", &port),
            ("scrapeIntervalSeconds", "0.1"),
        ],
    );
    client.get_metric_spec(r).await.unwrap();
    let e = scaler
        .wait_debug("dns", 5.0, |e| {
            e["signals"]["fresh_workers"].as_u64() >= Some(1)
        })
        .await;
    let urls: Vec<&str> = e["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["url"].as_str())
        .collect();
    assert!(
        urls.contains(&format!("http://127.0.0.1:{port}/metrics").as_str()),
        "{urls:?}"
    );

    let r_missing = so_ref(
        "dns-missing",
        &[
            ("service", "no-such-service.invalid"),
            ("port", "8000"),
            ("scrapeIntervalSeconds", "0.1"),
        ],
    );
    client.get_metric_spec(r_missing).await.unwrap();
    let e = scaler
        .wait_debug("dns-missing", 10.0, |e| e["cycle"].as_u64() >= Some(2))
        .await;
    assert_eq!(
        e["reason"], "data_stale",
        "no workers is missing data, not zero load: {e}"
    );
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_and_idle_controllers_dropped() {
    use keda_llm_scaler::controller::RegistrySettings;
    use keda_llm_scaler::scrape::ScrapeLimits;
    use keda_llm_scaler::serve::ServeOptions;

    // A real page padded past the 256 KiB cap with comment lines.
    let mut huge = fixture(VLLM);
    while huge.len() < 300 << 10 {
        huge.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let big = Worker::start(Mode::Page(huge)).await;
    let scaler = Scaler::start_with(ServeOptions {
        registry: RegistrySettings {
            idle: Duration::from_millis(400),
            ..RegistrySettings::default()
        },
        scrape: ScrapeLimits {
            max_body_bytes: 256 << 10,
            concurrency: 4,
            ..ScrapeLimits::default()
        },
        first_decision_wait: Duration::from_millis(1500),
        tls: None,
    })
    .await;
    let mut client = scaler.client().await;
    let target = big.target();
    let r = so_ref(
        "big",
        &[("targets", &target), ("scrapeIntervalSeconds", "0.1")],
    );
    client.get_metric_spec(r).await.unwrap();
    let e = scaler
        .wait_debug("big", 5.0, |e| e["cycle"].as_u64() >= Some(1))
        .await;
    assert_eq!(
        e["targets"][0]["stale_reason"]["kind"], "body_too_large",
        "{e}"
    );
    assert_eq!(e["reason"], "data_stale");

    // No RPC for longer than the idle time: the controller and its series are gone.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        scaler.debug_entry("big").await.is_none(),
        "idle controller dropped"
    );
    let metrics = scaler.http_get("/metrics").await;
    assert!(
        !metrics.contains(r#"scaledobject="big""#),
        "series of a dropped controller are removed"
    );
    scaler.shutdown.cancel();
}
