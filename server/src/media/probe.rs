//! A camera connection test: a real RTSP handshake (DESCRIBE, SETUP, PLAY, first frame) with the
//! `retina` client, against an address already checked to lie in the camera networks (the name is
//! resolved once by the caller and the connection goes to that address: no DNS rebinding).
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Ok,
    Unreachable,
    Timeout,
    AuthFailed,
    NotFound,
    TlsError,
    Unsupported,
    /// Something answers on the port, but not an RTSP server.
    NotRtsp,
    /// An RTSP source without a video track.
    NoVideo,
}

/// A track the source offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTrack {
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// What a probe found. `message` never holds credentials.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub outcome: ProbeOutcome,
    pub reachable: bool,
    pub message: String,
    pub tracks: Vec<ProbeTrack>,
    pub describe_latency: Option<Duration>,
    pub first_frame_latency: Option<Duration>,
}

impl ProbeReport {
    fn failed(outcome: ProbeOutcome, reachable: bool, message: impl Into<String>) -> ProbeReport {
        ProbeReport {
            outcome,
            reachable,
            message: message.into(),
            tracks: Vec::new(),
            describe_latency: None,
            first_frame_latency: None,
        }
    }
}

/// What to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The source URL with its host replaced by the checked address.
    pub url: url::Url,
    pub address: SocketAddr,
    pub tls: bool,
    pub username: String,
    pub password: String,
    pub udp: bool,
}

fn classify(e: &retina::Error) -> (ProbeOutcome, bool) {
    match e.status_code() {
        Some(401) | Some(403) => (ProbeOutcome::AuthFailed, true),
        Some(404) => (ProbeOutcome::NotFound, true),
        Some(_) => (ProbeOutcome::Unsupported, true),
        None => {
            let text = e.to_string();
            if text.contains("Unable to connect") || text.contains("onnection refused") || text.contains("No route") {
                (ProbeOutcome::Unreachable, false)
            } else {
                (ProbeOutcome::Unsupported, true)
            }
        }
    }
}

/// Probes `target` within `timeout`.
pub async fn probe(target: ProbeTarget, timeout: Duration) -> ProbeReport {
    let started = Instant::now();
    // Reachability first, to the checked address only.
    let connect = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target.address)).await;
    match connect {
        Err(_) => return ProbeReport::failed(ProbeOutcome::Timeout, false, "no answer to the TCP connection"),
        Ok(Err(e)) => return ProbeReport::failed(ProbeOutcome::Unreachable, false, format!("cannot connect: {e}")),
        Ok(Ok(_)) => {}
    }
    if target.tls {
        return ProbeReport::failed(
            ProbeOutcome::Unsupported,
            true,
            "reachable; the probe speaks plain RTSP only, so an rtsps:// source is checked by MediaMTX once the camera is added",
        );
    }
    let remaining = timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(remaining, speaks_rtsp(&target)).await {
        Err(_) => return ProbeReport::failed(ProbeOutcome::Timeout, true, "no answer to an RTSP OPTIONS request"),
        Ok(Err(what)) => return ProbeReport::failed(ProbeOutcome::NotRtsp, true, what),
        Ok(Ok(())) => {}
    }
    let remaining = timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(remaining, handshake(&target, started)).await {
        Ok(report) => report,
        Err(_) => ProbeReport::failed(ProbeOutcome::Timeout, true, "the camera did not answer in time"),
    }
}

/// Whether the server at the checked address answers an RTSP `OPTIONS` as an RTSP server (any
/// status, even 401, is an RTSP answer); Err says what answered instead.
async fn speaks_rtsp(target: &ProbeTarget) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(target.address).await.map_err(|e| format!("cannot connect: {e}"))?;
    let mut url = target.url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let request = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: OpenNVR probe\r\n\r\n");
    conn.write_all(request.as_bytes()).await.map_err(|e| format!("the connection failed: {e}"))?;
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < 9 {
        match conn.read(&mut head[got..]).await {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("the connection failed: {e}")),
        }
    }
    let answer = String::from_utf8_lossy(&head[..got]).to_string();
    if answer.starts_with("RTSP/1.") {
        return Ok(());
    }
    let what = match answer.split_whitespace().next() {
        Some(p) if p.starts_with("HTTP/") => "an HTTP server".to_owned(),
        Some(_) => "something that is not an RTSP server".to_owned(),
        None => "nothing (the connection closed without an answer)".to_owned(),
    };
    Err(format!("the port is open, but {what} answered an RTSP request"))
}

async fn handshake(target: &ProbeTarget, started: Instant) -> ProbeReport {
    let creds = (!target.username.is_empty())
        .then(|| retina::client::Credentials { username: target.username.clone(), password: target.password.clone() });
    let options = retina::client::SessionOptions::default().creds(creds).user_agent("OpenNVR probe".into());
    let mut session = match retina::client::Session::describe(target.url.clone(), options).await {
        Ok(s) => s,
        Err(e) => {
            let (outcome, reachable) = classify(&e);
            return ProbeReport::failed(outcome, reachable, describe_error(&e));
        }
    };
    let describe_latency = started.elapsed();
    let mut tracks: Vec<ProbeTrack> = session
        .streams()
        .iter()
        .map(|s| {
            let (width, height) = match s.parameters() {
                Some(retina::codec::ParametersRef::Video(v)) => v.pixel_dimensions(),
                _ => (0, 0),
            };
            ProbeTrack { codec: s.encoding_name().to_uppercase(), width, height }
        })
        .collect();
    let Some(video) = session.streams().iter().position(|s| s.media() == "video") else {
        let mut r = ProbeReport::failed(ProbeOutcome::NoVideo, true, "the source offers no video track");
        r.tracks = tracks;
        r.describe_latency = Some(describe_latency);
        return r;
    };
    let transport = if target.udp {
        retina::client::Transport::Udp(Default::default())
    } else {
        retina::client::Transport::Tcp(Default::default())
    };
    let setup = session.setup(video, retina::client::SetupOptions::default().transport(transport)).await;
    let playing = match setup {
        Ok(()) => session.play(retina::client::PlayOptions::default()).await,
        Err(e) => Err(e),
    };
    let mut frames = match playing.and_then(|p| p.demuxed()) {
        Ok(f) => f,
        Err(e) => {
            let (outcome, reachable) = classify(&e);
            let mut r = ProbeReport::failed(outcome, reachable, describe_error(&e));
            r.tracks = tracks;
            r.describe_latency = Some(describe_latency);
            return r;
        }
    };
    loop {
        match frames.next().await {
            Some(Ok(retina::codec::CodecItem::VideoFrame(_))) => {
                // Parameters are known by the first frame even when the SDP did not carry them.
                if let Some(retina::codec::ParametersRef::Video(v)) = frames.streams()[video].parameters() {
                    let (width, height) = v.pixel_dimensions();
                    if let Some(t) = tracks.get_mut(video) {
                        t.width = width;
                        t.height = height;
                    }
                }
                return ProbeReport {
                    outcome: ProbeOutcome::Ok,
                    reachable: true,
                    message: String::new(),
                    tracks,
                    describe_latency: Some(describe_latency),
                    first_frame_latency: Some(started.elapsed()),
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                let mut r = ProbeReport::failed(ProbeOutcome::Unsupported, true, describe_error(&e));
                r.tracks = tracks;
                r.describe_latency = Some(describe_latency);
                return r;
            }
            None => {
                let mut r = ProbeReport::failed(ProbeOutcome::Unsupported, true, "the stream ended before a frame");
                r.tracks = tracks;
                r.describe_latency = Some(describe_latency);
                return r;
            }
        }
    }
}

/// The first line of a retina error (the rest can be a long dump of the exchange).
fn describe_error(e: &retina::Error) -> String {
    e.to_string().lines().next().unwrap_or("").chars().take(300).collect()
}
