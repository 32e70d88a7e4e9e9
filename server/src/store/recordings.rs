//! Queries on the recording index: `segments` (whose per-camera totals in `recording_summaries` the
//! database keeps with every change), evidence holds. Listings read only columns the primary key
//! INCLUDEs, so that they are index-only scans; segments being deleted are listed nowhere.
use super::schema::{hold_cameras, holds, recording_summaries, segments};
use crate::domain::recording::SegmentState;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `segments`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = segments, check_for_backend(diesel::pg::Pg))]
pub struct SegmentRow {
    pub camera_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub duration_us: i64,
    pub size_bytes: i64,
    pub state: i16,
    pub file_path: String,
}

/// What listings return of a segment (all in the primary key's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct SegmentEntry {
    pub start_time: DateTime<Utc>,
    pub duration_us: i64,
    pub size_bytes: i64,
    pub state: i16,
}

impl SegmentEntry {
    /// When it ends (its start while its duration is unknown).
    pub fn end(&self) -> DateTime<Utc> {
        self.start_time + chrono::Duration::microseconds(self.duration_us)
    }
}

type EntryColumns = (segments::start_time, segments::duration_us, segments::size_bytes, segments::state);
const ENTRY: EntryColumns = (segments::start_time, segments::duration_us, segments::size_bytes, segments::state);

/// A row of `recording_summaries`: one camera's totals.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = recording_summaries, check_for_backend(diesel::pg::Pg))]
pub struct RecordingSummary {
    pub camera_id: Uuid,
    pub segments: i64,
    pub bytes: i64,
    pub duration_us: i64,
    pub oldest_start: Option<DateTime<Utc>>,
    pub newest_start: Option<DateTime<Utc>>,
    pub newest_end: Option<DateTime<Utc>>,
}

const LISTED: i16 = 2; // segments with a state code below this are listed

impl SegmentRow {
    /// Records segments in one statement; those already known (same camera and start) are left as
    /// they are. Returns how many were new.
    pub fn insert_new(c: &mut PgConnection, rows: &[SegmentRow]) -> Result<usize> {
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(diesel::insert_into(segments::table).values(rows).on_conflict_do_nothing().execute(c)?)
    }

    /// Records a finished segment: inserts it, or completes the row its opening left (its duration
    /// and size set). A segment being deleted stays so. Returns whether anything changed.
    pub fn complete(c: &mut PgConnection, row: &SegmentRow) -> Result<bool> {
        // Inserting first: a concurrent opening of the same segment then cannot slip in between.
        if SegmentRow::insert_new(c, std::slice::from_ref(row))? > 0 {
            return Ok(true);
        }
        let updated = diesel::update(segments::table.find((row.camera_id, row.start_time)))
            .filter(
                segments::state.eq(SegmentState::Recording.code()).or(segments::state
                    .eq(SegmentState::Complete.code())
                    .and(segments::duration_us.ne(row.duration_us).or(segments::size_bytes.ne(row.size_bytes)))),
            )
            .set((
                segments::duration_us.eq(row.duration_us),
                segments::size_bytes.eq(row.size_bytes),
                segments::state.eq(SegmentState::Complete.code()),
            ))
            .execute(c)?;
        Ok(updated > 0)
    }

    /// A camera's listed segments starting in `[from, to)` after `after` (exclusive), oldest first.
    pub fn page(
        c: &mut PgConnection,
        camera: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<SegmentEntry>> {
        let from = after.map_or(from, |a| a.max(from));
        let mut q = segments::table
            .filter(segments::camera_id.eq(camera))
            .filter(segments::start_time.lt(to))
            .filter(segments::state.lt(LISTED))
            .order(segments::start_time)
            .select(ENTRY)
            .limit(limit)
            .into_boxed();
        q = if after.is_some() {
            q.filter(segments::start_time.gt(from))
        } else {
            q.filter(segments::start_time.ge(from))
        };
        Ok(q.load(c)?)
    }

    /// The camera's last listed segment starting before `at` (it may reach into a range from `at`).
    pub fn before(c: &mut PgConnection, camera: Uuid, at: DateTime<Utc>) -> Result<Option<SegmentEntry>> {
        Ok(segments::table
            .filter(segments::camera_id.eq(camera))
            .filter(segments::start_time.lt(at))
            .filter(segments::state.lt(LISTED))
            .order(segments::start_time.desc())
            .select(ENTRY)
            .first(c)
            .optional()?)
    }

    /// The camera's listed segments overlapping `[from, to)`, oldest first: those starting in it, and
    /// the one before `from` if it reaches into it.
    pub fn overlapping(
        c: &mut PgConnection,
        camera: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SegmentEntry>> {
        let mut out: Vec<SegmentEntry> = SegmentRow::before(c, camera, from)?.into_iter().collect();
        out.extend(
            segments::table
                .filter(segments::camera_id.eq(camera))
                .filter(segments::start_time.ge(from))
                .filter(segments::start_time.lt(to))
                .filter(segments::state.lt(LISTED))
                .order(segments::start_time)
                .select(ENTRY)
                .load::<SegmentEntry>(c)?,
        );
        Ok(out)
    }

    /// Every row of a camera starting in `[from, to)` whatever its state, with its file.
    pub fn rows_between(
        c: &mut PgConnection,
        camera: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SegmentRow>> {
        Ok(segments::table
            .filter(segments::camera_id.eq(camera))
            .filter(segments::start_time.ge(from))
            .filter(segments::start_time.lt(to))
            .order(segments::start_time)
            .select(SegmentRow::as_select())
            .load(c)?)
    }

    /// Sets duration and state of one segment (closing it).
    pub fn close(c: &mut PgConnection, camera: Uuid, start: DateTime<Utc>, duration_us: i64, size: i64) -> Result<()> {
        diesel::update(segments::table.find((camera, start)))
            .filter(segments::state.eq(SegmentState::Recording.code()))
            .set((
                segments::duration_us.eq(duration_us),
                segments::size_bytes.eq(size),
                segments::state.eq(SegmentState::Complete.code()),
            ))
            .execute(c)?;
        Ok(())
    }

    /// Removes rows (their files are gone).
    pub fn delete(c: &mut PgConnection, camera: Uuid, starts: &[DateTime<Utc>]) -> Result<usize> {
        Ok(diesel::delete(
            segments::table.filter(segments::camera_id.eq(camera)).filter(segments::start_time.eq_any(starts)),
        )
        .execute(c)?)
    }
}

impl SegmentRow {
    /// Removes the rows of a camera starting before `at` that are not being written.
    pub fn delete_before(c: &mut PgConnection, camera: Uuid, at: DateTime<Utc>) -> Result<usize> {
        Ok(diesel::delete(
            segments::table
                .filter(segments::camera_id.eq(camera))
                .filter(segments::start_time.lt(at))
                .filter(segments::state.ne(SegmentState::Recording.code())),
        )
        .execute(c)?)
    }
}

impl RecordingSummary {
    /// The totals of each of `cameras` that has recorded anything.
    pub fn of(c: &mut PgConnection, cameras: &[Uuid]) -> Result<Vec<RecordingSummary>> {
        Ok(recording_summaries::table
            .filter(recording_summaries::camera_id.eq_any(cameras))
            .select(RecordingSummary::as_select())
            .load(c)?)
    }
}

/// Whether an active (unreleased) hold covers any of `camera`'s recordings.
pub fn camera_has_active_hold(c: &mut PgConnection, camera: Uuid) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        hold_cameras::table
            .inner_join(holds::table)
            .filter(hold_cameras::camera_id.eq(camera))
            .filter(holds::released_at.is_null()),
    ))
    .get_result(c)?)
}
