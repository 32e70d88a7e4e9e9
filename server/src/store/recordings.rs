//! Queries on the recording index: `segments` (whose per-camera totals in `recording_summaries` the
//! database keeps with every change), evidence holds. Listings read only columns the primary key
//! INCLUDEs, so that they are index-only scans; segments being deleted are listed nowhere.
use super::schema::{camera_retention, hold_cameras, holds, recording_summaries, segments, site_retention};
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
    pub state: crate::domain::recording::SegmentState,
    pub file_path: String,
}

/// What listings return of a segment (all in the primary key's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, QueryableByName)]
#[diesel(table_name = segments)]
pub struct SegmentEntry {
    pub start_time: DateTime<Utc>,
    pub duration_us: i64,
    pub size_bytes: i64,
    pub state: crate::domain::recording::SegmentState,
}

/// A byte count of one camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct CameraBytes {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub camera_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub bytes: i64,
}

/// The span of one segment of a camera, as [`SegmentRow::visit_spans`] streams them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct SpanRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub camera_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub start_time: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub end_time: DateTime<Utc>,
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
    /// Bytes of the segments judged to overlap events.
    pub event_bytes: i64,
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

    /// The camera's listed segments overlapping `[from, to)`, oldest first: the last one starting
    /// before `from` (it may reach into the range; callers check), then those starting in the range.
    pub fn overlapping(
        c: &mut PgConnection,
        camera: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SegmentEntry>> {
        SegmentRow::overlapping_limited(c, camera, from, to, i64::MAX)
    }

    /// Streams the spans recorded for each of `cameras` over `[from, to)` (the segment running into
    /// the range included) to `visit`, camera by camera in the order given, each camera's in start
    /// order, one row at a time: the server never holds the range's segments, however long it is.
    /// A segment still being written reaches at least to `min(now, start + open_for)` (its hooks may
    /// be late); `open_for_us` pairs with `cameras`. One statement for every camera.
    pub fn visit_spans(
        c: &mut PgConnection,
        cameras: &[Uuid],
        open_for_us: &[i64],
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        mut visit: impl FnMut(SpanRow),
    ) -> Result<()> {
        use diesel::pg::PgRowByRowLoadingMode;
        use diesel::sql_types::{Array, BigInt, Timestamptz, Uuid as SqlUuid};
        let rows = super::prepared::prepared(
            "SELECT cam.id AS camera_id, s.start_time, \
                    CASE WHEN s.state = 0 \
                      THEN GREATEST(s.start_time + s.duration_us * interval '1 microsecond', \
                                    LEAST($5, s.start_time + cam.open_us * interval '1 microsecond')) \
                      ELSE s.start_time + s.duration_us * interval '1 microsecond' END AS end_time \
               FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS cam(id, open_us, ord) \
               CROSS JOIN LATERAL ( \
                 (SELECT start_time, duration_us, state FROM segments \
                   WHERE camera_id = cam.id AND start_time < $3 AND state < 2 ORDER BY start_time DESC LIMIT 1) \
                 UNION ALL \
                 (SELECT start_time, duration_us, state FROM segments \
                   WHERE camera_id = cam.id AND start_time >= $3 AND start_time < $4 AND state < 2 \
                   ORDER BY start_time) \
               ) s \
              ORDER BY cam.ord, s.start_time",
        )
        .bind::<Array<SqlUuid>, _>(cameras)
        .bind::<Array<BigInt>, _>(open_for_us)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<Timestamptz, _>(now)
        .load_iter::<SpanRow, PgRowByRowLoadingMode>(c)?;
        for row in rows {
            visit(row?);
        }
        Ok(())
    }

    /// Bytes under an active hold, per camera that has any: each segment counted once however many
    /// holds cover it. One statement, index range scans per hold.
    pub fn held_bytes_by_camera(c: &mut PgConnection) -> Result<Vec<CameraBytes>> {
        use diesel::sql_types::BigInt;
        let longest = (crate::domain::recording::MAX_SEGMENT_SECONDS * 1e6) as i64;
        Ok(diesel::sql_query(
            "SELECT s.camera_id, SUM(s.size_bytes)::bigint AS bytes FROM segments s \
              WHERE s.state < 2 AND (s.camera_id, s.start_time) IN ( \
                SELECT g.camera_id, g.start_time FROM hold_cameras hc \
                  JOIN holds h ON h.id = hc.hold_id AND h.released_at IS NULL \
                  JOIN segments g ON g.camera_id = hc.camera_id \
                   AND g.start_time > h.start_time - $1 * interval '1 microsecond' \
                   AND (h.end_time IS NULL OR g.start_time < h.end_time) \
                   AND g.start_time + g.duration_us * interval '1 microsecond' > h.start_time) \
              GROUP BY s.camera_id",
        )
        .bind::<BigInt, _>(longest)
        .load(c)?)
    }

    /// Bytes of the segments started since `since`, per camera with recordings. One statement.
    pub fn bytes_since_by_camera(c: &mut PgConnection, since: DateTime<Utc>) -> Result<Vec<CameraBytes>> {
        use diesel::sql_types::Timestamptz;
        Ok(diesel::sql_query(
            "SELECT r.camera_id, w.bytes FROM recording_summaries r CROSS JOIN LATERAL ( \
               SELECT COALESCE(SUM(size_bytes), 0)::bigint AS bytes FROM segments \
                WHERE camera_id = r.camera_id AND start_time >= $1 AND state < 2) w",
        )
        .bind::<Timestamptz, _>(since)
        .load(c)?)
    }

    /// The same, at most `limit` of those starting in the range: one statement, two index-only
    /// range scans of the primary key.
    pub fn overlapping_limited(
        c: &mut PgConnection,
        camera: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<SegmentEntry>> {
        use diesel::sql_types::{BigInt, Timestamptz, Uuid as SqlUuid};
        Ok(super::prepared::prepared(
            "SELECT start_time, duration_us, size_bytes, state FROM ( \
               (SELECT start_time, duration_us, size_bytes, state FROM segments \
                 WHERE camera_id = $1 AND start_time < $2 AND state < 2 ORDER BY start_time DESC LIMIT 1) \
               UNION ALL \
               (SELECT start_time, duration_us, size_bytes, state FROM segments \
                 WHERE camera_id = $1 AND start_time >= $2 AND start_time < $3 AND state < 2 \
                 ORDER BY start_time LIMIT $4) \
             ) listed ORDER BY start_time",
        )
        .bind::<SqlUuid, _>(camera)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<BigInt, _>(limit)
        .load(c)?)
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
    /// Every camera's totals (one row per camera that ever recorded).
    pub fn all(c: &mut PgConnection) -> Result<Vec<RecordingSummary>> {
        Ok(recording_summaries::table.select(RecordingSummary::as_select()).load(c)?)
    }

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

/// What a hold keeps: `[start, end)`, `end` None for open-ended.
pub type HeldRange = (DateTime<Utc>, Option<DateTime<Utc>>);

/// A row of `holds`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = holds, check_for_backend(diesel::pg::Pg))]
pub struct HoldRow {
    pub id: Uuid,
    pub case_id: String,
    pub reason: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub creator_user_id: Option<Uuid>,
    pub creator_username: String,
    pub created_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    pub release_user_id: Option<Uuid>,
    pub release_reason: Option<String>,
}

impl HoldRow {
    /// Records a hold on `cameras`.
    pub fn insert(&self, c: &mut PgConnection, cameras: &[Uuid]) -> Result<()> {
        diesel::insert_into(holds::table).values(self).execute(c)?;
        let rows: Vec<_> =
            cameras.iter().map(|cam| (hold_cameras::hold_id.eq(self.id), hold_cameras::camera_id.eq(*cam))).collect();
        diesel::insert_into(hold_cameras::table).values(&rows).execute(c)?;
        Ok(())
    }

    /// A hold and its cameras.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<(HoldRow, Vec<Uuid>)>> {
        let Some(hold) = holds::table.find(id).select(HoldRow::as_select()).first(c).optional()? else {
            return Ok(None);
        };
        let cameras = hold_cameras::table
            .filter(hold_cameras::hold_id.eq(id))
            .select(hold_cameras::camera_id)
            .order(hold_cameras::camera_id)
            .load(c)?;
        Ok(Some((hold, cameras)))
    }

    /// Holds newest first, after `after` (created_at, id), optionally only on `camera`, only with
    /// `case_id`, only active ones; with their cameras.
    pub fn page(
        c: &mut PgConnection,
        visible: super::cameras::Visible,
        camera: Option<Uuid>,
        case_id: Option<&str>,
        show_released: bool,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<(HoldRow, Vec<Uuid>)>> {
        let mut q = holds::table
            .select(HoldRow::as_select())
            .order((holds::created_at.desc(), holds::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(cam) = camera {
            q = q.filter(
                holds::id
                    .eq_any(hold_cameras::table.filter(hold_cameras::camera_id.eq(cam)).select(hold_cameras::hold_id)),
            );
        }
        if let super::cameras::Visible::Cameras(ids) = &visible {
            // Every camera of the hold must be one of these.
            let unseen = hold_cameras::table
                .filter(diesel::dsl::not(hold_cameras::camera_id.eq_any(ids.clone())))
                .select(hold_cameras::hold_id);
            q = q.filter(diesel::dsl::not(holds::id.eq_any(unseen)));
        }
        if let super::cameras::Visible::GrantedTo(user, now) = visible {
            // Every camera of the hold must be one they may play back (a hold names its cameras).
            use super::schema::camera_grants;
            let seen = camera_grants::table
                .filter(camera_grants::user_id.eq(user))
                .filter(camera_grants::expire_at.is_null().or(camera_grants::expire_at.gt(now)))
                .filter(camera_grants::permissions.contains(vec!["recording.read".to_owned()]))
                .select(camera_grants::camera_id);
            let unseen = hold_cameras::table
                .filter(diesel::dsl::not(hold_cameras::camera_id.eq_any(seen)))
                .select(hold_cameras::hold_id);
            q = q.filter(diesel::dsl::not(holds::id.eq_any(unseen)));
        }
        if let Some(case) = case_id {
            q = q.filter(holds::case_id.eq(case.to_owned()));
        }
        if !show_released {
            q = q.filter(holds::released_at.is_null());
        }
        if let Some((at, id)) = after {
            q = q.filter(holds::created_at.lt(at).or(holds::created_at.eq(at).and(holds::id.lt(id))));
        }
        let rows: Vec<HoldRow> = q.load(c)?;
        let ids: Vec<Uuid> = rows.iter().map(|h| h.id).collect();
        let links: Vec<(Uuid, Uuid)> = hold_cameras::table
            .filter(hold_cameras::hold_id.eq_any(&ids))
            .select((hold_cameras::hold_id, hold_cameras::camera_id))
            .order((hold_cameras::hold_id, hold_cameras::camera_id))
            .load(c)?;
        Ok(rows
            .into_iter()
            .map(|h| {
                let cams = links.iter().filter(|(hid, _)| *hid == h.id).map(|(_, cam)| *cam).collect();
                (h, cams)
            })
            .collect())
    }

    /// Releases an active hold; false if it was released already.
    pub fn release(c: &mut PgConnection, id: Uuid, by: Uuid, reason: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = diesel::update(holds::table.find(id).filter(holds::released_at.is_null()))
            .set((
                holds::released_at.eq(Some(now)),
                holds::release_user_id.eq(Some(by)),
                holds::release_reason.eq(Some(reason.to_owned())),
            ))
            .execute(c)?;
        Ok(n > 0)
    }

    /// The ranges `[start, end)` (end `None`: open-ended) that active holds keep of `camera`.
    pub fn active_ranges(c: &mut PgConnection, camera: Uuid) -> Result<Vec<HeldRange>> {
        Ok(hold_cameras::table
            .inner_join(holds::table)
            .filter(hold_cameras::camera_id.eq(camera))
            .filter(holds::released_at.is_null())
            .select((holds::start_time, holds::end_time))
            .load(c)?)
    }
}

/// `state = 2` (marked for deletion) as a literal, so that the planner can use the small partial index
/// of such segments (a bound parameter would not prove the index's predicate in a generic plan).
fn being_deleted() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("segments.state = 2")
}

/// Whether a segment `[start, end)` lies (partly) under one of `holds`.
pub fn held(holds: &[HeldRange], start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    holds.iter().any(|(hs, he)| end > *hs && he.is_none_or(|he| start < he))
}

/// Serialises, until the transaction ends, everything that decides the fate of a camera's
/// recordings: retention passes, deletions, hold creation.
pub fn lock_recordings(c: &mut PgConnection, camera: Uuid) -> Result<()> {
    let bytes = camera.as_bytes();
    let mut key = [0u8; 8];
    key.copy_from_slice(&bytes[..8]);
    // A namespace of its own among the server's advisory locks.
    let key = i64::from_be_bytes(key) ^ 0x5245_4330_5245_4330;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)").bind::<diesel::sql_types::BigInt, _>(key).execute(c)?;
    Ok(())
}

impl SegmentRow {
    /// The camera's oldest complete segments starting after `after` (if given), oldest first
    /// (index-only).
    pub fn oldest_complete(
        c: &mut PgConnection,
        camera: Uuid,
        after: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<SegmentEntry>> {
        SegmentRow::oldest_of_tier(c, camera, after, limit, false)
    }

    /// [`SegmentRow::oldest_complete`], or with `continuous_only` only those judged to overlap no
    /// event.
    pub fn oldest_of_tier(
        c: &mut PgConnection,
        camera: Uuid,
        after: Option<DateTime<Utc>>,
        limit: i64,
        continuous_only: bool,
    ) -> Result<Vec<SegmentEntry>> {
        let mut q = segments::table
            .filter(segments::camera_id.eq(camera))
            .filter(segments::state.eq(SegmentState::Complete.code()))
            .order(segments::start_time)
            .select(ENTRY)
            .limit(limit)
            .into_boxed();
        if let Some(after) = after {
            q = q.filter(segments::start_time.gt(after));
        }
        if continuous_only {
            q = q.filter(segments::event_footage.eq(false));
        }
        Ok(q.load(c)?)
    }

    /// Judges up to `limit` complete segments of `camera` that end at or before `before` and are not
    /// judged yet: event footage when an event of `topics` of the camera, widened by `pre` before
    /// and `post` after (a lasting event from its time to its `until`), overlaps the segment — a
    /// linked event, or one committed and still in the inbox. An IDS alert counts for every camera
    /// it names, not only the one it is stored under.
    /// Returns how many were judged.
    pub fn judge(
        c: &mut PgConnection,
        camera: Uuid,
        topics: &[&str],
        (pre_ms, post_ms): (i64, i64),
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<usize> {
        use diesel::sql_types::{Array, BigInt, SmallInt, Text, Timestamptz, Uuid as SqlUuid};
        let longest = crate::domain::motion::MAX_EPISODE.as_millis() as i64;
        Ok(super::prepared::prepared(
            "UPDATE segments s SET event_footage = EXISTS ( \
               SELECT 1 FROM events e \
                WHERE e.camera_id = s.camera_id AND e.type = ANY($2) \
                  AND e.time < s.start_time + s.duration_us * interval '1 microsecond' + $3 * interval '1 millisecond' \
                  AND e.time > s.start_time - ($4 + $5) * interval '1 millisecond' \
                  AND coalesce(e.until, e.time) + $4 * interval '1 millisecond' > s.start_time \
               UNION ALL \
               SELECT 1 FROM events e \
                WHERE e.type = 'ids.alert' AND 'ids.alert' = ANY($2) \
                  AND e.time < s.start_time + s.duration_us * interval '1 microsecond' + $3 * interval '1 millisecond' \
                  AND e.time + $4 * interval '1 millisecond' > s.start_time \
                  AND e.payload -> 'IdsAlert' -> 'cameras' ? s.camera_id::text \
               UNION ALL \
               SELECT 1 FROM event_inbox e \
                WHERE e.camera_id = s.camera_id AND e.type = ANY($2) \
                  AND e.time < s.start_time + s.duration_us * interval '1 microsecond' + $3 * interval '1 millisecond' \
                  AND coalesce(e.until, e.time) + $4 * interval '1 millisecond' > s.start_time) \
             WHERE s.camera_id = $1 AND s.start_time IN ( \
               SELECT g.start_time FROM segments g \
                WHERE g.camera_id = $1 AND g.event_footage IS NULL AND g.state = $6 \
                  AND g.start_time + g.duration_us * interval '1 microsecond' <= $7 \
                ORDER BY g.start_time LIMIT $8)",
        )
        .bind::<SqlUuid, _>(camera)
        .bind::<Array<Text>, _>(topics)
        .bind::<BigInt, _>(pre_ms)
        .bind::<BigInt, _>(post_ms)
        .bind::<BigInt, _>(longest)
        .bind::<SmallInt, _>(SegmentState::Complete.code())
        .bind::<Timestamptz, _>(before)
        .bind::<BigInt, _>(limit)
        .execute(c)?)
    }

    /// Marks every complete segment of a camera for deletion.
    pub fn mark_all_deleting(c: &mut PgConnection, camera: Uuid) -> Result<usize> {
        Ok(diesel::update(
            segments::table
                .filter(segments::camera_id.eq(camera))
                .filter(segments::state.eq(SegmentState::Complete.code())),
        )
        .set(segments::state.eq(SegmentState::Deleting.code()))
        .execute(c)?)
    }

    /// Marks segments for deletion: from now on they are listed nowhere.
    pub fn mark_deleting(c: &mut PgConnection, camera: Uuid, starts: &[DateTime<Utc>]) -> Result<usize> {
        Ok(diesel::update(
            segments::table
                .filter(segments::camera_id.eq(camera))
                .filter(segments::start_time.eq_any(starts))
                .filter(segments::state.eq(SegmentState::Complete.code())),
        )
        .set(segments::state.eq(SegmentState::Deleting.code()))
        .execute(c)?)
    }

    /// Gives back segments marked for deletion that start in `[from, to)` (a hold arrived first).
    pub fn unmark(c: &mut PgConnection, camera: Uuid, from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> Result<usize> {
        // A segment starting before `from` may reach into the range: look a day back (segments are
        // at most 24 h long) and leave the exact overlap test to `held`.
        let mut q = segments::table
            .filter(segments::camera_id.eq(camera))
            .filter(being_deleted())
            .filter(segments::start_time.ge(from - chrono::Duration::hours(25)))
            .select(ENTRY)
            .into_boxed();
        if let Some(to) = to {
            q = q.filter(segments::start_time.lt(to));
        }
        let range = [(from, to)];
        let back: Vec<DateTime<Utc>> = q
            .load::<SegmentEntry>(c)?
            .into_iter()
            .filter(|s| held(&range, s.start_time, s.end()))
            .map(|s| s.start_time)
            .collect();
        Ok(diesel::update(
            segments::table.filter(segments::camera_id.eq(camera)).filter(segments::start_time.eq_any(&back)),
        )
        .set(segments::state.eq(SegmentState::Complete.code()))
        .execute(c)?)
    }

    /// A camera's segments marked for deletion, oldest first.
    pub fn marked(c: &mut PgConnection, camera: Uuid, limit: i64) -> Result<Vec<SegmentRow>> {
        Ok(segments::table
            .filter(segments::camera_id.eq(camera))
            .filter(being_deleted())
            .order(segments::start_time)
            .select(SegmentRow::as_select())
            .limit(limit)
            .load(c)?)
    }

    /// Cameras with segments marked for deletion (a pass cut short leaves some).
    pub fn cameras_with_marked(c: &mut PgConnection) -> Result<Vec<Uuid>> {
        Ok(segments::table.filter(being_deleted()).select(segments::camera_id).distinct().load(c)?)
    }
}

/// The site's default retention limits (`None`: no such limit).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = site_retention, check_for_backend(diesel::pg::Pg))]
pub struct SiteRetention {
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
    pub min_free_bytes: Option<i64>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// How long footage overlapping events is kept (`None`: as long as the rest).
    pub event_max_age_secs: Option<i64>,
    /// The free-space floor as a share of the volume, in percent (the larger floor applies).
    pub min_free_percent: Option<i32>,
}

/// The limits of the site default, as set (`None`: no such limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteLimits {
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
    pub min_free_bytes: Option<i64>,
    pub event_max_age_secs: Option<i64>,
    pub min_free_percent: Option<i32>,
}

/// A camera's own retention limits (`None`: the site default's).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = camera_retention, check_for_backend(diesel::pg::Pg))]
pub struct CameraRetention {
    pub camera_id: Uuid,
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub event_max_age_secs: Option<i64>,
}

impl SiteRetention {
    /// The site default (the migration creates its one row).
    pub fn get(c: &mut PgConnection) -> Result<SiteRetention> {
        Ok(site_retention::table.select(SiteRetention::as_select()).first(c)?)
    }

    /// Sets the default's limits, bumping its version.
    pub fn set(c: &mut PgConnection, limits: SiteLimits, now: DateTime<Utc>) -> Result<SiteRetention> {
        Ok(diesel::update(site_retention::table)
            .set((
                site_retention::max_age_secs.eq(limits.max_age_secs),
                site_retention::max_bytes.eq(limits.max_bytes),
                site_retention::min_free_bytes.eq(limits.min_free_bytes),
                site_retention::event_max_age_secs.eq(limits.event_max_age_secs),
                site_retention::min_free_percent.eq(limits.min_free_percent),
                site_retention::version.eq(site_retention::version + 1),
                site_retention::updated_at.eq(now),
            ))
            .returning(SiteRetention::as_returning())
            .get_result(c)?)
    }
}

impl CameraRetention {
    /// A camera's override, if any.
    pub fn find(c: &mut PgConnection, camera: Uuid) -> Result<Option<CameraRetention>> {
        Ok(camera_retention::table.find(camera).select(CameraRetention::as_select()).first(c).optional()?)
    }

    /// Every override.
    pub fn all(c: &mut PgConnection) -> Result<Vec<CameraRetention>> {
        Ok(camera_retention::table.select(CameraRetention::as_select()).order(camera_retention::camera_id).load(c)?)
    }

    /// Writes an override (created at version 1, else its version bumped).
    pub fn upsert(c: &mut PgConnection, row: &CameraRetention) -> Result<CameraRetention> {
        Ok(diesel::insert_into(camera_retention::table)
            .values(row)
            .on_conflict(camera_retention::camera_id)
            .do_update()
            .set((
                camera_retention::max_age_secs.eq(row.max_age_secs),
                camera_retention::max_bytes.eq(row.max_bytes),
                camera_retention::event_max_age_secs.eq(row.event_max_age_secs),
                camera_retention::version.eq(camera_retention::version + 1),
                camera_retention::updated_at.eq(row.updated_at),
            ))
            .returning(CameraRetention::as_returning())
            .get_result(c)?)
    }

    /// Removes an override; false if there was none.
    pub fn delete(c: &mut PgConnection, camera: Uuid) -> Result<bool> {
        Ok(diesel::delete(camera_retention::table.find(camera)).execute(c)? > 0)
    }
}
