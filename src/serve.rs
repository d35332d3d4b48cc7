//! `serve`: the gRPC scaler and the admin HTTP server, wired together, with graceful
//! shutdown driven by one cancellation token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::admin::{self, AdminState};
use crate::controller::{Registry, RegistrySettings};
use crate::grpc::ScalerService;
use crate::grpc::pb::external_scaler_server::ExternalScalerServer;
use crate::scrape::{ScrapeLimits, Scraper};
use crate::telemetry::Telemetry;
use crate::tls::{TlsFiles, TlsState};

/// Everything `serve` needs besides its listeners. Defaults are the `serve` command's.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Controller registry settings.
    pub registry: RegistrySettings,
    /// Scrape limits.
    pub scrape: ScrapeLimits,
    /// How long a first RPC waits for a new controller's first decision.
    pub first_decision_wait: Duration,
    /// Serve gRPC over TLS with these certificates (plain-text when `None`).
    pub tls: Option<TlsOptions>,
}

/// How long a new ScaledObject's first RPC waits for its first decision rather than failing
/// (KEDA counts a failure toward its fallback) (`--first-decision-wait-ms`).
pub const DEFAULT_FIRST_DECISION_WAIT: Duration = Duration::from_millis(1500);

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            registry: RegistrySettings::default(),
            scrape: ScrapeLimits::default(),
            first_decision_wait: DEFAULT_FIRST_DECISION_WAIT,
            tls: None,
        }
    }
}

/// gRPC transport security.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Certificate, key and optional client CA.
    pub files: TlsFiles,
    /// How often the files are checked for rotation.
    pub reload_every: Duration,
}

/// Runs both servers until `shutdown` is cancelled, then drains them.
pub async fn run(
    options: ServeOptions,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let telemetry = Telemetry::new();
    // Certificates are loaded before anything serves: a bad file is a startup error.
    let tls = match &options.tls {
        Some(t) => {
            let state =
                Arc::new(TlsState::load(t.files.clone()).context("loading TLS certificates")?);
            state.spawn_reloader(t.reload_every, shutdown.clone(), telemetry.clone());
            Some(state)
        }
        None => None,
    };
    let scraper = Scraper::new(&options.scrape).context("building the scrape client")?;
    let registry = Registry::new(
        options.registry.clone(),
        scraper,
        telemetry.clone(),
        shutdown.clone(),
    );
    let ready = Arc::new(AtomicBool::new(false));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ExternalScalerServer<ScalerService>>()
        .await;
    let service = ScalerService::new(
        registry.clone(),
        telemetry.clone(),
        shutdown.clone(),
        options.first_decision_wait,
    );

    info!(grpc = %grpc.local_addr()?, http = %http.local_addr()?, tls = tls.is_some(), "keda-llm-scaler serving");
    let grpc_shutdown = shutdown.clone();
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ExternalScalerServer::new(service));
    let stop = async move { grpc_shutdown.cancelled().await };
    let grpc_task = match tls {
        Some(state) => {
            let incoming = crate::tls::incoming(
                grpc,
                state,
                Duration::from_secs(10),
                shutdown.clone(),
                telemetry.clone(),
            );
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
        None => {
            // Small gRPC responses must not wait for Nagle's algorithm against the peer's
            // delayed ACK (a 40 ms stall on Linux).
            let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(grpc), |conn| {
                conn.inspect(|tcp| {
                    let _ = tcp.set_nodelay(true);
                })
            });
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
    };
    let app = admin::router(AdminState {
        registry,
        telemetry,
        ready: ready.clone(),
    });
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, app)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });
    ready.store(true, Ordering::Relaxed);

    shutdown.cancelled().await;
    ready.store(false, Ordering::Relaxed);
    health_reporter
        .set_not_serving::<ExternalScalerServer<ScalerService>>()
        .await;
    info!("shutting down");
    grpc_task
        .await
        .context("gRPC server task")?
        .context("gRPC server")?;
    http_task
        .await
        .context("HTTP server task")?
        .context("HTTP server")?;
    Ok(())
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        token.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        token.cancel();
    });
}
