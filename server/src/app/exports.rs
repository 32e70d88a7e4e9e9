//! Playback and clip exports. Playback hands out a short-lived token for MediaMTX's playback server;
//! an export fetches the clip from that server into a file the server keeps (with its SHA-256, for
//! chain of custody) until it expires, streaming progress and, if asked, the bytes. Every export
//! states why it was made, and that reason is in the audit trail.
use super::authorizer::authorize;
use super::recordings::RecordingApp;
use super::{Call, PageRequest, parse_id};
use crate::domain::camera::path_name;
use crate::domain::recording::{ExportFormat, ExportState};
use crate::domain::{Permission, StoredName};
use crate::error::{Error, ErrorKind, Result};
use crate::store::exports::ExportRow;
use crate::store::recordings::SegmentRow;
use chrono::{DateTime, Utc};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Size of the pieces a file is streamed in.
const CHUNK: usize = 1 << 20;

/// Exports one user may run at once.
pub const MAX_EXPORTS_PER_USER: usize = 2;
/// Exports the server runs at once.
pub const MAX_EXPORTS_AT_ONCE: usize = 4;
/// Free space exports always leave on their volume, whatever the site's free-space floor.
pub const EXPORT_FREE_FLOOR: i64 = 256 << 20;
/// How long the playback server may take to accept the connection.
const PLAYBACK_CONNECT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the playback server may stay silent (before the clip starts, and between its pieces).
const PLAYBACK_SILENCE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long an export waits for its caller to take the next piece of the clip before it goes on
/// writing the file alone.
const STALLED_READER: std::time::Duration = std::time::Duration::from_secs(10);
/// The free space of the exports volume is checked again after every this many bytes written.
const FREE_CHECK_EVERY: i64 = 4 << 20;

/// The exports running, per user: the caps on how many run at once.
#[derive(Clone, Default)]
pub struct RunningExports(crate::security::budget::Occupancy<Uuid>);

/// One running export's place; freed when the export ends, however it ends.
pub type ExportTurn = crate::security::budget::Place<Uuid>;

impl RunningExports {
    /// A place for one more export of `user`, or RESOURCE_EXHAUSTED naming the limit reached.
    fn start(&self, user: Uuid) -> Result<ExportTurn> {
        self.0.take(user, |theirs, all| {
            let full = |what: String| Err(Error::new(ErrorKind::ResourceExhausted, what));
            if theirs >= MAX_EXPORTS_PER_USER {
                return full(format!(
                    "at most {MAX_EXPORTS_PER_USER} exports per user run at once; wait for one of yours to finish"
                ));
            }
            if all >= MAX_EXPORTS_AT_ONCE {
                return full(format!(
                    "at most {MAX_EXPORTS_AT_ONCE} exports run at once on this server; try again when one has finished"
                ));
            }
            Ok(())
        })
    }
}

/// Free bytes of the volume holding `dir`.
pub(super) fn free_space(dir: &std::path::Path) -> Option<i64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    i64::try_from(st.blocks_available().saturating_mul(st.fragment_size())).ok()
}

/// Total bytes of the volume of `dir`.
pub(super) fn total_space(dir: &std::path::Path) -> Option<i64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    i64::try_from(st.blocks().saturating_mul(st.fragment_size())).ok()
}

/// Fails when the volume of `dir` has less than `floor` bytes free.
fn check_floor(dir: &std::path::Path, floor: i64) -> std::result::Result<(), String> {
    match free_space(dir) {
        Some(free) if free < floor => Err(format!(
            "the exports volume has {free} bytes free, below its floor of {floor} (the site's free-space floor, at least {EXPORT_FREE_FLOOR}): free space first"
        )),
        _ => Ok(()),
    }
}

/// What an export stream carries.
#[derive(Debug, Clone)]
pub enum ExportEvent {
    Progress { id: Uuid, state: ExportState, progress: f64, bytes: i64 },
    Chunk { offset: i64, data: Vec<u8> },
    Done(Box<ExportRow>),
}

/// An export as asked for.
#[derive(Debug, Clone, Default)]
pub struct ExportSpec {
    pub camera_id: String,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Fragmented MP4 rather than regular MP4.
    pub fragmented: bool,
    pub reason: String,
    pub case_id: String,
    pub stream_data: bool,
}

/// A playback grant.
#[derive(Debug, Clone)]
pub struct PlaybackTicket {
    pub token: String,
    pub expires: DateTime<Utc>,
    pub url: String,
}

/// The playback server's `/get` query for `path` over `[start, start + secs)`.
fn get_query(path: &str, start: DateTime<Utc>, secs: f64, fragmented: bool) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("path", path)
        .append_pair("start", &start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .append_pair("duration", &format!("{secs:.3}"))
        .append_pair("format", if fragmented { "fmp4" } else { "mp4" })
        .finish()
}

/// Recorded media of `segments` inside `[from, to)`, in microseconds.
fn media_within(segments: &[crate::store::recordings::SegmentEntry], from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    segments.iter().map(|s| (s.end().min(to) - s.start_time.max(from)).num_microseconds().unwrap_or(0).max(0)).sum()
}

impl RecordingApp {
    /// A token and URL to play a camera's recordings from MediaMTX's playback server.
    pub async fn playback_token(
        &self,
        call: &Call,
        camera_id: &str,
        start: Option<DateTime<Utc>>,
        duration: Option<(i64, i32)>,
        fragmented: bool,
        ttl: Option<(i64, i32)>,
    ) -> Result<PlaybackTicket> {
        let camera = parse_id("camera_id", camera_id)?;
        call.about("camera", &camera.to_string(), &camera.to_string());
        let start = start.ok_or_else(|| Error::invalid("start_time", "start_time is required"))?;
        let secs = match duration {
            Some((s, n)) if (s > 0 || n > 0) && s >= 0 && n >= 0 && s < 86_400 || (s == 86_400 && n == 0) => {
                s as f64 + f64::from(n) / 1e9
            }
            _ => return Err(Error::invalid("duration", "duration must be more than 0 and at most 24 h")),
        };
        let ttl = crate::media::requested_ttl(ttl)?;
        let end = start + chrono::Duration::microseconds((secs * 1e6) as i64);
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let user = p.user_id;
        let recorded = self
            .store
            .run(move |c| {
                authorize(c, &p, camera, Permission::RecordingRead, now, false)?;
                SegmentRow::overlapping(c, camera, start, end)
            })
            .await?;
        // The segment before the range counts only if it reaches into it (or is still being written).
        let in_range = |s: &crate::store::recordings::SegmentEntry| {
            s.end() > start || s.state == crate::domain::recording::SegmentState::Recording
        };
        if !recorded.iter().any(in_range) {
            return Err(Error::new(ErrorKind::FailedPrecondition, "nothing is recorded in that range"));
        }
        let Some(base) = &self.live.config.public_playback_url else {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                "playback is not offered: OPENNVR_MEDIAMTX_PUBLIC_PLAYBACK_URL is not set",
            ));
        };
        let path = path_name(camera);
        let (token, expires) = self.live.token(&path, &user.to_string(), "playback", ttl)?;
        Ok(PlaybackTicket { token, expires, url: format!("{base}/get?{}", get_query(&path, start, secs, fragmented)) })
    }

    /// Starts an export: checks, records it (with its reason, in the audit trail), then fetches
    /// the clip in a task that goes on if the caller leaves. The stream carries progress, the
    /// bytes (if asked), and the finished export last.
    pub async fn export_clip(&self, call: &Call, spec: ExportSpec) -> Result<mpsc::Receiver<Result<ExportEvent>>> {
        let camera = parse_id("camera_id", &spec.camera_id)?;
        call.about("camera", &camera.to_string(), &camera.to_string());
        let from = spec.start.ok_or_else(|| Error::invalid("start_time", "start_time is required"))?;
        let to = spec.end.ok_or_else(|| Error::invalid("end_time", "end_time is required"))?;
        if to <= from {
            return Err(Error::invalid("end_time", "end_time must be after start_time"));
        }
        let max = chrono::Duration::from_std(self.live.config.export_max).unwrap_or(chrono::Duration::hours(4));
        if to - from > max {
            return Err(Error::invalid(
                "end_time",
                format!("an export covers at most {} s (OPENNVR_EXPORT_MAX_SECS)", max.num_seconds()),
            ));
        }
        let reason = spec.reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(Error::invalid("reason", "reason is required (at most 2000 characters)"));
        }
        let case_id = spec.case_id.trim().to_owned();
        if case_id.chars().count() > 200 {
            return Err(Error::invalid("case_id", "case_id is at most 200 characters"));
        }
        let base = self.live.config.playback_url.clone();
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let turn = self.running_exports.start(p.user_id)?;
        tokio::fs::create_dir_all(&self.exports_dir).await.map_err(Error::internal)?;
        let exports_dir = self.exports_dir.clone();
        // The site's share is taken of the exports volume itself.
        let total = total_space(&exports_dir);
        let id = Uuid::new_v4();
        let row = ExportRow {
            id,
            camera_id: camera,
            start_time: from,
            end_time: to,
            format: if spec.fragmented { ExportFormat::Fmp4 } else { ExportFormat::Mp4 },
            state: ExportState::Running,
            reason: reason.clone(),
            case_id: case_id.clone(),
            creator_user_id: Some(p.user_id),
            created_at: now,
            finished_at: None,
            expire_at: None,
            size_bytes: 0,
            sha256: None,
            error: String::new(),
            media_duration_us: 0,
            file_name: format!("opennvr-{}-{}.mp4", &camera.simple().to_string()[..8], from.format("%Y%m%dT%H%M%SZ")),
        };
        let mut record = call
            .record("export", &id.to_string())
            .detail("reason", reason)
            .detail("case_id", case_id)
            .detail("start_time", from.to_rfc3339())
            .detail("end_time", to.to_rfc3339());
        record.camera_id = camera.to_string();
        let row = call
            .audited(&self.store, now, record, move |c, _| {
                authorize(c, &p, camera, Permission::RecordingExport, now, false)?;
                let Some(base) = base else {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        "exports are not offered: OPENNVR_MEDIAMTX_PLAYBACK_URL is not set",
                    ));
                };
                let recorded = SegmentRow::overlapping(c, camera, from, to)?;
                let media = media_within(&recorded, from, to);
                if media == 0 {
                    return Err(Error::new(ErrorKind::FailedPrecondition, "nothing is recorded in that range"));
                }
                // The disk keeps its free-space floor: an export never fills it.
                let site = crate::store::recordings::SiteRetention::get(c)?;
                let floor = super::retention::free_floor(&site, total).unwrap_or(0).max(EXPORT_FREE_FLOOR);
                check_floor(&exports_dir, floor).map_err(|e| Error::new(ErrorKind::ResourceExhausted, e))?;
                let row = ExportRow { media_duration_us: media, ..row };
                row.insert(c)?;
                Ok((row, base, floor))
            })
            .await?;
        let (row, base, floor) = row;
        let (tx, rx) = mpsc::channel(8);
        let app = self.clone();
        tokio::spawn(async move {
            let _turn = turn;
            app.run_export(row, base, floor, spec.stream_data, tx).await
        });
        Ok(rx)
    }

    fn export_file(&self, id: Uuid) -> std::path::PathBuf {
        self.exports_dir.join(format!("{id}.mp4"))
    }

    /// Fetches the clip into its file, then finishes the record. Messages to a caller who left are
    /// dropped; the export itself goes on.
    async fn run_export(
        &self,
        row: ExportRow,
        base: String,
        floor: i64,
        stream_data: bool,
        tx: mpsc::Sender<Result<ExportEvent>>,
    ) {
        let id = row.id;
        let progress =
            |state: ExportState, progress: f64, bytes: i64| ExportEvent::Progress { id, state, progress, bytes };
        let _ = tx.send(Ok(progress(ExportState::Running, 0.0, 0))).await;
        let outcome = self.fetch_clip(&row, &base, floor, &tx, stream_data).await;
        let now = self.clock.now();
        let keep = chrono::Duration::from_std(self.live.config.export_keep).unwrap_or(chrono::Duration::days(7));
        let result = match &outcome {
            Ok((size, sha)) => Ok((*size, sha.clone(), now + keep)),
            Err(e) => {
                let _ = tokio::fs::remove_file(self.export_file(id)).await;
                Err(e.clone())
            }
        };
        let finished = self.store.run(move |c| ExportRow::finish(c, id, result, now)).await;
        let row = match (finished, outcome) {
            (Ok(row), Ok(_)) => row,
            (Ok(_), Err(e)) => {
                tracing::warn!(export = %id, error = %e, "export failed");
                let _ = tx.send(Err(Error::new(ErrorKind::Unavailable, format!("export failed: {e}")))).await;
                return;
            }
            // The record is gone (the export was deleted while running): so is its file.
            (Err(e), _) => {
                let _ = tokio::fs::remove_file(self.export_file(id)).await;
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if !stream_data {
            let _ = tx.send(Ok(progress(ExportState::Succeeded, 1.0, row.size_bytes))).await;
        }
        let _ = tx.send(Ok(ExportEvent::Done(Box::new(row)))).await;
    }

    /// Streams the clip from the playback server into the export's file and, with `stream_data`, to
    /// the caller as it arrives (a caller who left no longer gets it; the file is still written).
    /// Returns its size and hash. It fails — and its caller removes the partial file — when the
    /// clip outgrows OPENNVR_EXPORT_MAX_BYTES, the volume falls below `floor` free bytes, or the
    /// playback server falls silent.
    async fn fetch_clip(
        &self,
        row: &ExportRow,
        base: &str,
        floor: i64,
        tx: &mpsc::Sender<Result<ExportEvent>>,
        stream_data: bool,
    ) -> std::result::Result<(i64, Vec<u8>), String> {
        let path = path_name(row.camera_id);
        let secs = (row.end_time - row.start_time).num_microseconds().unwrap_or(0) as f64 / 1e6;
        let (token, _) = self
            .live
            .token(&path, "opennvr-server", "playback", Some(chrono::Duration::hours(1)))
            .map_err(|e| e.to_string())?;
        let url = format!("{base}/get?{}", get_query(&path, row.start_time, secs, row.format == ExportFormat::Fmp4));
        let http = reqwest::Client::builder()
            .connect_timeout(PLAYBACK_CONNECT)
            .read_timeout(PLAYBACK_SILENCE)
            .build()
            .map_err(|e| e.to_string())?;
        let mut resp = http.get(url).bearer_auth(token).send().await.map_err(|e| {
            format!("the playback server is unreachable ({})", if e.is_timeout() { "timed out" } else { "no answer" })
        })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(format!(
                "the playback server answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        tokio::fs::create_dir_all(&self.exports_dir).await.map_err(|e| e.to_string())?;
        let mut file = tokio::fs::File::create(self.export_file(row.id)).await.map_err(|e| e.to_string())?;
        let mut hash = sha2::Sha256::new();
        let mut size = 0i64;
        let mut streaming = stream_data;
        let cap = i64::try_from(self.live.config.export_max_bytes).unwrap_or(i64::MAX);
        let mut checked_at = 0i64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            let why = if e.is_timeout() { "fell silent" } else { "stopped" };
            format!("the playback server {why} mid-clip")
        })? {
            if size + chunk.len() as i64 > cap {
                return Err(format!(
                    "the clip is larger than the export limit of {cap} bytes (OPENNVR_EXPORT_MAX_BYTES)"
                ));
            }
            if size + chunk.len() as i64 - checked_at >= FREE_CHECK_EVERY {
                check_floor(&self.exports_dir, floor)?;
                checked_at = size;
            }
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| e.to_string())?;
            if streaming {
                // A caller who stops reading does not hold the export (or its place) up: after a
                // while the bytes go to the file only, and the caller can download it later.
                let chunk = ExportEvent::Chunk { offset: size, data: chunk.to_vec() };
                if !matches!(tokio::time::timeout(STALLED_READER, tx.send(Ok(chunk))).await, Ok(Ok(()))) {
                    streaming = false;
                }
            } else {
                let _ = tx.try_send(Ok(ExportEvent::Progress {
                    id: row.id,
                    state: ExportState::Running,
                    progress: 0.5,
                    bytes: size + chunk.len() as i64,
                }));
            }
            size += chunk.len() as i64;
        }
        file.sync_all().await.map_err(|e| e.to_string())?;
        if size == 0 {
            return Err("the playback server sent no media".into());
        }
        Ok((size, hash.finalize().to_vec()))
    }

    /// Sends an export's file from `offset` in chunks; Err when the receiver left or reading failed.
    async fn send_file(
        &self,
        id: Uuid,
        offset: i64,
        tx: &mpsc::Sender<Result<ExportEvent>>,
    ) -> std::result::Result<(), ()> {
        let mut file = match tokio::fs::File::open(self.export_file(id)).await {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(Error::internal(e))).await;
                return Err(());
            }
        };
        if file.seek(std::io::SeekFrom::Start(u64::try_from(offset).unwrap_or(0))).await.is_err() {
            return Err(());
        }
        let mut at = offset;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match file.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(Error::internal(e))).await;
                    return Err(());
                }
            };
            buf.truncate(n);
            if tx.send(Ok(ExportEvent::Chunk { offset: at, data: buf })).await.is_err() {
                return Err(());
            }
            at += n as i64;
        }
    }

    /// An export the caller may see (its camera visible with recording.export).
    async fn visible_export(&self, call: &Call, id: &str) -> Result<ExportRow> {
        let id = parse_id("export_id", id)?;
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        self.store
            .run(move |c| {
                let not_found = || Error::new(ErrorKind::NotFound, format!("export {id} not found"));
                let row = ExportRow::find(c, id)?.ok_or_else(not_found)?;
                // Exports of deleted cameras stay visible to administrators only.
                authorize(c, &p, row.camera_id, Permission::RecordingExport, now, false)
                    .map_err(|e| if e.kind() == ErrorKind::PermissionDenied { e } else { not_found() })?;
                Ok(row)
            })
            .await
    }

    /// One export.
    pub async fn get_export(&self, call: &Call, id: &str) -> Result<ExportRow> {
        self.visible_export(call, id).await
    }

    /// Exports newest first, of cameras the caller may export.
    pub async fn list_exports(
        &self,
        call: &Call,
        filter: (&str, &str, &str),
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<ExportRow>, String)> {
        let (camera_id, case_id, creator_id) = filter;
        let p = call.principal()?.clone();
        p.require(Permission::RecordingExport)?;
        let camera = if camera_id.is_empty() { None } else { Some(parse_id("camera_id", camera_id)?) };
        let creator = if creator_id.is_empty() { None } else { Some(parse_id("creator_user_id", creator_id)?) };
        let case = (!case_id.is_empty()).then(|| case_id.to_owned());
        let page = PageRequest::new(page_size, page_token, &format!("{camera_id}/{case_id}/{creator_id}"))?;
        let after = page.after_time_and_id()?;
        let now = self.clock.now();
        let limit = page.size;
        // Only exports of cameras the caller may export: a grant to watch a camera does not show
        // who exported its footage.
        let rows = self
            .store
            .run(move |c| {
                let visible = super::authorizer::visible_for(c, &p, Permission::RecordingExport, now)?;
                ExportRow::page(c, visible, camera, case, creator, after, limit)
            })
            .await?;
        let last = rows.last().map(|r| super::time_and_id(r.created_at, r.id));
        let token = page.next_token(rows.len(), last.as_deref());
        Ok((rows, token))
    }

    /// Streams a finished export's file from `offset`.
    pub async fn download_export(
        &self,
        call: &Call,
        id: &str,
        offset: i64,
    ) -> Result<mpsc::Receiver<Result<ExportEvent>>> {
        let row = self.visible_export(call, id).await?;
        if row.state != ExportState::Succeeded || row.expire_at.is_some_and(|e| e <= self.clock.now()) {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("export {} has no file to download ({})", row.id, row.state.stored_name()),
            ));
        }
        if offset < 0 || offset > row.size_bytes {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!("offset must lie within the file's {} bytes", row.size_bytes),
            ));
        }
        let (tx, rx) = mpsc::channel(4);
        let app = self.clone();
        tokio::spawn(async move {
            let _ = app.send_file(row.id, offset, &tx).await;
        });
        Ok(rx)
    }

    /// Deletes an export's file and record.
    pub async fn delete_export(&self, call: &Call, id: &str) -> Result<()> {
        let row = self.visible_export(call, id).await?;
        call.about("export", &row.id.to_string(), &row.camera_id.to_string());
        let record = call.record("export", &row.id.to_string());
        let now = self.clock.now();
        let id = row.id;
        call.audited(&self.store, now, record, move |c, _| {
            ExportRow::delete(c, id)?;
            Ok(())
        })
        .await?;
        let _ = tokio::fs::remove_file(self.export_file(id)).await;
        Ok(())
    }

    /// Exports a stop interrupted are failed (at start), and their partial files removed.
    pub async fn recover_exports(&self) -> Result<usize> {
        let now = self.clock.now();
        let failed = self.store.run(move |c| ExportRow::fail_running(c, now)).await?;
        // Their partial files go with them.
        for id in &failed {
            let _ = tokio::fs::remove_file(self.export_file(*id)).await;
        }
        Ok(failed.len())
    }

    /// Removes expired export files (their records stay, marked expired).
    pub async fn expire_exports(&self) -> Result<usize> {
        let now = self.clock.now();
        let due = self.store.run(move |c| ExportRow::expired(c, now)).await?;
        for row in &due {
            let _ = tokio::fs::remove_file(self.export_file(row.id)).await;
            let id = row.id;
            self.store.run(move |c| ExportRow::mark_expired(c, id)).await?;
        }
        Ok(due.len())
    }
}
