//! Untrusted metadata: the target allow-list (checked on resolved addresses), link-local
//! refusal, and the metadata-size and series-per-page limits, all visible to the author.

use std::sync::Arc;

use keda_llm_scaler::fetch::allow::AllowList;
use keda_llm_scaler::fetch::scrape::ScrapeLimits;
use keda_llm_scaler::service::serve::ServeOptions;
use tonic::Code;

use crate::common::*;

async fn scaler_with(scrape: ScrapeLimits) -> Scaler {
    Scaler::start_with(ServeOptions {
        scrape,
        ..ServeOptions::default()
    })
    .await
}

fn allowing(list: &str) -> ScrapeLimits {
    ScrapeLimits {
        allow: Arc::new(AllowList::parse(list).expect("allow-list")),
        ..ScrapeLimits::default()
    }
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
    let scaler = scaler_with(allowing("10.0.0.0/8,.svc.cluster.local")).await;
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
        metrics.contains("keda_llm_scaler_scrapes_total{namespace=\"llm\",scaledobject=\"name\",kind=\"not_allowed\","),
        "{}",
        metrics.lines().filter(|l| l.contains("scrapes_total")).collect::<Vec<_>>().join("\n")
    );
    scaler.shutdown.cancel();

    // Inside the allow-list, the same worker is scraped.
    let scaler = scaler_with(allowing("127.0.0.0/8")).await;
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
    let scaler = scaler_with(ScrapeLimits::default()).await;
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
    let scaler = scaler_with(ScrapeLimits::default()).await;
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

/// An HTTPS listener for axum on top of tokio-rustls (a worker behind a TLS auth proxy).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((tcp, addr)) = self.tcp.accept().await
                && let Ok(tls) = self.acceptor.accept(tcp).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_with_a_ca_and_a_rotating_bearer_token() {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let ca = crate::tls::ca("worker-ca");
    let (cert, key) = crate::tls::leaf(&ca, &["localhost"], false);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")],
        PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
    )
    .expect("server config");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let page = fixture(VLLM);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let page = page.clone();
            async move {
                use axum::response::IntoResponse;
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer s3cret")
                {
                    page.into_response()
                } else {
                    axum::http::StatusCode::UNAUTHORIZED.into_response()
                }
            }
        }),
    );
    tokio::spawn(
        axum::serve(
            TlsListener {
                tcp,
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            },
            app,
        )
        .into_future(),
    );

    let dir = temp_dir("https-scrape");
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").expect("token");
    let scaler = scaler_with(ScrapeLimits {
        ca_pem: Some(ca.pem.clone().into_bytes()),
        bearer_token_file: Some(token.clone()),
        ..ScrapeLimits::default()
    })
    .await;
    let mut client = scaler.client().await;
    let r = so_ref(
        "https",
        &[
            ("targets", &format!("https://localhost:{port}/metrics")),
            ("scrapeIntervalSeconds", "0.2"),
        ],
    );
    client.get_metric_spec(r.clone()).await.expect("valid");
    scaler
        .wait_debug("https", 5.0, |e| e["signals"]["fresh_workers"] == 1)
        .await;
    // The token rotates to one the proxy refuses: the target goes stale, visibly.
    std::fs::write(&token, "expired").expect("rotate");
    scaler
        .wait_debug("https", 5.0, |e| {
            stale_kinds(e).contains(&"http_status".to_string())
        })
        .await;
    scaler.shutdown.cancel();

    // Without the CA the certificate is not trusted.
    let untrusting = scaler_with(ScrapeLimits::default()).await;
    let mut client = untrusting.client().await;
    client.get_metric_spec(r.clone()).await.expect("valid");
    let e = untrusting
        .wait_debug("https", 5.0, |e| {
            stale_kinds(e).contains(&"connect".to_string())
        })
        .await;
    let detail = e["targets"][0]["stale_reason"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.to_lowercase().contains("certificate"), "{detail}");
    untrusting.shutdown.cancel();
    let _ = std::fs::remove_dir_all(dir);
}

/// Discovery that returns nothing, or too much, and workers that redirect: the answer holds
/// and the reason is visible; nothing is truncated silently and no redirect is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_oversized_discovery_and_redirects_hold_the_answer() {
    let hot = set_value(&fixture(VLLM), "vllm:kv_cache_usage_perc", 0.9);
    let (workers, _) = Worker::fleet(3, &hot).await;
    let listed = Arc::new(std::sync::Mutex::new(
        workers
            .iter()
            .map(|w| w.addr.to_string())
            .collect::<Vec<_>>(),
    ));
    let sd_list = listed.clone();
    let sd = axum::Router::new().route(
        "/sd",
        axum::routing::get(move || {
            let l = sd_list.lock().expect("lock").clone();
            async move { axum::Json(serde_json::json!([{ "targets": l }])) }
        }),
    );
    let sd_l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sd_addr = sd_l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(sd_l, sd).await });

    let scaler = scaler_with(ScrapeLimits {
        max_targets: 3,
        ..ScrapeLimits::default()
    })
    .await;
    let mut client = scaler.client().await;
    let r = so_ref(
        "sd",
        &[
            ("httpSd", &format!("http://{sd_addr}/sd")),
            ("scrapeIntervalSeconds", "0.1"),
            ("scaleDownWindowSeconds", "0"),
            ("staleHoldSeconds", "600"),
        ],
    );
    let (start, _) = desired(&mut client, &r).await;
    assert_eq!(start, 4, "3 workers at 90 % KV: ceil(2.7 / 0.8)");

    // Discovery answers with nothing: missing data, not zero load.
    listed.lock().expect("lock").clear();
    scaler
        .wait_debug("sd", 5.0, |e| e["reason"] == "data_stale")
        .await;
    assert_eq!(desired(&mut client, &r).await.0, 4);

    // Discovery answers with more than one ScaledObject may have: an error, never truncated.
    *listed.lock().expect("lock") = (0..5).map(|i| format!("127.0.0.1:{}", 1 + i)).collect();
    let e = scaler
        .wait_debug("sd", 5.0, |e| {
            e["targets"][0]["stale_reason"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("over the limit of 3"))
        })
        .await;
    assert_eq!(e["desired_replicas"], 4, "{e:#}");

    // A worker answering with a redirect is stale; the redirect is not followed.
    let redirect = Worker::start(Mode::Status(302)).await;
    *listed.lock().expect("lock") = vec![
        workers[0].addr.to_string(),
        workers[1].addr.to_string(),
        redirect.addr.to_string(),
    ];
    let e = scaler
        .wait_debug("sd", 5.0, |e| {
            stale_kinds(e).contains(&"http_status".to_string())
        })
        .await;
    assert!(e["desired_replicas"].as_u64() >= Some(4), "{e:#}");

    // A static list over the limit is refused up front, naming the key.
    let err = client
        .get_metric_spec(so_ref("many", &[("targets", "a:1,b:1,c:1,d:1")]))
        .await
        .expect_err("4 targets over a limit of 3");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("key `targets`"), "{}", err.message());
    scaler.shutdown.cancel();
}
