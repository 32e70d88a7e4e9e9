//! Queries on `adapters`, `adapter_bindings` and `detections`.
use super::schema::{adapter_bindings, adapters, detections};
use crate::domain::inference::{Detection, Finding};
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `adapters`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = adapters, check_for_backend(diesel::pg::Pg))]
pub struct AdapterRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub endpoint_url: String,
    pub token_sealed: Option<Vec<u8>>,
    pub token_kek_id: Option<String>,
    pub timeout_ms: i32,
    pub max_concurrency: i32,
    pub max_queue: i32,
    pub enabled: bool,
    pub model: String,
    pub model_version: String,
    pub tasks: Vec<String>,
    pub supported_labels: Vec<String>,
    pub max_in_flight: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an adapter said of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterCapabilities {
    pub model: String,
    pub model_version: String,
    pub tasks: Vec<String>,
    pub labels: Vec<String>,
    pub max_in_flight: i32,
}

impl AdapterRow {
    /// What the adapter said of itself when last probed, as stored.
    pub fn capabilities(&self) -> AdapterCapabilities {
        AdapterCapabilities {
            model: self.model.clone(),
            model_version: self.model_version.clone(),
            tasks: self.tasks.clone(),
            labels: self.supported_labels.clone(),
            max_in_flight: self.max_in_flight,
        }
    }

    /// Inserts an adapter.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(adapters::table).values(self).execute(c)?;
        Ok(())
    }

    /// The adapter with `id`.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<AdapterRow>> {
        Ok(adapters::table.find(id).select(AdapterRow::as_select()).first(c).optional()?)
    }

    /// The adapter with `id`, locked until the transaction ends.
    pub fn find_for_update(c: &mut PgConnection, id: Uuid) -> Result<Option<AdapterRow>> {
        Ok(adapters::table.find(id).select(AdapterRow::as_select()).for_update().first(c).optional()?)
    }

    /// Every adapter, by name.
    pub fn all(c: &mut PgConnection) -> Result<Vec<AdapterRow>> {
        Ok(adapters::table.select(AdapterRow::as_select()).order(adapters::name.asc()).load(c)?)
    }

    /// A page of adapters by name, after `after`.
    pub fn page(c: &mut PgConnection, after: Option<&str>, limit: i64) -> Result<Vec<AdapterRow>> {
        let mut q =
            adapters::table.select(AdapterRow::as_select()).order(adapters::name.asc()).limit(limit).into_boxed();
        if let Some(after) = after {
            q = q.filter(adapters::name.gt(after.to_owned()));
        }
        Ok(q.load(c)?)
    }

    /// Replaces the row (its version bumped); returns it.
    pub fn replace(&self, c: &mut PgConnection) -> Result<AdapterRow> {
        Ok(diesel::update(adapters::table.find(self.id))
            .set((
                adapters::name.eq(&self.name),
                adapters::description.eq(&self.description),
                adapters::endpoint_url.eq(&self.endpoint_url),
                adapters::token_sealed.eq(&self.token_sealed),
                adapters::token_kek_id.eq(&self.token_kek_id),
                adapters::timeout_ms.eq(self.timeout_ms),
                adapters::max_concurrency.eq(self.max_concurrency),
                adapters::max_queue.eq(self.max_queue),
                adapters::enabled.eq(self.enabled),
                adapters::version.eq(adapters::version + 1),
                adapters::updated_at.eq(self.updated_at),
            ))
            .returning(AdapterRow::as_returning())
            .get_result(c)?)
    }

    /// Records what the adapter said of itself (no version bump: not an edit).
    pub fn set_capabilities(c: &mut PgConnection, id: Uuid, caps: &AdapterCapabilities) -> Result<()> {
        diesel::update(adapters::table.find(id))
            .set((
                adapters::model.eq(&caps.model),
                adapters::model_version.eq(&caps.model_version),
                adapters::tasks.eq(&caps.tasks),
                adapters::supported_labels.eq(&caps.labels),
                adapters::max_in_flight.eq(caps.max_in_flight),
            ))
            .execute(c)?;
        Ok(())
    }

    /// Deletes the adapter (its bindings go with it).
    pub fn delete(c: &mut PgConnection, id: Uuid) -> Result<bool> {
        Ok(diesel::delete(adapters::table.find(id)).execute(c)? == 1)
    }
}

/// A row of `adapter_bindings`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = adapter_bindings, check_for_backend(diesel::pg::Pg))]
pub struct BindingRow {
    pub id: Uuid,
    pub camera_id: Uuid,
    pub adapter_id: Uuid,
    pub task: String,
    pub frame_interval_ms: i32,
    pub regions: serde_json::Value,
    pub min_confidence: f32,
    pub labels: Vec<String>,
    pub enabled: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Frames go to the adapter only while the camera's motion detector reports motion.
    pub motion_gated: bool,
}

impl BindingRow {
    /// Inserts a binding.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(adapter_bindings::table).values(self).execute(c)?;
        Ok(())
    }

    /// The binding with `id`.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<BindingRow>> {
        Ok(adapter_bindings::table.find(id).select(BindingRow::as_select()).first(c).optional()?)
    }

    /// The binding with `id`, locked until the transaction ends.
    pub fn find_for_update(c: &mut PgConnection, id: Uuid) -> Result<Option<BindingRow>> {
        Ok(adapter_bindings::table.find(id).select(BindingRow::as_select()).for_update().first(c).optional()?)
    }

    /// Every enabled binding of an enabled adapter and an enabled camera.
    pub fn active(c: &mut PgConnection) -> Result<Vec<BindingRow>> {
        use super::schema::cameras;
        Ok(adapter_bindings::table
            .inner_join(adapters::table)
            .inner_join(cameras::table)
            .filter(adapter_bindings::enabled.eq(true))
            .filter(adapters::enabled.eq(true))
            .filter(cameras::enabled.eq(true))
            .filter(cameras::deleted_at.is_null())
            .select(BindingRow::as_select())
            .load(c)?)
    }

    /// A page of bindings ordered by camera then adapter, after `after`, optionally of one camera
    /// or adapter, limited to cameras `visible`.
    pub fn page(
        c: &mut PgConnection,
        visible: super::cameras::Visible,
        camera: Option<Uuid>,
        adapter: Option<Uuid>,
        after: Option<(Uuid, Uuid)>,
        limit: i64,
    ) -> Result<Vec<BindingRow>> {
        use super::cameras::{CameraGrantRow, Visible};
        let mut q = adapter_bindings::table
            .select(BindingRow::as_select())
            .order((adapter_bindings::camera_id.asc(), adapter_bindings::adapter_id.asc()))
            .limit(limit)
            .into_boxed();
        match visible {
            Visible::All => {}
            Visible::GrantedTo(user, now) => {
                q = q.filter(adapter_bindings::camera_id.eq_any(CameraGrantRow::live_camera_ids(user, now)))
            }
            Visible::Cameras(ids) => q = q.filter(adapter_bindings::camera_id.eq_any(ids)),
        }
        if let Some(cam) = camera {
            q = q.filter(adapter_bindings::camera_id.eq(cam));
        }
        if let Some(a) = adapter {
            q = q.filter(adapter_bindings::adapter_id.eq(a));
        }
        if let Some((cam, ad)) = after {
            q = q.filter(
                adapter_bindings::camera_id
                    .gt(cam)
                    .or(adapter_bindings::camera_id.eq(cam).and(adapter_bindings::adapter_id.gt(ad))),
            );
        }
        Ok(q.load(c)?)
    }

    /// Replaces the row's changeable fields (its version bumped); returns it.
    pub fn replace(&self, c: &mut PgConnection) -> Result<BindingRow> {
        Ok(diesel::update(adapter_bindings::table.find(self.id))
            .set((
                adapter_bindings::task.eq(&self.task),
                adapter_bindings::frame_interval_ms.eq(self.frame_interval_ms),
                adapter_bindings::regions.eq(&self.regions),
                adapter_bindings::min_confidence.eq(self.min_confidence),
                adapter_bindings::labels.eq(&self.labels),
                adapter_bindings::enabled.eq(self.enabled),
                adapter_bindings::motion_gated.eq(self.motion_gated),
                adapter_bindings::version.eq(adapter_bindings::version + 1),
                adapter_bindings::updated_at.eq(self.updated_at),
            ))
            .returning(BindingRow::as_returning())
            .get_result(c)?)
    }

    /// Deletes a binding.
    pub fn delete(c: &mut PgConnection, id: Uuid) -> Result<bool> {
        Ok(diesel::delete(adapter_bindings::table.find(id)).execute(c)? == 1)
    }

    /// How many bindings use `adapter`.
    pub fn count_of_adapter(c: &mut PgConnection, adapter: Uuid) -> Result<i64> {
        Ok(adapter_bindings::table.filter(adapter_bindings::adapter_id.eq(adapter)).count().get_result(c)?)
    }

    /// The bindings of `camera`.
    pub fn of_camera(c: &mut PgConnection, camera: Uuid) -> Result<Vec<BindingRow>> {
        Ok(adapter_bindings::table
            .filter(adapter_bindings::camera_id.eq(camera))
            .select(BindingRow::as_select())
            .load(c)?)
    }
}

/// Filters of a detection listing.
#[derive(Debug, Clone, Default)]
pub struct DetectionFilter {
    pub cameras: Vec<Uuid>,
    pub adapter: Option<Uuid>,
    pub labels: Vec<String>,
    pub min_confidence: f32,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// A row of `detections`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = detections, check_for_backend(diesel::pg::Pg))]
pub struct DetectionRow {
    pub id: Uuid,
    pub camera_id: Uuid,
    pub adapter_id: Uuid,
    pub binding_id: Option<Uuid>,
    pub task: String,
    pub frame_time: DateTime<Utc>,
    pub label: String,
    pub confidence: f32,
    pub box_x: f32,
    pub box_y: f32,
    pub box_width: f32,
    pub box_height: f32,
    pub attributes: serde_json::Value,
    pub track_id: String,
    pub created_at: DateTime<Utc>,
}

impl DetectionRow {
    /// The row of a detection found in a camera's frame (`None` for one without an id, camera or
    /// frame time: an on-demand result, never stored).
    pub fn of(d: &Detection, created_at: DateTime<Utc>) -> Option<DetectionRow> {
        Some(DetectionRow {
            id: d.id?,
            camera_id: d.camera_id?,
            adapter_id: d.adapter_id,
            binding_id: d.binding_id,
            task: d.task.clone(),
            frame_time: d.frame_time?,
            label: d.found.label.clone(),
            confidence: d.found.confidence,
            box_x: d.found.x,
            box_y: d.found.y,
            box_width: d.found.width,
            box_height: d.found.height,
            attributes: serde_json::to_value(&d.found.attributes).unwrap_or_default(),
            track_id: d.found.track_id.clone(),
            created_at,
        })
    }

    /// The detection this row holds.
    pub fn detection(&self) -> Detection {
        Detection {
            id: Some(self.id),
            camera_id: Some(self.camera_id),
            adapter_id: self.adapter_id,
            binding_id: self.binding_id,
            task: self.task.clone(),
            frame_time: Some(self.frame_time),
            found: Finding {
                label: self.label.clone(),
                confidence: self.confidence,
                x: self.box_x,
                y: self.box_y,
                width: self.box_width,
                height: self.box_height,
                attributes: serde_json::from_value(self.attributes.clone()).unwrap_or_default(),
                track_id: self.track_id.clone(),
            },
        }
    }

    /// Inserts detections: all of them or none.
    pub fn insert_all(c: &mut PgConnection, rows: &[DetectionRow]) -> Result<()> {
        c.transaction(|c| {
            for chunk in rows.chunks(500) {
                diesel::insert_into(detections::table).values(chunk).execute(c)?;
            }
            Ok(())
        })
    }

    /// A page of detections, newest first, after the (time, id) position `after`, limited to
    /// cameras `visible`.
    pub fn page(
        c: &mut PgConnection,
        visible: super::cameras::Visible,
        f: &DetectionFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<DetectionRow>> {
        use super::cameras::{CameraGrantRow, Visible};
        let mut q = detections::table
            .select(DetectionRow::as_select())
            .order((detections::frame_time.desc(), detections::id.desc()))
            .limit(limit)
            .into_boxed();
        match visible {
            Visible::All => {}
            Visible::GrantedTo(user, now) => {
                q = q.filter(detections::camera_id.eq_any(CameraGrantRow::live_camera_ids(user, now)))
            }
            Visible::Cameras(ids) => q = q.filter(detections::camera_id.eq_any(ids)),
        }
        if !f.cameras.is_empty() {
            q = q.filter(detections::camera_id.eq_any(f.cameras.clone()));
        }
        if let Some(a) = f.adapter {
            q = q.filter(detections::adapter_id.eq(a));
        }
        if !f.labels.is_empty() {
            q = q.filter(detections::label.eq_any(f.labels.clone()));
        }
        if f.min_confidence > 0.0 {
            q = q.filter(detections::confidence.ge(f.min_confidence));
        }
        if let Some(t) = f.start {
            q = q.filter(detections::frame_time.ge(t));
        }
        if let Some(t) = f.end {
            q = q.filter(detections::frame_time.lt(t));
        }
        if let Some((at, id)) = after {
            q = q.filter(detections::frame_time.lt(at).or(detections::frame_time.eq(at).and(detections::id.lt(id))));
        }
        Ok(q.load(c)?)
    }

    /// Deletes up to `limit` detections of frames older than `before`; returns how many went.
    pub fn delete_older(c: &mut PgConnection, before: DateTime<Utc>, limit: i64) -> Result<usize> {
        let ids: Vec<Uuid> =
            detections::table.filter(detections::frame_time.lt(before)).select(detections::id).limit(limit).load(c)?;
        Ok(diesel::delete(detections::table.filter(detections::id.eq_any(ids))).execute(c)?)
    }
}
