//! Real RTSP cameras for tests: Debian's GStreamer RTSP server streaming H.264 test video
//! (`tests/support/rtsp_camera.py`), with or without credentials.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running camera; stopped when dropped.
pub struct RtspCamera {
    child: Child,
    pub port: u16,
}

impl RtspCamera {
    /// Starts a camera on a free loopback port; with `creds`, only for that user and password.
    pub fn start(creds: Option<(&str, &str)>) -> RtspCamera {
        RtspCamera::launch(creds, false, crate::harness::free_port(), "/stream")
    }

    /// A "camera" that serves audio only (no video track).
    pub fn audio_only() -> RtspCamera {
        RtspCamera::launch(None, true, crate::harness::free_port(), "/stream")
    }

    /// A camera serving at `rtsp://127.0.0.1:{port}{mount}`, without credentials: stands for the
    /// media server's restream of a camera (it takes any credentials a reader sends).
    pub fn restream(port: u16, mount: &str) -> RtspCamera {
        RtspCamera::launch(None, false, port, mount)
    }

    /// Restreams at `rtsp://127.0.0.1:{port}`, one per (mount, scene): each scene is a list of
    /// (test pattern, seconds after start), e.g. `[("smpte", 0.0), ("ball", 8.0)]` ("ball" moves,
    /// "smpte" is still). Started now: the scenes' clock starts before this returns.
    pub fn scenes(port: u16, scenes: &[(&str, &[(&str, f64)])]) -> RtspCamera {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_camera.py");
        let spec: Vec<String> = scenes
            .iter()
            .map(|(mount, steps)| {
                let steps: Vec<String> = steps.iter().map(|(p, at)| format!("{p}@{at}")).collect();
                format!("{mount}={}", steps.join(","))
            })
            .collect();
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .env("RTSP_CAMERA_SCENES", spec.join(";"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with GStreamer's RTSP server (see .ci/run)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the test camera did not start");
        RtspCamera { child, port }
    }

    fn launch(creds: Option<(&str, &str)>, audio_only: bool, port: u16, mount: &str) -> RtspCamera {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_camera.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).arg(port.to_string()).env("RTSP_CAMERA_MOUNT", mount);
        if audio_only {
            cmd.env("RTSP_CAMERA_AUDIO_ONLY", "1");
        }
        if let Some((u, p)) = creds {
            cmd.arg(u).arg(p);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with GStreamer's RTSP server (see .ci/run)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the test camera did not start");
        RtspCamera { child, port }
    }

    /// The stream's URL (no credentials).
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/stream", self.port)
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
