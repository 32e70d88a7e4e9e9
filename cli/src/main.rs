//! `nvrctl`: the OpenNVR command-line client (see the library for the commands).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match nvrctl::run_args(args.clone()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<clap::Error>() {
            Some(usage) => usage.exit(),
            None => {
                use std::io::Write;
                let text = nvrctl::report::error_text(&e, &nvrctl::server_of(&args).await);
                let _ = writeln!(std::io::stderr(), "{text}");
                ExitCode::FAILURE
            }
        },
    }
}
