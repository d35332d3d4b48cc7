//! Thin entry point: parse the command line, install logging, run, map errors to exit codes.

use clap::Parser;

use keda_llm_scaler::cli::{self, Cli};
use keda_llm_scaler::service::telemetry;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keda_llm_scaler::service::tls::install_crypto_provider();
    let cli = Cli::parse();
    // Commands with their own terminal output log warnings only, unless RUST_LOG says otherwise.
    let level = match cli.command {
        cli::Command::Serve(_) | cli::Command::Record(_) => "info",
        _ => "warn",
    };
    telemetry::init_tracing(cli.log_format == "json", level);
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("keda-llm-scaler: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
