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
    pub code: String,
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
    /// gRPC code name (`OK`, `PERMISSION_DENIED`, ...).
    pub code: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// Entries read into the chain per `audit_link` call.
pub const LINK_BATCH: i32 = 5_000;

thread_local! {
    /// Set when this thread (a pooled connection's worker) put an entry into the inbox; the store
    /// wakes the linker once the work that wrote it is over.
    static PENDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Adds one entry to the audit inbox inside the caller's transaction: no lock is taken, so audited
/// transactions commit concurrently; the entry commits with the change it records, or not at all,
/// and is linked into the chain by [`link`]. `fields` are the chained text fields in canonical order
/// (`ChainFields::texts`).
pub fn append_pending(c: &mut PgConnection, fields: &[&str]) -> Result<()> {
    super::prepared::prepared("INSERT INTO audit_inbox (fields) VALUES ($1)")
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(fields)
        .execute(c)?;
    PENDING.with(|p| p.set(true));
    Ok(())
}

/// Whether this thread appended entries since the last call (and forgets it).
pub fn take_pending() -> bool {
    PENDING.with(|p| p.replace(false))
}

/// Links committed inbox entries into the chain (sequence and hash), in batches, until the inbox is
/// empty; waits for a linker already at work. Returns how many entries it linked.
pub fn link(c: &mut PgConnection) -> Result<i64> {
    #[derive(QueryableByName)]
    struct Linked {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        n: i32,
    }
    let mut total = 0;
    loop {
        let r: Linked = diesel::sql_query("SELECT audit_link($1) AS n")
            .bind::<diesel::sql_types::Integer, _>(LINK_BATCH)
            .get_result(c)?;
        total += i64::from(r.n);
        if r.n < LINK_BATCH {
            return Ok(total);
        }
    }
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
        if !f.code.is_empty() {
            q = q.filter(audit_events::code.eq(f.code.clone()));
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

    /// Sequence and details of the entries that vouch for audit signing keys: key creations and
    /// rotations, and archive passes (which list the keys whose creation they archived).
    pub fn key_attestations(c: &mut PgConnection) -> Result<Vec<(i64, String, String)>> {
        Ok(audit_events::table
            .filter(audit_events::action.eq_any(["audit_key.create", "audit_key.rotate", "audit.archive"]))
            .filter(audit_events::actor_type.eq("system"))
            .order(audit_events::sequence)
            .select((audit_events::sequence, audit_events::action, audit_events::details))
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
    /// Stores a checkpoint; false when one exists at that sequence already.
    pub fn insert(&self, c: &mut PgConnection) -> Result<bool> {
        Ok(diesel::insert_into(audit_checkpoints::table).values(self).on_conflict_do_nothing().execute(c)? == 1)
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

    /// A page of keys, oldest first, after the (created_at, kid) position `after`.
    pub fn page(c: &mut PgConnection, after: Option<(DateTime<Utc>, String)>, limit: i64) -> Result<Vec<AuditKeyRow>> {
        let mut q = audit_signing_keys::table
            .order((audit_signing_keys::created_at.asc(), audit_signing_keys::kid.asc()))
            .select(AuditKeyRow::as_select())
            .limit(limit)
            .into_boxed();
        if let Some((at, kid)) = after {
            q = q.filter(
                audit_signing_keys::created_at
                    .gt(at)
                    .or(audit_signing_keys::created_at.eq(at).and(audit_signing_keys::kid.gt(kid))),
            );
        }
        Ok(q.load(c)?)
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
