//! `nvrctl`: the OpenNVR command-line client (see the library for the commands).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match nvrctl::run_args(std::env::args_os().collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<clap::Error>() {
            Some(usage) => usage.exit(),
            None => {
                eprintln!("nvrctl: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
