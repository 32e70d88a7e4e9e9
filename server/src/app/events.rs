//! Site events as history and as a live stream. The recorder stores every published event; the
//! linker numbers stored events in commit order and tells this process's watchers (and, through
//! PostgreSQL's NOTIFY, every other server process's) that the history grew. Watchers and listings
//! read the stored rows, so a watcher resumes after its last position with no event lost and none
//! repeated, also across a restart; each caller gets only the events of cameras they may see.
use super::{Call, PageRequest, Principal};
use crate::bus::EventBus;
use crate::clock::SharedClock;
use crate::domain::event::{EventKind, SiteEvent};
use crate::domain::{Permission, Role};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::store::Store;
use crate::store::events::{self as stored, EventFilter, EventRow};
use crate::store::snapshots::SnapshotRow;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

/// How long a watcher trusts what it learnt of a camera's visibility (after a revoked grant, the
/// camera's events stop within this time).
const VISIBILITY_TTL: Duration = Duration::from_secs(5);
/// A heartbeat after this long without anything to send.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events a watcher reads from the history at a time.
const READ_BATCH: i64 = 256;
/// Events linked at a time.
const LINK_BATCH: i32 = 1000;
/// How often the listener looks for notifications (a read of its socket, no query).
const LISTEN_EVERY: Duration = Duration::from_millis(50);

pub use crate::domain::event::Topic;

/// What a watch stream carries, each with the position just after it.
#[derive(Debug, Clone)]
pub enum WatchItem {
    Event(Arc<SiteEvent>, i64),
    Heartbeat(i64),
    /// Retention removed events the watcher had not read yet: the stream ends OUT_OF_RANGE.
    Expired,
}

/// The refusal of a resume point retention has passed.
pub fn resume_point_expired() -> Error {
    Error::new(ErrorKind::OutOfRange, "resume_token is older than the kept event history")
        .with_reason(reason::RESUME_POINT_EXPIRED)
}

/// The resume token of position `p`.
pub fn resume_token(p: i64) -> String {
    format!("ev1.{p}")
}

/// The position a resume token names.
fn position_of(token: &str) -> Result<i64> {
    token
        .strip_prefix("ev1.")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .ok_or_else(|| Error::invalid("resume_token", "resume_token is not one this server issued"))
}

/// The stored history of this process: where its head is, and the tasks that keep it.
#[derive(Clone)]
pub struct EventLog {
    store: Store,
    head: Arc<watch::Sender<i64>>,
    poke: Arc<Notify>,
    /// Asks the recorder to store what is queued and stop; it answers on the sender it is given.
    closing: Arc<tokio::sync::Mutex<Option<mpsc::Sender<Stored>>>>,
    closed: Arc<tokio::sync::Mutex<Option<mpsc::Receiver<Stored>>>>,
}

/// The recorder's answer that the last events are stored.
type Stored = tokio::sync::oneshot::Sender<()>;

impl EventLog {
    /// The history on `store`, its head not read yet; `bus` wakes its linker for events stored in
    /// their change's transaction.
    pub fn new(store: Store, bus: &EventBus) -> EventLog {
        let (closing, closed) = mpsc::channel(1);
        EventLog {
            store,
            head: Arc::new(watch::channel(0).0),
            poke: bus.stored(),
            closing: Arc::new(tokio::sync::Mutex::new(Some(closing))),
            closed: Arc::new(tokio::sync::Mutex::new(Some(closed))),
        }
    }

    /// Stores and links the events still queued for the recorder, and stops it (at shutdown).
    pub async fn drain(&self) {
        let Some(closing) = self.closing.lock().await.take() else { return };
        let (done, stored) = tokio::sync::oneshot::channel();
        if closing.send(done).await.is_ok() {
            let _ = stored.await;
        }
        if let Err(e) = self.link_all().await {
            tracing::warn!(error = %e, "linking the last events failed");
        }
    }

    /// The newest position this process knows, as it moves.
    pub fn head(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// Events were written to the inbox: link them now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Moves the head to `position` if that is newer.
    fn advance(&self, position: i64) {
        self.head.send_if_modified(|h| {
            let newer = position > *h;
            if newer {
                *h = position;
            }
            newer
        });
    }

    /// Stores every event published on `bus`, in batches, retrying while the database is away.
    pub async fn run_recorder(self, bus: EventBus) {
        let (Some(mut rx), Some(mut closed)) = (bus.take_recorder(), self.closed.lock().await.take()) else {
            tracing::error!("the event recorder runs once per bus");
            return;
        };
        loop {
            let (first, closing) = tokio::select! {
                e = rx.recv() => (e, None),
                done = closed.recv() => (None, done),
            };
            let stopping = closing.is_some();
            let mut batch: Vec<_> = first.into_iter().collect();
            // At shutdown, everything queued; else what arrived together, a batch at a time.
            while stopping || batch.len() < READ_BATCH as usize {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let ended = batch.is_empty() && !stopping;
            for chunk in batch.chunks(READ_BATCH as usize) {
                self.store_batch(chunk.to_vec(), !stopping).await;
            }
            self.poke();
            if let Some(done) = closing {
                let _ = done.send(());
                return;
            }
            if ended {
                // The bus is gone: nothing more will come.
                return;
            }
        }
    }

    /// Stores `batch` in one statement, retrying while the database is away (unless `retry` is
    /// false, at shutdown: then once).
    async fn store_batch(&self, batch: Vec<Arc<SiteEvent>>, retry: bool) {
        let batch = Arc::new(batch);
        loop {
            let events = batch.clone();
            match self.store.run(move |c| stored::append_all(c, &events)).await {
                Ok(()) => return,
                Err(e) if retry => {
                    tracing::warn!(error = %e, events = batch.len(), "storing events failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "storing the last events failed");
                    return;
                }
            }
        }
    }

    /// The one loop that links stored events into the history: when poked, and every second (for
    /// events another process wrote and did not link, e.g. it stopped).
    pub async fn run_linker(self) {
        loop {
            if let Err(e) = self.link_all().await {
                tracing::warn!(error = %e, "linking events failed; retrying");
            }
            tokio::select! {
                _ = self.poke.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Links every waiting event and moves the head.
    async fn link_all(&self) -> Result<()> {
        let head = self
            .store
            .run(|c| {
                while stored::link(c, LINK_BATCH)? == LINK_BATCH {}
                stored::head(c)
            })
            .await?;
        self.advance(head.position);
        Ok(())
    }

    /// Listens for other processes' links (PostgreSQL NOTIFY) on a connection of its own and moves
    /// the head when one arrives; reconnects after a failure. Diesel offers no socket to wait on, so
    /// the connection's socket is read every [`LISTEN_EVERY`] (a non-blocking read, no query).
    pub async fn run_listener(self) {
        loop {
            let store = self.store.clone();
            let opened = tokio::task::spawn_blocking(move || store.dedicated().and_then(stored::Listener::new)).await;
            let mut listener = match opened.map_err(Error::internal).and_then(|l| l) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "listening for events failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Anything linked while no one listened.
            self.poke();
            loop {
                match listener.newest() {
                    Ok(Some(p)) => self.advance(p),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the event listener lost its connection; reconnecting");
                        break;
                    }
                }
                tokio::time::sleep(LISTEN_EVERY).await;
            }
        }
    }
}

/// Event use cases.
#[derive(Clone)]
pub struct EventsApp {
    pub store: Store,
    pub clock: SharedClock,
    pub log: EventLog,
    /// How long the history is kept.
    pub retention: chrono::Duration,
}

/// What a caller asked to see.
#[derive(Clone)]
struct Interest {
    principal: Principal,
    cameras: Vec<Uuid>,
    topics: Vec<Topic>,
}

/// What a watcher learnt of a camera's visibility: (camera, about recordings) → (visible, when).
type Seen = HashMap<(Uuid, bool), (bool, tokio::time::Instant)>;

/// One page of stored events.
pub struct EventPage {
    pub events: Vec<Arc<SiteEvent>>,
    pub next_page_token: String,
    /// On the first page: where a watch that misses nothing after this listing starts.
    pub watch_resume_token: Option<String>,
    /// The events of the page that have a snapshot.
    pub with_snapshot: std::collections::HashSet<Uuid>,
}

impl EventsApp {
    /// Removes events older than the retention (a prefix of the history: a watch resuming before
    /// it is told its point expired). Returns how many went.
    pub async fn enforce_retention(&self) -> Result<usize> {
        const BATCH: i64 = 10_000;
        let before = self.clock.now() - self.retention;
        let mut total = 0;
        loop {
            let n = self.store.run(move |c| stored::expire(c, before, BATCH)).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        // Snapshots go with their events.
        while self.store.run(move |c| SnapshotRow::expire(c, before, BATCH)).await? as i64 == BATCH {}
        Ok(total)
    }

    /// Streams events of `camera_ids` only if given (site-wide events are then left out) and of
    /// `topics` only if given; events of cameras the caller may not see never reach it. From
    /// `resume_token`'s position when given (OUT_OF_RANGE once retention removed what follows it),
    /// else from now.
    pub async fn watch(
        &self,
        call: &Call,
        camera_ids: &[String],
        topics: Vec<Topic>,
        resume_token: &str,
    ) -> Result<mpsc::Receiver<WatchItem>> {
        let interest = self.interest(call, camera_ids, topics).await?;
        let resume = if resume_token.is_empty() { None } else { Some(position_of(resume_token)?) };
        let mut head = self.log.head();
        let history = self.store.run(stored::head).await?;
        let start = match resume {
            None => history.position,
            Some(p) if p > history.position => {
                return Err(Error::invalid("resume_token", "resume_token is ahead of this site's event history"));
            }
            Some(p) if p + 1 < history.kept_from => return Err(resume_point_expired()),
            Some(p) => p,
        };
        let (tx, out) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut at = start;
            let mut quiet_since = tokio::time::Instant::now();
            loop {
                head.borrow_and_update();
                let rows = match this.store.run(move |c| EventRow::after(c, at, READ_BATCH)).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the event history failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if rows.is_empty() {
                    let wait = HEARTBEAT.saturating_sub(quiet_since.elapsed());
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        _ = tokio::time::sleep(wait) => {
                            if tx.send(WatchItem::Heartbeat(at)).await.is_err() {
                                return;
                            }
                            quiet_since = tokio::time::Instant::now();
                        }
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                // Positions are dense: a gap means retention removed what this watcher had not
                // read, and it is told so rather than skipping it.
                if rows.first().is_some_and(|r| r.position != at + 1) {
                    let _ = tx.send(WatchItem::Expired).await;
                    return;
                }
                for row in rows {
                    at = row.position;
                    let Some(e) = this.readable(&row) else { continue };
                    if let Some(e) = this.shown(&interest, e, &mut seen).await {
                        if tx.send(WatchItem::Event(e, at)).await.is_err() {
                            return;
                        }
                        quiet_since = tokio::time::Instant::now();
                    }
                }
            }
        });
        Ok(out)
    }

    /// Stored events matching the filters, newest first unless `oldest_first`, only those the
    /// caller may see.
    #[allow(clippy::too_many_arguments)]
    pub async fn list(
        &self,
        call: &Call,
        camera_ids: &[String],
        topics: Vec<Topic>,
        range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        oldest_first: bool,
        page: PageRequest,
    ) -> Result<EventPage> {
        let (from, to) = super::recordings::checked_range(range.0, range.1, false)?;
        let interest = self.interest(call, camera_ids, topics).await?;
        // A listing is of the history as its first page found it: every page holds only events
        // linked by then (the head, carried in the page token), so the first page's watch point
        // and the pages never overlap.
        // (The first page reads the head in the statement batch of its first rows.)
        let (after, mut head) = match &page.after {
            None => (None, None),
            Some(t) => {
                let bad = || Error::invalid("page_token", "page_token is not one this server issued");
                let mut parts = t.splitn(3, '/');
                let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or_else(bad);
                let (micros, position, head) = (next()?, next()?, next()?);
                let time = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
                (Some((time, position)), Some(head))
            }
        };
        let p = &interest.principal;
        let visible = match super::authorizer::visible(p, self.clock.now()) {
            crate::store::cameras::Visible::All => None,
            crate::store::cameras::Visible::Cameras(ids) => Some(ids),
            crate::store::cameras::Visible::GrantedTo(user, now) => Some(
                self.store
                    .run(move |c| crate::store::cameras::CameraGrantRow::live_camera_id_list(c, user, now))
                    .await?,
            ),
        };
        let mut filter = EventFilter {
            cameras: interest.cameras.clone(),
            topics: interest.topics.clone(),
            from: Some(from),
            to: Some(to),
            oldest_first,
            visible: visible.map(|ids| (ids, p.user_id)),
            through: head,
        };
        let first = page.after.is_none();
        let limit = page.size;
        let mut events = Vec::new();
        let mut seen = Seen::default();
        let mut cursor = after;
        let mut exhausted = false;
        // Rows the caller may not see (per-type permissions) are skipped; read on until the page is
        // full or the rows run out.
        while (events.len() as i64) < limit && !exhausted {
            let (mut f, c) = (filter.clone(), cursor);
            let (rows, through) = self
                .store
                .run(move |conn| {
                    let through = match f.through {
                        Some(t) => t,
                        None => stored::head(conn)?.position,
                    };
                    f.through = Some(through);
                    Ok((EventRow::page(conn, &f, c, limit)?, through))
                })
                .await?;
            filter.through = Some(through);
            head = Some(through);
            exhausted = (rows.len() as i64) < limit;
            for row in rows {
                cursor = Some((row.time, row.position));
                let Some(e) = self.readable(&row) else { continue };
                if let Some(e) = self.shown(&interest, e, &mut seen).await {
                    events.push(e);
                    if events.len() as i64 == limit {
                        break;
                    }
                }
            }
        }
        let head = head.unwrap_or_default();
        let last = cursor.map(|(t, p)| format!("{}/{p}/{head}", t.timestamp_micros()));
        let next_page_token = if exhausted && (events.len() as i64) < limit {
            String::new()
        } else {
            page.next_token(limit as usize, last.as_deref())
        };
        let ids: Vec<Uuid> =
            events.iter().filter(|e| matches!(Topic::of(e), Topic::Motion | Topic::Detection)).map(|e| e.id).collect();
        let with_snapshot = if ids.is_empty() {
            Default::default()
        } else {
            self.store.run(move |c| SnapshotRow::which(c, &ids)).await?.into_iter().collect()
        };
        Ok(EventPage { events, next_page_token, watch_resume_token: first.then(|| resume_token(head)), with_snapshot })
    }

    /// The snapshot of event `event_id` of camera `camera_id`: footage, so recording.read on the
    /// camera, and for a detection's the right to read detections.
    pub async fn snapshot(&self, call: &Call, camera_id: &str, event_id: &str) -> Result<SnapshotRow> {
        let p = call.principal()?.clone();
        let camera = super::parse_id("camera_id", camera_id)?;
        let event = super::parse_id("event_id", event_id)?;
        call.about("event_snapshot", &event.to_string(), &camera.to_string());
        let now = self.clock.now();
        let not_found = || Error::new(ErrorKind::NotFound, format!("event {event} of camera {camera} has no snapshot"));
        let row = self
            .store
            .run(move |c| {
                super::authorizer::authorize(c, &p, camera, Permission::RecordingRead, now, false)?;
                Ok(SnapshotRow::find(c, camera, event)?.map(|row| (SnapshotRow::of_motion(c, event), row)))
            })
            .await?
            .ok_or_else(not_found)?;
        let (motion, row) = (row.0?, row.1);
        let topic = if motion { Topic::Motion } else { Topic::Detection };
        let p = call.principal()?;
        if topic.permission().is_some_and(|needed| !p.allows(needed)) {
            return Err(not_found());
        }
        Ok(row)
    }

    /// The caller, the cameras they asked for (each checked: NOT_FOUND when they may not see it)
    /// and the topics.
    async fn interest(&self, call: &Call, camera_ids: &[String], topics: Vec<Topic>) -> Result<Interest> {
        let p = call.principal()?.clone();
        let cameras = super::parse_ids("camera_ids", camera_ids)?;
        if !cameras.is_empty() {
            let (who, wanted, now) = (p.clone(), cameras.clone(), self.clock.now());
            self.store.run(move |c| super::authorizer::authorize_all(c, &who, &wanted, None, now).map(drop)).await?;
        }
        Ok(Interest { principal: p, cameras, topics })
    }

    /// The event a stored row holds; a row this build cannot read is skipped (and said).
    fn readable(&self, row: &EventRow) -> Option<Arc<SiteEvent>> {
        match row.event() {
            Ok(e) => Some(Arc::new(e)),
            Err(e) => {
                tracing::warn!(error = %e, position = row.position, "skipping a stored event");
                None
            }
        }
    }

    /// `e` as `interest`'s caller may see it, or `None` when they may not or did not ask for it.
    async fn shown(&self, interest: &Interest, e: Arc<SiteEvent>, seen: &mut Seen) -> Option<Arc<SiteEvent>> {
        let (p, cameras, topics) = (&interest.principal, &interest.cameras, &interest.topics);
        let topic = Topic::of(&e);
        if !topics.is_empty() && !topics.contains(&topic) {
            return None;
        }
        // Adapter health and detections for who may read inference, IDS alerts for who may read them.
        if topic.permission().is_some_and(|needed| !p.allows(needed)) {
            return None;
        }
        if let EventKind::IdsAlert { cameras: linked, .. } = &e.kind {
            // Of the cameras they asked for, if they asked.
            if !cameras.is_empty() && !linked.iter().any(|c| cameras.contains(c)) {
                return None;
            }
            let mut shown = Vec::with_capacity(linked.len());
            for c in linked {
                if self.visible(p, *c, false, seen).await {
                    shown.push(*c);
                }
            }
            // Every alert reaches who may read alerts (linking one to a camera never hides it),
            // naming only the cameras they may see.
            if shown.len() == linked.len() {
                return Some(e);
            }
            let mut only = (*e).clone();
            only.camera_id = shown.first().copied();
            if let EventKind::IdsAlert { cameras, .. } = &mut only.kind {
                *cameras = shown;
            }
            return Some(Arc::new(only));
        }
        match e.camera_id {
            None if !cameras.is_empty() => None,
            Some(c) if !cameras.is_empty() && !cameras.contains(&c) => None,
            // Who held a grant on a camera just deleted hears of it (an API key only within its cameras).
            Some(c)
                if e.also_for.contains(&p.user_id)
                    && p.api_key.as_ref().is_none_or(|k| k.cameras.is_empty() || k.cameras.contains(&c)) =>
            {
                Some(e)
            }
            Some(c) => {
                let recordings = topic.about_recordings();
                self.visible(p, c, recordings, seen).await.then_some(e)
            }
            None => Some(e),
        }
    }

    /// Whether `p` may see camera `c` (and its recordings), remembered for a few seconds: a burst
    /// of events costs the database one lookup per camera, not one per event.
    async fn visible(&self, p: &Principal, c: Uuid, recordings: bool, seen: &mut Seen) -> bool {
        let fresh = seen.get(&(c, recordings)).filter(|(_, at)| at.elapsed() < VISIBILITY_TTL).map(|(v, _)| *v);
        match fresh {
            Some(v) => v,
            None => {
                // A failed lookup is tried again, not taken for "hidden": the event is not skipped.
                let v = loop {
                    match self.may_see_as(p, c, recordings).await {
                        Ok(v) => break v,
                        Err(e) => {
                            tracing::warn!(error = %e, "checking an event's camera failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                seen.insert((c, recordings), (v, tokio::time::Instant::now()));
                v
            }
        }
    }

    /// Whether `p` may see camera `id` — and, with `recordings`, play back its recordings.
    async fn may_see_as(&self, p: &Principal, id: Uuid, recordings: bool) -> Result<bool> {
        if p.role == Role::Admin && p.api_key.is_none() {
            return Ok(true);
        }
        let (p, now) = (p.clone(), self.clock.now());
        self.store
            .run(move |c| {
                let held = super::authorizer::held_on(c, &p, id, now)?;
                Ok(!held.is_empty() && (!recordings || held.contains(&crate::domain::Permission::RecordingRead)))
            })
            .await
    }
}
