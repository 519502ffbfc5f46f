//! The mcpod binary: parse the command line, log to stderr, run.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli::Command::is_serve(&cli.command));
    // One thread: a proxied call then hops no threads (measured: ~90 µs less
    // added latency per call than two workers); hashing and file locks run on
    // tokio's blocking pool anyway.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpod: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(cli.command));
    // Do not wait for a blocking stdin read that can never finish.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcpod: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(serving: bool) {
    let default = if serving {
        mcpod::logging::DEFAULT_FILTER
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPOD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(mcpod::logging::LimitedStderr)
        .with_ansi(false)
        .init();
}
