//! `serve`: the gRPC scaler and the admin HTTP server, wired together, with graceful
//! shutdown driven by one cancellation token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::fetch::scrape::{ScrapeLimits, Scraper};
use crate::service::admin::{self, AdminState};
use crate::service::controller::{HttpSource, Registry, RegistrySettings};
use crate::service::grpc::ScalerService;
use crate::service::grpc::pb::external_scaler_server::ExternalScalerServer;
use crate::service::telemetry::Telemetry;
use crate::service::tls::{TlsFiles, TlsState};

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
    /// File holding the bearer token `/debug/` requires (open when `None`).
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Most gRPC connections at once.
    pub grpc_max_connections: usize,
    /// Most concurrent HTTP/2 streams per gRPC connection.
    pub grpc_max_concurrent_streams: u32,
    /// Most admin HTTP connections at once.
    pub http_max_connections: usize,
    /// Longest a gRPC connection may take to send the HTTP/2 preface.
    pub grpc_preface_timeout: Duration,
    /// Longest the admin server waits for headers, and between requests on one connection.
    pub http_header_timeout: Duration,
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
            admin_token_file: None,
            grpc_max_connections: crate::service::listen::DEFAULT_GRPC_MAX_CONNECTIONS,
            grpc_max_concurrent_streams: crate::service::listen::DEFAULT_GRPC_MAX_STREAMS,
            http_max_connections: crate::service::listen::DEFAULT_HTTP_MAX_CONNECTIONS,
            grpc_preface_timeout: crate::service::listen::GRPC_PREFACE_TIMEOUT,
            http_header_timeout: crate::service::listen::HTTP_HEADER_TIMEOUT,
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
            let counter = telemetry.clone();
            state.spawn_reloader(t.reload_every, shutdown.clone(), move |e| {
                counter.tls_event(e)
            });
            Some(state)
        }
        None => None,
    };
    let scraper = Scraper::new(&options.scrape).context("building the scrape client")?;
    let registry = Registry::new(
        options.registry.clone(),
        scraper.clone(),
        Arc::new(HttpSource(scraper)),
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
        // Advertised in SETTINGS: a client cannot open more, so never-read streams cannot
        // pile up on one connection.
        .max_concurrent_streams(Some(options.grpc_max_concurrent_streams.max(1)))
        // Dead or silent peers are found and their connection closed.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(
            ExternalScalerServer::new(service)
                .max_decoding_message_size(crate::service::listen::GRPC_MAX_MESSAGE_BYTES),
        );
    let stop = async move { grpc_shutdown.cancelled().await };
    let grpc_task = match tls {
        Some(state) => {
            let incoming = crate::service::tls::incoming(
                grpc,
                state,
                Duration::from_secs(10),
                options.grpc_max_connections,
                shutdown.clone(),
                {
                    let counter = telemetry.clone();
                    move |e| counter.tls_event(e)
                },
            );
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
        None => {
            let incoming = crate::service::listen::grpc_plain(
                grpc,
                options.grpc_max_connections,
                options.grpc_preface_timeout,
                shutdown.clone(),
            );
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
    };
    let app = admin::router(AdminState {
        registry,
        telemetry,
        ready: ready.clone(),
        token_file: options.admin_token_file.clone().map(Arc::new),
    });
    let http_task = tokio::spawn(crate::service::listen::serve_http(
        http,
        app,
        options.http_max_connections,
        options.http_header_timeout,
        shutdown.clone(),
    ));
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
    http_task.await.context("HTTP server task")?;
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
