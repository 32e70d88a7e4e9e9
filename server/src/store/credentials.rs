//! Queries on `credentials` (TOTP seeds and passkeys) and `recovery_codes`.
use super::schema::{credentials, recovery_codes};
use crate::domain::StoredName;
use crate::domain::mfa::CredentialKind;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `credentials`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = credentials, check_for_backend(diesel::pg::Pg))]
pub struct CredentialRow {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `totp` or `passkey`.
    pub kind: crate::domain::mfa::CredentialKind,
    pub name: String,
    pub totp_secret_sealed: Option<Vec<u8>>,
    pub totp_kek_id: Option<String>,
    pub totp_last_step: Option<i64>,
    pub passkey_credential_id: Option<Vec<u8>>,
    pub passkey: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl CredentialRow {
    /// Inserts a credential.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(credentials::table).values(self).execute(c)?;
        Ok(())
    }

    /// The user a credential belongs to.
    pub fn owner_of(c: &mut PgConnection, id: Uuid) -> Result<Option<Uuid>> {
        Ok(credentials::table.find(id).select(credentials::user_id).first(c).optional()?)
    }

    /// The credential with `id`, locked until the transaction ends.
    pub fn find_for_update(c: &mut PgConnection, id: Uuid) -> Result<Option<CredentialRow>> {
        Ok(credentials::table.find(id).select(CredentialRow::as_select()).for_update().first(c).optional()?)
    }

    /// The credentials of `user`, oldest first, optionally of one kind, locked with `lock`.
    pub fn of_user(
        c: &mut PgConnection,
        user: Uuid,
        kind: Option<CredentialKind>,
        lock: bool,
    ) -> Result<Vec<CredentialRow>> {
        let kinds: Vec<CredentialKind> = match kind {
            Some(k) => vec![k],
            None => CredentialKind::ALL.to_vec(),
        };
        let q = credentials::table
            .filter(credentials::user_id.eq(user))
            .filter(credentials::kind.eq_any(kinds))
            .select(CredentialRow::as_select())
            .order((credentials::created_at.asc(), credentials::id.asc()));
        Ok(if lock { q.for_update().load(c)? } else { q.load(c)? })
    }

    /// A page of `user`'s credentials after the (time, id) position `after`, oldest first.
    pub fn page(
        c: &mut PgConnection,
        user: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<CredentialRow>> {
        let mut q = credentials::table
            .filter(credentials::user_id.eq(user))
            .select(CredentialRow::as_select())
            .order((credentials::created_at.asc(), credentials::id.asc()))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = after {
            q = q.filter(credentials::created_at.gt(at).or(credentials::created_at.eq(at).and(credentials::id.gt(id))));
        }
        Ok(q.load(c)?)
    }

    /// How many second factors `user` has.
    pub fn count_of_user(c: &mut PgConnection, user: Uuid) -> Result<i64> {
        Ok(credentials::table.filter(credentials::user_id.eq(user)).count().get_result(c)?)
    }

    /// The passkey with WebAuthn credential id `cred_id`, locked until the transaction ends.
    pub fn passkey_for_update(c: &mut PgConnection, cred_id: &[u8]) -> Result<Option<CredentialRow>> {
        Ok(credentials::table
            .filter(credentials::passkey_credential_id.eq(cred_id.to_vec()))
            .select(CredentialRow::as_select())
            .for_update()
            .first(c)
            .optional()?)
    }

    /// Records a use of a TOTP credential at `step`, only if `step` is later than the last one
    /// accepted (so each code works once, even under concurrent attempts). Returns whether it did.
    pub fn use_totp_step(c: &mut PgConnection, id: Uuid, step: i64, now: DateTime<Utc>) -> Result<bool> {
        Ok(diesel::update(credentials::table.find(id).filter(credentials::totp_last_step.lt(step)))
            .set((credentials::totp_last_step.eq(step), credentials::last_used_at.eq(now)))
            .execute(c)?
            == 1)
    }

    /// Stores a passkey's new state (its signature counter) after a use.
    pub fn use_passkey(c: &mut PgConnection, id: Uuid, passkey: serde_json::Value, now: DateTime<Utc>) -> Result<()> {
        diesel::update(credentials::table.find(id))
            .set((credentials::passkey.eq(passkey), credentials::last_used_at.eq(now)))
            .execute(c)?;
        Ok(())
    }

    /// Renames a credential of `user`; returns the row, `None` if it is not theirs.
    pub fn rename(c: &mut PgConnection, id: Uuid, user: Uuid, name: &str) -> Result<Option<CredentialRow>> {
        Ok(diesel::update(credentials::table.find(id).filter(credentials::user_id.eq(user)))
            .set(credentials::name.eq(name))
            .returning(CredentialRow::as_returning())
            .get_result(c)
            .optional()?)
    }

    /// Deletes a credential; returns whether a row went.
    pub fn delete(c: &mut PgConnection, id: Uuid) -> Result<bool> {
        Ok(diesel::delete(credentials::table.find(id)).execute(c)? == 1)
    }
}

/// A row of `recovery_codes`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_codes, check_for_backend(diesel::pg::Pg))]
pub struct RecoveryCodeRow {
    pub user_id: Uuid,
    pub code_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl RecoveryCodeRow {
    /// Replaces every recovery code of `user` with `hashes`.
    pub fn replace_all(c: &mut PgConnection, user: Uuid, hashes: &[Vec<u8>], now: DateTime<Utc>) -> Result<()> {
        RecoveryCodeRow::delete_all(c, user)?;
        let rows: Vec<RecoveryCodeRow> = hashes
            .iter()
            .map(|h| RecoveryCodeRow { user_id: user, code_hash: h.clone(), created_at: now, used_at: None })
            .collect();
        diesel::insert_into(recovery_codes::table).values(&rows).execute(c)?;
        Ok(())
    }

    /// Deletes every recovery code of `user`.
    pub fn delete_all(c: &mut PgConnection, user: Uuid) -> Result<()> {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user))).execute(c)?;
        Ok(())
    }

    /// Spends the unused code of `user` with `hash`; returns whether there was one.
    pub fn spend(c: &mut PgConnection, user: Uuid, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        Ok(diesel::update(recovery_codes::table.find((user, hash.to_vec())).filter(recovery_codes::used_at.is_null()))
            .set(recovery_codes::used_at.eq(now))
            .execute(c)?
            == 1)
    }

    /// How many unused codes `user` has left.
    pub fn unused(c: &mut PgConnection, user: Uuid) -> Result<i64> {
        Ok(recovery_codes::table
            .filter(recovery_codes::user_id.eq(user))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(c)?)
    }
}

/// What second factors a user has, as user listings show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactorSummary {
    pub has_totp: bool,
    pub passkeys: i32,
}

impl FactorSummary {
    /// The summaries of `users` (absent: no factor).
    pub fn of_users(c: &mut PgConnection, users: &[Uuid]) -> Result<std::collections::HashMap<Uuid, FactorSummary>> {
        let rows: Vec<(Uuid, CredentialKind)> = credentials::table
            .filter(credentials::user_id.eq_any(users.to_vec()))
            .select((credentials::user_id, credentials::kind))
            .load(c)?;
        let mut out: std::collections::HashMap<Uuid, FactorSummary> = Default::default();
        for (user, kind) in rows {
            let s = out.entry(user).or_default();
            match kind {
                CredentialKind::Totp => s.has_totp = true,
                CredentialKind::Passkey => s.passkeys += 1,
            }
        }
        Ok(out)
    }

    /// The summary of one user.
    pub fn of_user(c: &mut PgConnection, user: Uuid) -> Result<FactorSummary> {
        Ok(FactorSummary::of_users(c, &[user])?.remove(&user).unwrap_or_default())
    }
}
