//! Command line: `serve` (the scaler), `keys` (the metadata reference), and the tools `demo`,
//! `simulate`, `record` and `replay`; exit codes by cause.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, KEYS};
use crate::fetch::scrape::ScrapeLimits;
use crate::service::controller::RegistrySettings;
use crate::service::serve::{self, ServeOptions, TlsOptions};
use crate::service::tls::TlsFiles;
use crate::tools::demo::DemoArgs;
use crate::tools::replay::{RecordArgs, ReplayArgs};
use crate::tools::simulate::SimulateArgs;

/// KEDA external scaler for LLM inference fleets (vLLM, NVIDIA Dynamo, SGLang, TensorRT-LLM).
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "KLS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC external scaler and the admin HTTP server.
    Serve(ServeArgs),
    /// Print the ScaledObject metadata reference as a Markdown table.
    Keys,
    /// Everything on loopback: simulated workers, the real scaler, a KEDA+HPA emulator over gRPC.
    Demo(DemoArgs),
    /// Simulate a Qwen3-0.6B/H100 fleet under keda-llm-scaler and the baselines.
    Simulate(SimulateArgs),
    /// Scrape a ScaledObject's targets on an interval into a recording (.jsonl.zst).
    Record(RecordArgs),
    /// Run a recording through the scaler's parsing, signal and policy code.
    Replay(ReplayArgs),
}

/// Flags of `serve`; each also reads an environment variable.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address (KEDA's `scalerAddress` points here).
    #[arg(long, env = "KLS_GRPC_LISTEN", default_value = "0.0.0.0:6000")]
    pub grpc_listen: String,
    /// HTTP listen address for /healthz, /readyz, /metrics and /debug/scaledobjects.
    #[arg(long, env = "KLS_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    pub http_listen: String,
    /// Server-wide default for a metadata key, `key=value` (repeatable, or comma-separated).
    #[arg(long = "default", env = "KLS_DEFAULTS", value_delimiter = ',')]
    pub defaults: Vec<String>,
    /// Drop a ScaledObject's controller after this many seconds without RPCs.
    #[arg(long, env = "KLS_CONTROLLER_IDLE_SECONDS", default_value_t = crate::service::controller::DEFAULT_IDLE.as_secs_f64())]
    pub controller_idle_seconds: f64,
    /// Most ScaledObject controllers at once.
    #[arg(long, env = "KLS_MAX_CONTROLLERS", default_value_t = crate::service::controller::DEFAULT_MAX_CONTROLLERS)]
    pub max_controllers: usize,
    /// Most controllers of one namespace (one per ScaledObject trigger).
    #[arg(long, env = "KLS_MAX_CONTROLLERS_PER_NAMESPACE", default_value_t = crate::service::controller::DEFAULT_MAX_CONTROLLERS_PER_NAMESPACE)]
    pub max_controllers_per_namespace: usize,
    /// Most triggers (distinct metadata) one ScaledObject may have.
    #[arg(long, env = "KLS_MAX_TRIGGERS_PER_SCALEDOBJECT", default_value_t = crate::service::controller::DEFAULT_MAX_TRIGGERS_PER_SCALEDOBJECT)]
    pub max_triggers_per_scaledobject: usize,
    /// Concurrent scrapes across all controllers.
    #[arg(long, env = "KLS_SCRAPE_CONCURRENCY", default_value_t = crate::fetch::scrape::DEFAULT_CONCURRENCY)]
    pub scrape_concurrency: usize,
    /// Concurrent scrapes of one ScaledObject trigger.
    #[arg(long, env = "KLS_SCRAPE_CONCURRENCY_PER_SCALEDOBJECT", default_value_t = crate::fetch::scrape::DEFAULT_CONCURRENCY_PER_SCALEDOBJECT)]
    pub scrape_concurrency_per_scaledobject: usize,
    /// Concurrent scrapes of all ScaledObjects of one namespace.
    #[arg(long, env = "KLS_SCRAPE_CONCURRENCY_PER_NAMESPACE", default_value_t = crate::fetch::scrape::DEFAULT_CONCURRENCY_PER_NAMESPACE)]
    pub scrape_concurrency_per_namespace: usize,
    /// Scrape through the proxy named by HTTP_PROXY/HTTPS_PROXY/NO_PROXY. Off: those variables
    /// are ignored (AKS's HTTP proxy feature injects them into every pod).
    #[arg(long, env = "KLS_SCRAPE_USE_PROXY", default_value_t = false)]
    pub scrape_use_proxy: bool,
    /// File holding a bearer token that `/debug/` requests must present. Without it the debug
    /// API is open to anyone who can reach the HTTP port (see README, Security).
    #[arg(long, env = "KLS_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Largest accepted metrics body, bytes (after decompression).
    #[arg(long, env = "KLS_MAX_BODY_BYTES", default_value_t = crate::fetch::scrape::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// How long the first GetMetrics/IsActive of a new ScaledObject waits for its first decision, ms.
    #[arg(long, env = "KLS_FIRST_DECISION_WAIT_MS", default_value_t = crate::service::serve::DEFAULT_FIRST_DECISION_WAIT.as_millis() as u64)]
    pub first_decision_wait_ms: u64,
    /// PEM certificate chain: serve gRPC over TLS (ALPN h2). Plain-text without it.
    #[arg(long, env = "KLS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "KLS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mTLS; KEDA's `tlsClientCert`).
    #[arg(long, env = "KLS_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Where scrape targets may be: comma-separated CIDRs and DNS suffixes, checked on resolved
    /// addresses (for example `10.0.0.0/8,.svc.cluster.local`). Empty: anywhere but link-local.
    #[arg(long, env = "KLS_ALLOW_TARGETS", default_value = "")]
    pub allow_targets: String,
    /// Most worker targets one ScaledObject may have (static list, or one discovery answer).
    #[arg(long, env = "KLS_MAX_TARGETS_PER_SCALEDOBJECT", default_value_t = crate::fetch::scrape::DEFAULT_MAX_TARGETS)]
    pub max_targets_per_scaledobject: usize,
    /// PEM CA bundle trusted for `https://` scrape targets.
    #[arg(long, env = "KLS_SCRAPE_CA")]
    pub scrape_ca: Option<PathBuf>,
    /// File with a bearer token sent to every scrape target (re-read at each scrape).
    #[arg(long, env = "KLS_SCRAPE_BEARER_TOKEN_FILE")]
    pub scrape_bearer_token_file: Option<PathBuf>,
    /// Most lines a metrics page may have before the target is marked stale.
    #[arg(long, env = "KLS_MAX_SERIES_PER_SCRAPE", default_value_t = crate::fetch::scrape::DEFAULT_MAX_SERIES)]
    pub max_series_per_scrape: usize,
    /// Most gRPC connections at once; more are closed as they arrive.
    #[arg(long, env = "KLS_GRPC_MAX_CONNECTIONS", default_value_t = crate::service::listen::DEFAULT_GRPC_MAX_CONNECTIONS)]
    pub grpc_max_connections: usize,
    /// Most concurrent HTTP/2 streams per gRPC connection (each `external-push` trigger holds one).
    #[arg(long, env = "KLS_GRPC_MAX_CONCURRENT_STREAMS", default_value_t = crate::service::listen::DEFAULT_GRPC_MAX_STREAMS)]
    pub grpc_max_concurrent_streams: u32,
    /// Most admin HTTP connections at once; more are closed as they arrive.
    #[arg(long, env = "KLS_HTTP_MAX_CONNECTIONS", default_value_t = crate::service::listen::DEFAULT_HTTP_MAX_CONNECTIONS)]
    pub http_max_connections: usize,
    /// How often the TLS files are re-read, seconds (rotated Secrets apply without a restart).
    #[arg(long, env = "KLS_TLS_RELOAD_SECONDS", default_value_t = 10.0)]
    pub tls_reload_seconds: f64,
}

impl ServeArgs {
    /// Validated server options.
    pub fn options(&self) -> anyhow::Result<ServeOptions> {
        let defaults = config::parse_defaults(&self.defaults).context("--default")?;
        anyhow::ensure!(
            self.controller_idle_seconds.is_finite() && self.controller_idle_seconds > 0.0,
            "--controller-idle-seconds must be positive"
        );
        anyhow::ensure!(
            self.tls_reload_seconds.is_finite() && self.tls_reload_seconds >= 0.1,
            "--tls-reload-seconds must be at least 0.1"
        );
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsOptions {
                files: TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                },
                reload_every: Duration::from_secs_f64(self.tls_reload_seconds),
            }),
            _ => None,
        };
        Ok(ServeOptions {
            tls,
            registry: RegistrySettings {
                defaults,
                idle: Duration::from_secs_f64(self.controller_idle_seconds),
                max_controllers: self.max_controllers.max(1),
                max_controllers_per_namespace: self.max_controllers_per_namespace.max(1),
                max_triggers_per_scaledobject: self.max_triggers_per_scaledobject.max(1),
            },
            scrape: ScrapeLimits {
                max_body_bytes: self.max_body_bytes,
                concurrency: self.scrape_concurrency.max(1),
                concurrency_per_scaledobject: self.scrape_concurrency_per_scaledobject.max(1),
                concurrency_per_namespace: self.scrape_concurrency_per_namespace.max(1),
                use_proxy: self.scrape_use_proxy,
                max_series: self.max_series_per_scrape.max(1),
                allow: std::sync::Arc::new(crate::fetch::allow::AllowList::parse(
                    &self.allow_targets,
                )?),
                ca_pem: match &self.scrape_ca {
                    Some(p) => Some(
                        std::fs::read(p).with_context(|| format!("--scrape-ca {}", p.display()))?,
                    ),
                    None => None,
                },
                bearer_token_file: self.scrape_bearer_token_file.clone(),
                max_targets: self.max_targets_per_scaledobject.max(1),
            },
            first_decision_wait: Duration::from_millis(self.first_decision_wait_ms),
            admin_token_file: self.admin_token_file.clone(),
            grpc_max_connections: self.grpc_max_connections.max(1),
            grpc_max_concurrent_streams: self.grpc_max_concurrent_streams.max(1),
            http_max_connections: self.http_max_connections.max(1),
            ..ServeOptions::default()
        })
    }
}

/// Markdown table of every metadata key.
pub fn keys_markdown() -> String {
    let mut out = String::from("| key | type | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = if k.default.is_empty() {
            "none".to_string()
        } else {
            format!("`{}`", k.default)
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.key,
            k.value.describe(),
            default,
            k.meaning
        ));
    }
    out
}

/// Why a command did not finish cleanly; it decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Invalid configuration: flags, environment, or the files they name. Exit 64 (EX_USAGE),
    /// before anything binds.
    #[error("{0:#}")]
    Config(anyhow::Error),
    /// A failure while starting or running (a port that cannot be bound, a server that
    /// stopped with an error). Exit 1.
    #[error("{0:#}")]
    Runtime(anyhow::Error),
}

impl Failure {
    /// The process exit code: 64 for configuration, 1 for start-up or run-time failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 64,
            Failure::Runtime(_) => 1,
        }
    }
}

/// Runs the parsed command line. Configuration errors are returned before anything binds.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    // The tools fail almost only on their arguments and the files those name.
    let tool = Failure::Config;
    match cli.command {
        Command::Serve(args) => {
            let options = args.options().map_err(Failure::Config)?;
            serve_with(options, &args).await.map_err(Failure::Runtime)
        }
        Command::Keys => {
            print!("{}", keys_markdown());
            Ok(())
        }
        Command::Demo(args) => {
            let shutdown = CancellationToken::new();
            serve::cancel_on_signals(shutdown.clone());
            crate::tools::demo::run(&args, shutdown)
                .await
                .map(|_| ())
                .map_err(tool)
        }
        Command::Record(args) => {
            let shutdown = CancellationToken::new();
            serve::cancel_on_signals(shutdown.clone());
            crate::tools::replay::run_record(&args, shutdown)
                .await
                .map_err(tool)
        }
        Command::Replay(args) => {
            blocking(move || crate::tools::replay::run_replay(&args), "replay")
                .await
                .map_err(tool)
        }
        Command::Simulate(args) => {
            blocking(move || crate::tools::simulate::run(&args), "simulation")
                .await
                .map_err(tool)
        }
    }
}

/// Runs CPU-bound work off the async workers.
async fn blocking(
    work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    what: &str,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .with_context(|| format!("{what} task"))?
}

async fn serve_with(options: ServeOptions, args: &ServeArgs) -> anyhow::Result<()> {
    let grpc = tokio::net::TcpListener::bind(&args.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC listener {}", args.grpc_listen))?;
    let http = tokio::net::TcpListener::bind(&args.http_listen)
        .await
        .with_context(|| format!("binding HTTP listener {}", args.http_listen))?;
    let shutdown = CancellationToken::new();
    serve::cancel_on_signals(shutdown.clone());
    serve::run(options, grpc, http, shutdown).await
}

#[cfg(test)]
mod tests {
    /// The README's metadata reference is `keys` output, so it cannot drift from the table the
    /// parser reads.
    #[test]
    fn the_readme_metadata_table_is_the_keys_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README");
        let begin = readme.find("<!-- keys:begin -->\n").expect("begin marker")
            + "<!-- keys:begin -->\n".len();
        let end = readme.find("<!-- keys:end -->").expect("end marker");
        assert_eq!(
            &readme[begin..end],
            super::keys_markdown(),
            "run `cargo run -- keys` and paste it between the markers"
        );
    }
}
