//! The append-only, hash-chained audit trail: the single writer of entries (into an inbox, inside the
//! caller's transaction) and their linker into the chain, signed checkpoints, and chain verification.
use crate::clock::SharedClock;
use crate::domain::AuditRecord;
use crate::error::{Error, ErrorKind, Result};
use crate::security::seal::{MasterKey, Sealed};
use crate::store::Store;
use crate::store::audit::{self as q, AuditEventRow, AuditKeyRow, CheckpointRow};
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use opennvr_audit_chain::{ChainFields, GENESIS, canonical_details, chain_hash, checkpoint_message, format_time};
use uuid::Uuid;

pub mod refusals;

/// Rows read per batch when verifying or exporting.
pub const BATCH: i64 = 5_000;

/// Drops sub-microsecond precision: PostgreSQL keeps microseconds, and the hash covers the stored time.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The chained fields of a stored row (`id` and `time` in their canonical text form).
pub fn fields<'a>(row: &'a AuditEventRow, id: &'a str, time: &'a str) -> ChainFields<'a> {
    ChainFields {
        sequence: row.sequence,
        id,
        time,
        actor_type: &row.actor_type,
        actor_user_id: &row.actor_user_id,
        actor_username: &row.actor_username,
        actor_api_key_id: &row.actor_api_key_id,
        actor_session_id: &row.actor_session_id,
        client_address: &row.client_address,
        user_agent: &row.user_agent,
        action: &row.action,
        method: &row.method,
        target_type: &row.target_type,
        target_id: &row.target_id,
        camera_id: &row.camera_id,
        result: &row.result,
        code: &row.code,
        reason: &row.reason,
        details: &row.details,
        request_id: &row.request_id,
    }
}

/// Recomputes a stored row's hash from `prev_hash`.
pub fn recompute(prev_hash: &[u8], row: &AuditEventRow) -> [u8; 32] {
    let (id, time) = (row.id.to_string(), format_time(row.time.timestamp_micros()));
    chain_hash(prev_hash, &fields(row, &id, &time))
}

/// An audited change: runs `change` in one transaction and appends the entries it returns in that
/// same transaction, so the change and what records it commit together or not at all. The only way
/// code outside this module writes entries beside a change (a call's entry goes through
/// `app::Call::audited`, which builds on this).
pub async fn commit<R, F>(store: &Store, now: DateTime<Utc>, change: F) -> Result<R>
where
    F: FnOnce(&mut PgConnection) -> Result<(R, Vec<AuditRecord>)> + Send + 'static,
    R: Send + 'static,
{
    store
        .transaction(move |c| {
            let (result, entries) = change(c)?;
            for entry in &entries {
                append(c, entry, now)?;
            }
            Ok(result)
        })
        .await
}

/// Appends `record` to the trail inside the caller's transaction: the entry commits with the change
/// it records, or not at all, and is linked into the chain (sequence and hash) as it commits, by the
/// linker ([`AuditTrail::run_linker`]).
fn append(c: &mut PgConnection, record: &AuditRecord, now: DateTime<Utc>) -> Result<()> {
    let (id, time) = (Uuid::new_v4().to_string(), format_time(to_micros(now).timestamp_micros()));
    let reason: String = record.reason.chars().take(1024).collect();
    let details = canonical_details(&record.details);
    let f = ChainFields {
        sequence: 0,
        id: &id,
        time: &time,
        actor_type: record.actor.kind.as_str(),
        actor_user_id: &record.actor.user_id,
        actor_username: &record.actor.username,
        actor_api_key_id: &record.actor.api_key_id,
        actor_session_id: &record.actor.session_id,
        client_address: &record.client_address,
        user_agent: &record.user_agent,
        action: &record.action,
        method: &record.method,
        target_type: &record.target_type,
        target_id: &record.target_id,
        camera_id: &record.camera_id,
        result: record.result.as_str(),
        code: &record.code,
        reason: &reason,
        details: &details,
        request_id: &record.request_id,
    };
    q::append_pending(c, &f.texts())
}

/// The hash the event at `start` must link to: the genesis hash, the stored previous event's hash,
/// or — once older entries were archived — the hash of the signed checkpoint they ended at.
pub fn anchor(c: &mut PgConnection, start: i64) -> Result<Vec<u8>> {
    if start <= 1 {
        return Ok(GENESIS.to_vec());
    }
    if let Some(h) = AuditEventRow::hash_at(c, start - 1)? {
        return Ok(h);
    }
    CheckpointRow::at(c, start - 1)?.map(|cp| cp.hash).ok_or_else(|| {
        Error::new(ErrorKind::FailedPrecondition, format!("no event or checkpoint {} to anchor the range", start - 1))
    })
}

/// Why a verification stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainFailure {
    HashMismatch,
    LinkMismatch,
    SequenceGap,
    CheckpointSignature,
    CheckpointMismatch,
}

/// The outcome of [`AuditTrail::verify`].
#[derive(Debug, Clone, Default)]
pub struct ChainReport {
    pub first_sequence: i64,
    pub last_sequence: i64,
    pub verified: i64,
    pub checkpoints_verified: i32,
    pub broken: Option<(i64, ChainFailure, String)>,
    pub last_checkpoint: Option<CheckpointRow>,
}

/// The trail: writes standalone entries, signs checkpoints, verifies the chain.
#[derive(Clone)]
pub struct AuditTrail {
    store: Store,
    clock: SharedClock,
    master: MasterKey,
    rotate_after: chrono::Duration,
    refusals: std::sync::Arc<refusals::RefusalTally>,
    /// The sequence of the last linked entry, as far as this process knows: watchers wait on it
    /// instead of polling.
    linked: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
}

fn key_owner(kid: &str) -> String {
    format!("audit_signing_keys/{kid}")
}

impl AuditTrail {
    /// The trail over `store`; audit keys are sealed with `master` and replaced at the first
    /// checkpoint after they are `rotate_after` old.
    pub fn new(store: Store, clock: SharedClock, master: MasterKey, rotate_after: chrono::Duration) -> Self {
        let linked = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        Self { store, clock, master, rotate_after, refusals: Default::default(), linked }
    }

    /// Records the refusal of a caller nobody could identify, from `client` (its address, or its
    /// IPv6 /64): the first in a minute as an entry of its own, the rest of that minute counted into
    /// one entry (written once the minute is over: see [`AuditTrail::flush_refusals`]).
    pub async fn record_refusal(&self, client: &str, record: AuditRecord) -> Result<()> {
        let now = self.clock.now();
        self.append_alone(self.refusals.note(client, record, now), now).await
    }

    /// Writes the counted refusals of the minutes that are over (of every minute with `all`, at
    /// shutdown); those that cannot be written now are kept for the next time.
    pub async fn flush_refusals(&self, all: bool) -> Result<()> {
        let now = self.clock.now();
        let due = self.refusals.due(now, all);
        let written = self.append_alone(due.clone(), now).await;
        if written.is_err() {
            self.refusals.restore(due);
        }
        written
    }

    /// Appends `entries` in a transaction of their own.
    async fn append_alone(&self, entries: Vec<AuditRecord>, now: DateTime<Utc>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.store
            .transaction(move |c| {
                for entry in &entries {
                    append(c, entry, now)?;
                }
                Ok(())
            })
            .await
    }

    /// Appends one entry in a transaction of its own (denials, failures, sensitive reads).
    pub async fn record(&self, record: AuditRecord) -> Result<()> {
        self.append_alone(vec![record], self.clock.now()).await
    }

    /// Links every committed entry into the chain (readers call it first, so they see all committed
    /// entries; the linker task calls it as entries commit). Returns how many it linked.
    pub async fn link_pending(&self) -> Result<i64> {
        let (linked, head) = self.store.run(|c| Ok((q::link(c)?, q::head(c)?.0))).await?;
        // Wakes the watchers, also for entries another server process linked.
        self.linked.send_if_modified(|known| {
            let moved = head > *known;
            *known = head.max(*known);
            moved
        });
        Ok(linked)
    }

    /// Tells of every entry linked into the chain: the sequence of the last one changes.
    pub fn linked(&self) -> tokio::sync::watch::Receiver<i64> {
        self.linked.subscribe()
    }

    /// The linker: links entries as their transactions commit, and every second in any case
    /// (entries committed before a restart, by another server process, or while linking failed).
    /// Runs until dropped.
    pub async fn run_linker(self) {
        loop {
            tokio::select! {
                _ = self.store.appended() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            // Summaries of refused calls are due once their minute is over.
            if let Err(e) = self.flush_refusals(false).await {
                tracing::warn!(error = %e, "writing the summary of refused calls failed; retrying");
            }
            if let Err(e) = self.link_pending().await {
                tracing::warn!(error = %e, "linking audit entries failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }

    /// The current audit signing key, created (and its public key recorded in the trail) if none.
    fn current_key(&self, c: &mut PgConnection, now: DateTime<Utc>) -> Result<(String, SigningKey)> {
        let keys = AuditKeyRow::all(c)?;
        match keys.into_iter().rev().find(|k| k.retired_at.is_none()) {
            Some(k) if now - k.created_at >= self.rotate_after => {
                // Due for rotation: retire it and start the next key (its creation is chained).
                AuditKeyRow::retire_current(c, to_micros(now))?;
                self.create_key(c, now, "audit_key.rotate")
            }
            Some(k) => {
                let sealed = Sealed { kek_id: k.kek_id.clone(), blob: k.private_key_sealed.clone() };
                let secret: [u8; 32] = self
                    .master
                    .open(&key_owner(&k.kid), &sealed)?
                    .try_into()
                    .map_err(|_| Error::internal("audit key has the wrong length"))?;
                Ok((k.kid, SigningKey::from_bytes(&secret)))
            }
            None => self.create_key(c, now, "audit_key.create"),
        }
    }

    fn create_key(&self, c: &mut PgConnection, now: DateTime<Utc>, action: &str) -> Result<(String, SigningKey)> {
        let secret: [u8; 32] = crate::security::secret::random_bytes();
        let key = SigningKey::from_bytes(&secret);
        let public = key.verifying_key().to_bytes();
        let kid = format!("audit-{}-{}", now.format("%Y%m%d"), hex::encode(&public[..6]));
        let sealed = self.master.seal(&key_owner(&kid), &secret)?;
        AuditKeyRow {
            kid: kid.clone(),
            public_key: public.to_vec(),
            private_key_sealed: sealed.blob,
            kek_id: sealed.kek_id,
            created_at: to_micros(now),
            retired_at: None,
        }
        .insert(c)?;
        // The key's public half joins the trail itself: its history is chained like any action.
        let record = AuditRecord::system(action, "audit_key", &kid)
            .detail("public_key", base64::engine::general_purpose::STANDARD.encode(public))
            .detail("algorithm", "EdDSA");
        append(c, &record, now)?;
        Ok((kid, key))
    }

    /// Retires the audit signing key and starts a new one (old checkpoints keep verifying with the
    /// retired key, which stays listed).
    pub async fn rotate_key(&self) -> Result<String> {
        let this = self.clone();
        let now = self.clock.now();
        self.store
            .transaction(move |c| {
                AuditKeyRow::retire_current(c, to_micros(now))?;
                this.create_key(c, now, "audit_key.rotate").map(|(kid, _)| kid)
            })
            .await
    }

    /// Signs the chain head if it moved since the last checkpoint.
    pub async fn checkpoint(&self) -> Result<Option<CheckpointRow>> {
        let this = self.clone();
        let now = self.clock.now();
        // The key first, in a transaction of its own; then every committed entry is linked, a new
        // key's creation among them, and covered by the checkpoint that key signs.
        let (kid, key) = self.store.transaction(move |c| this.current_key(c, now)).await?;
        self.link_pending().await?;
        self.store
            .transaction(move |c| {
                let (sequence, hash) = q::head(c)?;
                let latest = CheckpointRow::latest(c)?.map(|cp| cp.sequence).unwrap_or(0);
                if sequence == 0 || sequence <= latest {
                    return Ok(None);
                }
                let time = to_micros(now);
                let message = checkpoint_message(sequence, &hash, &format_time(time.timestamp_micros()));
                let row = CheckpointRow {
                    sequence,
                    hash,
                    time,
                    key_id: kid,
                    signature: key.sign(&message).to_bytes().to_vec(),
                };
                if !row.insert(c)? {
                    // Another checkpoint at the head (a concurrent one, or planted): nothing was
                    // signed here. VerifyChain judges the one that is there.
                    tracing::warn!(sequence, "a checkpoint exists at the chain head already; none signed");
                    return Ok(None);
                }
                Ok(Some(row))
            })
            .await
    }

    /// Recomputes the chain over `[start, end]` (defaults: the whole trail) and checks the
    /// checkpoints in range: each must match the chain and carry a valid signature by an audit key
    /// the trail itself vouches for (its creation entry precedes the checkpoint, or an archive pass
    /// listed it). Stops at the first broken link. Memory stays bounded by the checkpoints in range.
    pub async fn verify(&self, start: Option<i64>, end: Option<i64>) -> Result<ChainReport> {
        self.store
            .run(move |c| {
                let (head, _) = q::head(c)?;
                let first = AuditEventRow::first_sequence(c)?.unwrap_or(1);
                let start = start.unwrap_or(first).max(1);
                let end = end.unwrap_or(head).min(head);
                if start < 1 || (end > 0 && start > end) {
                    return Err(Error::invalid("start_sequence", "start_sequence must be between 1 and end_sequence"));
                }
                let mut report = ChainReport { first_sequence: start, last_sequence: end, ..Default::default() };
                let keys: std::collections::HashMap<String, Vec<u8>> =
                    AuditKeyRow::all(c)?.into_iter().map(|k| (k.kid, k.public_key)).collect();
                let attested = attested_keys(&AuditEventRow::key_attestations(c)?);
                let mut checkpoints = CheckpointRow::range(c, start, end)?.into_iter().peekable();
                let mut prev = anchor(c, start)?;
                let mut expected = start;
                while expected <= end {
                    let rows = AuditEventRow::range(c, expected, end, BATCH)?;
                    if rows.is_empty() {
                        report.broken =
                            Some((expected, ChainFailure::SequenceGap, format!("event {expected} is missing")));
                        return Ok(report);
                    }
                    for row in rows {
                        if let Some(broken) = check_link(&row, expected, &prev) {
                            report.broken = Some(broken);
                            return Ok(report);
                        }
                        prev = row.hash.clone();
                        report.verified += 1;
                        expected += 1;
                        while let Some(cp) = checkpoints.next_if(|cp| cp.sequence <= row.sequence) {
                            if let Some(broken) = check_checkpoint(&cp, &row, &keys, &attested) {
                                report.broken = Some(broken);
                                return Ok(report);
                            }
                            report.checkpoints_verified += 1;
                            report.last_checkpoint = Some(cp);
                        }
                    }
                }
                Ok(report)
            })
            .await
    }
}

/// Why `row` does not continue the chain at `expected` after `prev`, if it does not.
fn check_link(row: &AuditEventRow, expected: i64, prev: &[u8]) -> Option<(i64, ChainFailure, String)> {
    if row.sequence != expected {
        return Some((expected, ChainFailure::SequenceGap, format!("event {expected} is missing")));
    }
    if row.prev_hash != prev {
        return Some((
            row.sequence,
            ChainFailure::LinkMismatch,
            format!("event {} does not link to event {}", row.sequence, row.sequence - 1),
        ));
    }
    if row.hash != recompute(prev, row) {
        return Some((
            row.sequence,
            ChainFailure::HashMismatch,
            format!("event {} was altered: its contents do not match its hash", row.sequence),
        ));
    }
    None
}

/// Why checkpoint `cp` (at or before the verified `row`) does not vouch for the chain, if it does not.
fn check_checkpoint(
    cp: &CheckpointRow,
    row: &AuditEventRow,
    keys: &std::collections::HashMap<String, Vec<u8>>,
    attested: &[(i64, Vec<u8>)],
) -> Option<(i64, ChainFailure, String)> {
    if cp.sequence != row.sequence || cp.hash != row.hash {
        return Some((
            cp.sequence,
            ChainFailure::CheckpointMismatch,
            format!("checkpoint at {} does not match the chain", cp.sequence),
        ));
    }
    let Some(public) = keys.get(&cp.key_id) else {
        return Some((
            cp.sequence,
            ChainFailure::CheckpointSignature,
            format!("checkpoint at {} is signed by an unknown audit key {}", cp.sequence, cp.key_id),
        ));
    };
    if !attested.iter().any(|(at, pk)| *at <= cp.sequence && pk == public) {
        return Some((
            cp.sequence,
            ChainFailure::CheckpointSignature,
            format!(
                "checkpoint at {} is signed by audit key {}, whose creation the trail does not record",
                cp.sequence, cp.key_id
            ),
        ));
    }
    let signed = <[u8; 32]>::try_from(public.as_slice())
        .ok()
        .and_then(|pk| VerifyingKey::from_bytes(&pk).ok())
        .zip(<[u8; 64]>::try_from(cp.signature.as_slice()).ok())
        .is_some_and(|(vk, sig)| {
            let message = checkpoint_message(cp.sequence, &cp.hash, &format_time(cp.time.timestamp_micros()));
            vk.verify(&message, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
        });
    (!signed).then(|| {
        (cp.sequence, ChainFailure::CheckpointSignature, format!("checkpoint at {} has a bad signature", cp.sequence))
    })
}

/// Detail of an archive entry listing the audit public keys (base64, comma-separated) in use when it
/// archived older entries, so the checkpoints that remain keep a key the trail vouches for.
pub const ARCHIVE_KEYS_DETAIL: &str = "audit_keys";

/// The audit public keys the trail vouches for, each with the sequence from which it may sign: a
/// key's creation or rotation entry, or any sequence for keys an archive entry lists.
fn attested_keys(entries: &[(i64, String, String)]) -> Vec<(i64, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for (sequence, action, details) in entries {
        let Ok(d) = serde_json::from_str::<std::collections::BTreeMap<String, String>>(details) else { continue };
        if action == "audit.archive" {
            for k in d.get(ARCHIVE_KEYS_DETAIL).map(String::as_str).unwrap_or("").split(',') {
                if let Ok(pk) = b64.decode(k) {
                    out.push((0, pk));
                }
            }
        } else if let Some(pk) = d.get("public_key").and_then(|k| b64.decode(k).ok()) {
            out.push((*sequence, pk));
        }
    }
    out
}
