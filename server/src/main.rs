//! `opennvr-server`: parses configuration, sets up logging, and runs `serve` or `migrate`.
use clap::Parser;
use opennvr_server::config::{Cli, Command};
use opennvr_server::server::{Server, describe, migrate_only};
use opennvr_server::{Config, clock::SystemClock};
use std::process::ExitCode;
use std::sync::Arc;

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: not in files, pipes or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal(tx: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutdown signal received");
    let _ = tx.send(true);
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("opennvr-server: {}", describe(&e));
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate_only(&config).await.map(|n| tracing::info!(applied = n, "migrations done")),
        Command::Serve => match Server::boot(config, Arc::new(SystemClock)).await {
            Ok(server) => {
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(shutdown_signal(tx));
                server.serve(rx).await
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", describe(&e));
            eprintln!("opennvr-server: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
