//! The `mediator` binary: parse the command line, run.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logging starts in `cli::run`, once the config (log format, masking)
    // is read.
    let cli = mediator::cli::Cli::parse();
    match mediator::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mediator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
