//! Queries on `sessions` and `refresh_tokens`.
use super::schema::{refresh_tokens, sessions};
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `sessions`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub id: Uuid,
    /// `None` once the user is deleted (the revoked session is kept for the revocation cache).
    pub user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_refresh_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub client_address: String,
    pub user_agent: String,
    pub step_up_at: Option<DateTime<Utc>>,
    /// How the session signed in (`pwd`, `otp`, `rec`, `hwk`).
    pub auth_methods: Vec<String>,
    /// The second factor it signed in with.
    pub credential_id: Option<Uuid>,
    /// The second factor of its last step-up.
    pub step_up_credential_id: Option<Uuid>,
}

/// A row of `refresh_tokens`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshTokenRow {
    pub token_hash: Vec<u8>,
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl SessionRow {
    /// Inserts a session.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(sessions::table).values(self).execute(c)?;
        Ok(())
    }

    /// The session with `id`.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<SessionRow>> {
        Ok(sessions::table.find(id).select(SessionRow::as_select()).first(c).optional()?)
    }

    /// The session with `id`, locked until the transaction ends.
    pub fn find_for_update(c: &mut PgConnection, id: Uuid) -> Result<Option<SessionRow>> {
        Ok(sessions::table.find(id).select(SessionRow::as_select()).for_update().first(c).optional()?)
    }

    /// A page of the live (not revoked, not expired) sessions of `user_id`, newest first, after the
    /// (created_at, id) position `after`.
    pub fn live_of_user(
        c: &mut PgConnection,
        user_id: Uuid,
        now: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<SessionRow>> {
        let mut q = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .order((sessions::created_at.desc(), sessions::id.desc()))
            .select(SessionRow::as_select())
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = after {
            q = q.filter(sessions::created_at.lt(at).or(sessions::created_at.eq(at).and(sessions::id.lt(id))));
        }
        Ok(q.load(c)?)
    }

    /// Records a refresh.
    pub fn touch(c: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        diesel::update(sessions::table.find(id)).set(sessions::last_refresh_at.eq(now)).execute(c)?;
        Ok(())
    }

    /// Revokes one session; returns whether it was live.
    pub fn revoke(c: &mut PgConnection, id: Uuid, now: DateTime<Utc>, reason: &str) -> Result<bool> {
        Ok(diesel::update(sessions::table.find(id).filter(sessions::revoked_at.is_null()))
            .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
            .execute(c)?
            > 0)
    }

    /// Revokes every live session of `user_id` except `keep`; returns the ids revoked.
    pub fn revoke_all_of_user(
        c: &mut PgConnection,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<Vec<Uuid>> {
        let mut q = diesel::update(sessions::table)
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .into_boxed();
        if let Some(keep) = keep {
            q = q.filter(sessions::id.ne(keep));
        }
        Ok(q.set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
            .returning(sessions::id)
            .get_results(c)?)
    }

    /// Records a second factor presented on the session now (`credential`: which, if stored).
    pub fn step_up(c: &mut PgConnection, id: Uuid, now: DateTime<Utc>, credential: Option<Uuid>) -> Result<()> {
        diesel::update(sessions::table.find(id))
            .set((sessions::step_up_at.eq(now), sessions::step_up_credential_id.eq(credential)))
            .execute(c)?;
        Ok(())
    }

    /// When the session last stepped up (`None` also for an unknown session).
    pub fn step_up_time(c: &mut PgConnection, id: Uuid) -> Result<Option<DateTime<Utc>>> {
        Ok(sessions::table.find(id).select(sessions::step_up_at).first(c).optional()?.flatten())
    }

    /// Revokes the live sessions that signed in or stepped up with `credential`; returns their ids.
    pub fn revoke_by_credential(c: &mut PgConnection, credential: Uuid, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        Ok(diesel::update(sessions::table)
            .filter(sessions::credential_id.eq(credential).or(sessions::step_up_credential_id.eq(credential)))
            .filter(sessions::revoked_at.is_null())
            .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq("second factor removed")))
            .returning(sessions::id)
            .get_results(c)?)
    }

    /// Drops sessions that ended (expired or revoked) before `before`.
    pub fn purge_ended(c: &mut PgConnection, before: DateTime<Utc>) -> Result<usize> {
        Ok(diesel::delete(sessions::table)
            .filter(sessions::expires_at.lt(before).or(sessions::revoked_at.lt(before)))
            .execute(c)?)
    }

    /// Sessions revoked at or after `since` (for the revocation cache), with when.
    pub fn revoked_since(c: &mut PgConnection, since: DateTime<Utc>) -> Result<Vec<(Uuid, DateTime<Utc>)>> {
        let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = sessions::table
            .filter(sessions::revoked_at.ge(since))
            .select((sessions::id, sessions::revoked_at))
            .load(c)?;
        Ok(rows.into_iter().filter_map(|(id, at)| at.map(|at| (id, at))).collect())
    }
}

impl RefreshTokenRow {
    /// Stores a refresh token hash.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(refresh_tokens::table).values(self).execute(c)?;
        Ok(())
    }

    /// The session a token belongs to (without locking anything).
    pub fn session_of(c: &mut PgConnection, hash: &[u8]) -> Result<Option<Uuid>> {
        Ok(refresh_tokens::table.find(hash.to_vec()).select(refresh_tokens::session_id).first(c).optional()?)
    }

    /// The token with `hash`, locked until the transaction ends (rotation is serialised on it).
    pub fn find_for_update(c: &mut PgConnection, hash: &[u8]) -> Result<Option<RefreshTokenRow>> {
        Ok(refresh_tokens::table
            .find(hash.to_vec())
            .select(RefreshTokenRow::as_select())
            .for_update()
            .first(c)
            .optional()?)
    }

    /// Marks every unused token of `session` used: after a rotation only the newest token is live, so
    /// a forked chain is caught as reuse.
    pub fn supersede_unused(c: &mut PgConnection, session: Uuid, now: DateTime<Utc>) -> Result<()> {
        diesel::update(refresh_tokens::table)
            .filter(refresh_tokens::session_id.eq(session))
            .filter(refresh_tokens::used_at.is_null())
            .set(refresh_tokens::used_at.eq(now))
            .execute(c)?;
        Ok(())
    }

    /// Marks the token used.
    pub fn mark_used(c: &mut PgConnection, hash: &[u8], now: DateTime<Utc>) -> Result<()> {
        diesel::update(refresh_tokens::table.find(hash.to_vec())).set(refresh_tokens::used_at.eq(now)).execute(c)?;
        Ok(())
    }
}
