//! Queries on `users`.
use super::schema::users;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: crate::domain::Role,
    pub disabled: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Changes to apply to a user; `None` leaves a column alone.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub role: Option<crate::domain::Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
}

impl UserRow {
    /// Inserts a new user.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(users::table).values(self).execute(c)?;
        Ok(())
    }

    /// The user with `id`.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>> {
        Ok(users::table.find(id).select(UserRow::as_select()).first(c).optional()?)
    }

    /// The user with `id`, locked for update until the transaction ends.
    pub fn find_for_update(c: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>> {
        Ok(users::table.find(id).select(UserRow::as_select()).for_update().first(c).optional()?)
    }

    /// The user named `username` (already normalised to lower case).
    pub fn by_username(c: &mut PgConnection, username: &str) -> Result<Option<UserRow>> {
        Ok(users::table.filter(users::username.eq(username)).select(UserRow::as_select()).first(c).optional()?)
    }

    /// A page of users ordered by username, starting after `after`.
    pub fn page(c: &mut PgConnection, role: Option<&str>, after: Option<&str>, limit: i64) -> Result<Vec<UserRow>> {
        let mut q = users::table.select(UserRow::as_select()).order(users::username.asc()).limit(limit).into_boxed();
        if let Some(after) = after {
            q = q.filter(users::username.gt(after.to_owned()));
        }
        if let Some(role) = role {
            q = q.filter(users::role.eq(role.to_owned()));
        }
        Ok(q.load(c)?)
    }

    /// Number of users.
    pub fn count(c: &mut PgConnection) -> Result<i64> {
        Ok(users::table.count().get_result(c)?)
    }

    /// Locks the users table against concurrent writers until the transaction ends. Used where an
    /// invariant spans rows (first user, last enabled admin).
    pub fn lock_table(c: &mut PgConnection) -> Result<()> {
        diesel::sql_query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").execute(c)?;
        Ok(())
    }

    /// Number of enabled admins.
    pub fn enabled_admins(c: &mut PgConnection) -> Result<i64> {
        Ok(users::table.filter(users::role.eq("admin")).filter(users::disabled.eq(false)).count().get_result(c)?)
    }

    /// Applies `changes`, bumping the version; returns the new row.
    pub fn update(c: &mut PgConnection, id: Uuid, changes: &UserChanges, now: DateTime<Utc>) -> Result<UserRow> {
        Ok(diesel::update(users::table.find(id))
            .set((changes, users::version.eq(users::version + 1), users::updated_at.eq(now)))
            .returning(UserRow::as_returning())
            .get_result(c)?)
    }

    /// Deletes the user (sessions and tokens go with it). Returns whether a row went.
    pub fn delete(c: &mut PgConnection, id: Uuid) -> Result<bool> {
        Ok(diesel::delete(users::table.find(id)).execute(c)? > 0)
    }
}
