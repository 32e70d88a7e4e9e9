//! Seeding for benchmarks: cameras through the API, and the recording index — one-minute segments of
//! many cameras, one `COPY` per day, in time order (as MediaMTX would have recorded them).
// Not every benchmark uses every piece.
#![allow(dead_code)]
use chrono::{DateTime, Duration, Utc};
use opennvr_sdk::pb;
use std::io::Write;

/// Creates `n` recording cameras (`cam-000`, …) through `admin`.
pub async fn cameras(admin: &opennvr_sdk::Client, n: usize) -> Vec<pb::Camera> {
    let mut cameras = Vec::with_capacity(n);
    for i in 0..n {
        let camera = pb::Camera {
            name: format!("cam-{i:03}"),
            source_url: format!("rtsp://10.2.{}.{}:554/stream1", i / 250, i % 250 + 1),
            enabled: true,
            recording_enabled: true,
            ..Default::default()
        };
        let created = admin
            .cameras()
            .create_camera(pb::CreateCameraRequest { camera: Some(camera), password: String::new() })
            .await
            .expect("the camera is created");
        cameras.push(created.into_inner().camera.expect("the created camera"));
    }
    cameras
}

/// Loads `days` days of one-minute segments from `start` for every camera of `cameras` (id and
/// the directory its files are named in) through `psql` at `superuser_url`. `each` is told of
/// every segment file (first day only: `day == 0`), e.g. to create it.
pub fn one_minute_segments(
    superuser_url: &str,
    cameras: &[(String, String)],
    start: DateTime<Utc>,
    days: i64,
    mut each: impl FnMut(i64, &str),
) {
    for day in 0..days {
        let mut copy = std::process::Command::new("psql")
            .arg(superuser_url)
            .args([
                "-X",
                "-q",
                "-c",
                "\\copy segments (camera_id, start_time, duration_us, size_bytes, state, file_path) FROM STDIN",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("psql");
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, copy.stdin.take().expect("psql's input"));
            for minute in 0..1440 {
                let at = start + Duration::minutes(day * 1440 + minute);
                let stamp = at.format("%Y-%m-%d %H:%M:%S+00");
                let name = at.format("%Y-%m-%d_%H-%M-%S-000000+0000");
                for (id, dir) in cameras {
                    let file = format!("{dir}/{name}.mp4");
                    each(day, &file);
                    writeln!(w, "{id}\t{stamp}\t60000000\t6000000\t1\t{file}").expect("psql takes the rows");
                }
            }
        }
        assert!(copy.wait().expect("psql ends").success());
    }
}
