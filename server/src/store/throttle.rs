//! Queries on `login_failures`: failed-login counts per (username, client address).
use super::schema::login_failures;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;

/// A row of `login_failures`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = login_failures, check_for_backend(diesel::pg::Pg))]
pub struct LoginFailureRow {
    pub username: String,
    pub client_address: String,
    pub failures: i32,
    pub last_failure_at: DateTime<Utc>,
    pub blocked_until: DateTime<Utc>,
}

impl LoginFailureRow {
    /// The failure record of `username` from `client_address`.
    pub fn find(c: &mut PgConnection, username: &str, client_address: &str) -> Result<Option<LoginFailureRow>> {
        Ok(login_failures::table
            .find((username.to_owned(), client_address.to_owned()))
            .select(LoginFailureRow::as_select())
            .first(c)
            .optional()?)
    }

    /// The record of (`username`, `client_address`), created empty if missing, locked until the
    /// transaction ends: attempts of one pair are judged one at a time, so parallel guesses cannot
    /// all pass the check before any is counted.
    pub fn lock(
        c: &mut PgConnection,
        username: &str,
        client_address: &str,
        now: DateTime<Utc>,
    ) -> Result<LoginFailureRow> {
        let empty = LoginFailureRow {
            username: username.to_owned(),
            client_address: client_address.to_owned(),
            failures: 0,
            last_failure_at: now,
            blocked_until: DateTime::UNIX_EPOCH,
        };
        // The row may go between the insert and the lock (a success clears it): then again.
        for _ in 0..3 {
            diesel::insert_into(login_failures::table).values(&empty).on_conflict_do_nothing().execute(c)?;
            let row = login_failures::table
                .find((username.to_owned(), client_address.to_owned()))
                .select(LoginFailureRow::as_select())
                .for_update()
                .first(c)
                .optional()?;
            if let Some(row) = row {
                return Ok(row);
            }
        }
        Err(crate::error::Error::new(crate::error::ErrorKind::Aborted, "concurrent sign-in attempts; retry"))
    }

    /// Drops records whose last failure is older than `before` and that block nothing.
    pub fn purge(c: &mut PgConnection, before: DateTime<Utc>) -> Result<usize> {
        Ok(diesel::delete(login_failures::table)
            .filter(login_failures::last_failure_at.lt(before))
            .filter(login_failures::blocked_until.lt(before))
            .execute(c)?)
    }

    /// Writes the record (insert or replace).
    pub fn upsert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(login_failures::table)
            .values(self)
            .on_conflict((login_failures::username, login_failures::client_address))
            .do_update()
            .set((
                login_failures::failures.eq(excluded(login_failures::failures)),
                login_failures::last_failure_at.eq(excluded(login_failures::last_failure_at)),
                login_failures::blocked_until.eq(excluded(login_failures::blocked_until)),
            ))
            .execute(c)?;
        Ok(())
    }

    /// Forgets the failures of `username` from `client_address` (after a successful login).
    pub fn clear(c: &mut PgConnection, username: &str, client_address: &str) -> Result<()> {
        diesel::delete(login_failures::table.find((username.to_owned(), client_address.to_owned()))).execute(c)?;
        Ok(())
    }
}
