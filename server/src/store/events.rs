//! Stored site events: the inbox a change writes its event into (in the change's own transaction
//! where there is one), the linker that numbers committed events in commit order (`events_link`),
//! and the reads of the history — after a position (watch, resume) and by filters (listing).
use super::schema::{event_head, event_inbox, events};
use crate::domain::event::{EventKind, Mark, SiteEvent, Topic};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A stored event and its position in the history.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub position: i64,
    pub id: Uuid,
    pub time: DateTime<Utc>,
    #[diesel(column_name = type_)]
    pub topic: String,
    pub camera_id: Option<Uuid>,
    pub also_for: Vec<Uuid>,
    pub payload: serde_json::Value,
}

#[derive(Insertable)]
#[diesel(table_name = event_inbox)]
struct NewEvent<'a> {
    event_id: Uuid,
    time: DateTime<Utc>,
    #[diesel(column_name = type_)]
    topic: &'a str,
    camera_id: Option<Uuid>,
    also_for: &'a [Uuid],
    payload: serde_json::Value,
    until: Option<DateTime<Utc>>,
}

/// What a listing keeps.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only these cameras (site-wide events then left out); empty = any.
    pub cameras: Vec<Uuid>,
    /// Only these topics; empty = any.
    pub topics: Vec<Topic>,
    /// `time` in `[from, to)`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// For a caller who does not see every camera: the cameras they see, and who they are. Events
    /// of other cameras are left out, except site-wide ones, IDS alerts (shown to who may read
    /// alerts, naming only cameras they see) and those addressed to them (`also_for`).
    pub visible: Option<(Vec<Uuid>, Uuid)>,
    /// Only events linked at or before this position.
    pub through: Option<i64>,
}

/// The newest position given and the oldest still kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub position: i64,
    pub kept_from: i64,
}

/// Writes `e` into the inbox, in the caller's transaction: it is linked into the history once that
/// commits, or never.
pub fn append(c: &mut PgConnection, e: &SiteEvent) -> Result<()> {
    append_all(c, std::slice::from_ref(e))
}

/// Writes `events` into the inbox in one statement, in the caller's transaction.
pub fn append_all<E: std::borrow::Borrow<SiteEvent>>(c: &mut PgConnection, events: &[E]) -> Result<()> {
    let rows = events
        .iter()
        .map(|e| {
            let e = e.borrow();
            let mut payload = serde_json::to_value(&e.kind).map_err(Error::internal)?;
            without_nul(&mut payload);
            Ok(NewEvent {
                event_id: e.id,
                time: e.time,
                topic: Topic::of(e).name(),
                camera_id: e.camera_id,
                also_for: &e.also_for,
                payload,
                until: e.until(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    diesel::insert_into(event_inbox::table).values(&rows).execute(c)?;
    Ok(())
}

/// Drops NUL characters from every string of `v`: PostgreSQL's jsonb cannot hold them, and one in an
/// error text or a label must not keep the event out of the history.
fn without_nul(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_nul),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(without_nul),
        _ => {}
    }
}

/// Links up to `max` committed inbox events into the history; returns how many.
pub fn link(c: &mut PgConnection, max: i32) -> Result<i32> {
    #[derive(QueryableByName)]
    struct Linked {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        n: i32,
    }
    let r: Linked = super::prepared::prepared("SELECT events_link($1) AS n")
        .bind::<diesel::sql_types::Integer, _>(max)
        .get_result(c)?;
    Ok(r.n)
}

/// The head of the history.
pub fn head(c: &mut PgConnection) -> Result<Head> {
    let (position, kept_from) =
        event_head::table.select((event_head::position, event_head::kept_from)).first::<(i64, i64)>(c)?;
    Ok(Head { position, kept_from })
}

/// Removes the oldest events: every one linked before the first event at or after `before` (a
/// prefix of positions, so that what follows a kept position is always whole), at most `limit`
/// at a time; moves `kept_from` past them. Returns how many went.
pub fn expire(c: &mut PgConnection, before: DateTime<Utc>, limit: i64) -> Result<usize> {
    c.transaction(|c| {
        // Locked: passes of two processes take turns, and kept_from only moves forward.
        let (position, kept_from) = event_head::table
            .select((event_head::position, event_head::kept_from))
            .for_update()
            .first::<(i64, i64)>(c)?;
        let head = Head { position, kept_from };
        // The first position to keep: the oldest event still young enough, else past the newest.
        let young: Option<i64> =
            events::table.filter(events::time.ge(before)).select(diesel::dsl::min(events::position)).first(c)?;
        let keep_from = young.unwrap_or(head.position + 1).min(head.kept_from.saturating_add(limit));
        if keep_from <= head.kept_from {
            return Ok(0);
        }
        let removed = diesel::delete(events::table.filter(events::position.lt(keep_from))).execute(c)?;
        diesel::update(event_head::table).set(event_head::kept_from.eq(keep_from)).execute(c)?;
        Ok(removed)
    })
}

/// Per bucket of `bucket_us` from `from`, per topic of `topics`: how many events of `cameras` fell in
/// `[from, to)` and the first of them. One statement for all cameras, ordered by bucket then topic.
pub fn marks(
    c: &mut PgConnection,
    cameras: &[Uuid],
    topics: &[Topic],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    bucket_us: i64,
) -> Result<Vec<Mark>> {
    use diesel::sql_types::{Array, BigInt, Text, Timestamptz, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Timestamptz)]
        bucket: DateTime<Utc>,
        #[diesel(sql_type = Text)]
        topic: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Timestamptz)]
        first_time: DateTime<Utc>,
        #[diesel(sql_type = SqlUuid)]
        first_id: Uuid,
    }
    let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
    let rows: Vec<Row> = super::prepared::prepared(
        "SELECT date_bin($5 * interval '1 microsecond', time, $3) AS bucket, type AS topic, count(*) AS n, \
                min(time) AS first_time, (array_agg(id ORDER BY time, position))[1] AS first_id \
           FROM events \
          WHERE camera_id = ANY($1) AND type = ANY($2) AND time >= $3 AND time < $4 \
          GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind::<Array<SqlUuid>, _>(cameras)
    .bind::<Array<Text>, _>(names)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<BigInt, _>(bucket_us)
    .load(c)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Mark {
                bucket_start: r.bucket,
                topic: Topic::from_name(&r.topic)?,
                count: r.n,
                first_time: r.first_time,
                first_id: r.first_id,
            })
        })
        .collect())
}

impl EventRow {
    /// At most `limit` events after `position`, in order.
    pub fn after(c: &mut PgConnection, position: i64, limit: i64) -> Result<Vec<EventRow>> {
        Ok(events::table
            .filter(events::position.gt(position))
            .order(events::position.asc())
            .limit(limit)
            .select(EventRow::as_select())
            .load(c)?)
    }

    /// A page of events matching `filter`, past `after` (time, position) in the listing's order.
    pub fn page(
        c: &mut PgConnection,
        filter: &EventFilter,
        after: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let mut q = events::table.select(EventRow::as_select()).limit(limit).into_boxed();
        match filter.cameras.as_slice() {
            [] => {}
            // One camera by equality: the (camera, time, position) index then gives rows in the
            // listing's order, and a page reads only its own rows (`= ANY` would sort the range).
            [one] => q = q.filter(events::camera_id.eq(*one)),
            many => q = q.filter(events::camera_id.eq_any(many.to_vec())),
        }
        if !filter.topics.is_empty() {
            q = q.filter(events::type_.eq_any(filter.topics.iter().map(|t| t.name()).collect::<Vec<_>>()));
        }
        if let Some((cameras, user)) = &filter.visible {
            q = q.filter(
                events::camera_id
                    .is_null()
                    .or(events::camera_id.eq_any(cameras.clone()))
                    .or(events::also_for.contains(vec![*user]))
                    .or(events::type_.eq(Topic::IdsAlert.name())),
            );
        }
        if let Some(through) = filter.through {
            q = q.filter(events::position.le(through));
        }
        if let Some(from) = filter.from {
            q = q.filter(events::time.ge(from));
        }
        if let Some(to) = filter.to {
            q = q.filter(events::time.lt(to));
        }
        if filter.oldest_first {
            if let Some((t, p)) = after {
                // The plain bound lets the index start at the page's edge.
                q = q.filter(events::time.ge(t));
                q = q.filter(events::time.gt(t).or(events::time.eq(t).and(events::position.gt(p))));
            }
            q = q.order((events::time.asc(), events::position.asc()));
        } else {
            if let Some((t, p)) = after {
                q = q.filter(events::time.le(t));
                q = q.filter(events::time.lt(t).or(events::time.eq(t).and(events::position.lt(p))));
            }
            q = q.order((events::time.desc(), events::position.desc()));
        }
        Ok(q.load(c)?)
    }

    /// The event as it was published.
    pub fn event(&self) -> Result<SiteEvent> {
        let kind: EventKind = serde_json::from_value(self.payload.clone())
            .map_err(|e| Error::internal(format!("stored event {} cannot be read: {e}", self.id)))?;
        Ok(SiteEvent { id: self.id, time: self.time, camera_id: self.camera_id, kind, also_for: self.also_for.clone() })
    }
}

/// The channel `events_link` notifies with the newest position.
const CHANNEL: &str = "opennvr_events";

/// A connection listening to the history's channel: it learns when any server process on the
/// database linked events.
pub struct Listener {
    conn: PgConnection,
}

impl Listener {
    /// Starts listening on `conn`.
    pub fn new(mut conn: PgConnection) -> Result<Listener> {
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
        Ok(Listener { conn })
    }

    /// The newest position notified since the last call, if any. Reads what the socket holds; does
    /// not wait and sends no query.
    pub fn newest(&mut self) -> Result<Option<i64>> {
        let mut newest = None;
        for n in self.conn.notifications_iter() {
            if let Ok(position) = n?.payload.parse::<i64>() {
                newest = newest.max(Some(position));
            }
        }
        Ok(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_dropped_from_every_string_of_a_payload() {
        let mut v = serde_json::json!({"error": "lost\u{0}link", "labels": ["a\u{0}", "b"], "n": 1});
        without_nul(&mut v);
        assert_eq!(v, serde_json::json!({"error": "lostlink", "labels": ["a", "b"], "n": 1}));
    }
}
