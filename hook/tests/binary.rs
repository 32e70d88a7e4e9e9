//! The `opennvr-hook` binary as MediaMTX runs it: no shell, the event as its argument, everything
//! else in its environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::io::{Read, Write};
use std::process::Command;

#[test]
fn the_hook_posts_its_event_and_exits_zero_when_opennvr_takes_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let status = Command::new(env!("CARGO_BIN_EXE_opennvr-hook"))
        .arg("available")
        .env_clear()
        .env("MTX_PATH", "opennvr-abc")
        .env("OPENNVR_HOOK_URL", format!("http://127.0.0.1:{port}/hooks/mediamtx"))
        .env("OPENNVR_HOOK_SECRET", "a-secret-of-the-supervised-mediamtx")
        .status()
        .unwrap();
    assert!(status.success());
    let request = server.join().unwrap();
    assert!(request.contains("Authorization: Bearer a-secret-of-the-supervised-mediamtx\r\n"), "{request}");
    assert!(request.ends_with(r#"{"event":"available","path":"opennvr-abc"}"#), "{request}");
}

#[test]
fn without_its_secret_the_hook_refuses_to_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_opennvr-hook")).arg("available").env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENNVR_HOOK_SECRET is not set"));
}
