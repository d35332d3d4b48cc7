//! Real parts on loopback: the real server, a real tonic client, real HTTP workers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keda_llm_scaler::service::grpc::pb::external_scaler_client::ExternalScalerClient;
use keda_llm_scaler::service::grpc::pb::{GetMetricsRequest, ScaledObjectRef};
use keda_llm_scaler::service::serve::{self, ServeOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A real-metrics capture from `../shared/fixtures/real-metrics/`, read as it is.
pub fn fixture(name: &str) -> String {
    // Every test reads a fixture before it builds an HTTP client.
    keda_llm_scaler::service::tls::install_crypto_provider();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/real-metrics")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub const VLLM: &str = "vllm-0.19.1_v1_llama3.1-8b_a100_kvwarden.txt";
pub const SGLANG: &str = "sglang-0.4.0era_llama3.1-8b_sglang-docs.txt";
pub const DYNAMO_FE: &str = "dynamo-frontend_qwen3-0.6b_dynamo-docs.txt";

/// Rewrites the value of every sample line whose name (before `{` or space) equals `name`.
pub fn set_value(page: &str, name: &str, value: f64) -> String {
    page.lines()
        .map(|l| {
            let n = l.split(['{', ' ']).next().unwrap_or("");
            if n == name && !l.starts_with('#') {
                let (head, _) = l.rsplit_once(' ').expect("sample line");
                format!("{head} {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Adds `adds[(le, n)]` observations to the bucket `le` of histogram `family`, keeping the
/// page cumulative (every bucket >= le, `_count` too, grows by n).
pub fn add_observations(page: &str, family: &str, adds: &[(f64, f64)]) -> String {
    let bucket = format!("{family}_bucket");
    let count = format!("{family}_count");
    page.lines()
        .map(|l| {
            let n = l.split(['{', ' ']).next().unwrap_or("");
            let (head, value) = match l.rsplit_once(' ') {
                Some(x) if !l.starts_with('#') => x,
                _ => return l.to_string(),
            };
            let value: f64 = match value.parse() {
                Ok(v) => v,
                Err(_) => return l.to_string(),
            };
            if n == bucket {
                let le_text = l
                    .split("le=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .expect("le");
                let le: f64 = le_text.parse().expect("le number");
                let extra: f64 = adds.iter().filter(|(b, _)| *b <= le).map(|(_, k)| k).sum();
                format!("{head} {}", value + extra)
            } else if n == count {
                format!(
                    "{head} {}",
                    value + adds.iter().map(|(_, k)| k).sum::<f64>()
                )
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Sets every bucket and the count of histogram `family` to zero (a restarted process).
pub fn zero_histogram(page: &str, family: &str) -> String {
    let bucket = format!("{family}_bucket");
    let count = format!("{family}_count");
    page.lines()
        .map(|l| {
            let n = l.split(['{', ' ']).next().unwrap_or("");
            match l.rsplit_once(' ') {
                Some((head, _)) if n == bucket || n == count => format!("{head} 0.0"),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Resident memory of process `pid`, MiB (a scaler run as a child process is measured alone,
/// without the other tests' allocations).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A fresh directory under the system temp dir, unique to this process and tag.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// How a fake worker answers.
#[derive(Debug, Clone)]
pub enum Mode {
    Page(String),
    Status(u16),
    Hang,
    /// The page, 512 bytes every 100 ms.
    Trickle(String),
    /// An endless-looking body of this many bytes, generated as it is sent.
    Huge(usize),
}

/// A loopback HTTP worker whose answer can be changed at run time.
pub struct Worker {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    task: JoinHandle<()>,
}

async fn answer(State(mode): State<Arc<Mutex<Mode>>>) -> Response {
    let m = mode.lock().expect("mode lock").clone();
    match m {
        Mode::Page(body) => ([("content-type", "text/plain; version=0.0.4")], body).into_response(),
        Mode::Status(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Mode::Trickle(body) => {
            let chunks: Vec<Vec<u8>> = body.as_bytes().chunks(512).map(<[u8]>::to_vec).collect();
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
            tokio::spawn(async move {
                for c in chunks {
                    if tx.send(Ok(c)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .into_response()
        }
        Mode::Huge(size) => {
            let line =
                b"# padding padding padding padding padding padding padding padding\n".to_vec();
            let chunk: Vec<u8> = line.iter().copied().cycle().take(64 << 10).collect();
            let n = size / chunk.len();
            let stream =
                tokio_stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
            axum::body::Body::from_stream(stream).into_response()
        }
    }
}

impl Worker {
    pub async fn start(mode: Mode) -> Worker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind worker");
        let addr = listener.local_addr().expect("worker addr");
        let mode = Arc::new(Mutex::new(mode));
        let app = Router::new()
            .route("/metrics", axum::routing::get(answer))
            .with_state(mode.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Worker { addr, mode, task }
    }

    /// `n` workers serving `page`, and their `targets` metadata value.
    pub async fn fleet(n: usize, page: &str) -> (Vec<Worker>, String) {
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n {
            workers.push(Worker::start(Mode::Page(page.to_string())).await);
        }
        let targets = workers
            .iter()
            .map(Worker::target)
            .collect::<Vec<_>>()
            .join(",");
        (workers, targets)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode lock") = mode;
    }

    /// Stops listening: the port now refuses connections.
    /// A handle that changes this worker's answer from another task.
    pub fn setter(&self) -> impl Fn(Mode) + Send + Sync + 'static {
        let mode = self.mode.clone();
        move |m| *mode.lock().expect("mode lock") = m
    }

    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real server on loopback.
pub struct Scaler {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Scaler {
    pub async fn start() -> Scaler {
        Self::start_with(ServeOptions::default()).await
    }

    pub async fn start_with(options: ServeOptions) -> Scaler {
        keda_llm_scaler::service::tls::install_crypto_provider();
        let grpc_l = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let http_l = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let (grpc, http) = (grpc_l.local_addr().unwrap(), http_l.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve::run(options, grpc_l, http_l, shutdown.clone()));
        Scaler {
            grpc,
            http,
            shutdown,
            task,
        }
    }

    pub async fn client(&self) -> ExternalScalerClient<Channel> {
        let url = format!("http://{}", self.grpc);
        for _ in 0..50 {
            if let Ok(c) = ExternalScalerClient::connect(url.clone()).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("scaler did not accept gRPC connections at {url}");
    }

    pub async fn http_get(&self, path: &str) -> String {
        reqwest::get(format!("http://{}{path}", self.http))
            .await
            .expect("admin GET")
            .text()
            .await
            .expect("admin body")
    }

    /// The debug entry of one ScaledObject, once it has a decision.
    pub async fn debug_entry(&self, name: &str) -> Option<serde_json::Value> {
        let body = self.http_get("/debug/scaledobjects").await;
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("debug JSON");
        list.into_iter().find(|e| e["name"] == name)
    }

    /// Polls the debug entry until `pred` holds (or panics after `secs`).
    pub async fn wait_debug(
        &self,
        name: &str,
        secs: f64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let watch = keda_llm_scaler::clock::Stopwatch::start();
        let mut last = None;
        while watch.elapsed() < Duration::from_secs_f64(secs) {
            if let Some(e) = self.debug_entry(name).await {
                if pred(&e) {
                    return e;
                }
                last = Some(e);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("condition not reached for {name} within {secs}s; last entry: {last:#?}");
    }
}

pub fn so_ref(name: &str, metadata: &[(&str, &str)]) -> ScaledObjectRef {
    so_ref_in(name, "llm", metadata.iter().copied())
}

/// A ref in `namespace` with metadata from any key/value pairs.
pub fn so_ref_in<K: ToString, V: ToString>(
    name: &str,
    namespace: &str,
    metadata: impl IntoIterator<Item = (K, V)>,
) -> ScaledObjectRef {
    ScaledObjectRef {
        name: name.to_string(),
        namespace: namespace.to_string(),
        scaler_metadata: metadata
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

pub fn metrics_req(r: &ScaledObjectRef, metric: &str) -> GetMetricsRequest {
    GetMetricsRequest {
        scaled_object_ref: Some(r.clone()),
        metric_name: metric.to_string(),
    }
}

/// Calls GetMetrics and returns (int, float) of the single value.
pub async fn desired(
    client: &mut ExternalScalerClient<Channel>,
    r: &ScaledObjectRef,
) -> (i64, f64) {
    let resp = client
        .get_metrics(metrics_req(r, "llm-desired-replicas"))
        .await
        .expect("GetMetrics")
        .into_inner();
    assert_eq!(resp.metric_values.len(), 1, "exactly one value");
    let v = &resp.metric_values[0];
    (v.metric_value, v.metric_value_float)
}
