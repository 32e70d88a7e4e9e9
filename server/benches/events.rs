//! The event history at scale: the release server in its own process on a database holding
//! 10,000,000 stored events (100 cameras, 30 days; motion episodes and camera state changes), read
//! over real sockets by 16 HTTP/2 connections × 4 calls in flight, then by one client one call at a
//! time: `ListEvents` of one camera over one day and of all cameras (the newest page of 100 each),
//! beside `grpc.health.v1.Health/Check` in the same run. Then the store's event insert throughput on the same database: events written
//! the way the recorder writes them (256 per transaction, 4 writers) and the way a change writes
//! its own (one per transaction, 16 writers), each with the linker numbering them as it runs.
//!
//! Run: `cargo bench -p opennvr-server --bench events` (needs `psql` and a PostgreSQL cluster as the
//! tests do; `EVENTS_BENCH_ROWS` [10000000], `EVENTS_BENCH_SECS` per measurement [5]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/external.rs"]
mod external;
#[path = "../tests/it/harness.rs"]
mod harness;
mod seed;

use chrono::{DateTime, Duration as CDuration, Utc};
use diesel::Connection;
use external::{Call, measure};
use harness::TestDb;
use opennvr_sdk::pb;
use opennvr_server::domain::event::{EventKind, SiteEvent};
use opennvr_server::domain::motion::{Episode, FrameBox};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CAMERAS: usize = 100;
const DAYS: i64 = 30;
const PASSWORD: &str = "granite-harbor-lantern-42";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn psql(url: &str, sql: &str) {
    let ok =
        std::process::Command::new("psql").arg(url).args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]).status();
    assert!(ok.unwrap().success(), "psql failed: {sql}");
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// Loads `rows` events spread evenly over `DAYS` days up to `end`, cameras in turn: four in five
/// motion episodes of 20 s, the rest cameras going offline, numbered after the history's head as
/// the linker would (holding the head). Indexes are rebuilt after the load.
fn seed_events(db: &TestDb, cameras: &[String], rows: u64, end: DateTime<Utc>) {
    let url = db.superuser_url();
    let start = end - CDuration::days(DAYS);
    let step_us = DAYS * 86_400_000_000 / rows as i64;
    let ids = cameras.iter().map(|c| format!("'{c}'::uuid")).collect::<Vec<_>>().join(",");
    psql(&url, "DROP INDEX events_camera_time_idx; DROP INDEX events_time_idx");
    let chunk = 1_000_000u64;
    let mut from = 1u64;
    while from <= rows {
        let to = (from + chunk - 1).min(rows);
        psql(
            &url,
            &format!(
                "WITH h AS (SELECT position FROM event_head FOR UPDATE), c AS (SELECT ARRAY[{ids}] AS cams), \
                 g AS (SELECT n, TIMESTAMPTZ '{start}' + n * {step_us} * interval '1 microsecond' AS t \
                         FROM generate_series({from}::bigint, {to}::bigint) n) \
                 INSERT INTO events (position, id, time, type, camera_id, payload, until) \
                 SELECT (SELECT position FROM h) + n - {from} + 1, gen_random_uuid(), t, \
                        CASE WHEN n % 5 = 0 THEN 'camera.offline' ELSE 'motion' END, \
                        (SELECT cams[1 + n % {CAMERAS}] FROM c), \
                        CASE WHEN n % 5 = 0 THEN \
                          jsonb_build_object('CameraState', jsonb_build_object('state', 'Offline', 'previous', 'Online', 'error', 'no route to host')) \
                        ELSE \
                          jsonb_build_object('Motion', jsonb_build_object('start', to_jsonb(t), 'end', to_jsonb(t + interval '20 seconds'), \
                            'peak_area', 0.05, 'peak_time', to_jsonb(t + interval '5 seconds'), \
                            'peak_box', jsonb_build_object('x', 0.1, 'y', 0.2, 'width', 0.3, 'height', 0.4))) \
                        END, \
                        CASE WHEN n % 5 = 0 THEN NULL ELSE t + interval '20 seconds' END \
                   FROM g; \
                 UPDATE event_head SET position = position + {count}",
                count = to - from + 1,
                start = start.to_rfc3339(),
            ),
        );
        from = to + 1;
    }
    psql(&url, "CREATE INDEX events_camera_time_idx ON events (camera_id, time DESC, position DESC)");
    psql(&url, "CREATE INDEX events_time_idx ON events (time DESC, position DESC)");
    psql(&url, "VACUUM (ANALYZE) events");
}

fn list_events(camera: Option<String>, range: Option<(DateTime<Utc>, DateTime<Utc>)>) -> Call {
    Arc::new(move |c: opennvr_sdk::Client| {
        let request = pb::ListEventsRequest {
            camera_ids: camera.iter().cloned().collect(),
            start_time: range.map(|r| ts(r.0)),
            end_time: range.map(|r| ts(r.1)),
            page_size: 100,
            ..Default::default()
        };
        Box::pin(async move { c.events().list_events(request).await.is_ok_and(|r| !r.into_inner().events.is_empty()) })
    })
}

/// Events written by `writers` connections for `secs`, `batch` per transaction, while one more
/// connection links them: events linked per second.
fn insert_throughput(db: &TestDb, writers: usize, batch: usize, secs: f64, camera: uuid::Uuid) -> f64 {
    let url = db.runtime_url();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut link = diesel::PgConnection::establish(&url).unwrap();
    let head0 = opennvr_server::store::events::head(&mut link).unwrap().position;
    let mut threads = Vec::new();
    for _ in 0..writers {
        let (url, stop, written) = (url.clone(), stop.clone(), written.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = diesel::PgConnection::establish(&url).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let now = Utc::now();
                let events: Vec<SiteEvent> = (0..batch)
                    .map(|_| {
                        let ep = Episode {
                            start: now,
                            end: now,
                            peak_area: 0.1,
                            peak_time: now,
                            peak_box: FrameBox::default(),
                        };
                        SiteEvent::new(now, Some(camera), EventKind::Motion(ep))
                    })
                    .collect();
                c.transaction(|c| opennvr_server::store::events::append_all(c, &events)).unwrap();
                written.fetch_add(batch as u64, Ordering::Relaxed);
            }
        }));
    }
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        if opennvr_server::store::events::link(&mut link, 10_000).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let linked = opennvr_server::store::events::head(&mut link).unwrap().position - head0;
    // What was written but not linked yet is linked now (not counted).
    while opennvr_server::store::events::link(&mut link, 10_000).unwrap() > 0 {}
    let _ = written;
    linked as f64 / elapsed
}

#[tokio::main]
async fn main() {
    let rows = env("EVENTS_BENCH_ROWS", 10_000_000);
    let secs = env("EVENTS_BENCH_SECS", 5) as f64;
    let db = TestDb::new();
    let (server, admin) = external::start_bootstrapped(&db, PASSWORD).await;
    let cameras: Vec<String> = seed::cameras(&admin, CAMERAS).await.into_iter().map(|c| c.id).collect();
    let end: DateTime<Utc> = DateTime::from_timestamp(Utc::now().timestamp() / 60 * 60, 0).unwrap();
    let t = Instant::now();
    seed_events(&db, &cameras, rows, end);
    println!(
        "seeded {rows} events ({CAMERAS} cameras x {DAYS} days) in {:.0} s; server {} (release), 16 HTTP/2 connections x 4 calls in flight, {secs} s each",
        t.elapsed().as_secs_f64(),
        server.url
    );
    let tokens = admin.tokens().unwrap();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let c = opennvr_sdk::Client::connect(&server.url).await.unwrap();
        c.set_tokens(Some(tokens.clone()));
        clients.push(c);
    }
    let day = (end - CDuration::days(2), end - CDuration::days(1));
    let calls: Vec<(&str, Call)> = vec![
        ("grpc.health.v1.Health/Check", external::health_check()),
        ("ListEvents 1 camera, 1 day (page 100)", list_events(Some(cameras[7].clone()), Some(day))),
        ("ListEvents all cameras, newest (100)", list_events(None, None)),
    ];
    println!(
        "{:<40} {:>10} {:>9} {:>9} {:>12} {:>8}",
        "call", "calls/s", "p50 ms", "p99 ms", "CPU µs/call", "x health"
    );
    let mut baseline = None;
    // Each call under load (64 in flight), then one at a time (the latency a user sees).
    for (clients, in_flight, label) in [(&clients[..], 4, ""), (&clients[..1], 1, ", 1 at a time")] {
        for (name, call) in &calls {
            let f = measure(&server, clients, in_flight, secs, call.clone()).await;
            let base = *baseline.get_or_insert(f.calls_per_sec);
            println!(
                "{:<40} {:>10.0} {:>9.3} {:>9.3} {:>12.1} {:>8.3}{}",
                format!("{name}{label}"),
                f.calls_per_sec,
                f.p50,
                f.p99,
                f.cpu_us_per_call,
                f.calls_per_sec / base,
                if f.errors > 0 { format!("  ({} failed)", f.errors) } else { String::new() }
            );
        }
        baseline = None;
    }
    let camera: uuid::Uuid = cameras[0].parse().unwrap();
    let batched = tokio::task::block_in_place(|| insert_throughput(&db, 4, 256, secs, camera));
    println!("event inserts, 256 per transaction (the recorder), 4 writers + the linker: {batched:.0} events/s");
    let single = tokio::task::block_in_place(|| insert_throughput(&db, 16, 1, secs, camera));
    println!("event inserts, 1 per transaction (a change's own), 16 writers + the linker: {single:.0} events/s");
}
