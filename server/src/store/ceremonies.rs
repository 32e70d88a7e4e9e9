//! Queries on `auth_ceremonies`: authentication ceremonies in flight behind single-use tokens.
use super::schema::auth_ceremonies;
use crate::domain::mfa::CeremonyKind;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `auth_ceremonies`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = auth_ceremonies, check_for_backend(diesel::pg::Pg))]
pub struct CeremonyRow {
    pub id: Uuid,
    pub token_hash: Vec<u8>,
    /// `login_mfa`, `passkey_login`, `step_up`, `passkey_registration` or `totp_enrollment`.
    pub kind: crate::domain::mfa::CeremonyKind,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// webauthn-rs ceremony state.
    pub passkey_state: Option<serde_json::Value>,
    /// A pending TOTP seed, sealed.
    pub secret_sealed: Option<Vec<u8>>,
    pub kek_id: Option<String>,
    pub failures: i32,
    /// Who started it, when that matters (passwordless starts).
    pub client_address: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl CeremonyRow {
    /// A new ceremony of `kind` behind `token_hash`, open from `now` until `expires_at`.
    pub fn open(
        kind: CeremonyKind,
        user_id: Option<Uuid>,
        session_id: Option<Uuid>,
        passkey_state: Option<serde_json::Value>,
        token_hash: Vec<u8>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> CeremonyRow {
        CeremonyRow {
            id: Uuid::new_v4(),
            token_hash,
            kind,
            user_id,
            session_id,
            passkey_state,
            secret_sealed: None,
            kek_id: None,
            failures: 0,
            client_address: String::new(),
            created_at: now,
            expires_at,
        }
    }

    /// Inserts a ceremony.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(auth_ceremonies::table).values(self).execute(c)?;
        Ok(())
    }

    /// The ceremony of `kind` behind the token hash (expired or not), locked until the transaction ends.
    pub fn find_for_update(c: &mut PgConnection, token_hash: &[u8], kind: CeremonyKind) -> Result<Option<CeremonyRow>> {
        Ok(auth_ceremonies::table
            .filter(auth_ceremonies::token_hash.eq(token_hash.to_vec()))
            .filter(auth_ceremonies::kind.eq(kind))
            .select(CeremonyRow::as_select())
            .for_update()
            .first(c)
            .optional()?)
    }

    /// Deletes every ceremony of `kind` of `user`.
    pub fn delete_of_user(c: &mut PgConnection, user: Uuid, kind: CeremonyKind) -> Result<()> {
        diesel::delete(
            auth_ceremonies::table.filter(auth_ceremonies::user_id.eq(user)).filter(auth_ceremonies::kind.eq(kind)),
        )
        .execute(c)?;
        Ok(())
    }

    /// Drops expired ceremonies of `kind`, then counts the live ones: all of them, and those started
    /// from `client_address`.
    pub fn prune_and_count(
        c: &mut PgConnection,
        kind: CeremonyKind,
        client_address: &str,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64)> {
        diesel::delete(
            auth_ceremonies::table.filter(auth_ceremonies::kind.eq(kind)).filter(auth_ceremonies::expires_at.le(now)),
        )
        .execute(c)?;
        let all = auth_ceremonies::table.filter(auth_ceremonies::kind.eq(kind)).count().get_result(c)?;
        let theirs = auth_ceremonies::table
            .filter(auth_ceremonies::kind.eq(kind))
            .filter(auth_ceremonies::client_address.eq(client_address))
            .count()
            .get_result(c)?;
        Ok((all, theirs))
    }

    /// Replaces the WebAuthn state of a ceremony (`None` spends it: a challenge works once).
    pub fn set_passkey_state(c: &mut PgConnection, id: Uuid, state: Option<serde_json::Value>) -> Result<()> {
        diesel::update(auth_ceremonies::table.find(id)).set(auth_ceremonies::passkey_state.eq(state)).execute(c)?;
        Ok(())
    }

    /// Counts a wrong factor presented to a ceremony; returns the new count.
    pub fn count_failure(c: &mut PgConnection, id: Uuid) -> Result<i32> {
        Ok(diesel::update(auth_ceremonies::table.find(id))
            .set(auth_ceremonies::failures.eq(auth_ceremonies::failures + 1))
            .returning(auth_ceremonies::failures)
            .get_result(c)?)
    }

    /// Deletes a ceremony (it is spent).
    pub fn delete(c: &mut PgConnection, id: Uuid) -> Result<()> {
        diesel::delete(auth_ceremonies::table.find(id)).execute(c)?;
        Ok(())
    }

    /// Drops ceremonies that expired before `before`.
    pub fn purge(c: &mut PgConnection, before: DateTime<Utc>) -> Result<usize> {
        Ok(diesel::delete(auth_ceremonies::table.filter(auth_ceremonies::expires_at.lt(before))).execute(c)?)
    }
}
