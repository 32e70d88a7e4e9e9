//! Reading the audit trail: filtered listing, live watching, verifiable exports, chain verification.
use super::PageRequest;
use crate::audit::{AuditTrail, BATCH, ChainReport};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::audit::{AuditEventRow, AuditKeyRow, CheckpointRow, EventFilter};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use opennvr_audit_chain::{HASH_SCHEME, format_time};
use std::time::Duration;
use tokio::sync::mpsc;

/// Size of one chunk of an export stream.
const CHUNK: usize = 1 << 20;
/// A watch with nothing to send says it is alive this often.
const WATCH_HEARTBEAT: Duration = Duration::from_secs(15);

/// What a watch stream carries.
#[derive(Debug)]
pub enum WatchItem {
    Event(Box<AuditEventRow>),
    Heartbeat,
}

/// File formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    JsonLines,
    Csv,
}

/// The audit trail's read side.
#[derive(Clone)]
pub struct AuditApp {
    pub store: Store,
    pub trail: AuditTrail,
    pub clock: SharedClock,
}

fn filter_binding(f: &EventFilter, oldest_first: bool) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{:?}|{:?}|{oldest_first}",
        f.actor_user_id,
        f.actor_api_key_id,
        f.action,
        f.camera_id,
        f.target_type,
        f.target_id,
        f.result,
        f.code,
        f.start_time,
        f.end_time
    )
}

/// One event as a JSON object of the export (hashes base64, details as an object).
pub fn event_json(row: &AuditEventRow) -> serde_json::Value {
    let details: serde_json::Value = serde_json::from_str(&row.details).unwrap_or_else(|_| serde_json::json!({}));
    serde_json::json!({
        "type": "event",
        "sequence": row.sequence,
        "id": row.id.to_string(),
        "time": format_time(row.time.timestamp_micros()),
        "actor_type": row.actor_type,
        "actor_user_id": row.actor_user_id,
        "actor_username": row.actor_username,
        "actor_api_key_id": row.actor_api_key_id,
        "actor_session_id": row.actor_session_id,
        "client_address": row.client_address,
        "user_agent": row.user_agent,
        "action": row.action,
        "method": row.method,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "camera_id": row.camera_id,
        "result": row.result,
        "code": row.code,
        "reason": row.reason,
        "details": details,
        "request_id": row.request_id,
        "prev_hash": B64.encode(&row.prev_hash),
        "hash": B64.encode(&row.hash),
    })
}

/// One CSV cell. A cell that a spreadsheet would take for a formula (it begins with `=`, `+`, `-`,
/// `@`, a tab or a carriage return: usernames of failed logins are chosen by whoever tried) is
/// prefixed with `'`, so that opening the export never runs anything.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

fn csv_row(row: &AuditEventRow) -> String {
    let fields = [
        row.sequence.to_string(),
        row.id.to_string(),
        format_time(row.time.timestamp_micros()),
        row.actor_type.clone(),
        row.actor_user_id.clone(),
        row.actor_username.clone(),
        row.client_address.clone(),
        row.action.clone(),
        row.method.clone(),
        row.target_type.clone(),
        row.target_id.clone(),
        row.camera_id.clone(),
        row.result.clone(),
        row.code.clone(),
        row.reason.clone(),
        row.details.clone(),
        row.request_id.clone(),
        hex::encode(&row.prev_hash),
        hex::encode(&row.hash),
    ];
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

impl AuditApp {
    /// A page of entries matching `filter`, newest first unless `oldest_first`.
    pub async fn list(
        &self,
        filter: EventFilter,
        oldest_first: bool,
        page: PageRequest,
    ) -> Result<(Vec<AuditEventRow>, String)> {
        let cursor = match &page.after {
            Some(s) => Some(s.parse::<i64>().map_err(|_| Error::invalid("page_token", "page_token is not valid"))?),
            None => None,
        };
        let limit = page.size;
        // Every entry committed before this call is in the chain, and in the answer.
        self.trail.link_pending().await?;
        let rows = self.store.run(move |c| AuditEventRow::page(c, &filter, cursor, oldest_first, limit)).await?;
        let last = rows.last().map(|r| r.sequence.to_string());
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// The page binding of a listing, so tokens cannot be reused with other filters.
    pub fn binding(filter: &EventFilter, oldest_first: bool) -> String {
        filter_binding(filter, oldest_first)
    }

    /// Verifies the chain over a range.
    pub async fn verify(&self, start: Option<i64>, end: Option<i64>) -> Result<ChainReport> {
        self.trail.link_pending().await?;
        self.trail.verify(start, end).await
    }

    /// Every audit signing key, oldest first.
    pub async fn keys(&self, page: PageRequest) -> Result<(Vec<AuditKeyRow>, String)> {
        let bad = || Error::invalid("page_token", "page_token is not one this server issued");
        let after = match &page.after {
            Some(t) => {
                let (micros, kid) = t.split_once('/').ok_or_else(bad)?;
                let at =
                    micros.parse::<i64>().ok().and_then(chrono::DateTime::from_timestamp_micros).ok_or_else(bad)?;
                Some((at, kid.to_owned()))
            }
            None => None,
        };
        let limit = page.size;
        let rows = self.store.run(move |c| AuditKeyRow::page(c, after, limit)).await?;
        let last = rows.last().map(|k| format!("{}/{}", k.created_at.timestamp_micros(), k.kid));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// Streams entries matching `filter`: those after `after` first, then new ones as they commit,
    /// with a heartbeat when idle. Ends when the receiver is dropped.
    pub async fn watch(&self, filter: EventFilter, after: Option<i64>) -> Result<mpsc::Receiver<Result<WatchItem>>> {
        let (tx, rx) = mpsc::channel(256);
        let store = self.store.clone();
        self.trail.link_pending().await?;
        // "From now on" means from the head as the call is answered, not when the task first runs.
        let mut cursor = match after {
            Some(a) => a,
            None => store.run(|c| crate::store::audit::head(c).map(|h| h.0)).await?,
        };
        // An idle watch costs nothing: it reads when the linker says entries were linked.
        let mut linked = self.trail.linked();
        linked.borrow_and_update();
        tokio::spawn(async move {
            loop {
                let f = filter.clone();
                let from = cursor;
                let batch = store
                    .run(move |c| {
                        // Entries at or below the committed head have all committed.
                        let (head, _) = crate::store::audit::head(c)?;
                        let upto = head.min(from + BATCH);
                        let rows = AuditEventRow::page(c, &f, Some(from), true, BATCH)?
                            .into_iter()
                            .filter(|r| r.sequence <= upto)
                            .collect::<Vec<_>>();
                        Ok((upto, head, rows))
                    })
                    .await;
                let head = match batch {
                    Ok((last, head, rows)) => {
                        cursor = last;
                        for row in rows {
                            if tx.send(Ok(WatchItem::Event(Box::new(row)))).await.is_err() {
                                return;
                            }
                        }
                        head
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if cursor < head {
                    continue;
                }
                let mut heartbeat = std::pin::pin!(tokio::time::sleep(WATCH_HEARTBEAT));
                loop {
                    tokio::select! {
                        changed = linked.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            break;
                        }
                        _ = &mut heartbeat => {
                            if tx.send(Ok(WatchItem::Heartbeat)).await.is_err() {
                                return;
                            }
                            heartbeat.set(tokio::time::sleep(WATCH_HEARTBEAT));
                        }
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Ok(rx)
    }

    /// Streams an export of `[start, end]` (sequences; `None` = the whole trail, narrowed by the
    /// time bounds) as chunks of the file.
    pub async fn export(
        &self,
        format: ExportFormat,
        start: Option<i64>,
        end: Option<i64>,
        start_time: Option<chrono::DateTime<chrono::Utc>>,
        end_time: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<mpsc::Receiver<Result<Vec<u8>>>> {
        self.trail.link_pending().await?;
        let (first, last) = self
            .store
            .run(move |c| {
                let (head, _) = crate::store::audit::head(c)?;
                let (tmin, tmax) = if start_time.is_some() || end_time.is_some() {
                    AuditEventRow::sequence_bounds(c, start_time, end_time)?
                } else {
                    (AuditEventRow::first_sequence(c)?, Some(head))
                };
                let first = start.unwrap_or(1).max(tmin.unwrap_or(i64::MAX).min(head + 1)).max(1);
                let last = end.unwrap_or(head).min(tmax.unwrap_or(0)).min(head);
                Ok((first, last))
            })
            .await?;
        if start.is_some_and(|s| s < 1) || matches!((start, end), (Some(s), Some(e)) if s > e) {
            return Err(Error::invalid("start_sequence", "start_sequence must be between 1 and end_sequence"));
        }
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let now = self.clock.now();
        tokio::spawn(async move {
            let result = export_into(&store, &tx, format, first, last, now).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }
}

/// What an archive pass did.
#[derive(Debug, Clone)]
pub struct Archived {
    pub through: i64,
    pub removed: i64,
    pub file: std::path::PathBuf,
}

impl AuditApp {
    /// Moves entries older than `older_than` out of the database: up to the newest checkpoint signed
    /// before the cutoff, they are exported to a file in `dir`, the file is verified, and only then
    /// deleted through the one database function that may, in the same transaction as the entry
    /// that records the pass. The remaining chain verifies from that checkpoint.
    pub async fn archive(&self, older_than: chrono::Duration, dir: &std::path::Path) -> Result<Option<Archived>> {
        use sha2::Digest;
        let cutoff = self.clock.now() - older_than;
        let (first, checkpoint) = self
            .store
            .run(move |c| Ok((AuditEventRow::first_sequence(c)?, CheckpointRow::latest_before(c, cutoff)?)))
            .await?;
        let (Some(first), Some(cp)) = (first, checkpoint) else { return Ok(None) };
        if cp.sequence < first {
            return Ok(None);
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
        let file = dir.join(format!("audit-{first:012}-{:012}.jsonl", cp.sequence));
        let partial = file.with_extension("partial");
        let mut rx = self.export(ExportFormat::JsonLines, Some(first), Some(cp.sequence), None, None).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            bytes.extend_from_slice(&chunk?);
        }
        let report = opennvr_audit_chain::verify_export(bytes.as_slice())
            .map_err(|e| Error::internal(format!("the archive export does not verify: {e}")))?;
        if report.last_checkpoint != Some(cp.sequence) {
            return Err(Error::internal("the archive export does not end at its checkpoint"));
        }
        write_durably(&partial, &file, &bytes)?;
        let digest = hex::encode(sha2::Sha256::digest(&bytes));
        let record =
            crate::domain::AuditRecord::system("audit.archive", "audit_events", &format!("{first}-{}", cp.sequence))
                .detail("file", file.display().to_string())
                .detail("sha256", digest)
                .detail("through_sequence", cp.sequence.to_string());
        let (now, upto) = (self.clock.now(), cp.sequence);
        let removed = crate::audit::commit(&self.store, now, move |c| {
            let removed = crate::store::audit::archive_through(c, upto)?;
            // The keys' creation entries may be among those archived: this entry vouches for them.
            let keys: Vec<String> = AuditKeyRow::all(c)?.iter().map(|k| B64.encode(&k.public_key)).collect();
            Ok((removed, vec![record.detail(crate::audit::ARCHIVE_KEYS_DETAIL, keys.join(","))]))
        })
        .await?;
        tracing::info!(through = cp.sequence, removed, file = %file.display(), "audit entries archived");
        Ok(Some(Archived { through: cp.sequence, removed, file }))
    }
}

/// Writes `bytes` to `partial`, syncs it, and renames it to `file` (then syncs the directory).
fn write_durably(partial: &std::path::Path, file: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| Error::internal(format!("writing {}: {e}", file.display()));
    let mut f = std::fs::File::create(partial).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(partial, file).map_err(io)?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

async fn export_into(
    store: &Store,
    tx: &mpsc::Sender<Result<Vec<u8>>>,
    format: ExportFormat,
    first: i64,
    last: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let mut buf = String::new();
    let flush = |buf: &mut String| {
        let chunk = std::mem::take(buf).into_bytes();
        async move { tx.send(Ok(chunk)).await.map_err(|_| Error::internal("export receiver went away")) }
    };
    let (anchor, keys) = store.run(move |c| Ok((crate::audit::anchor(c, first)?, AuditKeyRow::all(c)?))).await?;
    match format {
        ExportFormat::JsonLines => {
            let header = serde_json::json!({
                "type": "header",
                "hash_scheme": HASH_SCHEME,
                "exported_at": format_time(now.timestamp_micros()),
                "first_sequence": first,
                "last_sequence": last,
                "anchor_hash": B64.encode(&anchor),
                "keys": keys.iter().map(|k| serde_json::json!({
                    "key_id": k.kid,
                    "algorithm": "EdDSA",
                    "public_key": B64.encode(&k.public_key),
                    "created": format_time(k.created_at.timestamp_micros()),
                    "retired": k.retired_at.map(|t| format_time(t.timestamp_micros())),
                })).collect::<Vec<_>>(),
            });
            buf.push_str(&header.to_string());
            buf.push('\n');
        }
        ExportFormat::Csv => buf.push_str(
            "sequence,id,time,actor_type,actor_user_id,actor_username,client_address,action,method,target_type,target_id,camera_id,result,code,reason,details,request_id,prev_hash,hash\r\n",
        ),
    }
    let (mut count, mut last_hash, mut next) = (0i64, anchor, first);
    while next <= last {
        let from = next;
        let (rows, checkpoints) = store
            .run(move |c| {
                let rows = AuditEventRow::range(c, from, last, BATCH)?;
                let to = rows.last().map(|r| r.sequence).unwrap_or(from);
                Ok((rows, CheckpointRow::range(c, from, to)?))
            })
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut cps = checkpoints.into_iter().peekable();
        for row in rows {
            next = row.sequence + 1;
            count += 1;
            match format {
                ExportFormat::JsonLines => {
                    buf.push_str(&event_json(&row).to_string());
                    buf.push('\n');
                    while let Some(cp) = cps.next_if(|cp| cp.sequence == row.sequence) {
                        let line = serde_json::json!({
                            "type": "checkpoint",
                            "sequence": cp.sequence,
                            "hash": B64.encode(&cp.hash),
                            "time": format_time(cp.time.timestamp_micros()),
                            "key_id": cp.key_id,
                            "signature": B64.encode(&cp.signature),
                        });
                        buf.push_str(&line.to_string());
                        buf.push('\n');
                    }
                }
                ExportFormat::Csv => buf.push_str(&csv_row(&row)),
            }
            last_hash = row.hash;
            if buf.len() >= CHUNK {
                flush(&mut buf).await?;
            }
        }
    }
    if format == ExportFormat::JsonLines {
        let trailer = serde_json::json!({
            "type": "trailer",
            "count": count,
            "last_sequence": if count > 0 { next - 1 } else { 0 },
            "last_hash": B64.encode(&last_hash),
        });
        buf.push_str(&trailer.to_string());
        buf.push('\n');
    }
    if !buf.is_empty() {
        flush(&mut buf).await?;
    }
    Ok(())
}
