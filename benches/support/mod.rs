//! Shared by the load benches (`fleet_load`, `decision_latency`, `soak`): the runtime, the
//! real capture, the real server on loopback and a gRPC channel to it, and the process's own
//! resident memory. Not every bench uses every piece.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use keda_llm_scaler::service::serve::{self, ServeOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Runs `f` on a two-thread runtime (the machine's two cores), as `main` of each bench.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    keda_llm_scaler::service::tls::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The vLLM 0.19.1 capture (57 KB) from `../shared`, as it is.
pub fn vllm_capture() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/real-metrics/vllm-0.19.1_v1_llama3.1-8b_a100_kvwarden.txt"
    );
    std::fs::read_to_string(path).expect("the vLLM capture in ../shared")
}

/// Resident memory of this process, MiB (from /proc).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Starts the real server on loopback ports; returns its gRPC address and the token that
/// stops it.
pub async fn start_scaler(options: ServeOptions) -> (SocketAddr, CancellationToken) {
    let grpc_l = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
    let http_l = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
    let grpc = grpc_l.local_addr().expect("gRPC address");
    let stop = CancellationToken::new();
    tokio::spawn(serve::run(options, grpc_l, http_l, stop.clone()));
    (grpc, stop)
}

/// A gRPC channel to the server at `grpc`, once it accepts connections.
pub async fn connect(grpc: SocketAddr) -> Channel {
    loop {
        if let Ok(c) = Channel::from_shared(format!("http://{grpc}"))
            .expect("uri")
            .connect()
            .await
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
