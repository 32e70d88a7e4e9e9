//! Benchmark of built-in motion detection per camera at 1 fps on 640×360 frames, printed as figures
//! (not asserted): the server's time per frame (decoding the JPEG's luma, reducing it to the grid,
//! comparing with the previous frame), and the CPU of the camera's frame source — the supervised
//! `ffmpeg` decoding a 640×360, 10 fps H.264 stream in real time and writing one JPEG a second —
//! both as a share of one core.
//!
//! Run: `cargo bench -p opennvr-server --bench motion` (`MOTION_BENCH_SECS` of stream [30]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use opennvr_server::domain::motion::{Detector, Grey, MotionSettings};
use opennvr_server::inference::frames::JpegSplitter;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn secs() -> u64 {
    std::env::var("MOTION_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30)
}

/// CPU time (user + system) of this process's waited-for children so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut u), 0);
        u
    };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("opennvr-motion-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let video = dir.join("camera.mp4");
    let n = secs();
    // A camera's stream: 640x360 at 10 fps, H.264 like the cameras (a moving test pattern).
    let made = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=640x360:rate=10:duration={n}"))
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(made.success());
    // The frame source as the router runs it (one JPEG a second), reading the stream in real time.
    let before = children_cpu();
    let began = Instant::now();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&video)
        .args([
            "-an",
            "-sn",
            "-vf",
            "fps=1,scale='min(1920,iw)':-2",
            "-f",
            "image2pipe",
            "-c:v",
            "mjpeg",
            "-q:v",
            "4",
            "-",
        ])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let wall = began.elapsed();
    let source_cpu = children_cpu() - before;
    let frames = JpegSplitter::default().push(&out.stdout);
    assert!(frames.len() as u64 >= n - 1, "ffmpeg gave {} frames", frames.len());
    // The detector on those frames, many rounds for a steady figure.
    let mut detector = Detector::new(MotionSettings::default());
    let rounds = 20;
    let t = Instant::now();
    let mut time = Utc::now();
    let mut episodes = 0;
    for _ in 0..rounds {
        for jpeg in &frames {
            let grey = Grey::from_jpeg(jpeg).unwrap();
            time += chrono::Duration::seconds(1);
            if matches!(detector.feed(grey, time), opennvr_server::domain::motion::Step::Started { .. }) {
                episodes += 1;
            }
        }
    }
    let per_frame = t.elapsed() / (rounds * frames.len() as u32);
    println!("motion detection per camera at 1 fps on 640x360 frames ({} frames, {} s of stream):", frames.len(), n);
    println!(
        "  server: {:.2} ms per frame (JPEG luma decode + grid + compare) = {:.3} % of a core at 1 fps",
        per_frame.as_secs_f64() * 1e3,
        per_frame.as_secs_f64() * 100.0
    );
    println!(
        "  frame source (ffmpeg: H.264 decode of 10 fps + 1 JPEG/s): {:.1} % of a core ({:.2} s CPU over {:.1} s)",
        source_cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        source_cpu.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!("  (episodes seen on the moving test pattern: {episodes})");
    let _ = std::fs::remove_dir_all(&dir);
}
