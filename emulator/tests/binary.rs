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

/// Started as MediaMTX is, from a `mediamtx.yml`: it refuses a file MediaMTX would refuse, naming
/// the key, and otherwise serves the API where the file says.
#[tokio::test]
async fn the_binary_starts_from_a_mediamtx_yml_and_refuses_what_mediamtx_refuses() {
    let dir = std::env::temp_dir().join(format!("emulator-yml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let good = format!(
        "api: true\napiAddress: 127.0.0.1:{port}\nauthMethod: jwt\nauthJWTJWKS: http://127.0.0.1:9/jwks\nplayback: false\npaths: {{}}\n"
    );
    let bad = dir.join("bad.yml");
    std::fs::write(&bad, format!("{good}recordEverything: yes\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mediamtx-emulator")).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("recordEverything: not a MediaMTX setting"));
    let file = dir.join("mediamtx.yml");
    std::fs::write(&file, good).unwrap();
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_mediamtx-emulator")).arg(&file).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), format!("api http://127.0.0.1:{port}"));
    let refused = reqwest::get(format!("http://127.0.0.1:{port}/v3/config/paths/list")).await.unwrap();
    assert_eq!(refused.status(), 401, "the API wants a JWT checked against the file's JWKS");
    child.kill().unwrap();
    child.wait().unwrap();
}
