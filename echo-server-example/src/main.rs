//! `echoai`: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use echo_server_example::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        echo_server_example::init_tracing(cli.log.as_deref().unwrap_or("warn"), false);
    }
    match echo_server_example::commands::dispatch(cli.command, cli.log.as_deref()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut shown = e.to_string();
            eprintln!("error: {shown}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                // Wrappers that embed their source's message would print it twice.
                let text = cause.to_string();
                if !shown.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                shown = text;
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
