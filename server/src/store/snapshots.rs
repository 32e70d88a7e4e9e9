//! Queries on `snapshots` (the best frame of a motion episode or a detection track, kept with its
//! event's retention) and `motion_open` (motion episodes under way, which retention must not cut
//! footage from).
use super::schema::{motion_open, snapshots};
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `snapshots`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = snapshots, check_for_backend(diesel::pg::Pg))]
pub struct SnapshotRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub camera_id: Uuid,
    pub time: DateTime<Utc>,
    pub jpeg: Vec<u8>,
    pub box_x: f32,
    pub box_y: f32,
    pub box_width: f32,
    pub box_height: f32,
    pub label: String,
    pub score: f32,
}

impl SnapshotRow {
    /// Stores the snapshot.
    pub fn insert(&self, c: &mut PgConnection) -> Result<()> {
        diesel::insert_into(snapshots::table).values(self).execute(c)?;
        Ok(())
    }

    /// Stores, in one statement, those of `rows` whose event is stored (linked or still in the
    /// inbox): a snapshot never outlives an event that was lost. Returns how many were stored.
    pub fn insert_of_stored_events(c: &mut PgConnection, rows: Vec<SnapshotRow>) -> Result<usize> {
        use super::schema::{event_inbox, events};
        let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
        let mut known: Vec<Uuid> = events::table.filter(events::id.eq_any(&ids)).select(events::id).load(c)?;
        known.extend(
            event_inbox::table
                .filter(event_inbox::event_id.eq_any(&ids))
                .select(event_inbox::event_id)
                .load::<Uuid>(c)?,
        );
        let kept: Vec<SnapshotRow> = rows.into_iter().filter(|r| known.contains(&r.event_id)).collect();
        Ok(diesel::insert_into(snapshots::table).values(&kept).execute(c)?)
    }

    /// The snapshot of event `event` of camera `camera` (of several tracks seen best in the same
    /// frame, the most confident).
    pub fn find(c: &mut PgConnection, camera: Uuid, event: Uuid) -> Result<Option<SnapshotRow>> {
        Ok(snapshots::table
            .filter(snapshots::event_id.eq(event))
            .filter(snapshots::camera_id.eq(camera))
            .order(snapshots::score.desc())
            .select(SnapshotRow::as_select())
            .first(c)
            .optional()?)
    }

    /// Whether stored event `event` is a motion episode (a snapshot's label comes from an adapter
    /// for detections, so it cannot tell).
    pub fn of_motion(c: &mut PgConnection, event: Uuid) -> Result<bool> {
        use super::schema::events;
        let n: i64 = events::table
            .filter(events::id.eq(event))
            .filter(events::type_.eq(crate::domain::event::Topic::Motion.name()))
            .count()
            .get_result(c)?;
        Ok(n > 0)
    }

    /// Which of `events` have a snapshot.
    pub fn which(c: &mut PgConnection, events: &[Uuid]) -> Result<Vec<Uuid>> {
        Ok(snapshots::table
            .filter(snapshots::event_id.eq_any(events))
            .select(snapshots::event_id)
            .distinct()
            .load(c)?)
    }

    /// Removes the snapshots of frames taken before `before`, at most `limit`; how many went.
    pub fn expire(c: &mut PgConnection, before: DateTime<Utc>, limit: i64) -> Result<usize> {
        let old: Vec<Uuid> =
            snapshots::table.filter(snapshots::time.lt(before)).select(snapshots::id).limit(limit).load(c)?;
        Ok(diesel::delete(snapshots::table.filter(snapshots::id.eq_any(old))).execute(c)?)
    }
}

/// Notes that a motion episode of `camera` is under way since `since`.
pub fn motion_started(c: &mut PgConnection, camera: Uuid, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    diesel::insert_into(motion_open::table)
        .values((motion_open::camera_id.eq(camera), motion_open::since.eq(since), motion_open::seen.eq(now)))
        .on_conflict(motion_open::camera_id)
        .do_update()
        .set((motion_open::since.eq(since), motion_open::seen.eq(now)))
        .execute(c)?;
    Ok(())
}

/// Notes that the motion episode of `camera` ended (in the transaction storing its event).
pub fn motion_ended(c: &mut PgConnection, camera: Uuid) -> Result<()> {
    diesel::delete(motion_open::table.find(camera)).execute(c)?;
    Ok(())
}

/// Since when `camera` has had a motion episode under way, if one started after `fresh_after` (an
/// older row is left over from a server that stopped without ending it).
pub fn motion_since(c: &mut PgConnection, camera: Uuid, fresh_after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    Ok(motion_open::table
        .find(camera)
        .filter(motion_open::since.gt(fresh_after))
        .select(motion_open::since)
        .first(c)
        .optional()?)
}
