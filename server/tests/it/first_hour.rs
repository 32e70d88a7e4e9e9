//! The first hour with `nvrctl`, run as a person runs it (the binary, its standard input and
//! output): bootstrap forgiving a mistyped code and resuming after a crash.
use crate::harness::{ADMIN_PASSWORD, TestServer, temp_dir, workspace_binary};
use opennvr_server::security::totp::TotpSeed;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

/// `nvrctl args…` against `s`, with its session under `home`, the password in the environment,
/// and standard input and output piped.
fn nvrctl(s: &TestServer, home: &std::path::Path, args: &[&str]) -> Child {
    Command::new(workspace_binary("nvrctl"))
        .args(args)
        .env("NVRCTL_SERVER", s.url())
        .env("NVRCTL_PASSWORD", ADMIN_PASSWORD)
        .env("XDG_CONFIG_HOME", home)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `child`'s output up to the line giving the TOTP secret; returns the secret.
fn read_secret(child: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "nvrctl ended without showing a secret");
        if let Some(secret) = line.trim().strip_prefix("secret: ") {
            return (secret.to_owned(), out);
        }
    }
}

fn code_for(secret: &str, s: &TestServer) -> String {
    TotpSeed::from_base32(secret).unwrap().code_at(s.clock_now())
}

/// A six-digit code that is not `right`.
fn wrong(right: &str) -> String {
    if right == "123456" { "654321".into() } else { "123456".into() }
}

fn answer(stdin: &mut ChildStdin, line: &str) {
    stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_asks_again_after_a_wrong_code_with_the_same_secret() {
    let s = TestServer::start().await;
    let home = temp_dir("nvrctl-home");
    let token = s.data_dir.join("setup-token");
    let token = token.to_str().unwrap();
    let mut child = nvrctl(&s, &home, &["bootstrap", "--setup-token-file", token, "--username", "admin"]);
    let (secret, out) = read_secret(&mut child);
    let right = code_for(&secret, &s);
    let mut stdin = child.stdin.take().unwrap();
    answer(&mut stdin, &wrong(&right));
    answer(&mut stdin, &right);
    let done = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
        (child.wait_with_output().unwrap(), rest)
    })
    .await
    .unwrap();
    let (status, rest) = done;
    let err = String::from_utf8_lossy(&status.stderr).into_owned();
    assert!(status.status.success(), "{err}");
    assert!(err.contains("error: the code does not match the new secret"), "{err}");
    assert!(rest.iter().any(|l| l.starts_with("Recovery codes")), "{rest:?}");
    assert!(!rest.iter().any(|l| l.contains("secret: ")), "one secret shown, never a second: {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_after_a_bootstrap_that_died_resumes_the_enrolment_with_the_same_secret() {
    let s = TestServer::start().await;
    let home = temp_dir("nvrctl-home");
    let token = s.data_dir.join("setup-token");
    let mut child =
        nvrctl(&s, &home, &["bootstrap", "--setup-token-file", token.to_str().unwrap(), "--username", "admin"]);
    let (first, _) = read_secret(&mut child);
    // The process dies before the code is typed: the administrator exists, the factor is pending.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut login = nvrctl(&s, &home, &["login", "--username", "admin"]);
    let (again, _out) = read_secret(&mut login);
    assert_eq!(again, first, "the secret already in the authenticator app is the one asked for");
    let mut stdin = login.stdin.take().unwrap();
    answer(&mut stdin, &code_for(&again, &s));
    let status = tokio::task::spawn_blocking(move || login.wait_with_output().unwrap()).await.unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
}
