//! The camera authorizer: the one place that answers "may this caller do X on camera 7?" and "which
//! cameras may this caller see?". A user's role is the ceiling of what they may do; outside the admin
//! role, a grant on a camera says which of those things they may do on that camera; an API key is
//! further narrowed to its scope and cameras.
use super::Principal;
use crate::domain::{Permission, Role};
use crate::error::{Error, ErrorKind, Result};
use crate::store::cameras::{CameraGrantRow, CameraRow, Visible};
use crate::store::recent::Recent;
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use uuid::Uuid;

/// Which cameras `p` may see at `now`.
pub fn visible(p: &Principal, now: DateTime<Utc>) -> Visible {
    match &p.api_key {
        // An API key sees the cameras it names, or every camera.
        Some(key) if key.cameras.is_empty() => Visible::All,
        Some(key) => Visible::Cameras(key.cameras.clone()),
        None if p.role == Role::Admin => Visible::All,
        None => Visible::GrantedTo(p.user_id, now),
    }
}

/// Which cameras `p` may do `permission` on at `now`: as [`visible`], except that a user outside
/// the admin role sees only the cameras whose live grant gives `permission` (one query).
pub fn visible_for(c: &mut PgConnection, p: &Principal, permission: Permission, now: DateTime<Utc>) -> Result<Visible> {
    Ok(match visible(p, now) {
        Visible::GrantedTo(user, now) => {
            Visible::Cameras(CameraGrantRow::live_camera_ids_granting(c, user, now, permission.name())?)
        }
        other => other,
    })
}

/// Which of the cameras `ids` `p` may see at `now` (every one of them, deleted ones too, for whoever
/// sees every camera), in at most one query.
pub fn visible_among(
    c: &mut PgConnection,
    p: &Principal,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<std::collections::HashSet<Uuid>> {
    Ok(match visible(p, now) {
        Visible::All => ids.iter().copied().collect(),
        scope => CameraRow::with_ids(c, scope, ids)?.into_iter().map(|r| r.id).collect(),
    })
}

/// The authorizer: the camera `id` if `p` may do `permission` on it. NOT_FOUND when the camera does
/// not exist or `p` may not see it (its existence is not revealed), PERMISSION_DENIED when `p` sees
/// it but may not do that. With `lock`, the row stays locked until the transaction ends.
pub fn authorize(
    c: &mut PgConnection,
    p: &Principal,
    id: Uuid,
    permission: Permission,
    now: DateTime<Utc>,
    lock: bool,
) -> Result<CameraRow> {
    let row = if lock { CameraRow::find_for_update(c, id)? } else { CameraRow::find(c, id)? };
    let Some(row) = row else { return Err(camera_not_found(id)) };
    let held = held_on(c, p, id, now)?;
    judge(id, &held, Some(permission))?;
    Ok(row)
}

/// [`authorize`] for a read that needs the decision only, not the camera's row: from memory when
/// the camera and the caller's grants were read less than a second ago and nothing changed since
/// ([`crate::store::recent`]), else from the database. Not for writes, which lock what they read.
pub fn permit(
    c: &mut PgConnection,
    recent: &Recent,
    p: &Principal,
    id: Uuid,
    permission: Permission,
    now: DateTime<Utc>,
) -> Result<()> {
    if !recent.camera_exists(c, id)? {
        return Err(camera_not_found(id));
    }
    let grant = if needs_grant(p) { recent.live_grant(c, id, p.user_id, now)? } else { None };
    judge(id, &held_with(p, id, grant.as_ref()), Some(permission))
}

fn camera_not_found(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("camera {id} not found"))
}

/// The one judgement of camera `id`, which exists, given what the caller holds on it: NOT_FOUND
/// when nothing (its existence is not revealed), PERMISSION_DENIED without `permission`.
fn judge(id: Uuid, held: &[Permission], permission: Option<Permission>) -> Result<()> {
    if held.is_empty() {
        return Err(camera_not_found(id));
    }
    match permission {
        Some(wanted) if !held.contains(&wanted) => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("permission {} on camera {} required", wanted.name(), id),
        )),
        _ => Ok(()),
    }
}

/// [`authorize`] for many cameras at once, in two queries whatever their number: the rows of `ids`,
/// in the same order. The first camera that fails fails the whole call, as it would alone. Without
/// a permission, only that `p` may see each camera is checked.
pub fn authorize_all(
    c: &mut PgConnection,
    p: &Principal,
    ids: &[Uuid],
    permission: impl Into<Option<Permission>>,
    now: DateTime<Utc>,
) -> Result<Vec<CameraRow>> {
    let permission = permission.into();
    let mut rows: std::collections::HashMap<Uuid, CameraRow> =
        CameraRow::find_many(c, ids)?.into_iter().map(|r| (r.id, r)).collect();
    let grants: std::collections::HashMap<Uuid, CameraGrantRow> = if needs_grant(p) {
        CameraGrantRow::live_many(c, ids, p.user_id, now)?.into_iter().map(|g| (g.camera_id, g)).collect()
    } else {
        Default::default()
    };
    ids.iter()
        .map(|&id| {
            let row = rows.remove(&id).ok_or_else(|| camera_not_found(id))?;
            judge(id, &held_with(p, id, grants.get(&id)), permission)?;
            Ok(row)
        })
        .collect()
}

/// The camera-scoped permissions `p` holds on camera `id`: their role's, limited (outside the admin
/// role) to those a live grant on that camera gives, and for an API key to its scope and cameras.
/// Empty = the camera is invisible to them.
pub fn held_on(c: &mut PgConnection, p: &Principal, id: Uuid, now: DateTime<Utc>) -> Result<Vec<Permission>> {
    let grant = if needs_grant(p) { CameraGrantRow::live(c, id, p.user_id, now)? } else { None };
    Ok(held_with(p, id, grant.as_ref()))
}

/// Only a person outside the admin role holds camera permissions through grants.
fn needs_grant(p: &Principal) -> bool {
    p.api_key.is_none() && p.role != Role::Admin
}

/// What `p` holds on camera `id` given its live grant there (if any): the one rule of [`held_on`].
fn held_with(p: &Principal, id: Uuid, grant: Option<&CameraGrantRow>) -> Vec<Permission> {
    if let Some(key) = &p.api_key {
        if !key.cameras.is_empty() && !key.cameras.contains(&id) {
            return Vec::new();
        }
        return p.permissions();
    }
    if p.role == Role::Admin {
        return Permission::ALL.to_vec();
    }
    let Some(grant) = grant else { return Vec::new() };
    grant.permissions.iter().filter_map(|n| n.parse::<Permission>().ok()).filter(|perm| p.role.allows(*perm)).collect()
}
