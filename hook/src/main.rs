//! `opennvr-hook EVENT`: run by MediaMTX (without a shell) on segment and availability events, it
//! POSTs the event to OpenNVR's hook endpoint. Standard library only, so that it builds as one small
//! static binary for an image built `FROM bluenviron/mediamtx` (which has no shell and no HTTP client).
//!
//! Environment: `MTX_PATH`, `MTX_SEGMENT_PATH`, `MTX_SEGMENT_DURATION` (set by MediaMTX);
//! `OPENNVR_HOOK_URL` (default `http://opennvr:7450/hooks/mediamtx`) and `OPENNVR_HOOK_SECRET`
//! (given to MediaMTX's environment, never written into path configs).
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Events MediaMTX runs the hook for.
const EVENTS: [&str; 4] = ["segment-create", "segment-complete", "available", "unavailable"];

/// An `http://host[:port]/path` URL, split.
fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("OPENNVR_HOOK_URL must be an http:// URL")?;
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse::<u16>().map_err(|_| "bad port in OPENNVR_HOOK_URL")?),
        None => (authority.to_owned(), 80),
    };
    // An IPv6 literal is written in brackets in a URL, and resolved without them.
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).map(str::to_owned).unwrap_or(host);
    if host.is_empty() {
        return Err("OPENNVR_HOOK_URL has no host".into());
    }
    Ok((host, port, path))
}

/// Sends `body` to `url` with the bearer `secret`; the HTTP status code of the answer.
fn post(url: &str, secret: &str, body: &str) -> Result<u16, String> {
    let (host, port, path) = split_url(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("{e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| "not an HTTP answer".to_owned())
}

/// The request body for `event` from MediaMTX's variables.
fn body(event: &str, var: impl Fn(&str) -> Option<String>) -> String {
    let mut b = serde_json::Map::new();
    b.insert("event".into(), event.into());
    b.insert("path".into(), var("MTX_PATH").unwrap_or_default().into());
    if let Some(p) = var("MTX_SEGMENT_PATH") {
        b.insert("segment_path".into(), p.into());
    }
    if let Some(d) = var("MTX_SEGMENT_DURATION") {
        b.insert("segment_duration".into(), d.into());
    }
    serde_json::Value::Object(b).to_string()
}

fn main() -> ExitCode {
    let event = std::env::args().nth(1).unwrap_or_default();
    if !EVENTS.contains(&event.as_str()) {
        eprintln!("opennvr-hook: usage: opennvr-hook {}", EVENTS.join("|"));
        return ExitCode::from(2);
    }
    let Ok(secret) = std::env::var("OPENNVR_HOOK_SECRET") else {
        eprintln!("opennvr-hook: OPENNVR_HOOK_SECRET is not set in MediaMTX's environment");
        return ExitCode::from(2);
    };
    let url = std::env::var("OPENNVR_HOOK_URL").unwrap_or_else(|_| "http://opennvr:7450/hooks/mediamtx".into());
    match post(&url, &secret, &body(&event, |k| std::env::var(k).ok())) {
        Ok(code) if (200..300).contains(&code) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("opennvr-hook: {event}: OpenNVR answered HTTP {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("opennvr-hook: {event}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://opennvr:7450/hooks/mediamtx"),
            Ok(("opennvr".into(), 7450, "/hooks/mediamtx".into()))
        );
        assert_eq!(split_url("http://h"), Ok(("h".into(), 80, "/".into())));
        assert!(split_url("https://h/x").is_err());
        assert_eq!(split_url("http://[::1]:7450/hooks/mediamtx"), Ok(("::1".into(), 7450, "/hooks/mediamtx".into())));
    }

    #[test]
    fn posts_the_event_with_the_secret() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).expect("read");
            s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").expect("write");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let vars = |k: &str| match k {
            "MTX_PATH" => Some("opennvr-abc".to_owned()),
            "MTX_SEGMENT_PATH" => Some("/recordings/opennvr-abc/2026-11-25_08-00-00-000000+0000.mp4".to_owned()),
            _ => None,
        };
        let code = post(&format!("http://127.0.0.1:{port}/hooks/mediamtx"), "s3cret", &body("segment-create", vars));
        assert_eq!(code, Ok(202));
        let request = server.join().expect("join");
        assert!(request.starts_with("POST /hooks/mediamtx HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Authorization: Bearer s3cret\r\n"));
        assert!(request.ends_with(r#"{"event":"segment-create","path":"opennvr-abc","segment_path":"/recordings/opennvr-abc/2026-11-25_08-00-00-000000+0000.mp4"}"#), "{request}");
    }
}
