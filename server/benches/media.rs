//! Benchmark of the media plane against the MediaMTX emulator, printed as figures (not asserted):
//! time until MediaMTX holds 1,000 cameras created through the API; time to converge 1,000 cameras
//! after a MediaMTX restart, with the emulator answering each config write after a given reload
//! latency (MediaMTX reloads its configuration on every write; writes are serialised); process memory
//! with 1,000 cameras.
//!
//! Run: `cargo bench -p opennvr-server --bench media` (`MEDIA_BENCH_CAMERAS` changes the count,
//! `MEDIA_BENCH_RELOAD_MS` the reload latencies, comma-separated; default 0,1,2,5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/harness.rs"]
mod harness;

use harness::{TestDb, TestServer, test_options};
use mediamtx_emulator::{AuthConfig, Emulator};
use opennvr_sdk::pb;
use std::time::{Duration, Instant};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn until_all(emu: &Emulator, n: usize) -> Duration {
    let t = Instant::now();
    while emu.path_names().len() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(t.elapsed() < Duration::from_secs(600), "never converged");
    }
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("MEDIA_BENCH_CAMERAS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let reloads: Vec<u64> = std::env::var("MEDIA_BENCH_RELOAD_MS")
        .unwrap_or_else(|_| "0,1,2,5".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let emu = Emulator::start(AuthConfig {
        jwks_url: Some("http://127.0.0.1:9/none".into()),
        issuer: Some("opennvr".into()),
        audience: Some("mediamtx".into()),
    })
    .await
    .unwrap();
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.mediamtx_api_url = Some(emu.url());
    options.mediamtx_sync_secs = Some(3600);
    let s = TestServer::start_with(db, options).await;
    emu.set_jwks_url(&format!("{}/.well-known/jwks.json", s.url()));
    let admin = s.admin().await;
    let rss_before = rss_mib();

    // 1. Create the cameras through the API, 16 at a time; time until MediaMTX holds them all.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let c = admin.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(16) {
                let camera = pb::Camera {
                    name: format!("cam-{i:05}"),
                    source_url: format!("rtsp://10.1.{}.{}:554/stream1", i / 250, i % 250 + 1),
                    username: "viewer".into(),
                    enabled: true,
                    recording_enabled: true,
                    ..Default::default()
                };
                c.cameras()
                    .create_camera(pb::CreateCameraRequest { camera: Some(camera), password: "Cam-Secret-1".into() })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let created = t.elapsed();
    until_all(&emu, n).await;
    let held = t.elapsed();
    println!("{:<58} {:>8.2} s", format!("create {n} cameras through the API (16 callers)"), created.as_secs_f64());
    println!("{:<58} {:>8.2} s", format!("... until MediaMTX holds all {n}"), held.as_secs_f64());

    // 2. Restart MediaMTX: every path gone; time until all are back, per reload latency.
    for ms in &reloads {
        emu.set_write_delay(Duration::from_millis(*ms));
        emu.restart();
        let took = until_all(&emu, n).await;
        println!(
            "{:<58} {:>8.2} s",
            format!("converge {n} cameras after a restart, {ms} ms per config write"),
            took.as_secs_f64()
        );
    }
    emu.set_write_delay(Duration::ZERO);

    // 3. Memory: the whole bench process (server, emulator, client) before and after.
    println!("{:<58} {:>8.1} MiB", "process RSS before the cameras (server+emulator+client)", rss_before);
    println!("{:<58} {:>8.1} MiB", format!("process RSS with {n} cameras"), rss_mib());
    s.shutdown().await;
}
