//! Per-camera grants as camera use cases: what a user outside the admin role may do on one camera.
//! A caller grants only what they hold there; a revoked or narrowed grant ends open viewing sessions.
use super::authorizer::{authorize, held_on, visible};
use super::cameras::CameraApp;
use super::{Call, PageRequest, parse_id};
use crate::domain::Permission;
use crate::domain::camera::{self};
use crate::error::{Error, ErrorKind, Result};
use crate::store::cameras::CameraGrantRow;
use crate::store::users::UserRow;
use chrono::{DateTime, Utc};

impl CameraApp {
    /// Gives `user` `permissions` on a camera (replacing their grant there). The caller may only
    /// grant what they hold on that camera.
    pub async fn grant(
        &self,
        call: &Call,
        camera_id: &str,
        user_id: &str,
        permissions: &[String],
        expire_at: Option<DateTime<Utc>>,
    ) -> Result<CameraGrantRow> {
        let camera = parse_id("camera_id", camera_id)?;
        let user = parse_id("user_id", user_id)?;
        call.about("camera_grant", &format!("{camera}/{user}"), &camera.to_string());
        let perms = camera::grant_permissions("permissions", permissions)?;
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        if expire_at.is_some_and(|t| t <= now) {
            return Err(Error::invalid("expire_time", "expire_time must be in the future"));
        }
        let names: Vec<String> = perms.iter().map(|p| p.name().to_owned()).collect();
        let mut record = call
            .record("camera_grant", &format!("{camera}/{user}"))
            .detail("user_id", user.to_string())
            .detail("permissions", names.join(","));
        if let Some(t) = expire_at {
            record = record.detail("expire_time", t.to_rfc3339());
        }
        record.camera_id = camera.to_string();
        let row = call
            .audited(&self.store, now, record, move |c, _| {
                authorize(c, &p, camera, Permission::CameraRead, now, true)?;
                let held = held_on(c, &p, camera, now)?;
                if let Some(missing) = perms.iter().find(|perm| !held.contains(perm)) {
                    return Err(Error::new(
                        ErrorKind::PermissionDenied,
                        format!("you cannot grant {} on this camera: you do not hold it", missing.name()),
                    ));
                }
                UserRow::find(c, user)?
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("user {user} not found")))?;
                let row = CameraGrantRow {
                    camera_id: camera,
                    user_id: user,
                    permissions: names,
                    expire_at,
                    grantor_user_id: Some(p.user_id),
                    created_at: now,
                    updated_at: now,
                }
                .upsert(c)?;
                Ok(row)
            })
            .await?;
        // A grant can also narrow what they may do: judge their open sessions again.
        self.media.poke();
        Ok(row)
    }

    /// Removes a user's grant on a camera; idempotent.
    pub async fn revoke(&self, call: &Call, camera_id: &str, user_id: &str) -> Result<bool> {
        let camera = parse_id("camera_id", camera_id)?;
        let user = parse_id("user_id", user_id)?;
        call.about("camera_grant", &format!("{camera}/{user}"), &camera.to_string());
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let mut record = call.record("camera_grant", &format!("{camera}/{user}")).detail("user_id", user.to_string());
        record.camera_id = camera.to_string();
        let removed = call
            .audited(&self.store, now, record, move |c, record| {
                authorize(c, &p, camera, Permission::CameraRead, now, false)?;
                let removed = CameraGrantRow::delete(c, camera, user)?;
                record.note("removed", removed.to_string());
                Ok(removed)
            })
            .await?;
        // Their open viewing sessions end now, not when their tokens expire.
        self.media.poke();
        Ok(removed)
    }

    /// A page of grants on the cameras the caller may see.
    pub async fn grants(
        &self,
        call: &Call,
        camera_id: &str,
        user_id: &str,
        page: PageRequest,
    ) -> Result<(Vec<CameraGrantRow>, String)> {
        let camera = (!camera_id.is_empty()).then(|| parse_id("camera_id", camera_id)).transpose()?;
        let user = (!user_id.is_empty()).then(|| parse_id("user_id", user_id)).transpose()?;
        let after = match page.after.as_deref() {
            Some(t) => {
                let (c, u) =
                    t.split_once('/').ok_or_else(|| Error::invalid("page_token", "page_token is not valid"))?;
                Some((parse_id("page_token", c)?, parse_id("page_token", u)?))
            }
            None => None,
        };
        let visible = visible(call.principal()?, self.clock.now());
        let limit = page.size;
        let rows = self.store.run(move |c| CameraGrantRow::page(c, camera, user, visible, after, limit)).await?;
        let last = rows.last().map(|g| format!("{}/{}", g.camera_id, g.user_id));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }
}
