//! Queries on `cameras` and `camera_grants`. Deleted cameras keep their row (marked) and are left
//! out of every query here but [`CameraRow::find_any`].
use super::schema::{camera_grants, cameras};
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// A row of `cameras`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = cameras, check_for_backend(diesel::pg::Pg))]
pub struct CameraRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub location: String,
    pub source_url: String,
    pub username: String,
    pub password_sealed: Option<Vec<u8>>,
    pub password_kek_id: Option<String>,
    pub transport: crate::domain::camera::Transport,
    pub enabled: bool,
    pub recording_enabled: bool,
    pub recording_mode: crate::domain::camera::RecordingMode,
    pub segment_seconds: i32,
    pub event_pre_roll_ms: Option<i64>,
    pub event_post_roll_ms: Option<i64>,
    pub labels: serde_json::Value,
    pub ip_addresses: Vec<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The motion detector's settings ([`crate::domain::motion::MotionSettings`]); `None`: off.
    pub motion: Option<serde_json::Value>,
    /// Topic names whose footage counts as event footage; `None`: the default ones.
    pub recording_event_types: Option<Vec<String>>,
}

/// Changes to a camera; `None` leaves a column alone (`Some(None)` clears a nullable one).
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = cameras)]
pub struct CameraChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub source_url: Option<String>,
    pub username: Option<String>,
    pub password_sealed: Option<Option<Vec<u8>>>,
    pub password_kek_id: Option<Option<String>>,
    pub transport: Option<crate::domain::camera::Transport>,
    pub enabled: Option<bool>,
    pub recording_enabled: Option<bool>,
    pub recording_mode: Option<crate::domain::camera::RecordingMode>,
    pub segment_seconds: Option<i32>,
    pub event_pre_roll_ms: Option<Option<i64>>,
    pub event_post_roll_ms: Option<Option<i64>>,
    pub labels: Option<serde_json::Value>,
    pub ip_addresses: Option<Vec<String>>,
    pub motion: Option<Option<serde_json::Value>>,
    pub recording_event_types: Option<Option<Vec<String>>>,
}

/// Which cameras a query may return.
#[derive(Debug, Clone)]
pub enum Visible {
    /// Every camera (administrators).
    All,
    /// Cameras on which this user holds a grant that has not expired at the given time.
    GrantedTo(Uuid, DateTime<Utc>),
    /// These cameras (an API key limited to them).
    Cameras(Vec<Uuid>),
}

impl CameraRow {
    /// The camera's motion detector settings, when it has one.
    pub fn motion_settings(&self) -> Option<crate::domain::motion::MotionSettings> {
        self.motion.as_ref().and_then(|m| serde_json::from_value(m.clone()).ok())
    }

    /// The topics whose footage counts as this camera's event footage.
    pub fn footage_topics(&self) -> Vec<crate::domain::event::Topic> {
        use crate::domain::event::Topic;
        match &self.recording_event_types {
            Some(names) => names.iter().filter_map(|n| Topic::from_name(n)).collect(),
            None => Topic::FOOTAGE_DEFAULT.to_vec(),
        }
    }

    /// Inserts a new camera.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(cameras::table).values(self).execute(c)?;
        Ok(())
    }

    /// Cameras with motion detection on (enabled, not deleted): id, version, settings.
    pub fn with_motion(c: &mut PgConnection) -> Result<Vec<(Uuid, i64, serde_json::Value)>> {
        Ok(cameras::table
            .filter(cameras::enabled.eq(true))
            .filter(cameras::deleted_at.is_null())
            .filter(cameras::motion.is_not_null())
            .select((cameras::id, cameras::version, cameras::motion.assume_not_null()))
            .load(c)?)
    }

    /// The cameras of `ids`, deleted ones included.
    pub fn any_of(c: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<CameraRow>> {
        Ok(cameras::table.filter(cameras::id.eq_any(ids)).select(CameraRow::as_select()).load(c)?)
    }

    /// The camera with `id`, unless deleted.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<CameraRow>> {
        Ok(cameras::table
            .find(id)
            .filter(cameras::deleted_at.is_null())
            .select(CameraRow::as_select())
            .first(c)
            .optional()?)
    }

    /// The camera with `id`, locked until the transaction ends, unless deleted.
    pub fn find_for_update(c: &mut PgConnection, id: Uuid) -> Result<Option<CameraRow>> {
        Ok(cameras::table
            .find(id)
            .filter(cameras::deleted_at.is_null())
            .select(CameraRow::as_select())
            .for_update()
            .first(c)
            .optional()?)
    }

    /// A page of cameras ordered by name (case-insensitive), after the name `after` (lower case),
    /// carrying all of `labels` (a JSON object), limited to `visible`.
    pub fn page(
        c: &mut PgConnection,
        visible: Visible,
        labels: Option<&serde_json::Value>,
        enabled: Option<bool>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CameraRow>> {
        let mut q = cameras::table
            .filter(cameras::deleted_at.is_null())
            .select(CameraRow::as_select())
            .order((lower(cameras::name).asc(), cameras::id.asc()))
            .limit(limit)
            .into_boxed();
        match visible {
            Visible::All => {}
            Visible::GrantedTo(user, now) => {
                q = q.filter(cameras::id.eq_any(CameraGrantRow::live_camera_ids(user, now)))
            }
            Visible::Cameras(ids) => q = q.filter(cameras::id.eq_any(ids)),
        }
        if let Some(labels) = labels {
            q = q.filter(cameras::labels.contains(labels.clone()));
        }
        if let Some(enabled) = enabled {
            q = q.filter(cameras::enabled.eq(enabled));
        }
        if let Some(after) = after {
            q = q.filter(lower(cameras::name).gt(after.to_owned()));
        }
        Ok(q.load(c)?)
    }

    /// The cameras of `ids` that `visible` lets through (one query), ordered by name.
    pub fn with_ids(c: &mut PgConnection, visible: Visible, ids: &[Uuid]) -> Result<Vec<CameraRow>> {
        let mut q = cameras::table
            .filter(cameras::deleted_at.is_null())
            .filter(cameras::id.eq_any(ids.to_vec()))
            .select(CameraRow::as_select())
            .order((lower(cameras::name).asc(), cameras::id.asc()))
            .into_boxed();
        match visible {
            Visible::All => {}
            Visible::GrantedTo(user, now) => {
                q = q.filter(cameras::id.eq_any(CameraGrantRow::live_camera_ids(user, now)))
            }
            Visible::Cameras(ids) => q = q.filter(cameras::id.eq_any(ids)),
        }
        Ok(q.load(c)?)
    }

    /// The cameras in service among `ids`, in one query (in no particular order).
    pub fn find_many(c: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<CameraRow>> {
        Ok(cameras::table
            .filter(cameras::deleted_at.is_null())
            .filter(cameras::id.eq_any(ids))
            .select(CameraRow::as_select())
            .load(c)?)
    }

    /// Every camera in service.
    pub fn all_live(c: &mut PgConnection) -> Result<Vec<CameraRow>> {
        Ok(cameras::table.filter(cameras::deleted_at.is_null()).select(CameraRow::as_select()).load(c)?)
    }

    /// Whether a camera with `id` exists or existed (deleted cameras keep their row).
    pub fn exists_any(c: &mut PgConnection, id: Uuid) -> Result<bool> {
        Ok(diesel::select(diesel::dsl::exists(cameras::table.find(id))).get_result(c)?)
    }

    /// Every camera that is not deleted (the reconciler's desired state).
    pub fn all(c: &mut PgConnection) -> Result<Vec<CameraRow>> {
        Ok(cameras::table.filter(cameras::deleted_at.is_null()).select(CameraRow::as_select()).load(c)?)
    }

    /// Applies `changes`, bumping the version; returns the new row.
    pub fn update(c: &mut PgConnection, id: Uuid, changes: &CameraChanges, now: DateTime<Utc>) -> Result<CameraRow> {
        Ok(diesel::update(cameras::table.find(id))
            .set((changes, cameras::version.eq(cameras::version + 1), cameras::updated_at.eq(now)))
            .returning(CameraRow::as_returning())
            .get_result(c)?)
    }

    /// Marks the camera deleted and disabled, and forgets its password. Returns whether it was live.
    pub fn mark_deleted(c: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let n = diesel::update(cameras::table.find(id).filter(cameras::deleted_at.is_null()))
            .set((
                cameras::deleted_at.eq(Some(now)),
                cameras::enabled.eq(false),
                cameras::password_sealed.eq(None::<Vec<u8>>),
                cameras::password_kek_id.eq(None::<String>),
                cameras::version.eq(cameras::version + 1),
                cameras::updated_at.eq(now),
            ))
            .execute(c)?;
        Ok(n > 0)
    }
}

/// A row of `camera_grants`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = camera_grants, check_for_backend(diesel::pg::Pg))]
pub struct CameraGrantRow {
    pub camera_id: Uuid,
    pub user_id: Uuid,
    pub permissions: Vec<String>,
    pub expire_at: Option<DateTime<Utc>>,
    pub grantor_user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub type LiveCameraIds = diesel::dsl::Select<
    diesel::dsl::Filter<
        diesel::dsl::Filter<camera_grants::table, diesel::dsl::Eq<camera_grants::user_id, Uuid>>,
        diesel::dsl::Or<
            diesel::dsl::IsNull<camera_grants::expire_at>,
            diesel::dsl::Gt<camera_grants::expire_at, DateTime<Utc>>,
        >,
    >,
    camera_grants::camera_id,
>;

impl CameraGrantRow {
    /// The ids of cameras on which `user` holds a grant live at `now` (a subquery).
    pub fn live_camera_ids(user: Uuid, now: DateTime<Utc>) -> LiveCameraIds {
        camera_grants::table
            .filter(camera_grants::user_id.eq(user))
            .filter(camera_grants::expire_at.is_null().or(camera_grants::expire_at.gt(now)))
            .select(camera_grants::camera_id)
    }

    /// The cameras on which `user` holds a grant that has not expired at `now`.
    pub fn live_camera_id_list(c: &mut PgConnection, user: Uuid, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        Ok(CameraGrantRow::live_camera_ids(user, now).load(c)?)
    }

    /// Every grant of `user` live at `now`.
    pub fn live_of(c: &mut PgConnection, user: Uuid, now: DateTime<Utc>) -> Result<Vec<CameraGrantRow>> {
        Ok(camera_grants::table
            .filter(camera_grants::user_id.eq(user))
            .filter(camera_grants::expire_at.is_null().or(camera_grants::expire_at.gt(now)))
            .select(CameraGrantRow::as_select())
            .load(c)?)
    }

    /// The cameras on which `user` holds a grant live at `now` that gives `permission` (its name).
    pub fn live_camera_ids_granting(
        c: &mut PgConnection,
        user: Uuid,
        now: DateTime<Utc>,
        permission: &str,
    ) -> Result<Vec<Uuid>> {
        Ok(CameraGrantRow::live_camera_ids(user, now)
            .filter(camera_grants::permissions.contains(vec![permission.to_owned()]))
            .load(c)?)
    }

    /// The grant of `user` on `camera`, if any and not expired at `now`.
    pub fn live(c: &mut PgConnection, camera: Uuid, user: Uuid, now: DateTime<Utc>) -> Result<Option<CameraGrantRow>> {
        Ok(camera_grants::table
            .find((camera, user))
            .filter(camera_grants::expire_at.is_null().or(camera_grants::expire_at.gt(now)))
            .select(CameraGrantRow::as_select())
            .first(c)
            .optional()?)
    }

    /// The live grants of `user` on any of `cameras`, in one query.
    pub fn live_many(
        c: &mut PgConnection,
        cameras: &[Uuid],
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<CameraGrantRow>> {
        Ok(camera_grants::table
            .filter(camera_grants::user_id.eq(user))
            .filter(camera_grants::camera_id.eq_any(cameras))
            .filter(camera_grants::expire_at.is_null().or(camera_grants::expire_at.gt(now)))
            .select(CameraGrantRow::as_select())
            .load(c)?)
    }

    /// Creates or replaces the grant of (camera, user).
    pub fn upsert(&self, c: &mut PgConnection) -> Result<CameraGrantRow> {
        Ok(diesel::insert_into(camera_grants::table)
            .values(self)
            .on_conflict((camera_grants::camera_id, camera_grants::user_id))
            .do_update()
            .set((
                camera_grants::permissions.eq(&self.permissions),
                camera_grants::expire_at.eq(self.expire_at),
                camera_grants::grantor_user_id.eq(self.grantor_user_id),
                camera_grants::updated_at.eq(self.updated_at),
            ))
            .returning(CameraGrantRow::as_returning())
            .get_result(c)?)
    }

    /// Removes the grant of (camera, user); returns whether there was one.
    pub fn delete(c: &mut PgConnection, camera: Uuid, user: Uuid) -> Result<bool> {
        Ok(diesel::delete(camera_grants::table.find((camera, user))).execute(c)? > 0)
    }

    /// Removes every grant on `camera`; returns the users who held one.
    pub fn delete_for_camera(c: &mut PgConnection, camera: Uuid) -> Result<Vec<Uuid>> {
        Ok(diesel::delete(camera_grants::table.filter(camera_grants::camera_id.eq(camera)))
            .returning(camera_grants::user_id)
            .get_results(c)?)
    }

    /// A page of grants ordered by camera then user, after `after`, optionally of one camera and/or
    /// one user, limited to cameras `visible`.
    pub fn page(
        c: &mut PgConnection,
        camera: Option<Uuid>,
        user: Option<Uuid>,
        visible: Visible,
        after: Option<(Uuid, Uuid)>,
        limit: i64,
    ) -> Result<Vec<CameraGrantRow>> {
        let mut q = camera_grants::table
            .select(CameraGrantRow::as_select())
            .order((camera_grants::camera_id.asc(), camera_grants::user_id.asc()))
            .limit(limit)
            .into_boxed();
        if let Some(camera) = camera {
            q = q.filter(camera_grants::camera_id.eq(camera));
        }
        if let Some(user) = user {
            q = q.filter(camera_grants::user_id.eq(user));
        }
        if let Visible::Cameras(ids) = &visible {
            q = q.filter(camera_grants::camera_id.eq_any(ids.clone()));
        }
        if let Visible::GrantedTo(viewer, now) = visible {
            // Grants on cameras the viewer holds a live grant on themselves.
            let mine = diesel::alias!(camera_grants as mine);
            q = q.filter(
                camera_grants::camera_id.eq_any(
                    mine.filter(mine.field(camera_grants::user_id).eq(viewer))
                        .filter(
                            mine.field(camera_grants::expire_at)
                                .is_null()
                                .or(mine.field(camera_grants::expire_at).gt(now)),
                        )
                        .select(mine.field(camera_grants::camera_id)),
                ),
            );
        }
        if let Some((cam, usr)) = after {
            q = q.filter(
                camera_grants::camera_id
                    .gt(cam)
                    .or(camera_grants::camera_id.eq(cam).and(camera_grants::user_id.gt(usr))),
            );
        }
        Ok(q.load(c)?)
    }
}
