//! Benchmark of the authenticated-call path, printed as figures (not asserted):
//! token verification cost, a cheap authenticated RPC's latency and throughput, and the same RPC's
//! latency while a burst of production-cost logins runs (argon2id must stay off the async runtime).
//!
//! Run: `OPENNVR_TEST_PG_URL=postgres://postgres@127.0.0.1:PORT/postgres cargo bench -p opennvr-server --bench api`
//! (without the variable a private PostgreSQL cluster is started).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/harness.rs"]
mod harness;

use harness::{ADMIN_PASSWORD, TestDb, TestServer, test_options};
use opennvr_sdk::pb;
use opennvr_server::security::token::TokenIssuer;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn rpc_latencies(client: &opennvr_sdk::Client, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.users().list_roles(pb::ListRolesRequest::default()).await.unwrap();
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn report(name: &str, lat: &[Duration]) {
    println!(
        "{name:<46} n={:<6} p50={:>8.1?} p90={:>8.1?} p99={:>8.1?} max={:>8.1?}",
        lat.len(),
        percentile(lat, 0.5),
        percentile(lat, 0.9),
        percentile(lat, 0.99),
        lat[lat.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let db = TestDb::new();
    let mut options = test_options(&db);
    // Production password hashing cost.
    options.argon2_memory_kib = None;
    options.argon2_iterations = None;
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;

    // 1. Token verification, in process (what the gate does per call: no database).
    let issuer =
        TokenIssuer::new(s.keys.clone(), Arc::new(s.clock.clone()), "opennvr".into(), chrono::Duration::minutes(10));
    let token = admin.tokens().unwrap().access_token;
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        issuer.verify(&token).unwrap();
    }
    println!(
        "{:<46} {:.2} µs/op",
        "access token verification (EdDSA, in process)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );

    // 2. A cheap authenticated RPC (ListRoles: gate + handler, no database), sequential.
    rpc_latencies(&admin, 500).await;
    let idle = rpc_latencies(&admin, 5_000).await;
    report("ListRoles over gRPC, sequential", &idle);

    // 2b. The same with an API key (looked up in the in-memory key cache; last use batched).
    let key = admin
        .api_keys()
        .create_api_key(pb::CreateApiKeyRequest {
            api_key: Some(pb::ApiKey {
                name: "bench".into(),
                role: pb::Role::Auditor as i32,
                permissions: vec!["user.read".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let by_key = s.client().await;
    by_key.set_api_key(&key.secret);
    rpc_latencies(&by_key, 500).await;
    let keyed = rpc_latencies(&by_key, 5_000).await;
    report("ListRoles over gRPC with an API key", &keyed);

    // 3. Throughput with 32 concurrent callers.
    let calls = 20_000;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let c = admin.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..calls / 32 {
                c.users().list_roles(pb::ListRolesRequest::default()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    println!("{:<46} {:.0} calls/s", "ListRoles, 32 concurrent callers", calls as f64 / t.elapsed().as_secs_f64());

    // 4. The same RPC while 8 clients log in back to back with production argon2id.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut burst = Vec::new();
    let logins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..8 {
        let c = s.client().await;
        let (stop, logins) = (stop.clone(), logins.clone());
        burst.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // The password check (the admin has TOTP: it answers the MFA challenge).
                c.login_start("admin", ADMIN_PASSWORD).await.unwrap();
                logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let during = rpc_latencies(&admin, 2_000).await;
    let window = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in burst {
        b.await.unwrap();
    }
    report("ListRoles during a login burst (8 callers)", &during);
    println!(
        "{:<46} {:.1} logins/s (argon2id m=19456 KiB, t=2)",
        "login throughput during the burst",
        logins.load(std::sync::atomic::Ordering::Relaxed) as f64 / (window.as_secs_f64() + 0.3)
    );
    s.shutdown().await;
}
