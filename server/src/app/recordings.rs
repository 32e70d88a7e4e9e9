//! Recording use cases: the segment index fed by MediaMTX's hooks and reconciled with what MediaMTX
//! has on disk, segment listings and timelines for those who may play a camera back.
use super::authorizer::{authorize_all, permit};
use super::{Call, PageRequest, parse_id};
use crate::clock::SharedClock;
use crate::domain::Permission;
use crate::domain::camera::{PATH_PREFIX, path_name};
use crate::domain::event::{Mark, Topic};
use crate::domain::recording::{self, Run, SegmentState};
use crate::error::{Error, ErrorKind, Result};
use crate::media::mediamtx::{MediaMtx, MtxError};
use crate::store::Store;
use crate::store::cameras::CameraRow;
use crate::store::recordings::{SegmentEntry, SegmentRow};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use uuid::Uuid;

/// Gaps up to this long between segments do not split a timeline run (MediaMTX starts the next
/// segment at the next key frame, a few hundred milliseconds after the last one ended).
pub const RUN_TOLERANCE: chrono::Duration = chrono::Duration::seconds(2);

/// How far back a reconcile pass compares segment by segment (older rows are only trimmed below
/// MediaMTX's oldest segment): lost hooks are found by the first pass after them.
const RECONCILE_WINDOW: chrono::Duration = chrono::Duration::hours(48);

/// A complete segment MediaMTX does not list is taken as gone only once it is older than this
/// (MediaMTX lists a file once it holds a first fragment).
const GONE_GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// Recording use cases.
#[derive(Clone)]
pub struct RecordingApp {
    pub store: Store,
    pub clock: SharedClock,
    /// MediaMTX's `recordPath` (as MediaMTX sees the recordings volume).
    pub record_path: String,
    /// Where the server sees that volume, if it does (read-only is enough): file sizes and
    /// durations come from it.
    pub recordings_dir: Option<PathBuf>,
    /// MediaMTX's API, for what the hooks missed.
    pub mtx: Option<MediaMtx>,
    /// Signs playback tokens; its configuration holds the playback server's URLs and export limits.
    pub live: crate::media::LiveView,
    /// Where exported clips are kept.
    pub exports_dir: PathBuf,
    /// MediaMTX's runtime state, as the status watcher keeps it (for the recording watchdog).
    pub media: crate::media::plane::MediaPlane,
    /// Where the recording watchdog announces stalls.
    pub events: crate::bus::EventBus,
    /// When (on the server's clock) each camera last reported a segment (hook or reconcile).
    pub last_segment: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Uuid, DateTime<Utc>>>>,
    /// The exports running now (their caps).
    pub running_exports: super::exports::RunningExports,
}

/// What a segment hook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// A new row (or a row completed).
    Recorded,
    /// Known already: nothing changed.
    Duplicate,
}

/// A page of segments.
#[derive(Debug, Clone)]
pub struct SegmentPage {
    pub camera_id: Uuid,
    pub segments: Vec<SegmentEntry>,
    pub next_page_token: String,
}

/// Later than any recording.
fn far_future() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(365 * 8000)
}

/// A range asked for, checked.
pub(super) fn checked_range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    required: bool,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    if required && from.is_none() {
        return Err(Error::invalid("start_time", "start_time is required"));
    }
    if required && to.is_none() {
        return Err(Error::invalid("end_time", "end_time is required"));
    }
    for (field, t) in [("start_time", from), ("end_time", to)] {
        if t.is_some_and(|t| t < DateTime::<Utc>::UNIX_EPOCH || t > far_future()) {
            return Err(Error::invalid(field, format!("{field} must lie between 1970 and the year 9000")));
        }
    }
    // Open ends: bounds every stored time lies within (and PostgreSQL can represent).
    let from = from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let to = to.unwrap_or_else(far_future);
    if to <= from {
        return Err(Error::invalid("end_time", "end_time must be after start_time"));
    }
    Ok((from, to))
}

impl RecordingApp {
    /// The camera a MediaMTX path belongs to (one of OpenNVR's, even if deleted since).
    async fn camera_of_path(&self, path: &str) -> Result<Uuid> {
        let unknown = || Error::new(ErrorKind::NotFound, format!("path {path:?} is not one of OpenNVR's cameras"));
        let id = path.strip_prefix(PATH_PREFIX).and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(unknown)?;
        if path_name(id) != path {
            return Err(unknown());
        }
        let known = self.store.run(move |c| CameraRow::exists_any(c, id)).await?;
        if known { Ok(id) } else { Err(unknown()) }
    }

    /// Where the server sees a file MediaMTX names, if it sees the recordings volume.
    pub(crate) fn local_file(&self, mediamtx_file: &str) -> Option<PathBuf> {
        let dir = self.recordings_dir.as_ref()?;
        let fixed = &self.record_path[..self.record_path.find("%path")?];
        let rest = mediamtx_file.strip_prefix(fixed)?;
        Some(dir.join(rest))
    }

    /// Size and modification time of a segment file, when the server sees it.
    async fn file_facts(&self, mediamtx_file: &str) -> Option<(i64, DateTime<Utc>)> {
        let meta = tokio::fs::metadata(self.local_file(mediamtx_file)?).await.ok()?;
        let modified = meta.modified().ok().map(DateTime::<Utc>::from)?;
        Some((i64::try_from(meta.len()).unwrap_or(i64::MAX), modified))
    }

    /// MediaMTX opened (`duration` None) or finished a segment of `path` in `file`. Idempotent.
    pub async fn segment_hook(&self, path: &str, file: &str, duration: Option<&str>) -> Result<Ingested> {
        let camera = self.camera_of_path(path).await?;
        let start = recording::segment_start(&self.record_path, path, file).ok_or_else(|| {
            Error::invalid("segment_path", format!("{file:?} is not a segment of {path} under the record path"))
        })?;
        let duration_us = match duration {
            None => None,
            Some(d) => Some(recording::segment_duration_us(d).ok_or_else(|| {
                Error::invalid("segment_duration", format!("{d:?} is not a duration in seconds (0 to 24 h)"))
            })?),
        };
        let size = self.file_facts(file).await.map(|(size, _)| size).unwrap_or(0);
        let row = SegmentRow {
            camera_id: camera,
            start_time: start,
            duration_us: duration_us.unwrap_or(0),
            size_bytes: size,
            state: if duration_us.is_some() { SegmentState::Complete } else { SegmentState::Recording },
            file_path: file.to_owned(),
        };
        if let Ok(mut seen) = self.last_segment.lock() {
            seen.insert(camera, self.clock.now());
        }
        let changed = self
            .store
            .run(move |c| match duration_us {
                None => SegmentRow::insert_new(c, std::slice::from_ref(&row)).map(|n| n > 0),
                Some(_) => SegmentRow::complete(c, &row),
            })
            .await?;
        Ok(if changed { Ingested::Recorded } else { Ingested::Duplicate })
    }

    /// A page of a camera's segments starting in the range, oldest first (the first page also holds
    /// the segment that started before the range and reaches into it).
    pub async fn list_segments(
        &self,
        call: &Call,
        camera_id: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        page_size: i32,
        page_token: &str,
    ) -> Result<SegmentPage> {
        let camera = parse_id("camera_id", camera_id)?;
        call.about("camera", &camera.to_string(), &camera.to_string());
        let (from, to) = checked_range(from, to, false)?;
        let binding = format!("{camera}/{}/{}", from.timestamp_micros(), to.timestamp_micros());
        let page = PageRequest::new(page_size, page_token, &binding)?;
        let after = match &page.after {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .ok()
                    .and_then(DateTime::<Utc>::from_timestamp_micros)
                    .ok_or_else(|| Error::invalid("page_token", "page_token is not one this server issued"))?,
            ),
        };
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let limit = page.size;
        let store = self.store.clone();
        let segments = self
            .store
            .run(move |c| {
                permit(c, store.recent(), &p, camera, Permission::RecordingRead, now)?;
                if after.is_some() {
                    return SegmentRow::page(c, camera, from, to, after, limit);
                }
                // The first page: the segment reaching into the range from before it, then the rest.
                let mut out = SegmentRow::overlapping_limited(c, camera, from, to, limit)?;
                if out
                    .first()
                    .is_some_and(|s| s.start_time < from && s.end() <= from && s.state != SegmentState::Recording)
                {
                    out.remove(0);
                }
                out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                Ok(out)
            })
            .await?;
        let last = segments.last().map(|s| s.start_time.timestamp_micros().to_string());
        let next_page_token = page.next_token(segments.len(), last.as_deref());
        Ok(SegmentPage { camera_id: camera, segments, next_page_token })
    }

    /// Recorded runs of each camera over `[from, to)`: segments joined across gaps shorter than the
    /// bucket (at least [`RUN_TOLERANCE`]), clipped to the range. The segment being written reaches to
    /// now (at most two segment durations past its start, in case its hooks were lost). The segments
    /// stream in one row at a time and only the runs are kept, so memory does not grow with the
    /// range: three queries for all cameras together, at most [`crate::app::MAX_LIST`] of them, none
    /// twice.
    pub async fn timelines(
        &self,
        call: &Call,
        camera_ids: &[String],
        range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        bucket: Option<chrono::Duration>,
        overlay: &[Topic],
    ) -> Result<(Vec<(Uuid, Vec<Run>)>, Vec<Mark>)> {
        if camera_ids.is_empty() {
            return Err(Error::invalid("camera_id", "camera_id or camera_ids is required"));
        }
        let cameras = crate::app::parse_ids("camera_ids", camera_ids)?;
        if let [one] = cameras[..] {
            call.about("camera", &one.to_string(), &one.to_string());
        }
        let (from, to) = checked_range(range.0, range.1, true)?;
        let bucket = bucket.unwrap_or((to - from) / 1000);
        if bucket <= chrono::Duration::zero() {
            return Err(Error::invalid("bucket", "bucket must be positive"));
        }
        if (to - from).num_milliseconds() / bucket.num_milliseconds().max(1) > 10_000 {
            return Err(Error::invalid("bucket", "the range spans more than 10,000 buckets"));
        }
        let tolerance = bucket.max(RUN_TOLERANCE);
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        // Overlays of events that need more than playback: for who holds that too.
        for topic in overlay {
            if let Some(needed) = topic.permission() {
                p.require(needed)?;
            }
        }
        let (overlay, bucket_us) = (overlay.to_vec(), bucket.num_microseconds().unwrap_or(i64::MAX));
        self.store
            .run(move |c| {
                let rows = authorize_all(c, &p, &cameras, Permission::RecordingRead, now)?;
                let open_for: Vec<i64> = rows.iter().map(|r| 2 * i64::from(r.segment_seconds) * 1_000_000).collect();
                // Spans stream in camera by camera; only the runs are kept.
                let mut builders: Vec<(Uuid, recording::RunBuilder)> =
                    cameras.iter().map(|id| (*id, recording::RunBuilder::new(tolerance, from, to))).collect();
                let mut at = 0;
                SegmentRow::visit_spans(c, &cameras, &open_for, (from, to), now, |span| {
                    while builders.get(at).is_some_and(|(id, _)| *id != span.camera_id) {
                        at += 1;
                    }
                    if let Some((_, b)) = builders.get_mut(at) {
                        b.push(Run { start: span.start_time, end: span.end_time });
                    }
                })?;
                let runs = builders.into_iter().map(|(id, b)| (id, b.finish())).collect();
                let marks = if overlay.is_empty() {
                    Vec::new()
                } else {
                    crate::store::events::marks(c, &cameras, &overlay, (from, to), bucket_us)?
                };
                Ok((runs, marks))
            })
            .await
    }

    /// Brings the index in line with what MediaMTX has recorded for every camera: adds segments
    /// whose hooks were lost, closes segments left open, and removes rows whose files are gone.
    /// Returns (added, closed, removed).
    pub async fn reconcile(&self) -> Result<(usize, usize, usize)> {
        let Some(mtx) = &self.mtx else { return Ok((0, 0, 0)) };
        let cameras = self.store.run(CameraRow::all).await?;
        let mut totals = (0, 0, 0);
        for camera in cameras {
            let path = path_name(camera.id);
            let starts = match mtx.recording(&path).await {
                Ok(s) => s,
                Err(e @ MtxError::Unreachable(_)) => return Err(Error::new(ErrorKind::Unavailable, e.to_string())),
                Err(e) => {
                    tracing::warn!(camera = %camera.name, camera_id = %camera.id, error = %e, "cannot list the camera's recordings in MediaMTX");
                    continue;
                }
            };
            // One camera's trouble never stops the others.
            match self.reconcile_camera(camera.id, &path, &starts).await {
                Ok((a, c, r)) => totals = (totals.0 + a, totals.1 + c, totals.2 + r),
                Err(e) => {
                    tracing::warn!(camera = %camera.name, camera_id = %camera.id, error = %e, "recording index not reconciled")
                }
            }
        }
        Ok(totals)
    }

    async fn reconcile_camera(
        &self,
        camera: Uuid,
        path: &str,
        listed: &[DateTime<Utc>],
    ) -> Result<(usize, usize, usize)> {
        let (Some(first), Some(last)) = (listed.first().copied(), listed.last().copied()) else {
            // Nothing listed: MediaMTX may look at another directory; the index is left alone.
            return Ok((0, 0, 0));
        };
        let now = self.clock.now();
        let window = first.max(now - RECONCILE_WINDOW);
        let listed: Vec<DateTime<Utc>> = listed.iter().copied().filter(|s| *s >= window).collect();
        let known = self.store.run(move |c| SegmentRow::rows_between(c, camera, window, far_future())).await?;
        let known_starts: std::collections::HashSet<DateTime<Utc>> = known.iter().map(|r| r.start_time).collect();
        let open = known.iter().any(|r| r.state == SegmentState::Recording && r.start_time < last);
        let missing = listed.iter().any(|s| !known_starts.contains(s));
        // The volume is walked only when there is something to learn from it.
        let disk = if missing || open { self.segments_on_disk(path).await } else { Default::default() };
        let listed_set: std::collections::HashSet<DateTime<Utc>> = listed.iter().copied().collect();
        // A segment's end: its file's last write when visible, else the next segment's start.
        let next_start = |start: DateTime<Utc>| listed.iter().copied().find(|s| *s > start);
        let listed = &listed;
        let longest = (recording::MAX_SEGMENT_SECONDS * 1e6) as i64;
        let mut added = Vec::new();
        for &start in listed.iter().filter(|s| !known_starts.contains(s)) {
            let on_disk = disk.get(&start);
            let file = on_disk.map(|d| d.0.clone()).unwrap_or_else(|| self.file_name(path, start));
            let facts = on_disk.map(|d| (d.1, d.2));
            let newest = start == last;
            let (duration_us, state) = match (facts, next_start(start)) {
                (_, None) if newest => (0, SegmentState::Recording),
                (Some((_, modified)), _) => {
                    ((modified - start).num_microseconds().unwrap_or(0).max(0), SegmentState::Complete)
                }
                (None, Some(next)) => ((next - start).num_microseconds().unwrap_or(0), SegmentState::Complete),
                (None, None) => (0, SegmentState::Recording),
            };
            added.push(SegmentRow {
                camera_id: camera,
                start_time: start,
                duration_us: duration_us.min(longest),
                size_bytes: facts.map(|(s, _)| s).unwrap_or(0),
                state,
                file_path: file,
            });
        }
        let mut closed = Vec::new();
        for row in known.iter().filter(|r| r.state == SegmentState::Recording && r.start_time < last) {
            let facts = disk.get(&row.start_time).map(|d| (d.1, d.2));
            let end = match (facts, next_start(row.start_time)) {
                (Some((_, modified)), _) => modified,
                (None, Some(next)) => next,
                (None, None) => continue,
            };
            let duration = (end - row.start_time).num_microseconds().unwrap_or(0).clamp(0, longest);
            closed.push((row.start_time, duration, facts.map(|(s, _)| s).unwrap_or(row.size_bytes)));
        }
        let gone: Vec<DateTime<Utc>> = known
            .iter()
            .filter(|r| !listed_set.contains(&r.start_time))
            .filter(|r| r.state != SegmentState::Recording)
            .filter(|r| now - r.start_time > GONE_GRACE + chrono::Duration::microseconds(r.duration_us))
            .map(|r| r.start_time)
            .collect();
        let (n_added, n_closed) = (added.len(), closed.len());
        if n_added > 0
            && let Ok(mut seen) = self.last_segment.lock()
        {
            seen.insert(camera, now);
        }
        let n_gone = self
            .store
            .transaction(move |c| {
                SegmentRow::insert_new(c, &added)?;
                for (start, duration, size) in &closed {
                    SegmentRow::close(c, camera, *start, *duration, *size)?;
                }
                // Below MediaMTX's oldest segment nothing is left on disk.
                Ok(SegmentRow::delete(c, camera, &gone)? + SegmentRow::delete_before(c, camera, first)?)
            })
            .await?;
        if n_added + n_closed + n_gone > 0 {
            tracing::info!(%camera, added = n_added, closed = n_closed, removed = n_gone, "recording index reconciled with MediaMTX");
        }
        Ok((n_added, n_closed, n_gone))
    }

    /// The segment files of `path` the server sees, by start: (MediaMTX's name, size, last write).
    async fn segments_on_disk(
        &self,
        path: &str,
    ) -> std::collections::HashMap<DateTime<Utc>, (String, i64, DateTime<Utc>)> {
        let template = self.record_path.replace("%path", path);
        let fixed = template[..template.find('%').unwrap_or(template.len())].to_owned();
        let base = fixed[..fixed.rfind('/').map(|i| i + 1).unwrap_or(0)].to_owned();
        let Some(local_base) = self.local_file(&base) else { return Default::default() };
        let (record_path, path) = (self.record_path.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut found = std::collections::HashMap::new();
            let mut dirs = vec![local_base.clone()];
            while let Some(dir) = dirs.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for e in entries.flatten() {
                    let p = e.path();
                    let Ok(meta) = e.metadata() else { continue };
                    if meta.is_dir() {
                        dirs.push(p);
                        continue;
                    }
                    let Ok(rel) = p.strip_prefix(&local_base) else { continue };
                    let name = format!("{base}{}", rel.to_string_lossy());
                    if let (Some(start), Ok(modified)) =
                        (recording::segment_start(&record_path, &path, &name), meta.modified())
                    {
                        let size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
                        found.insert(start, (name, size, DateTime::<Utc>::from(modified)));
                    }
                }
            }
            found
        })
        .await
        .unwrap_or_default()
    }

    /// The file MediaMTX would write for a segment of `path` starting at `start`, were it on UTC: a
    /// best guess for a segment the server cannot see on disk (MediaMTX's own zone may differ; the
    /// index matches segments by start instant, never by name).
    fn file_name(&self, path: &str, start: DateTime<Utc>) -> String {
        let f = |spec: &str| start.format(spec).to_string();
        format!(
            "{}.mp4",
            self.record_path
                .replace("%path", path)
                .replace("%Y", &f("%Y"))
                .replace("%m", &f("%m"))
                .replace("%d", &f("%d"))
                .replace("%H", &f("%H"))
                .replace("%M", &f("%M"))
                .replace("%S", &f("%S"))
                .replace("%f", &format!("{:06}", start.timestamp_subsec_micros()))
                .replace("%z", "+0000")
        )
    }
}

/// A hold as asked for.
#[derive(Debug, Clone, Default)]
pub struct HoldSpec {
    pub camera_ids: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub case_id: String,
    pub reason: String,
}

/// A hold with its cameras.
pub type HoldView = (crate::store::recordings::HoldRow, Vec<Uuid>);

impl RecordingApp {
    /// Places an evidence hold. Its cameras must all be ones the caller may play back. Serialised
    /// with retention per camera: segments a running pass marked but has not deleted yet are given
    /// back, so the hold wins.
    pub async fn create_hold(&self, call: &Call, spec: HoldSpec) -> Result<HoldView> {
        use crate::store::recordings::{HoldRow, lock_recordings};
        let p = call.principal()?.clone();
        p.require(Permission::RecordingHold)?;
        if spec.camera_ids.is_empty() {
            return Err(Error::invalid("hold.camera_ids", "hold.camera_ids must name at least one camera"));
        }
        let mut cameras = super::parse_ids("hold.camera_ids", &spec.camera_ids)?;
        cameras.sort();
        let start = spec.start.ok_or_else(|| Error::invalid("hold.start_time", "hold.start_time is required"))?;
        if spec.end.is_some_and(|e| e <= start) {
            return Err(Error::invalid("hold.end_time", "hold.end_time must be after hold.start_time"));
        }
        let case_id = spec.case_id.trim().to_owned();
        if case_id.is_empty() || case_id.chars().count() > 200 {
            return Err(Error::invalid("hold.case_id", "hold.case_id is required (at most 200 characters)"));
        }
        let reason = spec.reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(Error::invalid("hold.reason", "hold.reason is required (at most 2000 characters)"));
        }
        let now = self.clock.now();
        let hold = HoldRow {
            id: Uuid::new_v4(),
            case_id,
            reason,
            start_time: start,
            end_time: spec.end,
            creator_user_id: Some(p.user_id),
            creator_username: p.username.clone(),
            created_at: now,
            released_at: None,
            release_user_id: None,
            release_reason: None,
        };
        call.about("hold", &hold.id.to_string(), "");
        let record = call
            .record("hold", &hold.id.to_string())
            .detail("case_id", hold.case_id.clone())
            .detail("reason", hold.reason.clone())
            .detail("cameras", cameras.iter().map(Uuid::to_string).collect::<Vec<_>>().join(","))
            .detail("start_time", start.to_rfc3339())
            .detail("end_time", spec.end.map(|e| e.to_rfc3339()).unwrap_or_default());
        let view = call
            .audited(&self.store, now, record, move |c, _| {
                // Locked first (in id order), so that no deletion of the camera or its footage
                // slips in between the checks and the hold.
                for cam in &cameras {
                    lock_recordings(c, *cam)?;
                }
                super::authorizer::authorize_all(c, &p, &cameras, Permission::RecordingRead, now)?;
                for cam in &cameras {
                    SegmentRow::unmark(c, *cam, hold.start_time, hold.end_time)?;
                }
                hold.insert(c, &cameras)?;
                Ok((hold, cameras))
            })
            .await?;
        Ok(view)
    }

    /// Whether any of a hold's cameras is out of the caller's sight (never for administrators).
    fn unseen(
        c: &mut diesel::PgConnection,
        p: &super::Principal,
        cameras: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(super::authorizer::authorize_all(c, p, cameras, Permission::RecordingRead, now).is_err())
    }

    /// One hold, if the caller may see all its cameras.
    pub async fn get_hold(&self, call: &Call, id: &str) -> Result<HoldView> {
        use crate::store::recordings::HoldRow;
        let id = parse_id("hold_id", id)?;
        let p = call.principal()?.clone();
        p.require(Permission::RecordingHold)?;
        let now = self.clock.now();
        self.store
            .run(move |c| {
                let not_found = || Error::new(ErrorKind::NotFound, format!("hold {id} not found"));
                let (hold, cameras) = HoldRow::find(c, id)?.ok_or_else(not_found)?;
                if RecordingApp::unseen(c, &p, &cameras, now)? {
                    return Err(not_found());
                }
                Ok((hold, cameras))
            })
            .await
    }

    /// Holds newest first: those on cameras the caller may see, optionally of one camera or case.
    pub async fn list_holds(
        &self,
        call: &Call,
        camera_id: &str,
        case_id: &str,
        show_released: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<HoldView>, String)> {
        use crate::store::recordings::HoldRow;
        let p = call.principal()?.clone();
        p.require(Permission::RecordingHold)?;
        let camera = if camera_id.is_empty() { None } else { Some(parse_id("camera_id", camera_id)?) };
        let binding = format!("{camera_id}/{case_id}/{show_released}");
        let page = PageRequest::new(page_size, page_token, &binding)?;
        let after = page.after_time_and_id()?;
        let now = self.clock.now();
        let visible = super::authorizer::visible(&p, now);
        let case = (!case_id.is_empty()).then(|| case_id.to_owned());
        let limit = page.size;
        let holds = self
            .store
            .run(move |c| HoldRow::page(c, visible, camera, case.as_deref(), show_released, after, limit))
            .await?;
        let last = holds.last().map(|(h, _)| super::time_and_id(h.created_at, h.id));
        let token = page.next_token(holds.len(), last.as_deref());
        Ok((holds, token))
    }

    /// Releases a hold: its recordings are subject to retention again.
    pub async fn release_hold(&self, call: &Call, id: &str, reason: &str) -> Result<HoldView> {
        use crate::store::recordings::HoldRow;
        let id = parse_id("hold_id", id)?;
        let reason = reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(Error::invalid("reason", "reason is required (at most 2000 characters)"));
        }
        let p = call.principal()?.clone();
        p.require(Permission::RecordingHold)?;
        call.about("hold", &id.to_string(), "");
        let now = self.clock.now();
        let record = call.record("hold", &id.to_string()).detail("reason", reason.clone());
        let view = call
            .audited(&self.store, now, record, move |c, _| {
                let not_found = || Error::new(ErrorKind::NotFound, format!("hold {id} not found"));
                let (_, cameras) = HoldRow::find(c, id)?.ok_or_else(not_found)?;
                if RecordingApp::unseen(c, &p, &cameras, now)? {
                    return Err(not_found());
                }
                if !HoldRow::release(c, id, p.user_id, &reason, now)? {
                    return Err(Error::new(ErrorKind::FailedPrecondition, format!("hold {id} is already released")));
                }
                HoldRow::find(c, id)?.ok_or_else(not_found)
            })
            .await?;
        Ok(view)
    }
}
