//! Retention: the oldest unheld segments go first, in batches, until every limit holds — each
//! camera's maximum age and size (its own or the site default), then the site's free-space floor.
//! A pass marks a batch for deletion under the camera's recordings lock, then deletes the files
//! through MediaMTX and the rows after them, again under the lock: a hold created meanwhile gives
//! back what is marked but not deleted yet, and a crash midway leaves rows marked (listed nowhere)
//! that the next pass finishes. Each pass that removes anything leaves one audit entry.
use super::recordings::RecordingApp;
use crate::domain::AuditRecord;
use crate::domain::camera::path_name;
use crate::domain::recording::SegmentState;
use crate::error::{Error, ErrorKind, Result};
use crate::media::mediamtx::MtxError;
use crate::store::recordings::{
    CameraRetention, HeldRange, HoldRow, RecordingSummary, SegmentRow, SiteRetention, held, lock_recordings,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Segments marked per transaction.
const MARK_BATCH: i64 = 500;
/// Segments deleted per transaction (a hold created meanwhile waits for at most one batch).
const DELETE_BATCH: i64 = 16;

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments: usize,
    pub bytes: i64,
    /// Segments removed per camera.
    pub per_camera: BTreeMap<Uuid, usize>,
    /// Limits that still do not hold, and why (everything left is held, deletion failed).
    pub unmet: Vec<String>,
}

impl RetentionReport {
    fn add(&mut self, camera: Uuid, segments: usize, bytes: i64) {
        if segments > 0 {
            self.segments += segments;
            self.bytes += bytes;
            *self.per_camera.entry(camera).or_default() += segments;
        }
    }
}

/// Which limit asks for deletion now.
#[derive(Debug, Clone, Copy)]
struct Need {
    /// Segments ending at or before this go.
    cutoff: Option<DateTime<Utc>>,
    /// This many bytes go, oldest first.
    bytes: i64,
    /// Only footage judged to overlap no event.
    continuous_only: bool,
}

/// Segments judged per statement.
const JUDGE_BATCH: i64 = 5000;
/// How long after its rolls a segment waits to be judged: events stored a little late (detections
/// queued for the database, an IDS alert read from its log) still count.
const JUDGE_SETTLE: chrono::Duration = chrono::Duration::seconds(60);

/// How a camera's footage is judged and kept.
struct Footage {
    events_mode: bool,
    topics: Vec<&'static str>,
    pre_ms: i64,
    post_ms: i64,
}

impl Footage {
    fn of(row: Option<&crate::store::cameras::CameraRow>) -> Footage {
        use crate::domain::camera::{DEFAULT_POST_ROLL_MS, DEFAULT_PRE_ROLL_MS, RecordingMode};
        use crate::domain::event::Topic;
        match row {
            Some(r) => Footage {
                events_mode: r.recording_mode == RecordingMode::Events && r.deleted_at.is_none(),
                topics: r.footage_topics().iter().map(|t| t.name()).collect(),
                pre_ms: r.event_pre_roll_ms.unwrap_or(DEFAULT_PRE_ROLL_MS),
                post_ms: r.event_post_roll_ms.unwrap_or(DEFAULT_POST_ROLL_MS),
            },
            None => Footage {
                events_mode: false,
                topics: Topic::FOOTAGE_DEFAULT.iter().map(|t| t.name()).collect(),
                pre_ms: DEFAULT_PRE_ROLL_MS,
                post_ms: DEFAULT_POST_ROLL_MS,
            },
        }
    }
}

impl RecordingApp {
    /// Free bytes on the recordings volume, when the server sees it.
    pub fn free_bytes(&self) -> Option<i64> {
        super::exports::free_space(self.recordings_dir.as_ref()?)
    }

    /// The free-space floor in bytes of the site default `site`: the larger of its floor in bytes
    /// and its share of the volume (`None`: no floor).
    pub fn free_floor(&self, site: &SiteRetention) -> Option<i64> {
        free_floor(site, self.total_bytes())
    }

    /// Total bytes of the recordings volume, when the server sees it.
    pub fn total_bytes(&self) -> Option<i64> {
        super::exports::total_space(self.recordings_dir.as_ref()?)
    }

    /// One retention pass over every camera that has footage (deleted cameras included: their
    /// footage ages out under the site default): periodic (`call` None, a system audit entry) or
    /// asked for by `call` (its entry is the pass's).
    pub async fn enforce_retention(&self, call: Option<&super::Call>) -> Result<RetentionReport> {
        let why = if call.is_some() { "on demand" } else { "periodic" };
        let mut report = RetentionReport::default();
        // A pass cut short left segments marked: finish them first.
        for camera in self.store.run(SegmentRow::cameras_with_marked).await? {
            let (n, bytes) = self.delete_marked(camera).await?;
            report.add(camera, n, bytes);
        }
        let (site, overrides, summaries, cameras) = self
            .store
            .run(|c| {
                let summaries = RecordingSummary::all(c)?;
                let ids: Vec<Uuid> = summaries.iter().map(|s| s.camera_id).collect();
                let cameras = crate::store::cameras::CameraRow::any_of(c, &ids)?;
                Ok((SiteRetention::get(c)?, CameraRetention::all(c)?, summaries, cameras))
            })
            .await?;
        let now = self.clock.now();
        for summary in &summaries {
            let camera = summary.camera_id;
            let footage = Footage::of(cameras.iter().find(|c| c.id == camera));
            self.judge(camera, &footage, now).await?;
            let own = overrides.iter().find(|o| o.camera_id == camera);
            let max_age = own.and_then(|o| o.max_age_secs).or(site.max_age_secs);
            let event_max_age = own.and_then(|o| o.event_max_age_secs).or(site.event_max_age_secs);
            let max_bytes = own.and_then(|o| o.max_bytes).or(site.max_bytes);
            let age = |secs: i64| now - chrono::Duration::seconds(secs);
            // Footage outside events: all of it in events mode (judged means its rolls passed),
            // else what is older than max_age when event footage has a tier of its own.
            let continuous_cutoff = if footage.events_mode { Some(now) } else { event_max_age.and(max_age).map(age) };
            // Everything: the longer of the two ages when event footage has its own.
            let all_cutoff = match (max_age, event_max_age) {
                (Some(a), Some(e)) => Some(age(a.max(e))),
                // No age limit for the rest: event footage is kept at least as long.
                (None, Some(_)) => None,
                (a, None) => a.map(age),
            };
            let mut over = max_bytes.map(|m| summary.bytes - m).unwrap_or(0).max(0);
            if continuous_cutoff.is_some() || over > 0 {
                let need = Need { cutoff: continuous_cutoff, bytes: over, continuous_only: true };
                let (n, bytes) = self.trim(camera, need, &mut Vec::new()).await?;
                report.add(camera, n, bytes);
                over = (over - bytes).max(0);
            }
            if all_cutoff.is_none_or(|c| summary.oldest_start.is_none_or(|o| o >= c)) && over == 0 {
                continue;
            }
            let need = Need { cutoff: all_cutoff, bytes: over, continuous_only: false };
            let (n, bytes) = self.trim(camera, need, &mut report.unmet).await?;
            report.add(camera, n, bytes);
        }
        if let Some(floor) = self.free_floor(&site) {
            self.keep_free(floor, &mut report).await?;
        }
        {
            let base = match call {
                Some(call) => call.record("recordings", ""),
                None => AuditRecord::system("retention.enforce", "recordings", ""),
            };
            let mut record = base
                .detail("trigger", why)
                .detail("segments", report.segments.to_string())
                .detail("bytes", report.bytes.to_string())
                .detail(
                    "per_camera",
                    report.per_camera.iter().map(|(c, n)| format!("{c}:{n}")).collect::<Vec<_>>().join(","),
                );
            if !report.unmet.is_empty() {
                record = record.detail("unmet", report.unmet.join("; "));
            }
            let now = self.clock.now();
            match call {
                Some(call) => call.record_alone(&self.store, now, record).await?,
                None => crate::audit::commit(&self.store, now, move |_| Ok(((), vec![record]))).await?,
            }
            tracing::info!(segments = report.segments, bytes = report.bytes, trigger = why, "retention pass");
        }
        Ok(report)
    }

    /// Judges which of `camera`'s segments overlap its events, as far as no event still to come
    /// could change the answer: both rolls (and a settling margin) have passed since a segment's
    /// end, and no motion episode that began within the pre-roll is still under way.
    async fn judge(&self, camera: Uuid, footage: &Footage, now: DateTime<Utc>) -> Result<()> {
        let (pre, post) = (footage.pre_ms, footage.post_ms);
        let topics = footage.topics.clone();
        let rolls = chrono::Duration::milliseconds(pre.max(post));
        let fresh_after = now
            - chrono::Duration::from_std(crate::domain::motion::MAX_EPISODE).unwrap_or_default()
            - chrono::Duration::minutes(2);
        self.store
            .run(move |c| {
                let mut before = now - rolls - JUDGE_SETTLE;
                if let Some(since) = crate::store::snapshots::motion_since(c, camera, fresh_after)? {
                    before = before.min(since - chrono::Duration::milliseconds(pre));
                }
                while SegmentRow::judge(c, camera, &topics, (pre, post), before, JUDGE_BATCH)? as i64 == JUDGE_BATCH {}
                Ok(())
            })
            .await
    }

    /// Deletes a camera's oldest unheld segments while `need` asks for it, reading past held ones.
    /// Returns (segments, bytes).
    async fn trim(&self, camera: Uuid, mut need: Need, unmet: &mut Vec<String>) -> Result<(usize, i64)> {
        let mut total = (0, 0);
        let mut cursor: Option<DateTime<Utc>> = None;
        let mut held_any = false;
        loop {
            let (marked, bytes, held_now, last, more, satisfied) = self
                .store
                .transaction(move |c| {
                    lock_recordings(c, camera)?;
                    let holds = HoldRow::active_ranges(c, camera)?;
                    let oldest = SegmentRow::oldest_of_tier(c, camera, cursor, MARK_BATCH, need.continuous_only)?;
                    let mut picked = Vec::new();
                    let (mut bytes, mut held_now, mut satisfied, mut last) = (0, false, false, cursor);
                    for s in &oldest {
                        let aged = need.cutoff.is_some_and(|cut| s.end() <= cut);
                        if !aged && need.bytes - bytes <= 0 {
                            satisfied = true;
                            break;
                        }
                        last = Some(s.start_time);
                        if held(&holds, s.start_time, s.end()) {
                            held_now = true;
                            continue;
                        }
                        picked.push(s.start_time);
                        bytes += s.size_bytes;
                    }
                    SegmentRow::mark_deleting(c, camera, &picked)?;
                    Ok((picked.len(), bytes, held_now, last, oldest.len() as i64 == MARK_BATCH, satisfied))
                })
                .await?;
            held_any |= held_now;
            cursor = last;
            need.bytes -= bytes;
            if marked > 0 {
                let (n, b) = self.delete_marked(camera).await?;
                total = (total.0 + n, total.1 + b);
            }
            if satisfied || !more {
                if need.bytes > 0 {
                    let why = if held_any { "the rest is under hold" } else { "nothing older is left" };
                    unmet.push(format!("camera {camera} stays {} bytes over its size limit: {why}", need.bytes));
                }
                return Ok(total);
            }
        }
    }

    /// Deletes the oldest unheld footage of whichever camera has the oldest, a few segments at a
    /// time, until the volume has `floor` bytes free.
    async fn keep_free(&self, floor: i64, report: &mut RetentionReport) -> Result<()> {
        let Some(mut free) = self.free_bytes() else {
            report
                .unmet
                .push("the free-space floor cannot be kept: the server does not see the recordings volume".into());
            return Ok(());
        };
        while free < floor {
            let oldest = self.store.run(oldest_unheld_by_camera).await?;
            let Some((camera, _)) = oldest.into_iter().min_by_key(|(_, start)| *start) else {
                report.unmet.push(format!(
                    "{free} bytes free, below the floor of {floor}: everything left is held or being written"
                ));
                return Ok(());
            };
            let mut unmet = Vec::new();
            // At most a batch of the oldest before looking again at which camera holds the oldest.
            let need = Need { cutoff: None, bytes: (floor - free).min(64 * 1024 * 1024), continuous_only: false };
            let (n, bytes) = self.trim(camera, need, &mut unmet).await?;
            if n == 0 {
                report.unmet.push(format!("{free} bytes free, below the floor of {floor}: deleting failed"));
                return Ok(());
            }
            report.add(camera, n, bytes);
            free = self.free_bytes().unwrap_or(i64::MAX);
        }
        Ok(())
    }

    /// Deletes a camera's segments marked for deletion in batches, each under the camera's
    /// recordings lock held across the deletions: the file through MediaMTX, then the row. A hold
    /// created meanwhile waits for the batch and then gives back everything still marked.
    /// Returns (segments, bytes).
    pub async fn delete_marked(&self, camera: Uuid) -> Result<(usize, i64)> {
        let Some(mtx) = self.mtx.clone() else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "recordings are deleted through MediaMTX, which is not configured",
            ));
        };
        let path = path_name(camera);
        let mut total = (0, 0);
        loop {
            let (mtx, path, app) = (mtx.clone(), path.clone(), self.clone());
            let runtime = tokio::runtime::Handle::current();
            let (n, bytes, full) = self
                .store
                .transaction(move |c| {
                    lock_recordings(c, camera)?;
                    let rows = SegmentRow::marked(c, camera, DELETE_BATCH)?;
                    let mut gone = Vec::new();
                    let mut bytes = 0;
                    // What MediaMTX still lists, asked once a batch when a deletion is refused.
                    let mut listed: Option<Vec<DateTime<Utc>>> = None;
                    for row in &rows {
                        // The store runs this on a blocking thread: waiting here keeps the lock.
                        let outcome = runtime.block_on(mtx.delete_segment(&path, row.start_time));
                        match outcome {
                            Ok(()) => {}
                            // Refused: gone only if it is confirmed gone — on the volume when the
                            // server sees it, else by MediaMTX no longer listing it.
                            Err(MtxError::NotFound(_)) | Err(MtxError::Rejected(_))
                                if runtime.block_on(app.confirmed_gone(&path, row, &mut listed)) => {}
                            Err(e) => {
                                tracing::warn!(%camera, start = %row.start_time, error = %e, "cannot delete a segment; the next pass retries");
                                break;
                            }
                        }
                        gone.push(row.start_time);
                        bytes += row.size_bytes;
                    }
                    SegmentRow::delete(c, camera, &gone)?;
                    Ok((gone.len(), bytes, gone.len() as i64 == DELETE_BATCH))
                })
                .await?;
            total = (total.0 + n, total.1 + bytes);
            if !full {
                return Ok(total);
            }
        }
    }

    /// Whether a segment MediaMTX refused to delete is really gone: its file absent from the volume
    /// when the server sees it, else absent from MediaMTX's own listing (`listed` caches it).
    async fn confirmed_gone(
        &self,
        path: &str,
        row: &crate::store::recordings::SegmentRow,
        listed: &mut Option<Vec<DateTime<Utc>>>,
    ) -> bool {
        if let Some(local) = self.local_file(&row.file_path) {
            return !tokio::fs::try_exists(local).await.unwrap_or(true);
        }
        let Some(mtx) = &self.mtx else { return false };
        if listed.is_none() {
            match mtx.recording(path).await {
                Ok(starts) => *listed = Some(starts),
                Err(_) => return false,
            }
        }
        listed.as_ref().is_some_and(|starts| !starts.contains(&row.start_time))
    }
}

/// The start of each camera's oldest complete segment outside its holds (cameras with none left
/// are not listed).
fn oldest_unheld_by_camera(c: &mut diesel::PgConnection) -> Result<Vec<(Uuid, DateTime<Utc>)>> {
    let mut out = Vec::new();
    for summary in RecordingSummary::all(c)?.into_iter().filter(|s| s.segments > 0) {
        let camera = summary.camera_id;
        let holds = HoldRow::active_ranges(c, camera)?;
        let mut cursor = None;
        loop {
            let page = SegmentRow::oldest_complete(c, camera, cursor, MARK_BATCH)?;
            if let Some(s) = page.iter().find(|s| !held(&holds, s.start_time, s.end())) {
                out.push((camera, s.start_time));
                break;
            }
            match page.last() {
                Some(last) if page.len() as i64 == MARK_BATCH => cursor = Some(last.start_time),
                _ => break,
            }
        }
    }
    Ok(out)
}

/// Segments of `camera` in `[from, to)` as a deletion by hand sees them: (deletable, held).
pub fn split_held(rows: &[crate::store::recordings::SegmentEntry], holds: &[HeldRange]) -> (Vec<DateTime<Utc>>, usize) {
    let mut deletable = Vec::new();
    let mut under_hold = 0;
    for s in rows.iter().filter(|s| s.state == SegmentState::Complete) {
        if held(holds, s.start_time, s.end()) {
            under_hold += 1;
        } else {
            deletable.push(s.start_time);
        }
    }
    (deletable, under_hold)
}

/// What a deletion by hand removed (or would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    pub segments: usize,
    pub bytes: i64,
    /// First start and last end of what was deleted.
    pub span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl RecordingApp {
    /// Deletes a camera's segments lying wholly inside `[from, to)`, refusing the whole request if any
    /// of them is under an active hold. With `validate_only`, only says what would go.
    pub async fn delete_recordings(
        &self,
        call: &super::Call,
        camera_id: &str,
        range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        reason: &str,
        validate_only: bool,
    ) -> Result<Deleted> {
        let camera = super::parse_id("camera_id", camera_id)?;
        call.about("camera", &camera.to_string(), &camera.to_string());
        let p = call.principal()?.clone();
        p.require(crate::domain::Permission::RecordingDelete)?;
        let from = range.0.ok_or_else(|| Error::invalid("start_time", "start_time is required"))?;
        let to = range.1.ok_or_else(|| Error::invalid("end_time", "end_time is required"))?;
        if to <= from {
            return Err(Error::invalid("end_time", "end_time must be after start_time"));
        }
        let reason = reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(Error::invalid("reason", "reason is required (at most 2000 characters)"));
        }
        let now = self.clock.now();
        let mut record = call
            .record("recordings", &camera.to_string())
            .detail("start_time", from.to_rfc3339())
            .detail("end_time", to.to_rfc3339())
            .detail("reason", reason);
        record.camera_id = camera.to_string();
        // A dry run (validate_only) changes nothing and leaves its entry to the layer around.
        let planned = call
            .audited_if(&self.store, now, move |c| {
                super::authorizer::authorize(c, &p, camera, crate::domain::Permission::RecordingRead, now, false)?;
                lock_recordings(c, camera)?;
                let holds = HoldRow::active_ranges(c, camera)?;
                let rows: Vec<_> = SegmentRow::overlapping(c, camera, from, to)?
                    .into_iter()
                    .filter(|s| s.start_time >= from && s.end() <= to)
                    .collect();
                let (deletable, under_hold) = split_held(&rows, &holds);
                if under_hold > 0 {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        format!("{under_hold} segment(s) in the range are under an evidence hold: nothing was deleted"),
                    )
                    .with_reason(crate::error::reason::UNDER_HOLD));
                }
                let kept: Vec<_> = rows.iter().filter(|s| deletable.contains(&s.start_time)).copied().collect();
                let deleted = Deleted {
                    segments: kept.len(),
                    bytes: kept.iter().map(|s| s.size_bytes).sum(),
                    span: kept.first().zip(kept.last()).map(|(a, b)| (a.start_time, b.end())),
                };
                if validate_only {
                    return Ok((deleted, None));
                }
                SegmentRow::mark_deleting(c, camera, &deletable)?;
                let record =
                    record.detail("segments", deleted.segments.to_string()).detail("bytes", deleted.bytes.to_string());
                Ok((deleted, Some(record)))
            })
            .await?;
        if !validate_only {
            // Marked segments are listed nowhere already; files MediaMTX cannot delete now go with
            // the next retention pass.
            if planned.segments > 0
                && let Err(e) = self.delete_marked(camera).await
            {
                tracing::warn!(%camera, error = %e, "segments marked for deletion wait for the next retention pass");
            }
        }
        Ok(planned)
    }
}

/// The free-space floor of the site default `site` on a volume of `total` bytes: the larger of its
/// floor in bytes and its share of the volume (`None`: no floor).
pub fn free_floor(site: &SiteRetention, total: Option<i64>) -> Option<i64> {
    let share = site.min_free_percent.zip(total).map(|(p, total)| total / 100 * i64::from(p));
    match (site.min_free_bytes, share) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

/// A retention policy: the site default (`camera_id` None) or a camera's override. `None` limits
/// are unset (no limit for the default; inherited for a camera).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub camera_id: Option<Uuid>,
    pub max_age_secs: Option<i64>,
    pub event_max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
    pub min_free_bytes: Option<i64>,
    pub min_free_percent: Option<i32>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<SiteRetention> for Policy {
    fn from(s: SiteRetention) -> Policy {
        Policy {
            camera_id: None,
            max_age_secs: s.max_age_secs,
            event_max_age_secs: s.event_max_age_secs,
            max_bytes: s.max_bytes,
            min_free_bytes: s.min_free_bytes,
            min_free_percent: s.min_free_percent,
            version: s.version,
            updated_at: s.updated_at,
        }
    }
}

impl From<CameraRetention> for Policy {
    fn from(r: CameraRetention) -> Policy {
        Policy {
            camera_id: Some(r.camera_id),
            max_age_secs: r.max_age_secs,
            event_max_age_secs: r.event_max_age_secs,
            max_bytes: r.max_bytes,
            min_free_bytes: None,
            min_free_percent: None,
            version: r.version,
            updated_at: r.updated_at,
        }
    }
}

/// A change to a policy: which limits (by mask path) to set, and to what (`None`: unset).
#[derive(Debug, Clone, Default)]
pub struct PolicyChange {
    pub camera_id: String,
    pub max_age_secs: Option<Option<i64>>,
    pub event_max_age_secs: Option<Option<i64>>,
    pub max_bytes: Option<Option<i64>>,
    pub min_free_bytes: Option<Option<i64>>,
    pub min_free_percent: Option<Option<i32>>,
    pub expected_version: Option<i64>,
}

/// Event footage is kept at least as long as the rest.
fn tiers_in_order((max_age, event_max_age): (Option<i64>, Option<i64>)) -> Result<()> {
    match (max_age, event_max_age) {
        (Some(a), Some(e)) if e < a => Err(Error::invalid(
            "policy.event_max_age",
            format!("policy.event_max_age ({e} s) must not be shorter than policy.max_age ({a} s)"),
        )),
        _ => Ok(()),
    }
}

fn policy_etag_mismatch() -> Error {
    Error::new(ErrorKind::Aborted, "the retention policy was changed by someone else (etag mismatch); reload and retry")
        .with_reason(crate::error::reason::ETAG_MISMATCH)
}

impl RecordingApp {
    fn policy_camera(camera_id: &str) -> Result<Option<Uuid>> {
        if camera_id.is_empty() { Ok(None) } else { super::parse_id("policy.camera_id", camera_id).map(Some) }
    }

    /// The default or a camera's override (None if it has none), and what applies to it; a camera
    /// the caller may not see is not found.
    pub async fn retention_policy(&self, call: &super::Call, camera_id: &str) -> Result<(Option<Policy>, Policy)> {
        let camera = RecordingApp::policy_camera(camera_id)
            .map_err(|_| Error::invalid("camera_id", "camera_id must be a UUID"))?;
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        self.store
            .run(move |c| {
                let site: Policy = SiteRetention::get(c)?.into();
                let Some(camera) = camera else { return Ok((Some(site.clone()), site)) };
                if !crate::store::cameras::CameraRow::exists_any(c, camera)?
                    || super::authorizer::visible_among(c, &p, &[camera], now)?.is_empty()
                {
                    return Err(Error::new(ErrorKind::NotFound, format!("camera {camera} not found")));
                }
                let own: Option<Policy> = CameraRetention::find(c, camera)?.map(Into::into);
                let effective = Policy {
                    camera_id: Some(camera),
                    max_age_secs: own.as_ref().and_then(|o| o.max_age_secs).or(site.max_age_secs),
                    event_max_age_secs: own.as_ref().and_then(|o| o.event_max_age_secs).or(site.event_max_age_secs),
                    max_bytes: own.as_ref().and_then(|o| o.max_bytes).or(site.max_bytes),
                    min_free_bytes: site.min_free_bytes,
                    min_free_percent: site.min_free_percent,
                    version: own.as_ref().map(|o| o.version).unwrap_or(site.version),
                    updated_at: own.as_ref().map(|o| o.updated_at).unwrap_or(site.updated_at),
                };
                Ok((own, effective))
            })
            .await
    }

    /// The site default, then the override of every camera the caller may see (by camera id), a
    /// page at a time.
    pub async fn retention_policies(
        &self,
        call: &super::Call,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Policy>, String)> {
        let page = super::PageRequest::new(page_size, page_token, "retention")?;
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let all = self
            .store
            .run(move |c| {
                let mut out: Vec<Policy> = vec![SiteRetention::get(c)?.into()];
                let overrides = CameraRetention::all(c)?;
                let ids: Vec<Uuid> = overrides.iter().map(|o| o.camera_id).collect();
                let seen = super::authorizer::visible_among(c, &p, &ids, now)?;
                out.extend(overrides.into_iter().filter(|o| seen.contains(&o.camera_id)).map(Policy::from));
                Ok(out)
            })
            .await?;
        // Positions: "site" for the default, else the camera id (overrides come ordered by it).
        let key = |p: &Policy| p.camera_id.map(|c| c.to_string()).unwrap_or_else(|| "site".into());
        let start = match &page.after {
            None => 0,
            Some(after) => all.iter().position(|p| key(p) == *after).map(|i| i + 1).unwrap_or(all.len()),
        };
        let size = usize::try_from(page.size).unwrap_or(usize::MAX);
        let out: Vec<Policy> = all.into_iter().skip(start).take(size).collect();
        let next = page.next_token(out.len(), out.last().map(key).as_deref());
        Ok((out, next))
    }

    /// Changes the default or a camera's override. Size and free-space limits need the recordings
    /// volume visible to the server: without it they are refused, saying why.
    pub async fn update_retention_policy(&self, call: &super::Call, change: PolicyChange) -> Result<Policy> {
        let camera = RecordingApp::policy_camera(&change.camera_id)?;
        let positive = |field: &'static str, v: Option<Option<i64>>| -> Result<()> {
            match v {
                Some(Some(n)) if n <= 0 => Err(Error::invalid(field, format!("{field} must be positive"))),
                _ => Ok(()),
            }
        };
        positive("policy.max_age", change.max_age_secs)?;
        positive("policy.event_max_age", change.event_max_age_secs)?;
        positive("policy.max_bytes", change.max_bytes)?;
        positive("policy.min_free_bytes", change.min_free_bytes)?;
        if let Some(Some(p)) = change.min_free_percent
            && !(1..=90).contains(&p)
        {
            return Err(Error::invalid("policy.min_free_percent", "policy.min_free_percent must be within 1..=90"));
        }
        for (field, set) in [
            ("policy.min_free_bytes", change.min_free_bytes.is_some()),
            ("policy.min_free_percent", change.min_free_percent.is_some()),
        ] {
            if camera.is_some() && set {
                return Err(Error::invalid(field, format!("{field} belongs to the site default only")));
            }
        }
        if self.recordings_dir.is_none() {
            for (field, v) in [
                ("policy.max_bytes", change.max_bytes),
                ("policy.min_free_bytes", change.min_free_bytes),
                ("policy.min_free_percent", change.min_free_percent.map(|p| p.map(i64::from))),
            ] {
                if matches!(v, Some(Some(_))) {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        format!(
                            "{field} needs the recordings volume visible to the server (OPENNVR_RECORDINGS_DIR): without it sizes and free space are unknown"
                        ),
                    ));
                }
            }
        }
        if change.max_age_secs.is_none()
            && change.event_max_age_secs.is_none()
            && change.max_bytes.is_none()
            && change.min_free_bytes.is_none()
            && change.min_free_percent.is_none()
        {
            return Err(Error::invalid(
                "update_mask",
                "update_mask must name max_age, event_max_age, max_bytes, min_free_bytes or min_free_percent",
            ));
        }
        let target = camera.map(|c| c.to_string()).unwrap_or_else(|| "site".into());
        call.about("retention_policy", &target, &camera.map(|c| c.to_string()).unwrap_or_default());
        let show = |v: Option<Option<i64>>| v.map(|x| x.map(|n| n.to_string()).unwrap_or_else(|| "unset".into()));
        let mut record = call.record("retention_policy", &target);
        for (k, v) in [
            ("max_age_secs", change.max_age_secs),
            ("event_max_age_secs", change.event_max_age_secs),
            ("max_bytes", change.max_bytes),
            ("min_free_bytes", change.min_free_bytes),
            ("min_free_percent", change.min_free_percent.map(|p| p.map(i64::from))),
        ] {
            if let Some(v) = show(v) {
                record = record.detail(k, v);
            }
        }
        let now = self.clock.now();
        let policy = call
            .audited(&self.store, now, record, move |c, _| {
                let policy: Policy = match camera {
                    None => {
                        let site = SiteRetention::get(c)?;
                        if change.expected_version.is_some_and(|v| v != site.version) {
                            return Err(policy_etag_mismatch());
                        }
                        let ages = (
                            change.max_age_secs.unwrap_or(site.max_age_secs),
                            change.event_max_age_secs.unwrap_or(site.event_max_age_secs),
                        );
                        tiers_in_order(ages)?;
                        let limits = crate::store::recordings::SiteLimits {
                            max_age_secs: ages.0,
                            max_bytes: change.max_bytes.unwrap_or(site.max_bytes),
                            min_free_bytes: change.min_free_bytes.unwrap_or(site.min_free_bytes),
                            event_max_age_secs: ages.1,
                            min_free_percent: change.min_free_percent.unwrap_or(site.min_free_percent),
                        };
                        SiteRetention::set(c, limits, now)?.into()
                    }
                    Some(cam) => {
                        if crate::store::cameras::CameraRow::find(c, cam)?.is_none() {
                            return Err(Error::new(ErrorKind::NotFound, format!("camera {cam} not found")));
                        }
                        let own = CameraRetention::find(c, cam)?;
                        if change.expected_version.is_some_and(|v| Some(v) != own.as_ref().map(|o| o.version)) {
                            return Err(policy_etag_mismatch());
                        }
                        let row = CameraRetention {
                            camera_id: cam,
                            max_age_secs: change.max_age_secs.unwrap_or(own.as_ref().and_then(|o| o.max_age_secs)),
                            max_bytes: change.max_bytes.unwrap_or(own.as_ref().and_then(|o| o.max_bytes)),
                            event_max_age_secs: change
                                .event_max_age_secs
                                .unwrap_or(own.as_ref().and_then(|o| o.event_max_age_secs)),
                            version: 1,
                            updated_at: now,
                        };
                        // Against what the camera inherits, too.
                        let site = SiteRetention::get(c)?;
                        tiers_in_order((
                            row.max_age_secs.or(site.max_age_secs),
                            row.event_max_age_secs.or(site.event_max_age_secs),
                        ))?;
                        CameraRetention::upsert(c, &row)?.into()
                    }
                };
                Ok(policy)
            })
            .await?;
        Ok(policy)
    }

    /// Removes a camera's override: it follows the site default again.
    pub async fn delete_retention_policy(
        &self,
        call: &super::Call,
        camera_id: &str,
        expected_version: Option<i64>,
    ) -> Result<()> {
        if camera_id.is_empty() {
            return Err(Error::invalid("camera_id", "camera_id is required: the site default cannot be deleted"));
        }
        let camera = super::parse_id("camera_id", camera_id)?;
        call.about("retention_policy", &camera.to_string(), &camera.to_string());
        let record = call.record("retention_policy", &camera.to_string());
        let now = self.clock.now();
        call.audited(&self.store, now, record, move |c, _| {
            let own = CameraRetention::find(c, camera)?
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("camera {camera} has no retention override")))?;
            if expected_version.is_some_and(|v| v != own.version) {
                return Err(policy_etag_mismatch());
            }
            CameraRetention::delete(c, camera)?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}

/// Storage figures of one camera.
#[derive(Debug, Clone)]
pub struct CameraStorage {
    pub summary: RecordingSummary,
    pub held_bytes: i64,
    pub write_bytes_per_second: i64,
}

/// Storage figures of the site.
#[derive(Debug, Clone)]
pub struct StorageStats {
    /// (path, total bytes, free bytes, the free-space floor) of the volume the server sees.
    pub volume: Option<(String, i64, i64, Option<i64>)>,
    /// Largest first.
    pub cameras: Vec<CameraStorage>,
    pub computed: DateTime<Utc>,
}

impl RecordingApp {
    /// Bytes and footage per camera (from the maintained totals: no scan of the segments), bytes under
    /// hold and the write rate over the last hour, and the volume's space when the server sees it.
    pub async fn storage_stats(&self, call: &super::Call) -> Result<StorageStats> {
        let now = self.clock.now();
        let p = call.principal()?.clone();
        let (site, cameras) = self
            .store
            .run(move |c| {
                let site = SiteRetention::get(c)?;
                let bytes_of = |rows: Vec<crate::store::recordings::CameraBytes>| {
                    rows.into_iter().map(|r| (r.camera_id, r.bytes)).collect::<std::collections::HashMap<_, _>>()
                };
                // A few statements for the whole site, however many cameras and holds.
                let held = bytes_of(SegmentRow::held_bytes_by_camera(c)?);
                let written = bytes_of(SegmentRow::bytes_since_by_camera(c, now - chrono::Duration::hours(1))?);
                // The figures of the cameras the caller may see (the volume's are the site's).
                let summaries = RecordingSummary::all(c)?;
                let ids: Vec<Uuid> = summaries.iter().map(|s| s.camera_id).collect();
                let seen = super::authorizer::visible_among(c, &p, &ids, now)?;
                let mut out: Vec<CameraStorage> = summaries
                    .into_iter()
                    .filter(|s| seen.contains(&s.camera_id))
                    .map(|summary| CameraStorage {
                        held_bytes: held.get(&summary.camera_id).copied().unwrap_or(0),
                        write_bytes_per_second: written.get(&summary.camera_id).copied().unwrap_or(0) / 3600,
                        summary,
                    })
                    .collect();
                out.sort_by_key(|c| std::cmp::Reverse(c.summary.bytes));
                Ok((site, out))
            })
            .await?;
        let volume = match (&self.recordings_dir, self.total_bytes(), self.free_bytes()) {
            (Some(dir), Some(total), Some(free)) => {
                Some((dir.display().to_string(), total, free, self.free_floor(&site)))
            }
            _ => None,
        };
        Ok(StorageStats { volume, cameras, computed: now })
    }
}
