//! Benchmark of frame routing, printed as figures (not asserted): server time per frame outside
//! the adapter call (handing the frame in, taking the answer, filtering, queueing it for the
//! writer; the HTTP client's own work — the multipart body, parsing the answer — is inside the
//! timed adapter call), the detection writer's time per frame (insert, commit, event), with 100
//! bindings fed by a synthetic frame source (a real 1280x720 JPEG made once by ffmpeg, handed to
//! the router at each binding's rate: 100 real decoders do not fit 2 cores), and the API's latency
//! (ListCameras and ListDetections) in the same run without and then with one hung adapter.
//!
//! Run: `cargo bench -p opennvr-server --bench inference` (`INFER_BENCH_BINDINGS` [100],
//! `INFER_BENCH_INTERVAL_MS` per binding [500], `INFER_BENCH_SECS` per phase [40]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/harness.rs"]
mod harness;

use axum::Router;
use axum::routing::{get, post};
use harness::{TestServer, test_options};
use opennvr_sdk::pb;
use opennvr_server::inference::router::{Frame, Route};
use opennvr_server::store::inference::BindingRow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An adapter on loopback: instant (one person per frame) or hung (never answers `/infer`).
async fn adapter(hung: bool) -> String {
    let caps =
        r#"{"name":"bench","model":"none","version":"1","tasks":["detect"],"labels":["person"],"max_in_flight":64}"#;
    let app = Router::new()
        .route("/health", get(|| async { r#"{"status":"ok"}"# }))
        .route("/capabilities", get(move || async move { caps }))
        .route(
            "/infer",
            post(move |body: axum::body::Bytes| async move {
                if hung {
                    std::future::pending::<()>().await;
                }
                assert!(body.len() > 1000, "a frame came");
                (
                    [("content-type", "application/json")],
                    r#"{"detections":[{"label":"person","confidence":0.9,"box":{"x":0.4,"y":0.3,"width":0.1,"height":0.3}}],"timing":{"inference_ms":0.1}}"#,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Registers an adapter and waits for its first probe (bindings need the tasks it reads).
async fn register(admin: &opennvr_sdk::Client, name: &str, url: &str, concurrency: i32, queue: i32) -> pb::Adapter {
    let a = harness::register_adapter(admin, name, url, 5000, concurrency, queue).await;
    let t = Instant::now();
    loop {
        let got = admin
            .inference()
            .get_adapter(pb::GetAdapterRequest { adapter_id: a.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .adapter
            .unwrap();
        if !got.capabilities.is_empty() {
            return got;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "adapter {name} never probed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A synthetic frame source per route: the same JPEG every `interval`, until `stop`. The sources
/// are spread over the interval, as independent cameras are (not 100 frames at the same instant).
fn feed(s: &TestServer, routes: Vec<Route>, jpeg: Arc<Vec<u8>>, stop: Arc<AtomicBool>) {
    let n = routes.len().max(1) as u32;
    for (i, route) in routes.into_iter().enumerate() {
        let (frames, jpeg, stop, clock) = (s.frames.clone(), jpeg.clone(), stop.clone(), s.clock.clone());
        let offset = route.interval * i as u32 / n;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, route.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                use opennvr_server::clock::Clock;
                frames.deliver(&route, Frame::new(jpeg.as_ref().clone(), clock.now()));
            }
        });
    }
}

/// Calls the API from 4 callers, 25 ms apart each, for `secs`: the latencies in ms, sorted.
async fn probe_api(admin: &opennvr_sdk::Client, secs: u64) -> Vec<f64> {
    let all = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (admin, all) = (admin.clone(), all.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let t = Instant::now();
                if w % 2 == 0 {
                    admin
                        .cameras()
                        .list_cameras(pb::ListCamerasRequest { page_size: 50, ..Default::default() })
                        .await
                        .unwrap();
                } else {
                    admin
                        .inference()
                        .list_detections(pb::ListDetectionsRequest { page_size: 50, ..Default::default() })
                        .await
                        .unwrap();
                }
                all.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut v = std::mem::take(&mut *all.lock().unwrap());
    v.sort_by(f64::total_cmp);
    v
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Reading {
    frames: u64,
    settled: u64,
    answered: u64,
    detections: u64,
    lost: u64,
    overhead_ns: u64,
    store_ns: u64,
    writes: u64,
}

fn read(s: &TestServer) -> Reading {
    let c = s.frames.counters();
    Reading {
        frames: c.frames.load(Ordering::Relaxed),
        settled: c.settled.load(Ordering::Relaxed),
        answered: c.answered.load(Ordering::Relaxed),
        detections: c.detections.load(Ordering::Relaxed),
        lost: c.lost.load(Ordering::Relaxed),
        overhead_ns: c.overhead_ns.load(Ordering::Relaxed),
        store_ns: c.store_ns.load(Ordering::Relaxed),
        writes: c.writes.load(Ordering::Relaxed),
    }
}

fn report(label: &str, secs: u64, before: &Reading, after: &Reading, api: &[f64]) {
    let settled = (after.settled - before.settled).max(1);
    println!("-- {label}");
    println!("{:<60} {:>10.0} /s", "frames fed", (after.frames - before.frames) as f64 / secs as f64);
    println!(
        "{:<60} {:>10.0} /s",
        "frames answered by an adapter",
        (after.answered - before.answered) as f64 / secs as f64
    );
    println!(
        "{:<60} {:>10.0} /s",
        "detections stored and published",
        (after.detections - before.detections) as f64 / secs as f64
    );
    println!("{:<60} {:>10}", "frames whose detections were lost", after.lost - before.lost);
    println!(
        "{:<60} {:>10.1} us",
        "routing overhead per frame (hand-in, answer, filter, queue)",
        (after.overhead_ns - before.overhead_ns) as f64 / settled as f64 / 1000.0
    );
    let stored = (after.answered - before.answered).max(1);
    let writes = (after.writes - before.writes).max(1);
    println!(
        "{:<60} {:>10.1} us",
        "storing + publishing per answered frame (writer, commit incl.)",
        (after.store_ns - before.store_ns) as f64 / stored as f64 / 1000.0
    );
    println!("{:<60} {:>10.1}", "frames per write (one statement, one commit)", stored as f64 / writes as f64);
    println!(
        "{:<60} {:>10.2} ms / {:.2} / {:.2} ({} calls)",
        "API latency p50 / p99 / max",
        pct(api, 0.5),
        pct(api, 0.99),
        api.last().copied().unwrap_or(f64::NAN),
        api.len()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env("INFER_BENCH_BINDINGS", 100) as usize;
    let interval_ms = env("INFER_BENCH_INTERVAL_MS", 500);
    let secs = env("INFER_BENCH_SECS", 40);

    // One real 1280x720 frame from ffmpeg's test source.
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720", "-frames:v", "1"])
        .args(["-q:v", "5", "-f", "image2pipe", "-c:v", "mjpeg", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success() && out.stdout.starts_with(&[0xff, 0xd8]), "ffmpeg made a JPEG");
    let jpeg = Arc::new(out.stdout);

    let db = harness::TestDb::new();
    let options = test_options(&db);
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    // The server's clock (circuit cool-downs, frame times) follows real time.
    let clock = s.clock.clone();
    tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = Instant::now();
            clock.advance(chrono::Duration::from_std(now - last).unwrap());
            last = now;
        }
    });
    let instant = register(&admin, "instant", &adapter(false).await, 16, 64).await;
    let mut cameras = Vec::new();
    for i in 0..n {
        let camera = pb::Camera {
            name: format!("bench-{i:03}"),
            source_url: format!("rtsp://10.2.{}.{}:554/stream1", i / 250, i % 250 + 1),
            enabled: true,
            ..Default::default()
        };
        let c = admin
            .cameras()
            .create_camera(pb::CreateCameraRequest { camera: Some(camera), password: String::new() })
            .await
            .unwrap()
            .into_inner()
            .camera
            .unwrap();
        harness::bind_adapter(&admin, &c, &instant, interval_ms as i64, &[], 0.0).await.unwrap();
        cameras.push(c);
    }
    let routes = |adapter: &str| {
        let adapter = uuid::Uuid::parse_str(adapter).unwrap();
        let store = s.store.clone();
        async move {
            store
                .run(BindingRow::active)
                .await
                .unwrap()
                .into_iter()
                .filter(|b| b.adapter_id == adapter)
                .map(|b| Route::of(&b))
                .collect::<Vec<_>>()
        }
    };
    println!(
        "{n} bindings, one frame every {interval_ms} ms each ({:.0} frames/s), {} KiB JPEG, {secs} s per phase",
        n as f64 * 1000.0 / interval_ms as f64,
        jpeg.len() / 1024
    );

    // Phase 1: every binding to an instant adapter.
    let stop = Arc::new(AtomicBool::new(false));
    feed(&s, routes(&instant.id).await, jpeg.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await; // warm up
    let before = read(&s);
    let api = probe_api(&admin, secs).await;
    report(&format!("{n} bindings to an instant adapter"), secs, &before, &read(&s), &api);

    // Phase 2: the same, and one hung adapter bound to ten of the cameras.
    let hung = register(&admin, "hung", &adapter(true).await, 4, 8).await;
    for c in cameras.iter().take(10) {
        harness::bind_adapter(&admin, c, &hung, interval_ms as i64, &[], 0.0).await.unwrap();
    }
    // Measured from the first frame on, in two windows: the first 10 s, while its calls hang until
    // the adapter's 5 s timeout and its queue sheds, until its circuit opens; then the rest, with
    // the circuit open and a trial call after each 30 s cool-down hanging again.
    let before = read(&s);
    feed(&s, routes(&hung.id).await, jpeg.clone(), stop.clone());
    let hanging = secs.min(10);
    let api = probe_api(&admin, hanging).await;
    let middle = read(&s);
    report(
        &format!("... plus one hung adapter bound to 10 of the cameras: first {hanging} s"),
        hanging,
        &before,
        &middle,
        &api,
    );
    if secs > hanging {
        let api = probe_api(&admin, secs - hanging).await;
        report(&format!("... the {} s after", secs - hanging), secs - hanging, &middle, &read(&s), &api);
    }
    for a in [&instant, &hung] {
        let st = admin
            .inference()
            .get_adapter_status(pb::GetAdapterStatusRequest { adapter_id: a.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        println!(
            "adapter {}: {} frames, {} answered, {} failed, {} timed out, {} shed or refused by an open circuit",
            a.name, st.requests_total, st.succeeded_total, st.failed_total, st.timeouts_total, st.rejected_total
        );
    }
    stop.store(true, Ordering::Relaxed);
    s.shutdown().await;
}
