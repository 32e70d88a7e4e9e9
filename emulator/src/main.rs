//! `mediamtx-emulator`: the emulator as a process, for tests that drive a real server binary (the
//! dashboard's browser tests). It is a stand-in for MediaMTX's Control API in tests only, never a
//! media server.
//!
//! Usage: `mediamtx-emulator --jwks-url URL [--auto-available]`, or `mediamtx-emulator FILE
//! [--auto-available]` as MediaMTX itself is started: from a `mediamtx.yml`, checked as MediaMTX
//! checks it (unknown keys and wrong kinds of value refused), whose `apiAddress`, `playbackAddress`
//! and JWT settings it follows. OpenNVR's supervision of MediaMTX is tested with it.
//! Prints `api http://127.0.0.1:PORT` (the Control API) and `control http://127.0.0.1:PORT` (the test
//! controls), then serves until SIGTERM or Ctrl-C. With `--auto-available` every path the server adds
//! becomes available at once, as MediaMTX reports a camera that delivers media.
//!
//! Test controls: `POST /paths/{name}/available` with body `true` or `false` flips a path's source;
//! `GET /paths` lists path names.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use mediamtx_emulator::{AuthConfig, ConfigFile, Emulator};
use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!("usage: mediamtx-emulator (--jwks-url URL | MEDIAMTX_YML) [--auto-available]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    // Listened for from the start: a stop asked for at any time is a clean stop.
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mediamtx-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut args = std::env::args().skip(1);
    let (mut jwks_url, mut file, mut auto) = (None, None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--jwks-url" => jwks_url = args.next(),
            "--auto-available" => auto = true,
            other if !other.starts_with('-') && file.is_none() => file = Some(other.to_owned()),
            _ => return usage(),
        }
    }
    let started = match (jwks_url, file) {
        (Some(jwks_url), None) => {
            Emulator::start(AuthConfig { jwks_url: Some(jwks_url), ..AuthConfig::default() }).await
        }
        (None, Some(file)) => from_file(&file).await,
        _ => return usage(),
    };
    let emulator = match started {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mediamtx-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let controls = axum::Router::new()
        .route("/paths", get(|State(e): State<Emulator>| async move { e.path_names().join("\n") }))
        .route("/paths/{name}/available", post(set_available))
        .with_state(emulator.clone());
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await.and_then(|l| Ok((l.local_addr()?, l))) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mediamtx-emulator: cannot listen for test controls: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (control_addr, listener) = listener;
    tokio::spawn(async move {
        let _ = axum::serve(listener, controls).await;
    });
    if auto {
        let e = emulator.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            loop {
                for name in e.path_names() {
                    if seen.insert(name.clone()) {
                        e.set_available(&name, true);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "api {}\ncontrol http://{control_addr}", emulator.url());
    let _ = out.flush();
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    };
    eprintln!("mediamtx-emulator: stopping on {why}");
    ExitCode::SUCCESS
}

/// An emulator started as MediaMTX starts from `file`.
async fn from_file(file: &str) -> Result<Emulator, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let config = ConfigFile::parse(&text).map_err(|e| format!("{file}: {e}"))?;
    let emulator = Emulator::start_at(config.api_address, config.auth).await?;
    if let Some(playback) = config.playback_address {
        emulator.also_listen(playback).await?;
    }
    Ok(emulator)
}

async fn set_available(State(e): State<Emulator>, Path(name): Path<String>, body: String) -> (StatusCode, String) {
    match body.trim() {
        "true" => e.set_available(&name, true),
        "false" => e.set_available(&name, false),
        other => return (StatusCode::BAD_REQUEST, format!("body must be true or false, not {other:?}\n")),
    }
    if e.path_names().contains(&name) {
        (StatusCode::OK, String::new())
    } else {
        (StatusCode::NOT_FOUND, format!("no path {name:?}\n"))
    }
}
