//! The `nvrctl` binary as a shell runs it: usage errors from the command line, and the one-line
//! error of a server that cannot be reached, naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::process::Command;

#[test]
fn an_unreachable_server_is_named_once_with_the_next_step() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}");
    let home = std::env::temp_dir().join(format!("nvrctl-binary-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_nvrctl"))
        .args(["--server", &url, "whoami"])
        .env("NVRCTL_API_KEY", "nvr_ak_not-a-real-key")
        .env("XDG_CONFIG_HOME", &home)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: cannot reach the server at {url}: nothing listens there (connection refused)\n\
             next: start it, or name the right one with --server URL (or NVRCTL_SERVER)\n"
        )
    );
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_nvrctl")).arg("camreas").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cameras"), "clap suggests the command meant");
}
