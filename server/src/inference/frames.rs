//! Frames of a camera as JPEG images: an `ffmpeg` child reading the camera's MediaMTX restream over
//! RTSP (with a short-lived read token) and writing one JPEG per frame interval to its stdout, which
//! [`JpegSplitter`] cuts into images. The child dies with the server: it gets SIGKILL when the
//! thread that started it ends (a parent-death signal), when its handle is dropped, or when it is
//! stopped, and it is always waited for (no zombie).
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest JPEG accepted from `ffmpeg`; a bigger run of bytes is discarded as garbage.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Widest frame sent to adapters (larger ones are scaled down, keeping the aspect ratio).
pub const MAX_WIDTH: u32 = 1920;
/// How long ffmpeg waits on a silent socket before giving up (it is then restarted).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Cuts a byte stream of concatenated JPEG images into images. It follows the marker segments, so
/// bytes that look like an end marker inside a table do not cut an image short; bytes before a
/// start marker are skipped.
#[derive(Debug, Default)]
pub struct JpegSplitter {
    buf: Vec<u8>,
}

/// Where the image at the start of `b` ends: `Some(Ok(len))` when whole, `Some(Err(skip))` when
/// `b` does not hold a well-formed image there (skip that many bytes), `None` when more is needed.
fn image_end(b: &[u8]) -> Option<Result<usize, usize>> {
    if b.len() < 2 {
        return None;
    }
    if b[0] != 0xff || b[1] != 0xd8 {
        return Some(Err(1));
    }
    let mut i = 2;
    loop {
        // Markers may be preceded by fill bytes (0xff).
        while i < b.len() && b[i] == 0xff && b.get(i + 1) == Some(&0xff) {
            i += 1;
        }
        if i + 1 >= b.len() {
            return None;
        }
        if b[i] != 0xff {
            return Some(Err(2));
        }
        let marker = b[i + 1];
        match marker {
            0xd9 => return Some(Ok(i + 2)),
            // Markers without a length.
            0x01 | 0xd0..=0xd7 => i += 2,
            // Another start: the image before it was cut; resume from there.
            0xd8 => return Some(Err(i)),
            _ => {
                if i + 3 >= b.len() {
                    return None;
                }
                let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
                if len < 2 {
                    return Some(Err(2));
                }
                i += 2 + len;
                if marker == 0xda {
                    // Entropy-coded data: runs until a marker that is neither a stuffed 0xff00 nor a
                    // restart marker.
                    loop {
                        if i + 1 >= b.len() {
                            return None;
                        }
                        if b[i] == 0xff && b[i + 1] != 0x00 && !(0xd0..=0xd7).contains(&b[i + 1]) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
}

impl JpegSplitter {
    /// Adds `data`; returns the images it completed.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        while start < self.buf.len() {
            match image_end(&self.buf[start..]) {
                Some(Ok(len)) => {
                    out.push(self.buf[start..start + len].to_vec());
                    start += len;
                }
                Some(Err(skip)) => start += skip,
                None => break,
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_FRAME_BYTES {
            self.buf.clear();
        }
        out
    }
}

/// Where frames come from and how to decode them.
#[derive(Debug, Clone)]
pub struct FrameSourceConfig {
    /// RTSP base URL of MediaMTX as the server reaches it (e.g. `rtsp://127.0.0.1:8554`); `None` =
    /// no frames (bindings wait).
    pub rtsp_url: Option<String>,
    /// The `ffmpeg` program.
    pub ffmpeg: PathBuf,
}

/// The arguments of an `ffmpeg` that reads `url` and writes one JPEG every `interval` to stdout.
/// (ffmpeg takes RTSP credentials only in the URL: the read token it carries is scoped to this one
/// path, read only, and expires within a minute — ffmpeg needs it only to connect.)
fn args(url: &str, interval: Option<Duration>) -> Vec<String> {
    let mut a: Vec<String> = ["-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-timeout"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    a.push(SOCKET_TIMEOUT.as_micros().to_string());
    a.extend(["-i".to_owned(), url.to_owned(), "-an".to_owned(), "-sn".to_owned()]);
    let scale = format!("scale='min({MAX_WIDTH},iw)':-2");
    match interval {
        Some(every) => {
            a.push("-vf".to_owned());
            a.push(format!("fps=1000/{},{scale}", every.as_millis().max(1)));
        }
        None => {
            a.extend(["-frames:v".to_owned(), "1".to_owned(), "-vf".to_owned(), scale]);
        }
    }
    a.extend(["-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "4", "-"].iter().map(|s| (*s).to_owned()));
    a
}

/// Starts `ffmpeg` on `url` (see [`args`]), with stdout and stderr piped. The child gets SIGKILL
/// if the thread that spawned it ends or the handle is dropped.
pub fn spawn(
    ffmpeg: &std::path::Path,
    url: &str,
    interval: Option<Duration>,
) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(ffmpeg);
    cmd.args(args(url, interval)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    crate::process::end_with_server(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    cmd.spawn()
}

/// Reads what `ffmpeg` said on stderr (its last 2 KiB), with `secret` blotted out.
pub async fn stderr_tail(mut err: impl AsyncRead + Unpin, secret: &str) -> String {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = err.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&chunk[..n]);
        if all.len() > 2048 {
            all.drain(..all.len() - 2048);
        }
    }
    redact(&String::from_utf8_lossy(&all), secret)
}

/// `text` without `secret` in it.
pub fn redact(text: &str, secret: &str) -> String {
    let t = text.trim();
    if secret.is_empty() { t.to_owned() } else { t.replace(secret, "***") }
}

/// The URL of camera path `path` under `base`, with `token` as the RTSP password.
pub fn stream_url(base: &str, path: &str, token: &str) -> String {
    match url::Url::parse(&format!("{base}/{path}")) {
        Ok(mut u) => {
            let _ = u.set_username("opennvr");
            let _ = u.set_password(Some(token));
            u.to_string()
        }
        Err(_) => format!("{base}/{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny well-formed JPEG-like stream: SOI, a DQT whose table holds FF D9, SOS with stuffed
    /// and restart bytes, EOI.
    fn image(tag: u8) -> Vec<u8> {
        let mut v = vec![0xff, 0xd8];
        v.extend([0xff, 0xdb, 0x00, 0x06, 0xff, 0xd9, tag, 0x00]);
        v.extend([0xff, 0xda, 0x00, 0x04, 0x01, 0x02]);
        v.extend([0x11, 0xff, 0x00, 0x22, 0xff, 0xd3, 0x33]);
        v.extend([0xff, 0xd9]);
        v
    }

    #[test]
    fn splits_images_across_chunks_and_ignores_end_bytes_in_tables() {
        let mut stream = b"noise".to_vec();
        stream.extend(image(1));
        stream.extend(image(2));
        let mut s = JpegSplitter::default();
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            got.extend(s.push(chunk));
        }
        assert_eq!(got, vec![image(1), image(2)]);
        assert!(s.push(&[]).is_empty());
    }

    #[test]
    fn a_cut_image_is_dropped_and_the_next_one_kept() {
        let mut cut = image(1);
        cut.truncate(10);
        cut.extend(image(2));
        let mut s = JpegSplitter::default();
        assert_eq!(s.push(&cut), vec![image(2)]);
    }

    #[test]
    fn urls_carry_the_token_as_password_and_errors_hide_it() {
        let u = stream_url("rtsp://127.0.0.1:8554", "opennvr-abc", "tok.en-1");
        assert_eq!(u, "rtsp://opennvr:tok.en-1@127.0.0.1:8554/opennvr-abc");
        assert_eq!(
            redact(&format!("{u}: Connection refused\n"), "tok.en-1"),
            "rtsp://opennvr:***@127.0.0.1:8554/opennvr-abc: Connection refused"
        );
        let a = args("rtsp://x/y", Some(Duration::from_millis(500)));
        assert!(a.windows(2).any(|w| w[0] == "-vf" && w[1].starts_with("fps=1000/500,")));
    }
}
