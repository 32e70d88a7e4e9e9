//! User management as use cases of the identity app: create, read, list, change, reset the
//! password of, and delete users; a change of role or a disabling ends their sessions and keys.
use super::auth::AuthApp;
use super::{Call, PageRequest};
use crate::bail;
use crate::domain::{Role, normalise_username, validate_display_name};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::security::password::check_policy;
use crate::store::api_keys::ApiKeyRow;
use crate::store::sessions::SessionRow;
use crate::store::users::{UserChanges, UserRow};
use std::collections::HashMap;
use uuid::Uuid;

/// Fields of a user that an update may change (the update mask picks which).
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// Expected version (etag); `None` skips the check.
    pub expected_version: Option<i64>,
}

fn etag_mismatch(id: Uuid) -> Error {
    Error::new(ErrorKind::Aborted, format!("user {id} was changed by someone else (etag mismatch); reload and retry"))
        .with_reason(reason::ETAG_MISMATCH)
}

fn last_admin(id: Uuid, what: &str) -> Error {
    Error::new(ErrorKind::FailedPrecondition, format!("user {id} is the last enabled admin: it cannot be {what}"))
        .with_reason(reason::LAST_ADMIN)
}

impl AuthApp {
    /// Creates a user.
    pub async fn create_user(
        &self,
        call: &Call,
        username: &str,
        display_name: &str,
        role: Option<Role>,
        disabled: bool,
        password: &str,
    ) -> Result<UserRow> {
        let username = normalise_username("user.username", username)?;
        validate_display_name("user.display_name", display_name)?;
        let role = role.ok_or_else(|| Error::invalid("user.role", "user.role is required"))?;
        check_policy("password", &username, password)?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        let now = self.clock.now();
        let row = UserRow {
            id: Uuid::new_v4(),
            username,
            display_name: display_name.to_owned(),
            password_hash: hash,
            role,
            disabled,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let insert = row.clone();
        let record = call
            .record("user", &row.id.to_string())
            .detail("username", row.username.clone())
            .detail("role", row.role.as_str())
            .detail("disabled", disabled.to_string());
        call.audited(&self.store, now, record, move |c, _| {
            insert.insert(c)?;
            Ok(())
        })
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => {
                Error::new(ErrorKind::AlreadyExists, format!("user {} already exists", row.username))
            }
            _ => e,
        })?;
        Ok(row)
    }

    /// One user.
    pub async fn get_user(&self, id: &str) -> Result<UserRow> {
        let id = super::parse_id("user_id", id)?;
        self.store
            .run(move |c| UserRow::find(c, id))
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("user {id} not found")))
    }

    /// The second factors of `users`, as listings show them.
    pub async fn factors(&self, users: Vec<Uuid>) -> Result<HashMap<Uuid, crate::store::credentials::FactorSummary>> {
        self.store.run(move |c| crate::store::credentials::FactorSummary::of_users(c, &users)).await
    }

    /// A page of users by username.
    pub async fn list_users(&self, role: Option<Role>, page: PageRequest) -> Result<(Vec<UserRow>, String)> {
        let (after, limit) = (page.after.clone(), page.size);
        let rows = self.store.run(move |c| UserRow::page(c, role.map(Role::as_str), after.as_deref(), limit)).await?;
        let next = page.next_token(rows.len(), rows.last().map(|u| u.username.as_str()));
        Ok((rows, next))
    }

    /// Updates role, disabled flag or display name. Disabling or demoting revokes the user's sessions.
    /// The last enabled admin can be neither disabled nor demoted, even by concurrent calls.
    pub async fn update_user(&self, call: &Call, id: &str, update: UserUpdate) -> Result<UserRow> {
        let who = call.principal()?;
        let id = super::parse_id("user.id", id)?;
        if let Some(name) = &update.display_name {
            validate_display_name("user.display_name", name)?;
        }
        if id == who.user_id && (update.disabled == Some(true) || update.role.is_some_and(|r| r != who.role)) {
            // Allowed, but the last-admin rule below still applies.
            tracing::info!(user = %id, "user changes own role or disables self");
        }
        let now = self.clock.now();
        let mut record = call.record("user", &id.to_string());
        for (k, v) in [
            ("display_name", update.display_name.clone()),
            ("role", update.role.map(|r| r.as_str().to_owned())),
            ("disabled", update.disabled.map(|d| d.to_string())),
        ] {
            if let Some(v) = v {
                record.details.insert(k.to_owned(), v);
            }
        }
        let (row, revoked) = call
            .audited(&self.store, now, record, move |c, record| {
                UserRow::lock_table(c)?;
                let current = UserRow::find_for_update(c, id)?
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("user {id} not found")))?;
                if let Some(v) = update.expected_version
                    && v != current.version
                {
                    return Err(etag_mismatch(id));
                }
                let was_admin = current.role == Role::Admin && !current.disabled;
                let stays_admin = update.role.map_or(current.role == Role::Admin, |r| r == Role::Admin)
                    && !update.disabled.unwrap_or(current.disabled);
                if was_admin && !stays_admin && UserRow::enabled_admins(c)? <= 1 {
                    return Err(last_admin(id, "disabled or demoted"));
                }
                let changes = UserChanges {
                    display_name: update.display_name,
                    role: update.role,
                    disabled: update.disabled,
                    password_hash: None,
                };
                let row = UserRow::update(c, id, &changes, now)?;
                let privileges_changed = row.role != current.role || (row.disabled && !current.disabled);
                let (revoked, keys) = if privileges_changed {
                    (
                        SessionRow::revoke_all_of_user(c, id, None, now, "role or status changed")?,
                        ApiKeyRow::revoke_all_of_creator(c, id, now, "creator's role or status changed")?,
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                if !keys.is_empty() {
                    record.details.insert("api_keys_revoked".into(), keys.len().to_string());
                }
                Ok((row, (revoked, keys)))
            })
            .await?;
        let (row, (revoked, keys)) = (row, revoked);
        self.revocations.insert(&revoked);
        self.api_keys.revoked(&keys, now);
        self.media.poke();
        Ok(row)
    }

    /// Sets another user's password (administrators); their sessions are revoked.
    pub async fn set_user_password(&self, call: &Call, id: &str, password: &str) -> Result<()> {
        let user = self.get_user(id).await?;
        check_policy("password", &user.username, password)?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        let (user_id, now) = (user.id, self.clock.now());
        let record = call.record("user", &user.id.to_string());
        let revoked = call
            .audited(&self.store, now, record, move |c, _| {
                UserRow::update(c, user_id, &UserChanges { password_hash: Some(hash), ..Default::default() }, now)?;
                let revoked = SessionRow::revoke_all_of_user(c, user_id, None, now, "password reset")?;
                Ok(revoked)
            })
            .await?;
        self.revocations.insert(&revoked);
        Ok(())
    }

    /// Deletes a user and revokes their sessions. Nobody deletes themselves, and the last enabled
    /// admin cannot be deleted.
    pub async fn delete_user(&self, call: &Call, id: &str, expected_version: Option<i64>) -> Result<()> {
        let who = call.principal()?;
        let id = super::parse_id("user_id", id)?;
        if id == who.user_id {
            bail!(FailedPrecondition, "you cannot delete your own account; another administrator can");
        }
        let now = self.clock.now();
        let record = call.record("user", &id.to_string());
        let revoked = call
            .audited(&self.store, now, record, move |c, record| {
                UserRow::lock_table(c)?;
                let current = UserRow::find_for_update(c, id)?
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("user {id} not found")))?;
                if let Some(v) = expected_version
                    && v != current.version
                {
                    return Err(etag_mismatch(id));
                }
                if current.role == Role::Admin && !current.disabled && UserRow::enabled_admins(c)? <= 1 {
                    return Err(last_admin(id, "deleted"));
                }
                let revoked = SessionRow::revoke_all_of_user(c, id, None, now, "user deleted")?;
                let keys = ApiKeyRow::revoke_all_of_creator(c, id, now, "creator deleted")?;
                UserRow::delete(c, id)?;
                record.details.insert("username".into(), current.username);
                if !keys.is_empty() {
                    record.details.insert("api_keys_revoked".into(), keys.len().to_string());
                }
                Ok((revoked, keys))
            })
            .await?;
        let (revoked, keys) = revoked;
        self.revocations.insert(&revoked);
        self.api_keys.revoked(&keys, now);
        self.media.poke();
        Ok(())
    }
}
