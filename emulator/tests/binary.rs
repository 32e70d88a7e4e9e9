//! The `mediamtx-emulator` binary as the dashboard's browser tests run it: it prints where its API
//! and test controls listen, refuses API calls without a JWT as MediaMTX does, and stops on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_serves_the_strict_api_and_its_test_controls() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mediamtx-emulator"))
        .args(["--jwks-url", "http://127.0.0.1:9/.well-known/jwks.json", "--auto-available"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let api = lines.next().unwrap().unwrap();
    let control = lines.next().unwrap().unwrap();
    let api = api.strip_prefix("api ").expect("first line names the API").to_owned();
    let control = control.strip_prefix("control ").expect("second line names the controls").to_owned();

    let http = reqwest::Client::new();
    let refused = http.get(format!("{api}/v3/config/paths/list")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the API wants a JWT");
    let unknown = http.post(format!("{control}/paths/opennvr-nope/available")).body("false").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let malformed = http.post(format!("{control}/paths/opennvr-nope/available")).body("maybe").send().await.unwrap();
    assert_eq!(malformed.status(), 400);

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(child.wait().unwrap().success(), "SIGTERM ends it cleanly");
}
