//! Signals computed from the real captures, checked against figures worked out here,
//! independently of the scaler's parser.

use crate::common::*;

/// The last value of the first sample line named `name` (a plain split, not our scanner).
fn plain_value(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|l| l.split(['{', ' ']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in page"))
}

fn approx(a: &serde_json::Value, b: f64) -> bool {
    a.as_f64().is_some_and(|x| (x - b).abs() < 1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_captures_as_they_are() {
    let sglang = fixture(SGLANG);
    let vllm = fixture(VLLM);
    let w_sglang = Worker::start(Mode::Page(sglang.clone())).await;
    let w_vllm = Worker::start(Mode::Page(vllm.clone())).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;

    let (t1, t2) = (w_sglang.target(), w_vllm.target());
    let r1 = so_ref(
        "sglang",
        &[("targets", &t1), ("scrapeIntervalSeconds", "0.1")],
    );
    let r2 = so_ref(
        "vllm",
        &[("targets", &t2), ("scrapeIntervalSeconds", "0.1")],
    );
    client.get_metric_spec(r1).await.unwrap();
    client.get_metric_spec(r2).await.unwrap();

    let e = scaler
        .wait_debug("sglang", 5.0, |e| e["signals"]["fresh_workers"] == 1)
        .await;
    let s = &e["signals"];
    assert!(
        approx(&s["waiting"], plain_value(&sglang, "sglang:num_queue_reqs")),
        "{s}"
    );
    assert!(
        approx(
            &s["running"],
            plain_value(&sglang, "sglang:num_running_reqs")
        ),
        "{s}"
    );
    assert!(
        approx(
            &s["kv_usage_max"],
            plain_value(&sglang, "sglang:token_usage")
        ),
        "{s}"
    );
    assert_eq!(e["targets"][0]["dialect"], "sglang");
    // 2826 queued + 162 running = 2988 in flight against 48 x 0.8 per replica asks for 78
    // replicas; from one replica the first step is rate-limited to max(1 x 2, 1 + 4) = 5.
    assert_eq!(e["desired_replicas"], 5, "{e}");
    assert_eq!(e["reason"], "scale_up");
    assert_eq!(e["candidates"]["concurrency"], 78);
    // No completion has been counted yet (one scrape): the explanation says the fallback sizes,
    // and the forecast looks one prior lead time (60 s) ahead.
    let detail = e["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("concurrency fallback"), "{detail}");
    assert_eq!(e["inputs"]["lead_time_s"], 60.0, "{e}");
    // Nothing predicted has come due: the whole trend is extrapolated.
    assert_eq!(e["inputs"]["trend_share"], 1.0, "{e}");
    assert_eq!(e["signals"]["token_counters"], true, "{e}");
    assert!(
        e["clamps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "rate_up"),
        "{e}"
    );

    let e = scaler
        .wait_debug("vllm", 5.0, |e| e["signals"]["fresh_workers"] == 1)
        .await;
    let s = &e["signals"];
    assert!(approx(&s["kv_usage_mean"], 0.0));
    assert!(approx(&s["waiting"], 0.0) && approx(&s["running"], 0.0));
    // num_gpu_blocks=7975 x block_size=16 from vllm:cache_config_info.
    assert!(approx(&s["kv_capacity_tokens"], 7975.0 * 16.0), "{s}");
    assert!(
        s["ttft_seconds"].is_null(),
        "no completions in the window: undefined, not 0"
    );
    assert!(s["itl_seconds"].is_null(), "one scrape: no ITL delta yet");
    assert_eq!(
        s["token_counters"], true,
        "vllm:prompt_tokens_total is on the page"
    );
    assert_eq!(e["targets"][0]["parse_errors"], 0);
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_quantile_from_bucket_deltas_across_two_workers() {
    let base = fixture(VLLM);
    let family = "vllm:time_to_first_token_seconds";
    let a = Worker::start(Mode::Page(base.clone())).await;
    let b = Worker::start(Mode::Page(base.clone())).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let targets = format!("{},{}", a.target(), b.target());
    let r = so_ref(
        "ttft",
        &[
            ("targets", &targets),
            ("scrapeIntervalSeconds", "0.1"),
            ("ttftWindowSeconds", "30"),
            ("ttftMinSamples", "50"),
        ],
    );
    client.get_metric_spec(r).await.unwrap();
    scaler
        .wait_debug("ttft", 5.0, |e| e["signals"]["fresh_workers"] == 2)
        .await;

    // Worker a: 90 in (0.02, 0.04] and 6 in (0.5, 0.75]; worker b: 4 in (1.0, 2.5].
    // 100 samples; rank 95 falls in (0.5, 0.75] with 90 below and 6 inside:
    // p95 = 0.5 + 0.25 * (95 - 90) / 6.
    a.set(Mode::Page(add_observations(
        &base,
        family,
        &[(0.04, 90.0), (0.75, 6.0)],
    )));
    b.set(Mode::Page(add_observations(&base, family, &[(2.5, 4.0)])));
    let e = scaler
        .wait_debug("ttft", 5.0, |e| e["signals"]["ttft_samples"] == 100.0)
        .await;
    assert!(
        approx(&e["signals"]["ttft_seconds"], 0.5 + 0.25 * 5.0 / 6.0),
        "{}",
        e["signals"]
    );

    // Restart of worker b: its counters fall back to 2 observations in (0.25, 0.5]. PromQL's
    // increase() counts the post-reset value: 102 samples; rank 96.9 -> (0.5, 0.75], 92 below.
    let restarted = add_observations(&zero_histogram(&base, family), family, &[(0.5, 2.0)]);
    b.set(Mode::Page(restarted));
    let e = scaler
        .wait_debug("ttft", 5.0, |e| e["signals"]["ttft_samples"] == 102.0)
        .await;
    assert!(
        approx(
            &e["signals"]["ttft_seconds"],
            0.5 + 0.25 * (0.95 * 102.0 - 92.0) / 6.0
        ),
        "{}",
        e["signals"]
    );
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_frontend_supplies_ttft_and_queue() {
    let fe_page = fixture(DYNAMO_FE);
    let queued = set_value(&fe_page, "dynamo_frontend_queued_requests", 7.0);
    let queued = set_value(&queued, "dynamo_frontend_inflight_requests", 9.0);
    let frontend = Worker::start(Mode::Page(queued)).await;
    let worker = Worker::start(Mode::Page(set_value(
        &fixture(VLLM),
        "vllm:kv_cache_usage_perc",
        0.4,
    )))
    .await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let (ft, wt) = (frontend.target(), worker.target());
    let r = so_ref(
        "dynamo",
        &[
            ("targets", &wt),
            ("frontendTargets", &ft),
            ("engine", "dynamo"),
            ("scrapeIntervalSeconds", "0.1"),
        ],
    );
    client.get_metric_spec(r).await.unwrap();
    let e = scaler
        .wait_debug("dynamo", 5.0, |e| {
            e["signals"]["fresh_frontends"] == 1 && e["signals"]["fresh_workers"] == 1
        })
        .await;
    let s = &e["signals"];
    assert!(approx(&s["waiting"], 7.0), "frontend queue wins: {s}");
    assert!(approx(&s["kv_usage_mean"], 0.4), "KV from workers: {s}");
    assert!(
        approx(&s["running"], 0.0),
        "running counted on the workers: {s}"
    );
    assert_eq!(s["discovered_frontends"], 1);
    assert_eq!(s["discovered_workers"], 1);
    scaler.shutdown.cancel();
}
