//! `opennvr-server`: parses configuration, sets up logging, and runs `serve` or `migrate`.
use clap::Parser;
use opennvr_server::config::{Cli, Command};
use opennvr_server::server::{Server, describe, migrate_only};
use opennvr_server::{Config, clock::SystemClock};
use std::process::ExitCode;
use std::sync::Arc;

/// Standard output for the log that never fails: when whoever read the log is gone (`| tee` and a
/// Ctrl-C), lines are dropped rather than the server dying mid-shutdown with its database running.
struct LogOut;

impl std::io::Write for LogOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stdout().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

/// A line on standard error, never failing (see [`LogOut`]).
fn say(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "opennvr-server: {text}");
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: not in files, pipes or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(|| LogOut);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGTERM and SIGINT, listened for from the start: a Ctrl-C while the server boots (creating or
/// migrating its database) is then a shutdown once boot ends, not a kill that orphans PostgreSQL.
type Signals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

fn listen_for_signals() -> std::io::Result<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
}

async fn shutdown_signal((mut term, mut int): Signals, tx: tokio::sync::watch::Sender<bool>) {
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
            say(format_args!("{}", describe(&e)));
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate_only(&config).await.map(|n| tracing::info!(applied = n, "migrations done")),
        Command::Serve => {
            let signals = match listen_for_signals() {
                Ok(s) => s,
                Err(e) => {
                    say(format_args!("cannot listen for signals: {e}"));
                    return ExitCode::FAILURE;
                }
            };
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(shutdown_signal(signals, tx));
            match Server::boot(config, Arc::new(SystemClock)).await {
                Ok(server) => server.serve(rx).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", describe(&e));
            say(format_args!("{}", describe(&e)));
            ExitCode::FAILURE
        }
    }
}
