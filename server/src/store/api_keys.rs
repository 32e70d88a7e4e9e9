//! Queries on `api_keys`: service-account credentials, kept as hashes.
use super::schema::api_keys;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `api_keys`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub secret_prefix: String,
    pub created_by: Option<Uuid>,
    pub created_by_username: String,
    /// The key that created this one, if a key did.
    pub created_by_key: Option<Uuid>,
    pub role: crate::domain::Role,
    pub permissions: Vec<String>,
    pub camera_ids: Vec<Uuid>,
    pub step_up_methods: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl ApiKeyRow {
    /// Inserts a key.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(api_keys::table).values(self).execute(c)?;
        Ok(())
    }

    /// The key with `id`.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<ApiKeyRow>> {
        Ok(api_keys::table.find(id).select(ApiKeyRow::as_select()).first(c).optional()?)
    }

    /// The key with `id`, share-locked until the transaction ends (it cannot be revoked meanwhile).
    pub fn find_for_share(c: &mut PgConnection, id: Uuid) -> Result<Option<ApiKeyRow>> {
        Ok(api_keys::table.find(id).select(ApiKeyRow::as_select()).for_share().first(c).optional()?)
    }

    /// Keys changed at or after `since` (every key when `None`), for the server's key cache.
    pub fn changed_since(c: &mut PgConnection, since: Option<DateTime<Utc>>) -> Result<Vec<ApiKeyRow>> {
        let mut q = api_keys::table.select(ApiKeyRow::as_select()).into_boxed();
        if let Some(since) = since {
            q = q.filter(api_keys::updated_at.ge(since));
        }
        Ok(q.load(c)?)
    }

    /// A page of keys, newest first, after the (time, id) position `after`.
    pub fn page(
        c: &mut PgConnection,
        show_revoked: bool,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<ApiKeyRow>> {
        let mut q = api_keys::table
            .select(ApiKeyRow::as_select())
            .order((api_keys::created_at.desc(), api_keys::id.desc()))
            .limit(limit)
            .into_boxed();
        if !show_revoked {
            q = q.filter(api_keys::revoked_at.is_null());
        }
        if let Some((at, id)) = after {
            q = q.filter(api_keys::created_at.lt(at).or(api_keys::created_at.eq(at).and(api_keys::id.lt(id))));
        }
        Ok(q.load(c)?)
    }

    /// Revokes a key (idempotent) and every live key created by it, directly or through others.
    /// Returns the key as it now is, and the ids of every key this call revoked.
    pub fn revoke(
        c: &mut PgConnection,
        id: Uuid,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<Option<(ApiKeyRow, Vec<Uuid>)>> {
        if ApiKeyRow::find(c, id)?.is_none() {
            return Ok(None);
        }
        let revoked = ApiKeyRow::revoke_descending(c, &[id], now, reason)?;
        Ok(ApiKeyRow::find(c, id)?.map(|row| (row, revoked)))
    }

    /// Revokes every live key `user` created, and the keys those created; returns their ids.
    pub fn revoke_all_of_creator(
        c: &mut PgConnection,
        user: Uuid,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<Vec<Uuid>> {
        let roots: Vec<Uuid> = api_keys::table.filter(api_keys::created_by.eq(user)).select(api_keys::id).load(c)?;
        ApiKeyRow::revoke_descending(c, &roots, now, reason)
    }

    /// Revokes the live keys among `roots` and their descendants (keys created by keys).
    fn revoke_descending(c: &mut PgConnection, roots: &[Uuid], now: DateTime<Utc>, reason: &str) -> Result<Vec<Uuid>> {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
        }
        let rows: Vec<Id> = diesel::sql_query(
            "WITH RECURSIVE tree(id) AS (
               SELECT id FROM api_keys WHERE id = ANY($1)
               UNION SELECT k.id FROM api_keys k JOIN tree t ON k.created_by_key = t.id
             )
             UPDATE api_keys SET revoked_at = $2, revoked_reason = $3, updated_at = $2
              WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL
             RETURNING id",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(roots)
        .bind::<diesel::sql_types::Timestamptz, _>(now)
        .bind::<diesel::sql_types::Text, _>(reason)
        .load(c)?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Records last uses (batched by the key cache): each key's `last_used_at` moves forward only.
    pub fn record_uses(c: &mut PgConnection, uses: &[(Uuid, DateTime<Utc>)]) -> Result<()> {
        for (id, at) in uses {
            diesel::update(
                api_keys::table.find(*id).filter(api_keys::last_used_at.is_null().or(api_keys::last_used_at.lt(*at))),
            )
            .set(api_keys::last_used_at.eq(*at))
            .execute(c)?;
        }
        Ok(())
    }
}
