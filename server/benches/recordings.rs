//! Benchmark of the recording index at scale, printed as figures (not asserted). Seeds 10,000,000
//! segments (100 cameras x ~70 days of 60 s segments, time-ordered, loaded with COPY), then reports
//! p50/p99 of ListSegments (one camera, 1 hour and 1 day) and GetTimeline (one camera over 30 days;
//! 100 cameras over 1 day), each through gRPC and as the bare SQL query through the server's own pool
//! in the same run, with the ratio; the query plans PostgreSQL picks for prepared statements
//! (`plan_cache_mode = force_generic_plan`); hook ingestion rate; one retention pass over a day of 100
//! cameras; and listing 100 cameras with their latest footage, before and after the seeding.
//!
//! The server's resident memory is sampled while it answers one timeline of every camera over the whole
//! seeded range.
//!
//! Run: `cargo bench -p opennvr-server --bench recordings` (`RECORDING_BENCH_DAYS` changes the days
//! seeded, default 70; `RECORDING_BENCH_ONLY=timeline` stops after the timelines; needs `psql` and a
//! PostgreSQL cluster as the tests do).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/harness.rs"]
mod harness;
mod seed;

use chrono::{DateTime, Duration as CDuration, Utc};
use harness::{TestDb, TestServer, test_options};
use mediamtx_emulator::{AuthConfig, Emulator};
use opennvr_sdk::pb;
use opennvr_server::clock::Clock;
use opennvr_server::store::recordings::SegmentRow;
use std::time::{Duration, Instant};

const CAMERAS: usize = 100;
const SECRET: &str = "a-hook-secret-of-at-least-thirty-two-chars";

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// What `f` returns, how long it took, and this process's resident memory (KiB) before it and at its
/// peak while it ran (sampled every 2 ms).
async fn peak_rss_during<F, Fut, T>(f: F) -> (T, Duration, (u64, u64))
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let before = rss_kib();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let t = Instant::now();
    let out = f().await;
    let took = t.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    (out, took, (before, sampler.join().unwrap()))
}

/// The spans of `cameras` over `range` as the server streams them for a timeline (the bare
/// statement, rows counted, nothing kept); 60 s segments.
fn spans(
    c: &mut diesel::PgConnection,
    cameras: &[uuid::Uuid],
    range: (DateTime<Utc>, DateTime<Utc>),
) -> opennvr_server::error::Result<usize> {
    let open_for = vec![120_000_000; cameras.len()];
    let mut n = 0;
    SegmentRow::visit_spans(c, cameras, &open_for, range, Utc::now(), |_| n += 1)?;
    Ok(n)
}

/// (p50, p99) in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

async fn measure<F, Fut>(runs: usize, mut f: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f(0).await; // warm-up
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        f(i + 1).await;
        samples.push(t.elapsed());
    }
    percentiles(samples)
}

fn report(what: &str, grpc: (f64, f64), sql: (f64, f64)) {
    let ratio = grpc.0 / sql.0.max(1e-9);
    let goal = grpc.0 <= (sql.0 * 1.5).max(sql.0 + 0.3);
    println!(
        "{what:<38} gRPC p50 {:>8.3} ms p99 {:>8.3} ms | SQL p50 {:>8.3} ms p99 {:>8.3} ms | ratio {:>5.2} {}",
        grpc.0,
        grpc.1,
        sql.0,
        sql.1,
        ratio,
        if goal { "(goal met)" } else { "(goal missed)" }
    );
}

fn psql(db: &TestDb, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .arg(db.superuser_url())
        .args(["-X", "-q", "-A", "-t", "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let days: i64 = std::env::var("RECORDING_BENCH_DAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(70);
    let emu = Emulator::start(AuthConfig {
        jwks_url: Some("http://127.0.0.1:9/none".into()),
        issuer: Some("opennvr".into()),
        audience: Some("mediamtx".into()),
    })
    .await
    .unwrap();
    let secret_file = harness::temp_dir("hook").join("hook.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.mediamtx_api_url = Some(emu.url());
    options.mediamtx_sync_secs = Some(3600);
    options.hook_secret_file = Some(secret_file);
    // A recordings volume both MediaMTX (the emulator) and the server see: the oldest day of
    // footage gets real (empty) files, so that the retention pass deletes real files through
    // MediaMTX and confirms them gone.
    let volume = harness::temp_dir("bench-recordings");
    options.mediamtx_record_path = Some(format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f%z", volume.display()));
    options.recordings_dir = Some(volume.clone());
    // No reconcile pass during the run: only the oldest day has files.
    options.recording_reconcile_secs = Some(86_400);
    let s = TestServer::start_with(db, options).await;
    emu.set_jwks_url(&format!("{}/.well-known/jwks.json", s.url()));
    // The test server runs on a manual clock; this run is long, so keep it on real time (the tokens
    // it signs for MediaMTX expire by that clock).
    {
        let clock = s.clock.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let behind = Utc::now() - clock.now();
                if behind > CDuration::zero() {
                    clock.advance(behind);
                }
            }
        });
    }
    let admin = s.admin().await;
    let cameras = seed::cameras(&admin, CAMERAS).await;
    let list_cameras = |admin: opennvr_sdk::Client| async move {
        let r = admin.cameras().list_cameras(pb::ListCamerasRequest { page_size: 100, ..Default::default() }).await;
        assert_eq!(r.unwrap().into_inner().cameras.len(), CAMERAS);
    };
    let empty = measure(200, |_| list_cameras(admin.clone())).await;

    // 1. Seed: one COPY per day of all cameras, in time order.
    let end: DateTime<Utc> = DateTime::from_timestamp(Utc::now().timestamp() / 60 * 60, 0).unwrap();
    let start = end - CDuration::days(days);
    let t = Instant::now();
    let ids: Vec<String> = cameras.iter().map(|c| c.id.clone()).collect();
    let dirs: Vec<std::path::PathBuf> = ids
        .iter()
        .map(|id| {
            let d = volume.join(format!("opennvr-{}", id.replace('-', "")));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let seeded: Vec<(String, String)> =
        ids.iter().zip(&dirs).map(|(id, dir)| (id.clone(), dir.display().to_string())).collect();
    seed::one_minute_segments(&s.db.superuser_url(), &seeded, start, days, |day, file| {
        if day == 0 {
            std::fs::write(file, b"").unwrap();
        }
    });
    let loaded = t.elapsed();
    let t = Instant::now();
    psql(&s.db, "VACUUM (ANALYZE) segments");
    let vacuum = t.elapsed();
    let rows: i64 = psql(&s.db, "SELECT sum(segments) FROM recording_summaries").trim().parse().unwrap();
    let size = psql(&s.db, "SELECT pg_size_pretty(pg_total_relation_size('segments'))");
    println!(
        "seeded {rows} segments ({CAMERAS} cameras x {days} days of 60 s) in {:.1} s with COPY, VACUUM ANALYZE {:.1} s, table with indexes {}",
        loaded.as_secs_f64(),
        vacuum.as_secs_f64(),
        size.trim()
    );

    // 2. The plans prepared statements get.
    let cam0 = &ids[0];
    let mid = start + CDuration::days(days / 2);
    let plan = psql(
        &s.db,
        &format!(
            "SET plan_cache_mode = force_generic_plan; \
             PREPARE page(uuid, timestamptz, timestamptz, int2, int8) AS \
               SELECT start_time, duration_us, size_bytes, state FROM segments \
               WHERE camera_id = $1 AND start_time < $3 AND state < $4 AND start_time >= $2 ORDER BY start_time LIMIT $5; \
             EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE page('{cam0}', '{}', '{}', 2, 1000);",
            mid.to_rfc3339(),
            (mid + CDuration::days(1)).to_rfc3339()
        ),
    );
    let index_only = plan.contains("Index Only Scan") && !plan.contains("Seq Scan");
    println!(
        "generic plan of the listing: {}\n{}",
        if index_only { "index-only, no sequential scan" } else { "NOT index-only" },
        plan.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    );

    // 3. ListSegments: one camera, 1 hour and 1 day; gRPC against the bare query through the pool.
    for (label, span) in
        [("ListSegments 1 camera x 1 h", CDuration::hours(1)), ("ListSegments 1 camera x 1 day", CDuration::days(1))]
    {
        let at = |i: usize| start + CDuration::hours(24 + (i as i64 * 7) % (24 * (days - 2)).max(1));
        let grpc = measure(200, |i| {
            let (c, cam) = (admin.clone(), cameras[i % CAMERAS].id.clone());
            let from = at(i);
            async move {
                let r = c
                    .recordings()
                    .list_segments(pb::ListSegmentsRequest {
                        camera_id: cam,
                        start_time: Some(ts(from)),
                        end_time: Some(ts(from + span)),
                        page_size: 1000,
                        page_token: String::new(),
                    })
                    .await
                    .unwrap();
                assert!(!r.into_inner().segments.is_empty());
            }
        })
        .await;
        let sql = measure(200, |i| {
            let (store, cam) = (s.store.clone(), cameras[i % CAMERAS].id.parse().unwrap());
            let from = at(i);
            async move {
                // The statement the RPC's first page runs.
                let rows =
                    store.run(move |c| SegmentRow::overlapping_limited(c, cam, from, from + span, 1000)).await.unwrap();
                assert!(!rows.is_empty());
            }
        })
        .await;
        report(label, grpc, sql);
    }

    // 4. GetTimeline: one camera over 30 days; 100 cameras over one day.
    let month = (end - CDuration::days(30), end);
    let grpc = measure(30, |i| {
        let (c, cam) = (admin.clone(), cameras[i % CAMERAS].id.clone());
        async move {
            let r = c
                .recordings()
                .get_timeline(pb::GetTimelineRequest {
                    camera_id: cam,
                    start_time: Some(ts(month.0)),
                    end_time: Some(ts(month.1)),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(r.into_inner().runs.len(), 1);
        }
    })
    .await;
    let sql = measure(30, |i| {
        let (store, cam) = (s.store.clone(), cameras[i % CAMERAS].id.parse().unwrap());
        async move {
            let rows = store.run(move |c| spans(c, &[cam], month)).await.unwrap();
            assert_eq!(rows, 30 * 1440 + 1);
        }
    })
    .await;
    report("GetTimeline 1 camera x 30 days", grpc, sql);
    let day = (end - CDuration::days(2), end - CDuration::days(1));
    let grpc = measure(10, |_| {
        let (c, cams) = (admin.clone(), ids.clone());
        async move {
            let r = c
                .recordings()
                .get_timeline(pb::GetTimelineRequest {
                    camera_ids: cams,
                    start_time: Some(ts(day.0)),
                    end_time: Some(ts(day.1)),
                    ..Default::default()
                })
                .await
                .unwrap();
            let all = r.into_inner().camera_timelines;
            assert!(all.len() == CAMERAS && all.iter().all(|t| t.runs.len() == 1));
        }
    })
    .await;
    let sql = measure(10, |_| {
        let (store, cams): (_, Vec<uuid::Uuid>) = (s.store.clone(), ids.iter().map(|i| i.parse().unwrap()).collect());
        async move {
            let all = store.run(move |c| spans(c, &cams, day)).await.unwrap();
            assert_eq!(all, CAMERAS * 1441);
        }
    })
    .await;
    report("GetTimeline 100 cameras x 1 day", grpc, sql);

    // 4b. The server's memory while it answers a timeline of every camera over the whole range (the
    // segments stream through; only runs are kept), then the former way in the same run: every
    // segment of the range loaded, camera by camera, before merging (measured second, so that memory
    // it leaves with the allocator cannot hide the first one's growth).
    let whole = (start, end);
    let (timelines, took, (before, peak)) = peak_rss_during(|| async {
        admin
            .recordings()
            .get_timeline(pb::GetTimelineRequest {
                camera_ids: ids.clone(),
                start_time: Some(ts(whole.0)),
                end_time: Some(ts(whole.1)),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .camera_timelines
    })
    .await;
    assert_eq!(timelines.len(), CAMERAS);
    println!(
        "GetTimeline {CAMERAS} cameras x {days} days ({rows} segments) in one call: {:.2} s; RSS {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB)",
        took.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );
    let (former, took, (before, peak)) = peak_rss_during(|| async {
        let (store, cams): (_, Vec<uuid::Uuid>) = (s.store.clone(), ids.iter().map(|i| i.parse().unwrap()).collect());
        store
            .run(move |c| {
                cams.into_iter()
                    .map(|cam| SegmentRow::overlapping(c, cam, whole.0, whole.1))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .unwrap()
            .iter()
            .map(Vec::len)
            .sum::<usize>()
    })
    .await;
    println!(
        "Former timeline (every segment of {CAMERAS} cameras x {days} days loaded, {former} rows): {:.2} s; RSS {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB)",
        took.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );
    if std::env::var("RECORDING_BENCH_ONLY").as_deref() == Ok("timeline") {
        return;
    }

    // 5. Listing 100 cameras with their latest footage: with no segments, and with them all.
    let full = measure(200, |_| list_cameras(admin.clone())).await;
    println!(
        "ListCameras (100, with latest footage): p50 {:.3} ms p99 {:.3} ms with 0 segments; p50 {:.3} ms p99 {:.3} ms with {rows}",
        empty.0, empty.1, full.0, full.1
    );

    // 6. Hook ingestion: segment-complete hooks for new segments, 16 in flight.
    let n = 5000;
    let http = reqwest::Client::new();
    let url = format!("{}/hooks/mediamtx", s.url());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (http, url, ids, volume) = (http.clone(), url.clone(), ids.clone(), volume.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(16) {
                let cam = &ids[i % CAMERAS];
                let at = end + CDuration::minutes((i / CAMERAS) as i64);
                let file = format!(
                    "{}/opennvr-{}/{}.mp4",
                    volume.display(),
                    cam.replace('-', ""),
                    at.format("%Y-%m-%d_%H-%M-%S-000000+0000")
                );
                let body = serde_json::json!({
                    "event": "segment-complete",
                    "path": format!("opennvr-{}", cam.replace('-', "")),
                    "segment_path": file,
                    "segment_duration": "60.0",
                });
                let r = http.post(&url).bearer_auth(SECRET).json(&body).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = t.elapsed();
    println!(
        "hook ingestion: {n} segment-complete hooks in {:.2} s: {:.0} segments/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    // 7. One retention pass removing the oldest day of all 100 cameras.
    // The server's clock (a test clock, stopped at its start) decides what is too old.
    let max_age = (s.clock.now() - (start + CDuration::days(1))).num_seconds();
    admin
        .recordings()
        .update_retention_policy(pb::UpdateRetentionPolicyRequest {
            policy: Some(pb::RetentionPolicy {
                max_age: Some(prost_types::Duration { seconds: max_age, nanos: 0 }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["max_age".into()] }),
        })
        .await
        .unwrap();
    let t = Instant::now();
    let pass = admin.recordings().enforce_retention(pb::EnforceRetentionRequest {}).await.unwrap().into_inner();
    let took = t.elapsed();
    let left = dirs.iter().map(|d| std::fs::read_dir(d).unwrap().count()).sum::<usize>();
    println!(
        "retention pass: {} segments of {} cameras removed in {:.1} s ({:.0} segments/s, each file deleted through MediaMTX's deletesegment and confirmed gone; {left} files left)",
        pass.segment_count,
        pass.segments_by_camera.len(),
        took.as_secs_f64(),
        pass.segment_count as f64 / took.as_secs_f64()
    );
}
