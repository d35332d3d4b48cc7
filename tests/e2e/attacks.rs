//! Regression tests for the defects an attacker found (issue "Hard to break, for real"): one
//! who writes ScaledObject metadata, one who controls a worker's `/metrics`, and an anonymous
//! client of the gRPC and admin ports. Each test reproduces the attack on loopback against
//! the real server and checks what must hold instead.

use std::time::Duration;

use keda_llm_scaler::fetch::scrape::ScrapeLimits;
use keda_llm_scaler::service::controller::RegistrySettings;
use keda_llm_scaler::service::grpc::pb::ScaledObjectRef;
use keda_llm_scaler::service::serve::ServeOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::common::*;

const RUNNING: &str = "vllm:num_requests_running";
const WAITING: &str = "vllm:num_requests_waiting";

fn quick(targets: &str) -> Vec<(&'static str, String)> {
    vec![
        ("targets", targets.to_string()),
        ("scrapeIntervalSeconds", "0.2".into()),
        ("scrapeTimeoutSeconds", "0.15".into()),
        ("scaleDownWindowSeconds", "0".into()),
        ("postScaleUpHoldSeconds", "0".into()),
        ("scaleDownStepSeconds", "0".into()),
        ("scaleDownMaxPercent", "100".into()),
        ("staleHoldSeconds", "600".into()),
    ]
}

fn so(name: &str, namespace: &str, md: &[(&str, String)]) -> ScaledObjectRef {
    so_ref_in(name, namespace, md.iter().map(|(k, v)| (*k, v)))
}

fn stale_kinds(e: &serde_json::Value) -> Vec<String> {
    e["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["stale_reason"]["kind"].as_str().map(str::to_string))
        .collect()
}

/// All debug entries of one ScaledObject name (one per trigger).
async fn entries(scaler: &Scaler, name: &str) -> Vec<serde_json::Value> {
    let body = scaler.http_get("/debug/scaledobjects").await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("debug JSON");
    list.into_iter().filter(|e| e["name"] == name).collect()
}

/// The answer observed over `rounds` GetMetrics calls 100 ms apart must never fall below
/// `floor`.
async fn never_below(
    scaler: &Scaler,
    r: &ScaledObjectRef,
    floor: i64,
    rounds: usize,
) -> Vec<serde_json::Value> {
    let mut client = scaler.client().await;
    for _ in 0..rounds {
        let (d, _) = desired(&mut client, r).await;
        let e = entries(scaler, &r.name).await;
        assert!(d >= floor, "answer fell from {floor} to {d}: {e:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    entries(scaler, &r.name).await
}

/// Defects 1 and 2: a negative gauge on one worker, or NaN/Inf on all of them, used to be summed
/// as load (3 -> 1) or read as zero (3 -> 2). The reading is now invalid: held, never summed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_nan_and_infinite_gauges_never_lower_the_answer() {
    let busy = set_value(&fixture(VLLM), RUNNING, 30.0);
    let (workers, targets) = Worker::fleet(3, &busy).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let md = quick(&targets);
    let r = so("neg", "llm", &md);
    client.get_metric_spec(r.clone()).await.expect("spec");
    let steady = scaler
        .wait_debug("neg", 5.0, |e| e["cycle"].as_u64() >= Some(5))
        .await["desired_replicas"]
        .as_i64()
        .expect("desired");
    assert!(steady >= 2, "90 running should need more than one replica");

    workers[0].set(Mode::Page(set_value(&busy, RUNNING, -1000.0)));
    workers[1].set(Mode::Page(set_value(&busy, WAITING, -100000.0)));
    scaler
        .wait_debug("neg", 3.0, |e| {
            stale_kinds(e)
                .iter()
                .filter(|k| *k == "invalid_value")
                .count()
                == 2
        })
        .await;
    let e = never_below(&scaler, &r, steady, 10).await;
    let detail = e[0]["targets"].to_string();
    assert!(
        detail.contains("-1000"),
        "the reason names the value: {detail}"
    );

    for w in &workers {
        w.set(Mode::Page(set_value(
            &set_value(&busy, RUNNING, f64::NAN),
            WAITING,
            f64::INFINITY,
        )));
    }
    scaler
        .wait_debug("neg", 3.0, |e| {
            stale_kinds(e)
                .iter()
                .filter(|k| *k == "invalid_value")
                .count()
                == 3
                && e["reason"] == "data_stale"
        })
        .await;
    never_below(&scaler, &r, steady, 10).await;
    let metrics = scaler.http_get("/metrics").await;
    assert!(
        metrics.contains("scaledobject=\"neg\",kind=\"invalid_value\""),
        "invalid readings are counted"
    );
    scaler.shutdown.cancel();
}

/// The release-shaped binary serving on free loopback ports, in a process of its own.
struct ChildScaler {
    child: std::process::Child,
    scaler: Scaler,
}

impl ChildScaler {
    fn start(args: &[&str], env: &[(&str, String)], env_remove: &[&str]) -> ChildScaler {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
        };
        let (grpc, http) = (free(), free());
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keda-llm-scaler"));
        cmd.args([
            "serve",
            "--grpc-listen",
            &grpc.to_string(),
            "--http-listen",
            &http.to_string(),
        ])
        .args(args)
        .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in env_remove {
            cmd.env_remove(k);
        }
        let child = cmd.spawn().expect("start the scaler");
        ChildScaler {
            child,
            scaler: Scaler {
                grpc,
                http,
                shutdown: tokio_util::sync::CancellationToken::new(),
                task: tokio::spawn(async { Ok(()) }),
            },
        }
    }
}

impl Drop for ChildScaler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Defect 3: one 350 KB line of 50,000 escaped label values took the process to ~700 MB, and
/// defect 10: a page with 45,000 `le` bounds grew the TTFT window by ~700 KB a cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pages_cost_what_is_kept_not_what_is_read() {
    let mut escaped = fixture(VLLM);
    escaped.push_str(&format!("{WAITING}{{"));
    for _ in 0..50_000 {
        escaped.push_str("a=\"\\n\",");
    }
    escaped.push_str("} 1\n");
    let mut buckets = fixture(VLLM);
    for i in 0..45_000 {
        buckets.push_str(&format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"9\",le=\"{i}\"}} {i}\n"
        ));
    }
    let a = Worker::start(Mode::Page(escaped)).await;
    let b = Worker::start(Mode::Page(buckets)).await;
    let child = ChildScaler::start(&[], &[], &[]);
    let scaler = &child.scaler;
    let mut client = scaler.client().await;
    let before = rss_mib(child.child.id());
    let mut md = quick(&a.target());
    md.push(("ttftWindowSeconds", "3600".into()));
    md[1].1 = "0.05".into();
    md[2].1 = "0.05".into();
    client
        .get_metric_spec(so("esc", "llm", &md))
        .await
        .expect("spec");
    md[0].1 = b.target();
    client
        .get_metric_spec(so("le", "llm", &md))
        .await
        .expect("spec");
    scaler
        .wait_debug("le", 5.0, |e| {
            stale_kinds(e).contains(&"too_many_series".to_string())
        })
        .await;
    scaler
        .wait_debug("esc", 5.0, |e| e["cycle"].as_u64() >= Some(20))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss_mib(child.child.id()) - before;
    // Before the fixes one escaped line cost ~700 MB; the Deployment's limit is 256 Mi.
    assert!(
        grown < 64.0,
        "hostile pages grew the scaler by {grown:.0} MiB"
    );
}

/// Defect 4: two triggers of one ScaledObject (same name, other metadata) replaced each
/// other's controller on nearly every call. Now each keeps its own controller and state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_triggers_of_one_scaledobject_each_keep_their_controller() {
    let (_w, targets) = Worker::fleet(1, &fixture(VLLM)).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let mut one = quick(&targets);
    let mut two = one.clone();
    one.push(("kvCacheTarget", "0.8".into()));
    two.push(("kvCacheTarget", "0.7".into()));
    let (r1, r2) = (so("pair", "llm", &one), so("pair", "llm", &two));
    // external-push: two streams open side by side.
    let s1 = client.stream_is_active(r1.clone()).await.expect("stream 1");
    let s2 = client.stream_is_active(r2.clone()).await.expect("stream 2");
    for _ in 0..20 {
        desired(&mut client, &r1).await;
        desired(&mut client, &r2).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = entries(&scaler, "pair").await;
    assert_eq!(e.len(), 2, "one controller per trigger: {e:#?}");
    assert_ne!(e[0]["trigger"], e[1]["trigger"]);
    for x in &e {
        // Five or more cycles at 0.2 s: never replaced (a replacement starts again at 1).
        assert!(x["cycle"].as_u64() >= Some(5), "{x:#}");
    }
    let metrics = scaler.http_get("/metrics").await;
    assert!(
        metrics.contains("keda_llm_scaler_controllers 2"),
        "{metrics}"
    );
    drop((s1, s2));
    scaler.shutdown.cancel();
}

/// Defect 5: a GetMetrics for a victim's name with other targets replaced the victim's
/// controller, and an anonymous StreamIsActive on that name made its polls fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_callers_metadata_cannot_take_over_a_scaledobject() {
    let (_w, targets) = Worker::fleet(2, &fixture(VLLM)).await;
    let scaler = Scaler::start().await;
    let mut victim = scaler.client().await;
    let mut attacker = scaler.client().await;
    let r = so("qwen", "llm", &quick(&targets));
    victim.get_metric_spec(r.clone()).await.expect("spec");
    scaler
        .wait_debug("qwen", 5.0, |e| e["cycle"].as_u64() >= Some(3))
        .await;

    let hostile = so("qwen", "llm", &quick("127.0.0.1:9"));
    let _ = attacker
        .get_metrics(metrics_req(&hostile, "llm-desired-replicas"))
        .await;
    let _stream = attacker.stream_is_active(hostile).await;
    for _ in 0..5 {
        let (d, _) = desired(&mut victim, &r).await;
        assert!(d >= 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = entries(&scaler, "qwen").await;
    let mine: Vec<_> = e
        .iter()
        .filter(|x| x["targets"].to_string().contains(&targets[..9]))
        .collect();
    assert!(
        mine.iter().any(|x| x["cycle"].as_u64() >= Some(6)),
        "the victim's controller kept running: {e:#?}"
    );
    scaler.shutdown.cancel();
}

/// Defect 6: 64 hanging targets in one ScaledObject held every server-wide scrape slot and a
/// victim in another namespace went stale. Now slots are shared per ScaledObject and per
/// namespace, and the reason tells a slot wait from a slow worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_starve_another_of_scrape_slots() {
    let hang = Worker::start(Mode::Hang).await;
    let good = Worker::start(Mode::Page(fixture(VLLM))).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let hanging: Vec<String> = (0..64)
        .map(|i| format!("http://{}/metrics?i={i}", hang.addr))
        .collect();
    let evil = so(
        "greedy",
        "evil",
        &[
            ("targets", hanging.join(",")),
            ("scrapeIntervalSeconds", "700".into()),
            ("scrapeTimeoutSeconds", "600".into()),
            ("ttftWindowSeconds", "1800".into()),
        ],
    );
    client.get_metric_spec(evil).await.expect("accepted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = so("victim", "llm", &quick(&good.target()));
    client.get_metric_spec(victim.clone()).await.expect("spec");
    for _ in 0..10 {
        let (d, _) = desired(&mut client, &victim).await;
        assert!(d >= 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = scaler.debug_entry("victim").await.expect("victim");
    assert!(stale_kinds(&e).is_empty(), "victim starved: {e:#}");
    assert_eq!(e["reason"].as_str().map(|r| r != "data_stale"), Some(true));
    scaler.shutdown.cancel();
}

/// The stale reason of a target never asked says so, naming the bound it waited on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_wait_is_not_reported_as_a_slow_worker() {
    let hang = Worker::start(Mode::Hang).await;
    let scaler = Scaler::start_with(ServeOptions {
        scrape: ScrapeLimits {
            concurrency_per_scaledobject: 2,
            ..ScrapeLimits::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let mut client = scaler.client().await;
    let targets: Vec<String> = (0..4)
        .map(|i| format!("http://{}/metrics?i={i}", hang.addr))
        .collect();
    let r = so("slots", "llm", &quick(&targets.join(",")));
    client.get_metric_spec(r).await.expect("spec");
    let e = scaler
        .wait_debug("slots", 5.0, |e| {
            let k = stale_kinds(e);
            k.contains(&"permit_wait".to_string()) && k.contains(&"timeout".to_string())
        })
        .await;
    assert!(
        e["targets"]
            .to_string()
            .contains("--scrape-concurrency-per-scaledobject"),
        "{e:#}"
    );
    scaler.shutdown.cancel();
}

/// Defect 8: target URLs with a password or a token were shown verbatim on the open admin port.
/// They are redacted, and `/debug/` can require a bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_target_urls_stay_hidden_and_debug_can_require_a_token() {
    let w = Worker::start(Mode::Page(fixture(VLLM))).await;
    let dir = temp_dir("admin-token");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "t0ken-value\n").expect("token");
    let scaler = Scaler::start_with(ServeOptions {
        admin_token_file: Some(token_file),
        ..ServeOptions::default()
    })
    .await;
    let mut client = scaler.client().await;
    let url = format!("http://admin:hunter2@{}/metrics?token=sekrit", w.addr);
    client
        .get_metric_spec(so("secret", "llm", &quick(&url)))
        .await
        .expect("spec");
    tokio::time::sleep(Duration::from_millis(600)).await;

    let http = reqwest::Client::new();
    let base = format!("http://{}", scaler.http);
    let open = http
        .get(format!("{base}/debug/scaledobjects"))
        .send()
        .await
        .expect("GET");
    assert_eq!(open.status(), 401);
    let wrong = http
        .get(format!("{base}/debug/scaledobjects"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let body = http
        .get(format!("{base}/debug/scaledobjects"))
        .bearer_auth("t0ken-value")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(body.contains("\"secret\""), "{body}");
    assert!(
        !body.contains("hunter2") && !body.contains("sekrit"),
        "{body}"
    );
    assert!(body.contains("***@"), "{body}");
    for open_path in ["/healthz", "/metrics"] {
        let s = http
            .get(format!("{base}{open_path}"))
            .send()
            .await
            .expect("GET")
            .status();
        assert_eq!(s, 200, "{open_path} stays open for probes and Prometheus");
    }
    scaler.shutdown.cancel();
}

/// Defect 9: the gRPC port had no limits: names of any size, a registry any client could fill,
/// no SETTINGS_MAX_CONCURRENT_STREAMS, and connections that never send the preface.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_port_has_limits_and_names_them() {
    let (_w, targets) = Worker::fleet(1, &fixture(VLLM)).await;
    let scaler = Scaler::start_with(ServeOptions {
        registry: RegistrySettings {
            max_controllers_per_namespace: 5,
            ..RegistrySettings::default()
        },
        grpc_preface_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    })
    .await;
    let mut client = scaler.client().await;
    let md = quick(&targets);

    let long = "a".repeat(300);
    let err = client
        .get_metric_spec(so(&long, "llm", &md))
        .await
        .expect_err("name too long");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 400, "the name is not echoed whole");
    let huge = "a".repeat(1 << 20);
    let err = client
        .get_metric_spec(so(&huge, "llm", &md))
        .await
        .expect_err("1 MiB name");
    assert_ne!(err.code(), Code::Ok);

    for i in 0..5 {
        client
            .get_metric_spec(so(&format!("fill-{i}"), "evil", &md))
            .await
            .expect("within the namespace limit");
    }
    let err = client
        .get_metric_spec(so("fill-5", "evil", &md))
        .await
        .expect_err("namespace full");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("--max-controllers-per-namespace"),
        "{}",
        err.message()
    );
    client
        .get_metric_spec(so("legit", "llm", &md))
        .await
        .expect("another namespace is unaffected");

    // The stream limit is advertised in the server's SETTINGS.
    let tcp = tokio::net::TcpStream::connect(scaler.grpc)
        .await
        .expect("connect");
    let (mut send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let mut conn = Box::pin(conn);
    let mut advertised = conn.max_concurrent_send_streams();
    for _ in 0..50 {
        tokio::select! {
            _ = &mut conn => break,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        advertised = conn.max_concurrent_send_streams();
        if advertised < usize::MAX {
            break;
        }
    }
    assert_eq!(
        advertised,
        keda_llm_scaler::service::listen::DEFAULT_GRPC_MAX_STREAMS as usize
    );
    let _ = &mut send;

    // A connection that never sends the preface is closed.
    let mut silent = tokio::net::TcpStream::connect(scaler.grpc)
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection stays open: {read:?}"
    );
    scaler.shutdown.cancel();
}

/// Defect 11: slowloris and idle clients on the admin port stayed open until the file limit
/// and `/healthz` stopped answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_times_out_slow_and_idle_clients_and_limits_connections() {
    let scaler = Scaler::start_with(ServeOptions {
        http_max_connections: 8,
        http_header_timeout: Duration::from_millis(400),
        ..ServeOptions::default()
    })
    .await;
    // Slowloris: half a request, then nothing.
    let mut slow = tokio::net::TcpStream::connect(scaler.http)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a slow header is cut off");

    // Connections past the limit are closed at once; the held ones time out, and /healthz
    // answers again.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(
            tokio::net::TcpStream::connect(scaler.http)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = tokio::net::TcpStream::connect(scaler.http)
        .await
        .expect("connect");
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(1), extra.read(&mut buf)).await;
    assert!(
        matches!(answer, Ok(Ok(0)) | Ok(Err(_))),
        "the ninth connection was served: {answer:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(scaler.http_get("/healthz").await, "ok\n");
    drop(idle);
    scaler.shutdown.cancel();
}

/// Defects 7, 12 and 13: metadata and discovery that pass today but should not, and errors
/// that name the wrong cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_mistakes_are_refused_with_the_right_words() {
    let w = Worker::start(Mode::Page("[{\"targets\": ".into())).await;
    let scaler = Scaler::start().await;
    let mut client = scaler.client().await;
    let c = client.clone();
    let refused = move |md: Vec<(&'static str, String)>| {
        let r = so("m", "llm", &md);
        let mut c = c.clone();
        async move { c.get_metric_spec(r).await.expect_err("should be refused") }
    };
    for form in [
        "[::169.254.169.254]:80",
        "[64:ff9b::a9fe:a9fe]:80",
        "[2002:a9fe:a9fe::]:80",
    ] {
        let e = refused(vec![("targets", form.into())]).await;
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().contains("link-local") && !e.message().contains("outside --allow-targets"),
            "{form}: {}",
            e.message()
        );
    }
    let e = refused(vec![("httpSd", "http://".into())]).await;
    assert!(e.message().contains("httpSd"), "{}", e.message());
    let e = refused(vec![
        ("targets", w.target()),
        ("scrapeIntervalSeconds", "1".into()),
        ("scrapeTimeoutSeconds", "3".into()),
    ])
    .await;
    assert!(
        e.message().contains("scrapeTimeoutSeconds"),
        "{}",
        e.message()
    );
    let e = refused(vec![
        ("targets", w.target()),
        ("targetsFromEnv", "other:1".into()),
    ])
    .await;
    assert!(e.message().contains("not both"), "{}", e.message());

    // An unknown metric name starts nothing, and a huge one is not echoed back.
    let r = so("nometric", "llm", &quick(&w.target()));
    let e = client
        .get_metrics(metrics_req(&r, &"x".repeat(100_000)))
        .await
        .expect_err("unknown metric");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().len() < 400, "{} bytes", e.message().len());
    assert!(scaler.debug_entry("nometric").await.is_none());

    // Discovery failures are `discovery`, not `connect`.
    let sd = so(
        "sd",
        "llm",
        &[
            ("httpSd", format!("http://{}/metrics", w.addr)),
            ("scrapeIntervalSeconds", "0.2".into()),
        ],
    );
    client.get_metric_spec(sd).await.expect("valid");
    scaler
        .wait_debug("sd", 5.0, |e| {
            stale_kinds(e).contains(&"discovery".to_string())
        })
        .await;

    // Every family is exported from the start.
    let metrics = scaler.http_get("/metrics").await;
    assert!(
        metrics.contains("keda_llm_scaler_tls_events_total{kind=\"handshake_failed\"} 0"),
        "{metrics}"
    );
    scaler.shutdown.cancel();
}

/// Defect 7: with HTTP_PROXY set (AKS's proxy feature injects it), names outside the
/// allow-list were fetched through the proxy. Run as a separate process so the variable
/// reaches only that scaler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_do_not_bypass_the_allow_list() {
    let proxy = Worker::start(Mode::Page(fixture(VLLM))).await;
    let child = ChildScaler::start(
        &["--allow-targets", "10.0.0.0/8,.svc.cluster.local"],
        &[
            ("HTTP_PROXY", format!("http://{}", proxy.addr)),
            ("http_proxy", format!("http://{}", proxy.addr)),
        ],
        &["NO_PROXY", "no_proxy"],
    );
    let scaler = &child.scaler;
    let mut client = scaler.client().await;
    let r = so("proxied", "llm", &quick("localhost:9"));
    client
        .get_metric_spec(r)
        .await
        .expect("a name is checked when it resolves");
    let e = scaler
        .wait_debug("proxied", 5.0, |e| !stale_kinds(e).is_empty())
        .await;
    assert_eq!(stale_kinds(&e), ["not_allowed"], "{e:#}");
}
