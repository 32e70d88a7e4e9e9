//! Queries on `exports`: clip exports kept for download.
use super::cameras::{CameraGrantRow, Visible};
use super::schema::exports;
use crate::domain::recording::ExportState;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `exports`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = exports, check_for_backend(diesel::pg::Pg))]
pub struct ExportRow {
    pub id: Uuid,
    pub camera_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub format: crate::domain::recording::ExportFormat,
    pub state: crate::domain::recording::ExportState,
    pub reason: String,
    pub case_id: String,
    pub creator_user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expire_at: Option<DateTime<Utc>>,
    pub size_bytes: i64,
    pub sha256: Option<Vec<u8>>,
    pub error: String,
    pub media_duration_us: i64,
    pub file_name: String,
}

impl ExportRow {
    /// Records a new export.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(exports::table).values(self).execute(c)?;
        Ok(())
    }

    /// One export.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<ExportRow>> {
        Ok(exports::table.find(id).select(ExportRow::as_select()).first(c).optional()?)
    }

    /// Marks an export finished: succeeded with its file's size and hash, or failed with a reason.
    pub fn finish(
        c: &mut PgConnection,
        id: Uuid,
        outcome: std::result::Result<(i64, Vec<u8>, DateTime<Utc>), String>,
        now: DateTime<Utc>,
    ) -> Result<ExportRow> {
        let q = diesel::update(exports::table.find(id));
        let row = match outcome {
            Ok((size, sha, expire)) => q
                .set((
                    exports::state.eq(ExportState::Succeeded),
                    exports::size_bytes.eq(size),
                    exports::sha256.eq(Some(sha)),
                    exports::finished_at.eq(Some(now)),
                    exports::expire_at.eq(Some(expire)),
                ))
                .returning(ExportRow::as_returning())
                .get_result(c)?,
            Err(e) => q
                .set((exports::state.eq(ExportState::Failed), exports::error.eq(e), exports::finished_at.eq(Some(now))))
                .returning(ExportRow::as_returning())
                .get_result(c)?,
        };
        Ok(row)
    }

    /// Exports newest first, of cameras `visible` lets through, after `after` (created_at, id).
    pub fn page(
        c: &mut PgConnection,
        visible: Visible,
        camera: Option<Uuid>,
        case_id: Option<String>,
        creator: Option<Uuid>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        let mut q = exports::table
            .select(ExportRow::as_select())
            .order((exports::created_at.desc(), exports::id.desc()))
            .limit(limit)
            .into_boxed();
        match visible {
            Visible::All => {}
            Visible::GrantedTo(user, now) => {
                q = q.filter(exports::camera_id.eq_any(CameraGrantRow::live_camera_ids(user, now)))
            }
            Visible::Cameras(ids) => q = q.filter(exports::camera_id.eq_any(ids)),
        }
        if let Some(cam) = camera {
            q = q.filter(exports::camera_id.eq(cam));
        }
        if let Some(case) = case_id {
            q = q.filter(exports::case_id.eq(case));
        }
        if let Some(user) = creator {
            q = q.filter(exports::creator_user_id.eq(user));
        }
        if let Some((at, id)) = after {
            q = q.filter(exports::created_at.lt(at).or(exports::created_at.eq(at).and(exports::id.lt(id))));
        }
        Ok(q.load(c)?)
    }

    /// Succeeded exports whose files are due to go.
    pub fn expired(c: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<ExportRow>> {
        Ok(exports::table
            .filter(exports::state.eq(ExportState::Succeeded))
            .filter(exports::expire_at.le(now))
            .select(ExportRow::as_select())
            .load(c)?)
    }

    /// Fails every export still running (the server stopped during them); answers their ids.
    pub fn fail_running(c: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        Ok(diesel::update(exports::table.filter(exports::state.eq(ExportState::Running)))
            .set((
                exports::state.eq(ExportState::Failed),
                exports::error.eq("the server stopped during the export"),
                exports::finished_at.eq(Some(now)),
            ))
            .returning(exports::id)
            .get_results(c)?)
    }

    /// Marks an export's file gone.
    pub fn mark_expired(c: &mut PgConnection, id: Uuid) -> Result<()> {
        diesel::update(exports::table.find(id)).set(exports::state.eq(ExportState::Expired)).execute(c)?;
        Ok(())
    }

    /// Deletes an export's record.
    pub fn delete(c: &mut PgConnection, id: Uuid) -> Result<bool> {
        Ok(diesel::delete(exports::table.find(id)).execute(c)? > 0)
    }
}
