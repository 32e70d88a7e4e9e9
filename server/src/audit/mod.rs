//! The append-only, hash-chained audit trail: the single writer of entries (inside the caller's
//! transaction, linked under the chain-head lock), signed checkpoints, and chain verification.
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
use opennvr_sdk::audit::{ChainFields, GENESIS, canonical_details, chain_hash, checkpoint_message, format_time};
use uuid::Uuid;

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

/// Appends `record` to the trail inside the caller's transaction. The chain head stays locked from
/// this statement until that transaction ends, so the entry commits with the change it records, or
/// not at all, and entries chain in commit order.
pub fn append(c: &mut PgConnection, record: &AuditRecord, now: DateTime<Utc>) -> Result<AuditEventRow> {
    let id = Uuid::new_v4();
    let time = to_micros(now);
    let mut row = AuditEventRow {
        sequence: 0,
        id,
        time,
        actor_type: record.actor.kind.as_str().to_owned(),
        actor_user_id: record.actor.user_id.clone(),
        actor_username: record.actor.username.clone(),
        actor_api_key_id: record.actor.api_key_id.clone(),
        actor_session_id: record.actor.session_id.clone(),
        client_address: record.client_address.clone(),
        user_agent: record.user_agent.clone(),
        action: record.action.clone(),
        method: record.method.clone(),
        target_type: record.target_type.clone(),
        target_id: record.target_id.clone(),
        camera_id: record.camera_id.clone(),
        result: record.result.as_str().to_owned(),
        reason: record.reason.chars().take(1024).collect(),
        details: canonical_details(&record.details),
        request_id: record.request_id.clone(),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    };
    let (id_text, time_text) = (id.to_string(), format_time(time.timestamp_micros()));
    let f = fields(&row, &id_text, &time_text);
    let texts: Vec<String> = [
        f.id,
        f.time,
        f.actor_type,
        f.actor_user_id,
        f.actor_username,
        f.actor_api_key_id,
        f.actor_session_id,
        f.client_address,
        f.user_agent,
        f.action,
        f.method,
        f.target_type,
        f.target_id,
        f.camera_id,
        f.result,
        f.reason,
        f.details,
        f.request_id,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (sequence, prev_hash, hash) = q::append_chained(c, &texts)?;
    row.sequence = sequence;
    row.prev_hash = prev_hash;
    row.hash = hash;
    Ok(row)
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
}

fn key_owner(kid: &str) -> String {
    format!("audit_signing_keys/{kid}")
}

impl AuditTrail {
    /// The trail over `store`; audit keys are sealed with `master` and replaced at the first
    /// checkpoint after they are `rotate_after` old.
    pub fn new(store: Store, clock: SharedClock, master: MasterKey, rotate_after: chrono::Duration) -> Self {
        Self { store, clock, master, rotate_after }
    }

    /// Appends one entry in a transaction of its own (denials, failures, sensitive reads).
    pub async fn record(&self, record: AuditRecord) -> Result<i64> {
        let now = self.clock.now();
        self.store.transaction(move |c| append(c, &record, now).map(|r| r.sequence)).await
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
        self.store
            .transaction(move |c| {
                let (kid, key) = this.current_key(c, now)?;
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
                row.insert(c)?;
                Ok(Some(row))
            })
            .await
    }

    /// Recomputes the chain over `[start, end]` (defaults: the whole trail) and checks the
    /// checkpoints in range. Stops at the first broken link.
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
                let mut prev = anchor(c, start)?;
                let mut hashes = std::collections::HashMap::new();
                let mut expected = start;
                while expected <= end {
                    let rows = AuditEventRow::range(c, expected, end, BATCH)?;
                    if rows.is_empty() {
                        report.broken =
                            Some((expected, ChainFailure::SequenceGap, format!("event {expected} is missing")));
                        return Ok(report);
                    }
                    for row in rows {
                        if row.sequence != expected {
                            report.broken =
                                Some((expected, ChainFailure::SequenceGap, format!("event {expected} is missing")));
                            return Ok(report);
                        }
                        if row.prev_hash != prev {
                            report.broken = Some((
                                row.sequence,
                                ChainFailure::LinkMismatch,
                                format!("event {} does not link to event {}", row.sequence, row.sequence - 1),
                            ));
                            return Ok(report);
                        }
                        let computed = recompute(&prev, &row);
                        if row.hash != computed {
                            report.broken = Some((
                                row.sequence,
                                ChainFailure::HashMismatch,
                                format!("event {} was altered: its contents do not match its hash", row.sequence),
                            ));
                            return Ok(report);
                        }
                        hashes.insert(row.sequence, computed);
                        prev = computed.to_vec();
                        report.verified += 1;
                        expected += 1;
                    }
                }
                let keys: std::collections::HashMap<String, Vec<u8>> =
                    AuditKeyRow::all(c)?.into_iter().map(|k| (k.kid, k.public_key)).collect();
                for cp in CheckpointRow::range(c, start, end)? {
                    if hashes.get(&cp.sequence).map(|h| h.as_slice()) != Some(cp.hash.as_slice()) {
                        report.broken = Some((
                            cp.sequence,
                            ChainFailure::CheckpointMismatch,
                            format!("checkpoint at {} does not match the chain", cp.sequence),
                        ));
                        return Ok(report);
                    }
                    let signed = keys
                        .get(&cp.key_id)
                        .and_then(|pk| <[u8; 32]>::try_from(pk.as_slice()).ok())
                        .and_then(|pk| VerifyingKey::from_bytes(&pk).ok())
                        .zip(<[u8; 64]>::try_from(cp.signature.as_slice()).ok())
                        .is_some_and(|(vk, sig)| {
                            let message =
                                checkpoint_message(cp.sequence, &cp.hash, &format_time(cp.time.timestamp_micros()));
                            vk.verify(&message, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
                        });
                    if !signed {
                        report.broken = Some((
                            cp.sequence,
                            ChainFailure::CheckpointSignature,
                            format!("checkpoint at {} is not signed by a known audit key", cp.sequence),
                        ));
                        return Ok(report);
                    }
                    report.checkpoints_verified += 1;
                    report.last_checkpoint = Some(cp);
                }
                Ok(report)
            })
            .await
    }
}
