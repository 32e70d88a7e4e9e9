//! Queries on `signing_keys`: the sealed Ed25519 key ring.
use super::schema::signing_keys;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

/// A row of `signing_keys`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct SigningKeyRow {
    pub kid: String,
    pub purpose: String,
    pub public_key: Vec<u8>,
    pub private_key_sealed: Vec<u8>,
    pub kek_id: String,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
}

impl SigningKeyRow {
    /// Inserts a key.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(signing_keys::table).values(self).execute(c)?;
        Ok(())
    }

    /// Every key for `purpose`, oldest activation first.
    pub fn all(c: &mut PgConnection, purpose: &str) -> Result<Vec<SigningKeyRow>> {
        Ok(signing_keys::table
            .filter(signing_keys::purpose.eq(purpose))
            .order(signing_keys::activates_at.asc())
            .select(SigningKeyRow::as_select())
            .load(c)?)
    }

    /// Deletes keys that are no longer published.
    pub fn delete(c: &mut PgConnection, kids: &[String]) -> Result<usize> {
        Ok(diesel::delete(signing_keys::table.filter(signing_keys::kid.eq_any(kids))).execute(c)?)
    }

    /// Serialises key-ring maintenance across processes for the rest of the transaction.
    pub fn lock_ring(c: &mut PgConnection) -> Result<()> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(7450002)").execute(c)?;
        Ok(())
    }
}
