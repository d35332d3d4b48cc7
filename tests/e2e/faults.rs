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
    // Each series also carries the trigger's fingerprint, after these labels.
    for (needle, value) in [
        (
            r#"keda_llm_scaler_scrapes_total{namespace="llm",scaledobject="faults",kind="timeout","#,
            "",
        ),
        (
            r#"keda_llm_scaler_scrapes_total{namespace="llm",scaledobject="faults",kind="no_known_metrics","#,
            "",
        ),
        (
            r#"keda_llm_scaler_scrapes_total{namespace="llm",scaledobject="faults",kind="http_status","#,
            "",
        ),
        (
            r#"keda_llm_scaler_data_stale{namespace="llm",scaledobject="faults","#,
            "} 1",
        ),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(needle) && l.contains(value)),
            "missing {needle}..{value} in {}",
            metrics
                .lines()
                .filter(|l| l.contains("data_stale"))
                .collect::<Vec<_>>()
                .join("\n")
        );
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
    // Other metadata is another trigger with its own controller (the first one keeps running
    // until idle), so the control has a name of its own.
    let r2 = so_ref(
        "faults-control",
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
        .wait_debug("faults-control", 5.0, |e| {
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
    use keda_llm_scaler::fetch::scrape::ScrapeLimits;
    use keda_llm_scaler::service::controller::RegistrySettings;
    use keda_llm_scaler::service::serve::ServeOptions;

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
        ..ServeOptions::default()
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

/// Trickled bodies, a 100 MB body, NaN/Inf values and decreasing counters on part of a busy
/// fleet: GetMetrics keeps answering fast, the answer never falls, the reasons show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pages_never_lower_the_answer() {
    let idle = fixture(VLLM);
    let hot = set_value(&idle, "vllm:kv_cache_usage_perc", 0.9);
    let (workers, targets) = Worker::fleet(4, &hot).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let r = so_ref(
        "hostile",
        &[
            ("targets", &targets),
            ("scrapeIntervalSeconds", "0.2"),
            ("scrapeTimeoutSeconds", "0.15"),
            ("scaleDownWindowSeconds", "0"),
            ("postScaleUpHoldSeconds", "0"),
            ("staleHoldSeconds", "600"),
        ],
    );
    client.get_metric_spec(r.clone()).await.expect("spec");
    let held = scaler
        .wait_debug("hostile", 5.0, |e| {
            e["desired_replicas"].as_u64() >= Some(5)
        })
        .await["desired_replicas"]
        .as_u64()
        .expect("desired");
    let rss_before = rss_mib(std::process::id());

    // Half the fleet turns hostile while the other half goes idle (which alone would ask for 1).
    workers[0].set(Mode::Trickle(idle.clone()));
    workers[1].set(Mode::Huge(100 << 20));
    workers[2].set(Mode::Page(
        set_value(&set_value(&idle, "vllm:kv_cache_usage_perc", f64::NAN), "vllm:num_requests_running", f64::INFINITY)
            .replace("vllm:num_requests_waiting{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.0", "vllm:num_requests_waiting{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} -Inf"),
    ));
    workers[3].set(Mode::Page(zero_histogram(
        &idle,
        "vllm:time_to_first_token_seconds",
    )));
    let e = scaler
        .wait_debug("hostile", 8.0, |e| {
            let kinds: Vec<&str> = e["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["stale_reason"]["kind"].as_str())
                .collect();
            kinds.contains(&"timeout") && kinds.contains(&"body_too_large")
        })
        .await;
    for _ in 0..20 {
        let watch = keda_llm_scaler::clock::Stopwatch::start();
        let (d, _) = desired(&mut client, &r).await;
        assert!(
            watch.elapsed() < Duration::from_millis(100),
            "GetMetrics waited on a scrape"
        );
        assert!(
            d as u64 >= held,
            "answer fell from {held} to {d} on bad data: {e:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grown = rss_mib(std::process::id()) - rss_before;
    assert!(
        grown < 50.0,
        "a 100 MB body grew the process by {grown:.0} MiB"
    );
    let metrics = scaler.http_get("/metrics").await;
    for kind in ["timeout", "body_too_large"] {
        assert!(
            metrics.contains(&format!("scaledobject=\"hostile\",kind=\"{kind}\"")),
            "{kind} not counted"
        );
    }
    scaler.shutdown.cancel();
}

/// A restarted scaler knows nothing of its previous answers: it must not go below the fleet it
/// finds until a full scale-down window of low need has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scaler_does_not_scale_down_before_its_window_refills() {
    let idle = fixture(VLLM);
    let (_workers, targets) = Worker::fleet(3, &idle).await;
    let md = [
        ("targets", targets.as_str()),
        ("scrapeIntervalSeconds", "0.1"),
        ("scaleDownWindowSeconds", "2"),
        ("postScaleUpHoldSeconds", "0"),
        ("scaleDownStepSeconds", "0"),
        ("scaleDownMaxPercent", "100"),
    ];
    let first = Scaler::start().await;
    let mut client = first.client().await;
    let r = so_ref("restart", &md);
    let (before, _) = desired(&mut client, &r).await;
    assert!(before >= 3, "three idle workers discovered: {before}");
    first.shutdown.cancel();

    // The fleet is idle; a fresh scaler process comes up.
    let second = Scaler::start().await;
    let mut client = second.client().await;
    let watch = keda_llm_scaler::clock::Stopwatch::start();
    let mut answers = Vec::new();
    while watch.elapsed() < Duration::from_secs(4) {
        let (d, _) = desired(&mut client, &r).await;
        answers.push((watch.elapsed().as_secs_f64(), d));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answers
            .iter()
            .filter(|(t, _)| *t < 1.8)
            .all(|(_, d)| *d >= 3),
        "scaled down before the window refilled: {answers:?}"
    );
    assert!(
        answers.last().is_some_and(|(_, d)| *d < 3),
        "and does scale down once it has: {answers:?}"
    );
    second.shutdown.cancel();
}
