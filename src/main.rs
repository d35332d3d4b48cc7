//! Thin entry point: parse the command line, install logging, run, map errors to exit codes.

use clap::Parser;

use keda_llm_scaler::cli::{self, Cli};
use keda_llm_scaler::telemetry;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing(cli.log_format == "json");
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("keda-llm-scaler: {e:#}");
            // 64 (EX_USAGE) for configuration problems, as linkerd2-proxy does.
            std::process::ExitCode::from(64)
        }
    }
}
