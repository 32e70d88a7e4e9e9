//! The external load benchmark: the release server in its own process, on a seeded database
//! (100 cameras and their one-minute segments, 10,080,000 by default), driven over real sockets by
//! real gRPC clients on many HTTP/2 connections. For each call it prints calls/s, p50 and p99, the
//! server's CPU per call (from /proc) and the ratio of its throughput to `grpc.health.v1.Health/Check`
//! in the same run; then the server's memory through a storm of logins, and the latency of
//! `ListSegments` under a mix of all the calls (logins one in ten).
//!
//! Run: `cargo bench -p opennvr-server --bench load` (needs `psql` and a PostgreSQL cluster as the
//! tests do; `LOAD_BENCH_DAYS` seeds fewer days, default 70; `LOAD_BENCH_SECS` sets each
//! measurement's length, default 5; `LOAD_BENCH_STORM_SECS` the login storm's, default 60;
//! `LOAD_BENCH_ONLY` runs only the parts whose names contain it — a call, "login storm" or
//! "mixed load" — e.g. to profile one; `LOAD_BENCH_SERVER` runs another build of the server, e.g.
//! an older commit's, to compare in one sitting).
//! The server runs with `OPENNVR_ANONYMOUS_CALLS_PER_SEC` raised: every client here shares one
//! address, and the logins are the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/external.rs"]
mod external;
#[path = "../tests/it/harness.rs"]
mod harness;
mod seed;

use chrono::{DateTime, Duration as CDuration, Utc};
use external::{Call, ServerProcess, measure, percentiles, rss_mib};
use harness::TestDb;
use opennvr_sdk::pb;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CAMERAS: usize = 100;
/// Users the logins are spread over, each login from an address of its own: checks of one user
/// from one address run one at a time, so a storm of one user from one address would hash one
/// password at a time.
const LOGIN_USERS: usize = 32;
const PASSWORD: &str = "granite-harbor-lantern-42";
/// HTTP/2 connections of a measurement, and calls in flight on each.
const CONNECTIONS: usize = 16;
const IN_FLIGHT: usize = 4;

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

#[tokio::main]
async fn main() {
    let days: i64 = std::env::var("LOAD_BENCH_DAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(70);
    let secs: f64 = std::env::var("LOAD_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0);
    let storm_secs: u64 = std::env::var("LOAD_BENCH_STORM_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let db = TestDb::new();
    let (server, admin) = external::start_bootstrapped(&db, PASSWORD).await;
    let cameras = seed::cameras(&admin, CAMERAS).await;
    for i in 0..LOGIN_USERS {
        let user = pb::User { username: format!("bench-{i}"), role: pb::Role::Viewer as i32, ..Default::default() };
        let request = pb::CreateUserRequest { user: Some(user), password: PASSWORD.into() };
        admin.users().create_user(request).await.unwrap();
    }
    // The footage: one COPY per day of all cameras, in time order.
    let end: DateTime<Utc> = DateTime::from_timestamp(Utc::now().timestamp() / 60 * 60, 0).unwrap();
    let start = end - CDuration::days(days);
    let t = Instant::now();
    let seeded: Vec<(String, String)> =
        cameras.iter().map(|c| (c.id.clone(), format!("/recordings/{}", c.id))).collect();
    seed::one_minute_segments(&db.superuser_url(), &seeded, start, days, |_, _| {});
    let vacuum = std::process::Command::new("psql")
        .arg(db.superuser_url())
        .args(["-X", "-q", "-c", "VACUUM (ANALYZE) segments"])
        .status()
        .unwrap();
    assert!(vacuum.success());
    println!(
        "seeded {} segments ({CAMERAS} cameras x {days} days of 60 s) in {:.0} s; server {} (release), {CONNECTIONS} HTTP/2 connections x {IN_FLIGHT} calls in flight, {secs} s each",
        CAMERAS as i64 * days * 1440,
        t.elapsed().as_secs_f64(),
        server.url,
    );
    let idle_at_start = server.rss_mib();
    let tokens = admin.tokens().unwrap();
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let c = opennvr_sdk::Client::connect(&server.url).await.unwrap();
        c.set_tokens(Some(tokens.clone()));
        clients.push(c);
    }
    let cam = cameras[0].id.clone();
    let hour_ago = end - CDuration::hours(1);
    let calls: Vec<(&str, Call)> = vec![
        ("grpc.health.v1.Health/Check", external::health_check()),
        (
            "WhoAmI",
            Arc::new(|c: opennvr_sdk::Client| {
                Box::pin(async move { c.auth().who_am_i(pb::WhoAmIRequest {}).await.is_ok() })
            }),
        ),
        ("ListSegments 1 h", list_segments(&cam, hour_ago, end)),
        ("ListSegments 1 day", list_segments(&cam, end - CDuration::days(1), end)),
        ("GetTimeline 1 day", timeline(vec![cam.clone()], end - CDuration::days(1), end)),
        ("GetTimeline 30 days", timeline(vec![cam.clone()], end - CDuration::days(30), end)),
        (
            "ListCameras (100, latest footage)",
            Arc::new(|c: opennvr_sdk::Client| {
                Box::pin(async move {
                    let r =
                        c.cameras().list_cameras(pb::ListCamerasRequest { page_size: 100, ..Default::default() }).await;
                    r.is_ok_and(|r| r.into_inner().cameras.len() == CAMERAS)
                })
            }),
        ),
        ("Login (argon2id m=19 MiB, t=2; 16 at once)", login()),
        ("WhoAmI over grpc-web (HTTP/1.1)", grpc_web(&server.url, &tokens.access_token)),
    ];
    let mut baseline = None;
    println!(
        "{:<36} {:>10} {:>9} {:>9} {:>12} {:>8}",
        "call", "calls/s", "p50 ms", "p99 ms", "CPU µs/call", "x health"
    );
    let only = std::env::var("LOAD_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    for (name, call) in &calls {
        if !wanted(name) && !name.starts_with("grpc.health") {
            continue;
        }
        let in_flight = if name.starts_with("Login") { 1 } else { IN_FLIGHT };
        let f = measure(&server, &clients, in_flight, secs, call.clone()).await;
        let base = *baseline.get_or_insert(f.calls_per_sec);
        println!(
            "{name:<36} {:>10.0} {:>9.3} {:>9.3} {:>12.1} {:>8.3}{}",
            f.calls_per_sec,
            f.p50,
            f.p99,
            f.cpu_us_per_call,
            f.calls_per_sec / base,
            if f.errors > 0 { format!("  ({} failed)", f.errors) } else { String::new() }
        );
    }

    if wanted("login storm") {
        login_storm(&server, storm_secs, idle_at_start).await;
    }
    if wanted("mixed load") {
        mixed_load(&server, &tokens, &calls, secs).await;
    }
}

/// Memory through a storm of 32 concurrent logins, and the minute after.
async fn login_storm(server: &ServerProcess, storm_secs: u64, idle_at_start: f64) {
    let before = server.rss_mib();
    let mut storm = Vec::new();
    for _ in 0..32 {
        storm.push(opennvr_sdk::Client::connect(&server.url).await.unwrap());
    }
    // Resident memory every second, through the storm and the minute after.
    let curve = {
        let pid = server.pid();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(storm_secs + 60) {
                samples.push(rss_mib(pid));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            samples
        })
    };
    let f = measure(server, &storm, 1, storm_secs as f64, login()).await;
    let samples = curve.await.unwrap();
    let storm_part = &samples[..(storm_secs as usize).min(samples.len())];
    let peak = storm_part.iter().copied().fold(0.0, f64::max);
    let after = samples.last().copied().unwrap_or(0.0);
    let every_10s: Vec<String> = samples.iter().step_by(10).map(|m| format!("{m:.0}")).collect();
    println!(
        "login storm, 32 users at once from 32 addresses for {storm_secs} s: {:.1} logins/s ({} refused); RSS idle at start {idle_at_start:.1} MiB, before the storm {before:.1} MiB, peak {peak:.1} MiB, 60 s after {after:.1} MiB; every 10 s from the start (MiB): {}",
        f.calls_per_sec,
        f.errors,
        every_10s.join(" ")
    );
}

/// 64 connections mixing the calls, logins one in ten: the latency of ListSegments 1 h.
async fn mixed_load(server: &ServerProcess, tokens: &pb::Tokens, calls: &[(&str, Call)], secs: f64) {
    let mut mixed = Vec::new();
    for _ in 0..64 {
        let c = opennvr_sdk::Client::connect(&server.url).await.unwrap();
        c.set_tokens(Some(tokens.clone()));
        mixed.push(c);
    }
    let reads: Vec<Call> = calls.iter().filter(|(n, _)| !n.starts_with("Login")).map(|(_, c)| c.clone()).collect();
    let segments_1h = calls[2].1.clone();
    let (stop, samples) = (Arc::new(AtomicBool::new(false)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let logins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let login_call = login();
    for (i, c) in mixed.into_iter().enumerate() {
        let (stop, samples, reads, segments_1h, login, logins) =
            (stop.clone(), samples.clone(), reads.clone(), segments_1h.clone(), login_call.clone(), logins.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = i;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if n % 10 == 0 {
                    if login(c.clone()).await {
                        logins.fetch_add(1, Ordering::Relaxed);
                    }
                } else if n % 10 == 1 {
                    let t = Instant::now();
                    if segments_1h(c.clone()).await {
                        samples.lock().unwrap().push(t.elapsed());
                    }
                } else {
                    reads[n % reads.len()](c.clone()).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs * 2.0)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let mut s = samples.lock().unwrap().clone();
    let (p50, p99) = percentiles(&mut s);
    println!(
        "mixed load, 64 connections, logins 1 in 10: ListSegments 1 h p50 {p50:.3} ms, p99 {p99:.3} ms ({} calls); {:.1} logins/s",
        s.len(),
        logins.load(Ordering::Relaxed) as f64 / (secs * 2.0)
    );
}

fn list_segments(cam: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Call {
    let cam = cam.to_owned();
    Arc::new(move |c: opennvr_sdk::Client| {
        let request = pb::ListSegmentsRequest {
            camera_id: cam.clone(),
            start_time: Some(ts(from)),
            end_time: Some(ts(to)),
            page_size: 1000,
            ..Default::default()
        };
        Box::pin(async move {
            c.recordings().list_segments(request).await.is_ok_and(|r| !r.into_inner().segments.is_empty())
        })
    })
}

fn timeline(cams: Vec<String>, from: DateTime<Utc>, to: DateTime<Utc>) -> Call {
    Arc::new(move |c: opennvr_sdk::Client| {
        let request = pb::GetTimelineRequest {
            camera_ids: cams.clone(),
            start_time: Some(ts(from)),
            end_time: Some(ts(to)),
            ..Default::default()
        };
        Box::pin(async move { c.recordings().get_timeline(request).await.is_ok() })
    })
}

fn login() -> Call {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |c: opennvr_sdk::Client| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let request = pb::LoginRequest { username: format!("bench-{}", n % LOGIN_USERS), password: PASSWORD.into() };
        let mut request = tonic::Request::new(request);
        let address = format!("10.77.{}.{}", (n / 250) % 250, n % 250 + 1);
        request.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
        Box::pin(async move { c.auth().login(request).await.is_ok() })
    })
}

/// WhoAmI as a browser sends it: grpc-web over HTTP/1.1 (one connection per client task, kept).
fn grpc_web(url: &str, token: &str) -> Call {
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let (url, token) = (format!("{url}/opennvr.v1.AuthService/WhoAmI"), token.to_owned());
    Arc::new(move |_c: opennvr_sdk::Client| {
        let request = http
            .post(&url)
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .bearer_auth(&token)
            .body(vec![0u8, 0, 0, 0, 0]);
        Box::pin(async move {
            match request.send().await {
                // The answer's message, then its trailers frame: grpc-status 0.
                Ok(r) => {
                    r.status().is_success()
                        && r.bytes().await.is_ok_and(|b| b.windows(14).any(|w| w == b"grpc-status:0\r"))
                }
                Err(_) => false,
            }
        })
    })
}
