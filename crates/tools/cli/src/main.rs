//! `ferro`, Ferrosphere's command line, in `azsphere`'s command shape. It parses arguments,
//! renders results (`--output table|json`) and words errors so that they say what to do next;
//! everything else lives in the libraries it calls.

mod cli;
mod commands;
mod config;
mod output;
mod progress;
mod session;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.chain().any(|e| e.is::<output::StdoutClosed>()) => {
            ExitCode::from(output::STDOUT_CLOSED_STATUS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                for line in cause.to_string().lines() {
                    eprintln!("  {line}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// Structured logs on standard error: warnings by default, more with `-v`; `RUST_LOG` wins.
fn init_logging(verbosity: u8) {
    let default = match verbosity {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
