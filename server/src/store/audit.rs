//! Queries on the audit trail: the chain head, events, checkpoints and audit signing keys.
use super::schema::{audit_chain_head, audit_checkpoints, audit_events, audit_signing_keys};
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `audit_events`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub struct AuditEventRow {
    pub sequence: i64,
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub actor_type: String,
    pub actor_user_id: String,
    pub actor_username: String,
    pub actor_api_key_id: String,
    pub actor_session_id: String,
    pub client_address: String,
    pub user_agent: String,
    pub action: String,
    pub method: String,
    pub target_type: String,
    pub target_id: String,
    pub camera_id: String,
    pub result: String,
    pub reason: String,
    pub details: String,
    pub request_id: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// A row of `audit_checkpoints`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_checkpoints, check_for_backend(diesel::pg::Pg))]
pub struct CheckpointRow {
    pub sequence: i64,
    pub hash: Vec<u8>,
    pub time: DateTime<Utc>,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// A row of `audit_signing_keys`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct AuditKeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key_sealed: Vec<u8>,
    pub kek_id: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Filters of a listing; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub actor_user_id: String,
    pub actor_api_key_id: String,
    /// Exact action, or a prefix ending in `.`.
    pub action: String,
    pub camera_id: String,
    pub target_type: String,
    pub target_id: String,
    pub result: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// Appends one entry in a single statement: the chain head is locked and advanced, the entry's hash
/// computed from the previous one (`audit_chain_hash`, the opennvr-audit-v1 scheme) and the row
/// inserted. `fields` are the chained text fields in canonical order (id, time, actor type, actor
/// user id, username, API key id, session id, client address, user agent, action, method, target
/// type, target id, camera id, result, reason, details, request id). Returns the sequence, the
/// previous hash and the hash.
pub fn append_chained(c: &mut PgConnection, fields: &[String]) -> Result<(i64, Vec<u8>, Vec<u8>)> {
    #[derive(QueryableByName)]
    struct Linked {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        sequence: i64,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        prev_hash: Vec<u8>,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        hash: Vec<u8>,
    }
    let r: Linked = diesel::sql_query(
        "WITH h AS (
           UPDATE audit_chain_head
              SET prev_hash = hash, sequence = sequence + 1, hash = audit_chain_hash(hash, sequence + 1, $1)
           RETURNING sequence, prev_hash, hash)
         INSERT INTO audit_events (sequence, id, time, actor_type, actor_user_id, actor_username, actor_api_key_id,
                                   actor_session_id, client_address, user_agent, action, method, target_type,
                                   target_id, camera_id, result, reason, details, request_id, prev_hash, hash)
         SELECT h.sequence, ($1)[1]::uuid, ($1)[2]::timestamptz, ($1)[3], ($1)[4], ($1)[5], ($1)[6], ($1)[7], ($1)[8],
                ($1)[9], ($1)[10], ($1)[11], ($1)[12], ($1)[13], ($1)[14], ($1)[15], ($1)[16], ($1)[17], ($1)[18],
                h.prev_hash, h.hash
           FROM h
         RETURNING sequence, prev_hash, hash",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(fields)
    .get_result(c)?;
    Ok((r.sequence, r.prev_hash, r.hash))
}

/// The chain head without locking.
pub fn head(c: &mut PgConnection) -> Result<(i64, Vec<u8>)> {
    Ok(audit_chain_head::table.select((audit_chain_head::sequence, audit_chain_head::hash)).first(c)?)
}

impl AuditEventRow {
    /// A page of events matching `f`, after (or before, newest first) sequence `cursor`.
    pub fn page(
        c: &mut PgConnection,
        f: &EventFilter,
        cursor: Option<i64>,
        oldest_first: bool,
        limit: i64,
    ) -> Result<Vec<AuditEventRow>> {
        let mut q = audit_events::table.select(AuditEventRow::as_select()).limit(limit).into_boxed();
        q = if oldest_first {
            let q = q.order(audit_events::sequence.asc());
            match cursor {
                Some(s) => q.filter(audit_events::sequence.gt(s)),
                None => q,
            }
        } else {
            let q = q.order(audit_events::sequence.desc());
            match cursor {
                Some(s) => q.filter(audit_events::sequence.lt(s)),
                None => q,
            }
        };
        if !f.actor_user_id.is_empty() {
            q = q.filter(audit_events::actor_user_id.eq(f.actor_user_id.clone()));
        }
        if !f.actor_api_key_id.is_empty() {
            q = q.filter(audit_events::actor_api_key_id.eq(f.actor_api_key_id.clone()));
        }
        if let Some(prefix) = f.action.strip_suffix('.') {
            let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            q = q.filter(audit_events::action.like(format!("{escaped}.%")));
        } else if !f.action.is_empty() {
            q = q.filter(audit_events::action.eq(f.action.clone()));
        }
        if !f.camera_id.is_empty() {
            q = q.filter(audit_events::camera_id.eq(f.camera_id.clone()));
        }
        if !f.target_type.is_empty() {
            q = q.filter(audit_events::target_type.eq(f.target_type.clone()));
        }
        if !f.target_id.is_empty() {
            q = q.filter(audit_events::target_id.eq(f.target_id.clone()));
        }
        if !f.result.is_empty() {
            q = q.filter(audit_events::result.eq(f.result.clone()));
        }
        if let Some(t) = f.start_time {
            q = q.filter(audit_events::time.ge(t));
        }
        if let Some(t) = f.end_time {
            q = q.filter(audit_events::time.lt(t));
        }
        Ok(q.load(c)?)
    }

    /// Up to `limit` events with `from <= sequence <= to`, in order.
    pub fn range(c: &mut PgConnection, from: i64, to: i64, limit: i64) -> Result<Vec<AuditEventRow>> {
        Ok(audit_events::table
            .filter(audit_events::sequence.ge(from))
            .filter(audit_events::sequence.le(to))
            .order(audit_events::sequence.asc())
            .limit(limit)
            .select(AuditEventRow::as_select())
            .load(c)?)
    }

    /// The hash of the event at `sequence`.
    pub fn hash_at(c: &mut PgConnection, sequence: i64) -> Result<Option<Vec<u8>>> {
        Ok(audit_events::table.find(sequence).select(audit_events::hash).first(c).optional()?)
    }

    /// The smallest stored sequence.
    pub fn first_sequence(c: &mut PgConnection) -> Result<Option<i64>> {
        Ok(audit_events::table.select(diesel::dsl::min(audit_events::sequence)).first(c)?)
    }

    /// Sequences bounding events in `[start, end)`, for time-bounded exports.
    pub fn sequence_bounds(
        c: &mut PgConnection,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<(Option<i64>, Option<i64>)> {
        let mut q = audit_events::table
            .select((diesel::dsl::min(audit_events::sequence), diesel::dsl::max(audit_events::sequence)))
            .into_boxed();
        if let Some(t) = start {
            q = q.filter(audit_events::time.ge(t));
        }
        if let Some(t) = end {
            q = q.filter(audit_events::time.lt(t));
        }
        Ok(q.first(c)?)
    }
}

impl CheckpointRow {
    /// Stores a checkpoint.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(audit_checkpoints::table).values(self).on_conflict_do_nothing().execute(c)?;
        Ok(())
    }

    /// Checkpoints with `from <= sequence <= to`, in order.
    pub fn range(c: &mut PgConnection, from: i64, to: i64) -> Result<Vec<CheckpointRow>> {
        Ok(audit_checkpoints::table
            .filter(audit_checkpoints::sequence.ge(from))
            .filter(audit_checkpoints::sequence.le(to))
            .order(audit_checkpoints::sequence.asc())
            .select(CheckpointRow::as_select())
            .load(c)?)
    }

    /// The checkpoint at `sequence`.
    pub fn at(c: &mut PgConnection, sequence: i64) -> Result<Option<CheckpointRow>> {
        Ok(audit_checkpoints::table.find(sequence).select(CheckpointRow::as_select()).first(c).optional()?)
    }

    /// The newest checkpoint signed before `before`.
    pub fn latest_before(c: &mut PgConnection, before: DateTime<Utc>) -> Result<Option<CheckpointRow>> {
        Ok(audit_checkpoints::table
            .filter(audit_checkpoints::time.lt(before))
            .order(audit_checkpoints::sequence.desc())
            .select(CheckpointRow::as_select())
            .first(c)
            .optional()?)
    }

    /// The newest checkpoint.
    pub fn latest(c: &mut PgConnection) -> Result<Option<CheckpointRow>> {
        Ok(audit_checkpoints::table
            .order(audit_checkpoints::sequence.desc())
            .select(CheckpointRow::as_select())
            .first(c)
            .optional()?)
    }
}

impl AuditKeyRow {
    /// Stores a key.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(audit_signing_keys::table).values(self).execute(c)?;
        Ok(())
    }

    /// Every key, oldest first.
    pub fn all(c: &mut PgConnection) -> Result<Vec<AuditKeyRow>> {
        Ok(audit_signing_keys::table
            .order(audit_signing_keys::created_at.asc())
            .select(AuditKeyRow::as_select())
            .load(c)?)
    }

    /// Marks every current key retired.
    pub fn retire_current(c: &mut PgConnection, now: DateTime<Utc>) -> Result<()> {
        diesel::update(audit_signing_keys::table.filter(audit_signing_keys::retired_at.is_null()))
            .set(audit_signing_keys::retired_at.eq(now))
            .execute(c)?;
        Ok(())
    }
}

/// Deletes the entries up to `upto` through the one database function allowed to (it insists on a
/// signed checkpoint at `upto`). Returns how many went.
pub fn archive_through(c: &mut PgConnection, upto: i64) -> Result<i64> {
    #[derive(QueryableByName)]
    struct Removed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let r: Removed = diesel::sql_query("SELECT audit_archive_through($1) AS n")
        .bind::<diesel::sql_types::BigInt, _>(upto)
        .get_result(c)?;
    Ok(r.n)
}
