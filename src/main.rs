use std::process::ExitCode;

use axe_gateway::cli;
use clap::Parser;

#[actix_web::main]
async fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is reported by the variable it breaks.
    let _ = dotenvy::dotenv();
    if let Err(e) = axe_gateway::telemetry::logging::init() {
        eprintln!("axe-gateway: configuration error: {e}");
        return ExitCode::FAILURE;
    }
    match cli::run(cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axe-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
