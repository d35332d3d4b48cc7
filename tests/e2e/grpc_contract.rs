//! Every RPC of the KEDA contract over real gRPC.

use std::time::Duration;

use keda_llm_scaler::service::grpc::pb::GetMetricsRequest;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_spec_metrics_prefix_and_health() {
    let idle = fixture(VLLM);
    let hot = set_value(&idle, "vllm:kv_cache_usage_perc", 0.9);
    let (_workers, targets) = Worker::fleet(3, &hot).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let r = so_ref(
        "contract",
        &[
            ("targets", &targets),
            ("scrapeIntervalSeconds", "0.1"),
            ("scalerAddress", "keda-llm-scaler:6000"),
        ],
    );

    let spec = client
        .get_metric_spec(r.clone())
        .await
        .expect("GetMetricSpec")
        .into_inner();
    assert_eq!(spec.metric_specs.len(), 1);
    assert_eq!(spec.metric_specs[0].metric_name, "llm-desired-replicas");
    assert_eq!(spec.metric_specs[0].target_size, 1);
    assert_eq!(spec.metric_specs[0].target_size_float, 1.0);

    // Three workers at 90 % KV against an 80 % target: ceil(3 * 0.9 / 0.8) = 4.
    scaler
        .wait_debug("contract", 5.0, |e| e["desired_replicas"] == 4)
        .await;
    assert_eq!(desired(&mut client, &r).await, (4, 4.0));
    for name in ["s0-llm-desired-replicas", "s3-llm-desired-replicas", ""] {
        let resp = client
            .get_metrics(metrics_req(&r, name))
            .await
            .expect("prefixed name")
            .into_inner();
        assert_eq!(resp.metric_values.len(), 1);
        assert_eq!(resp.metric_values[0].metric_value, 4);
        assert_eq!(resp.metric_values[0].metric_value_float, 4.0);
    }
    let wrong = client
        .get_metrics(metrics_req(&r, "s0-something-else"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    let no_ref = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: None,
            metric_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_ref.code(), Code::InvalidArgument);

    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", scaler.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let status = health
        .check(HealthCheckRequest {
            service: "externalscaler.ExternalScaler".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(status.status, ServingStatus::Serving as i32);

    scaler.shutdown.cancel();
    scaler.task.await.expect("join").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_metadata_is_invalid_argument_naming_the_key() {
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "targets"),
        (
            &[("targets", "127.0.0.1:1"), ("maxReplicas", "many")],
            "maxReplicas",
        ),
        (
            &[
                ("targets", "127.0.0.1:1"),
                ("minReplicas", "4"),
                ("maxReplicas", "2"),
            ],
            "maxReplicas",
        ),
        (&[("targets", "127.0.0.1:1"), ("engine", "tgi")], "engine"),
        (
            &[("targets", "127.0.0.1:1"), ("ttftTargetMs", "-5")],
            "ttftTargetMs",
        ),
        (
            &[("targets", "127.0.0.1:1"), ("kvCacheTraget", "0.8")],
            "kvCacheTraget",
        ),
        (&[("service", "vllm")], "port"),
    ];
    for (md, key) in cases {
        let r = so_ref("bad", md);
        for status in [
            client.get_metric_spec(r.clone()).await.unwrap_err(),
            client.is_active(r.clone()).await.unwrap_err(),
            client
                .get_metrics(metrics_req(&r, "llm-desired-replicas"))
                .await
                .unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::InvalidArgument, "{md:?}");
            assert!(
                status.message().contains(&format!("`{key}`")),
                "{md:?}: {}",
                status.message()
            );
        }
    }
    let engine = client
        .get_metric_spec(so_ref("bad", &[("targets", "a:1"), ("engine", "x")]))
        .await
        .unwrap_err();
    assert!(
        engine
            .message()
            .contains("auto, vllm, dynamo, sglang, trtllm"),
        "{}",
        engine.message()
    );
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_from_many_clients_agree() {
    let worker = Worker::start(Mode::Page(set_value(
        &fixture(VLLM),
        "vllm:kv_cache_usage_perc",
        0.5,
    )))
    .await;
    let scaler = Scaler::start().await;
    let target = worker.target();
    let r = so_ref(
        "concurrent",
        &[
            ("targets", &target),
            ("scrapeIntervalSeconds", "0.1"),
            ("kvCacheTarget", "0.2"),
        ],
    );
    // ceil(1 * 0.5 / 0.2) = 3
    let mut first = scaler.client().await;
    assert_eq!(
        first
            .get_metric_spec(r.clone())
            .await
            .unwrap()
            .into_inner()
            .metric_specs
            .len(),
        1
    );
    scaler
        .wait_debug("concurrent", 5.0, |e| e["desired_replicas"] == 3)
        .await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = scaler.client().await;
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                assert_eq!(
                    c.get_metric_spec(r.clone())
                        .await
                        .unwrap()
                        .into_inner()
                        .metric_specs[0]
                        .metric_name,
                    "llm-desired-replicas"
                );
                assert_eq!(desired(&mut c, &r).await, (3, 3.0));
                c.is_active(r.clone()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let metrics = scaler.http_get("/metrics").await;
    let parsed = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string())))
        .expect("own /metrics");
    let served: f64 = parsed
        .samples
        .iter()
        .filter(|s| {
            s.metric == "keda_llm_scaler_grpc_requests_total"
                && s.labels.get("method") == Some("GetMetrics")
                && s.labels.get("code") == Some("Ok")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v)
            | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(served >= 200.0, "GetMetrics Ok count {served}");
    scaler.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_pushes_true_on_each_inactive_to_active_transition_and_ends_ok_on_shutdown() {
    let idle = fixture(VLLM);
    let busy = set_value(&idle, "vllm:num_requests_waiting", 3.0);
    let worker = Worker::start(Mode::Page(idle.clone())).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let target = worker.target();
    let r = so_ref(
        "stream",
        &[
            ("targets", &target),
            ("scrapeIntervalSeconds", "0.1"),
            ("activationWindowSeconds", "0"),
        ],
    );
    let mut stream = client
        .stream_is_active(r.clone())
        .await
        .expect("open stream")
        .into_inner();
    scaler
        .wait_debug("stream", 5.0, |e| e["active"] == false)
        .await;
    assert!(
        !client
            .is_active(r.clone())
            .await
            .unwrap()
            .into_inner()
            .result
    );
    let quiet = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
    assert!(quiet.is_err(), "no message while inactive: {quiet:?}");

    for round in 0..2 {
        worker.set(Mode::Page(busy.clone()));
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("true within 5 s")
            .expect("stream ok");
        assert_eq!(msg.map(|m| m.result), Some(true), "round {round}");
        assert!(
            client
                .is_active(r.clone())
                .await
                .unwrap()
                .into_inner()
                .result
        );
        // Still active: no further message.
        let again = tokio::time::timeout(Duration::from_millis(400), stream.message()).await;
        assert!(again.is_err(), "only transitions are pushed: {again:?}");
        worker.set(Mode::Page(idle.clone()));
        scaler
            .wait_debug("stream", 5.0, |e| e["active"] == false)
            .await;
    }

    scaler.shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("stream ends on shutdown");
    assert!(
        matches!(end, Ok(None)),
        "graceful shutdown ends the stream with OK: {end:?}"
    );
    scaler.task.await.expect("join").expect("clean shutdown");
}
