//! Benchmark of the audit trail, printed as figures: sustained audited appends with 32 concurrent
//! writers beside plain INSERTs of the same rows into an unchained table in the same run (the ratio
//! is the cost of the chain), and VerifyAuditChain over 1,000,000 entries.
//!
//! Run: `cargo bench -p opennvr-server --bench audit` (set `OPENNVR_TEST_PG_URL` to use a running
//! cluster; `AUDIT_BENCH_VERIFY_ENTRIES` changes the verification size).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/harness.rs"]
mod harness;

use diesel::RunQueryDsl;
use harness::TestServer;
use opennvr_sdk::pb;
use opennvr_server::domain::AuditRecord;
use opennvr_server::store::audit::AuditEventRow;
use std::time::Instant;

const WRITERS: usize = 32;
const PER_WRITER: usize = 400;

fn record(w: usize, i: usize) -> AuditRecord {
    AuditRecord::system("bench.write", "writer", &w.to_string())
        .detail("i", i.to_string())
        .detail("note", "a typical entry with a few details")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let mut su = s.db.superuser();
    diesel::sql_query(
        "CREATE TABLE bench_plain_events (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)",
    )
    .execute(&mut su)
    .unwrap();
    diesel::sql_query("GRANT SELECT, INSERT ON bench_plain_events TO opennvr_runtime").execute(&mut su).unwrap();

    // 1. Audited appends: each in its own transaction, linked into the chain by the server's linker.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let trail = s.audit.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                trail.record(record(w, i)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Counted once every entry is in the chain, not merely committed.
    s.audit.link_pending().await.unwrap();
    let chained = (WRITERS * PER_WRITER) as f64 / t.elapsed().as_secs_f64();

    // 2. The same rows, plain INSERTs into an unchained table, same pool, same concurrency.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = s.store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let r = record(w, i);
                store
                    .transaction(move |c| {
                        diesel::sql_query(
                            "INSERT INTO bench_plain_events (sequence, id, time, actor_type, action, target_type, target_id, result, code, details, prev_hash, hash)
                             VALUES ($1, gen_random_uuid(), now(), 'system', $2, $3, $4, 'success', 'OK', $5, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))",
                        )
                        .bind::<diesel::sql_types::BigInt, _>((w * PER_WRITER + i + 1) as i64)
                        .bind::<diesel::sql_types::Text, _>(&r.action)
                        .bind::<diesel::sql_types::Text, _>(&r.target_type)
                        .bind::<diesel::sql_types::Text, _>(&r.target_id)
                        .bind::<diesel::sql_types::Text, _>(opennvr_sdk::audit::canonical_details(&r.details))
                        .execute(c)?;
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let plain = (WRITERS * PER_WRITER) as f64 / t.elapsed().as_secs_f64();
    println!("{:<52} {chained:>9.0} entries/s", format!("audited appends, {WRITERS} writers (chained)"));
    println!("{:<52} {plain:>9.0} rows/s", format!("plain INSERT of the same rows, {WRITERS} writers"));
    println!("{:<52} {:>9.2}", "chained / plain throughput", chained / plain);

    // 3. VerifyAuditChain over a large trail: rows chained here in bulk, then verified by the server.
    let target: i64 =
        std::env::var("AUDIT_BENCH_VERIFY_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let (mut seq, mut prev) = opennvr_server::store::audit::head(&mut su).unwrap();
    let base_time = chrono::Utc::now();
    let t = Instant::now();
    while seq < target {
        let n = (target - seq).min(2_000);
        let mut rows = Vec::with_capacity(n as usize);
        for k in 0..n {
            let sequence = seq + k + 1;
            let mut row = AuditEventRow {
                sequence,
                id: uuid::Uuid::new_v4(),
                time: opennvr_server::audit::to_micros(base_time + chrono::Duration::microseconds(sequence)),
                actor_type: "system".into(),
                actor_user_id: String::new(),
                actor_username: String::new(),
                actor_api_key_id: String::new(),
                actor_session_id: String::new(),
                client_address: String::new(),
                user_agent: String::new(),
                action: "bench.bulk".into(),
                method: String::new(),
                target_type: "bench".into(),
                target_id: sequence.to_string(),
                camera_id: String::new(),
                result: "success".into(),
                code: "OK".into(),
                reason: String::new(),
                details: r#"{"note":"bulk"}"#.into(),
                request_id: String::new(),
                prev_hash: prev.clone(),
                hash: Vec::new(),
            };
            row.hash = opennvr_server::audit::recompute(&row.prev_hash, &row).to_vec();
            prev = row.hash.clone();
            rows.push(row);
        }
        diesel::insert_into(opennvr_server::store::schema::audit_events::table).values(&rows).execute(&mut su).unwrap();
        seq += n;
    }
    diesel::sql_query("UPDATE audit_chain_head SET sequence = $1, hash = $2")
        .bind::<diesel::sql_types::BigInt, _>(seq)
        .bind::<diesel::sql_types::Bytea, _>(&prev)
        .execute(&mut su)
        .unwrap();
    println!("{:<52} {:>9.1} s", format!("bulk-chained {target} entries (setup)"), t.elapsed().as_secs_f64());
    let t = Instant::now();
    let r = admin.audit().verify_audit_chain(pb::VerifyAuditChainRequest::default()).await.unwrap().into_inner();
    let took = t.elapsed().as_secs_f64();
    assert!(r.ok, "{r:?}");
    println!(
        "{:<52} {:>9.1} s ({:.0} entries/s)",
        format!("VerifyAuditChain over {} entries", r.verified_count),
        took,
        r.verified_count as f64 / took
    );
    s.shutdown().await;
}
