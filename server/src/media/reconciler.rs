//! The reconciler: one serialised worker that makes MediaMTX's path configs match the cameras in the
//! database. It runs as soon as a camera changes, when MediaMTX restarted (`/v3/info.started`
//! changed: its API-made config is gone), and periodically. It diffs before writing and never writes
//! a no-op (every write reloads MediaMTX's configuration), patches only the recording keys when only
//! they changed (no stream drop), replaces the entry otherwise, deletes only paths with OpenNVR's
//! prefix that no camera wants, and never touches other paths. While MediaMTX is unreachable it
//! backs off; camera writes still succeed and converge when it returns.
use super::MediaConfig;
use super::mediamtx::{MediaMtx, MtxError};
use crate::app::cameras::CameraApp;
use crate::clock::SharedClock;
use crate::domain::camera::{CameraState, PATH_PREFIX, SourceUrl, path_name};
use crate::domain::event::{EventKind, SiteEvent};
use crate::error::Result;
use crate::store::cameras::CameraRow;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Keys that MediaMTX hot-reloads: changing only these does not drop the stream.
const HOT_KEYS: [&str; 5] = ["record", "recordPath", "recordFormat", "recordSegmentDuration", "recordDeleteAfter"];

/// A `/v3/paths/list` answer and when it came.
type Listing = (Vec<super::mediamtx::RuntimePath>, tokio::time::Instant);

/// How old a runtime listing may be for status answers.
const RECENT: Duration = Duration::from_secs(3);

/// Longest wait between attempts while MediaMTX is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the media plane is doing, as the API, `/readyz` and `/metrics` report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncState {
    /// Whether a media plane is configured at all.
    pub configured: bool,
    /// Whether the last attempt reached MediaMTX.
    pub reachable: bool,
    /// End of the last complete convergence.
    pub last_sync: Option<DateTime<Utc>>,
    /// Changes known but not yet applied (cameras whose path differs or is missing).
    pub pending: usize,
    pub last_error: Option<String>,
    /// MediaMTX's `started` as last seen.
    pub started: Option<String>,
    pub version: Option<String>,
    /// Config writes sent since start.
    pub writes: u64,
    /// Paths per camera that could not be applied, with MediaMTX's reason.
    pub failed: BTreeMap<String, String>,
}

/// What one convergence did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub added: usize,
    pub patched: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// Handle to the media plane: wakes the reconciler, reads its state, asks MediaMTX about paths.
#[derive(Clone, Default)]
pub struct MediaPlane {
    wake: Arc<Notify>,
    state: Arc<Mutex<SyncState>>,
    client: Option<MediaMtx>,
    /// Paths seen available at least once since start (so that "offline" differs from "connecting").
    seen_online: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Inbound bitrate per path (bits per second), from the status watcher's polls.
    rates: Arc<Mutex<std::collections::HashMap<String, i64>>>,
    /// The last answer of `/v3/paths/list` and when it came (the status watcher refreshes it).
    last_paths: Arc<Mutex<Option<Listing>>>,
    /// Wakes the status watcher at once (a MediaMTX availability hook).
    poked: Arc<Notify>,
    /// Counts camera changes, so that a change made during a convergence stays pending after it.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl MediaPlane {
    /// The plane of `client` (`None`: no MediaMTX configured).
    pub fn new(client: Option<MediaMtx>) -> MediaPlane {
        let plane = MediaPlane { client, ..MediaPlane::default() };
        let configured = plane.client.is_some();
        plane.update(|s| s.configured = configured);
        plane
    }

    /// The runtime state of every path, as MediaMTX reports it now; `None` without a media plane.
    pub async fn runtimes(&self) -> std::result::Result<Option<Vec<super::mediamtx::RuntimePath>>, MtxError> {
        let Some(client) = &self.client else { return Ok(None) };
        let paths = client.paths().await?;
        if let Ok(mut last) = self.last_paths.lock() {
            *last = Some((paths.clone(), tokio::time::Instant::now()));
        }
        if let Ok(mut seen) = self.seen_online.lock() {
            seen.extend(paths.iter().filter(|p| p.available).map(|p| p.name.clone()));
        }
        Ok(Some(paths))
    }

    /// Look at MediaMTX now rather than at the next poll: it says a path's availability changed, or
    /// someone's rights shrank (their open viewing sessions are judged again).
    pub fn poke(&self) {
        self.poked.notify_one();
    }

    /// The inbound bitrate of `path` over the last poll (bits per second; 0 when unknown).
    pub fn bitrate(&self, path: &str) -> i64 {
        self.rates.lock().ok().and_then(|r| r.get(path).copied()).unwrap_or(0)
    }

    /// The runtime paths as seen within the last few seconds (the status watcher polls every 2 s
    /// and on hooks), asking MediaMTX only when nothing that recent is known: status RPCs do not each
    /// cost MediaMTX a full listing.
    pub async fn recent_runtimes(&self) -> std::result::Result<Option<Vec<super::mediamtx::RuntimePath>>, MtxError> {
        if self.client.is_none() {
            return Ok(None);
        }
        let cached = self
            .last_paths
            .lock()
            .ok()
            .and_then(|l| l.as_ref().filter(|(_, at)| at.elapsed() < RECENT).map(|(p, _)| p.clone()));
        match cached {
            Some(paths) if self.state().reachable => Ok(Some(paths)),
            _ => self.runtimes().await,
        }
    }

    /// Whether `path` was ever seen available since start.
    pub fn seen_online(&self, path: &str) -> bool {
        self.seen_online.lock().map(|s| s.contains(path)).unwrap_or(false)
    }

    /// A camera changed: converge now.
    pub fn changed(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut s) = self.state.lock() {
            s.pending = s.pending.max(1);
        }
        self.wake.notify_one();
    }

    /// The current state.
    pub fn state(&self) -> SyncState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut SyncState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }
}

/// The worker.
#[derive(Clone)]
pub struct Reconciler {
    pub plane: MediaPlane,
    mtx: MediaMtx,
    cameras: CameraApp,
    config: MediaConfig,
    clock: SharedClock,
}

fn media_event(now: DateTime<Utc>, restarted: bool, version: &str, started: &str, error: &str) -> SiteEvent {
    SiteEvent::new(
        now,
        None,
        EventKind::MediaServer {
            restarted,
            version: version.to_owned(),
            started: started.to_owned(),
            error: error.to_owned(),
        },
    )
}

/// Why a camera's source has no checked address now.
enum Placement {
    /// The name does not resolve (maybe for a moment): leave MediaMTX as it is.
    Unresolved(String),
    /// It resolves outside the camera networks: the camera must not be streamed.
    Outside(String),
}

/// `message` without any of `secrets` (MediaMTX may quote a source URL, credentials included).
fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_owned();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

/// A Go duration string (`"60s"`, `"1m0s"`, `"1h"`, `"1d"`, `""`) in milliseconds.
fn go_millis(s: &str) -> Option<i64> {
    if s.is_empty() || s == "0" {
        return Some(0);
    }
    let (mut total, mut number, mut rest) = (0f64, String::new(), s);
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        number.push_str(&rest[..digits]);
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor = match unit {
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 6e4,
            "h" => 3.6e6,
            "d" => 8.64e7,
            "us" | "µs" => 1e-3,
            "ns" => 1e-6,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * factor;
        number.clear();
    }
    Some(total.round() as i64)
}

/// Whether a MediaMTX value equals the desired one (durations compared by length, zero durations
/// may come back as `""`).
fn same(key: &str, actual: Option<&Value>, desired: &Value) -> bool {
    match (actual, desired) {
        (Some(Value::String(a)), Value::String(d)) if key.ends_with("Duration") || key.ends_with("After") => {
            go_millis(a).is_some() && go_millis(a) == go_millis(d)
        }
        (Some(a), d) => a == d,
        (None, _) => false,
    }
}

impl Reconciler {
    /// The reconciler of `config` (whose `api_url` must be set).
    pub fn new(
        mtx: MediaMtx,
        cameras: CameraApp,
        config: MediaConfig,
        clock: SharedClock,
        plane: MediaPlane,
    ) -> Reconciler {
        plane.update(|s| s.configured = true);
        Reconciler { plane, mtx, cameras, config, clock }
    }

    /// The path of a camera out of service that still has footage: no source (`publisher`, and
    /// OpenNVR never issues publish tokens), no recording, the recording layout kept.
    pub fn retained(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("source".into(), json!("publisher"));
        m.insert("record".into(), json!(false));
        m.insert("recordPath".into(), json!(self.config.record_path));
        m.insert("recordFormat".into(), json!("fmp4"));
        m.insert("recordDeleteAfter".into(), json!("0s"));
        m
    }

    /// The path config MediaMTX should hold for `camera`. The credentials are put into the source URL
    /// here, in memory, and only ever sent to MediaMTX.
    /// `address` is the camera's checked address: MediaMTX connects to it, never to a fresh
    /// resolution of the name.
    pub fn desired(
        &self,
        camera: &CameraRow,
        password: Option<&str>,
        address: std::net::IpAddr,
    ) -> Result<Map<String, Value>> {
        let source = SourceUrl::parse("source_url", &camera.source_url)?
            .at(address)
            .with_credentials(&camera.username, password.unwrap_or(""));
        let hook = |event: &str| format!("{} {event}", self.config.hook_command);
        let conf = json!({
            "source": source,
            "sourceOnDemand": false,
            "rtspTransport": camera.transport,
            "record": camera.recording_enabled,
            "recordPath": self.config.record_path,
            "recordFormat": "fmp4",
            "recordSegmentDuration": format!("{}s", camera.segment_seconds),
            "recordDeleteAfter": "0s",
            "runOnRecordSegmentCreate": hook("segment-create"),
            "runOnRecordSegmentComplete": hook("segment-complete"),
            "runOnAvailable": hook("available"),
            "runOnUnavailable": hook("unavailable"),
        });
        match conf {
            Value::Object(m) => Ok(m),
            _ => Err(crate::error::Error::internal("path config is not an object")),
        }
    }

    /// One convergence: reads the cameras and MediaMTX's path configs, writes the differences.
    pub async fn converge(&self) -> std::result::Result<Report, MtxError> {
        let generation = self.plane.generation.load(std::sync::atomic::Ordering::SeqCst);
        let info = self.mtx.info().await?;
        let restarted = self.plane.state().started.as_ref().is_some_and(|s| *s != info.started);
        if restarted {
            tracing::info!(version = %info.version, "MediaMTX restarted: re-applying every camera");
            self.cameras.events.publish(media_event(self.clock.now(), true, &info.version, &info.started, ""));
        }
        let rows = self
            .cameras
            .store
            .run(CameraRow::all)
            .await
            .map_err(|e| MtxError::Failed(format!("reading cameras: {e}")))?;
        let mut wanted: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut failed = BTreeMap::new();
        // Paths left as they are: cameras whose config cannot be built now (a secret that does not
        // open, a name that does not resolve) keep what MediaMTX has rather than losing their stream.
        let mut keep: Vec<String> = Vec::new();
        let mut secrets: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows.iter().filter(|r| r.enabled) {
            let name = path_name(row.id);
            let password = match self.cameras.password(row) {
                Ok(p) => p,
                Err(e) => {
                    failed.insert(name.clone(), e.to_string());
                    keep.push(name);
                    continue;
                }
            };
            let address = match self.address_of(row).await {
                Ok(a) => a,
                Err(Placement::Unresolved(e)) => {
                    failed.insert(name.clone(), e);
                    keep.push(name);
                    continue;
                }
                // Outside the camera networks (now): the camera leaves MediaMTX.
                Err(Placement::Outside(e)) => {
                    failed.insert(name, e);
                    continue;
                }
            };
            match self.desired(row, password.as_deref(), address) {
                Ok(c) => {
                    if let Some(p) = password.filter(|p| !p.is_empty()) {
                        let source = c.get("source").and_then(Value::as_str).unwrap_or("").to_owned();
                        let encoded: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
                        secrets.insert(name.clone(), vec![source, encoded, p]);
                    }
                    wanted.insert(name, c);
                }
                Err(e) => {
                    failed.insert(name.clone(), e.to_string());
                    keep.push(name);
                }
            }
        }
        // Cameras disabled or deleted that still have footage keep a path without a source, so that
        // MediaMTX can still find (and retention delete) their segments.
        let summaries = self
            .cameras
            .store
            .run(crate::store::recordings::RecordingSummary::all)
            .await
            .map_err(|e| MtxError::Failed(format!("reading recording totals: {e}")))?;
        for summary in summaries.iter().filter(|s| s.segments > 0) {
            let name = path_name(summary.camera_id);
            if !wanted.contains_key(&name) && !keep.contains(&name) {
                wanted.insert(name, self.retained());
            }
        }
        let actual: BTreeMap<String, Map<String, Value>> =
            self.mtx.path_configs().await?.into_iter().filter(|(n, _)| n.starts_with(PATH_PREFIX)).collect();
        let mut report = Report::default();
        let mut writes = 0u64;
        for (name, conf) in &wanted {
            let step = match actual.get(name) {
                None => self.mtx.replace(name, conf).await.map(|()| report.added += 1),
                Some(have) => {
                    let changed: Vec<&String> = conf.keys().filter(|k| !same(k, have.get(*k), &conf[*k])).collect();
                    if changed.is_empty() {
                        continue;
                    }
                    if changed.iter().all(|k| HOT_KEYS.contains(&k.as_str())) {
                        let only: Map<String, Value> =
                            changed.iter().map(|k| ((*k).clone(), conf[*k].clone())).collect();
                        self.mtx.patch(name, &only).await.map(|()| report.patched += 1)
                    } else {
                        self.mtx.replace(name, conf).await.map(|()| report.replaced += 1)
                    }
                }
            };
            writes += 1;
            match step {
                Ok(()) => {}
                // MediaMTX refused this camera's config: record it, carry on with the others.
                Err(MtxError::Rejected(e)) => {
                    report.failed += 1;
                    failed.insert(name.clone(), scrub(&e, secrets.get(name).map(Vec::as_slice).unwrap_or(&[])));
                }
                Err(e) => return Err(e),
            }
        }
        for name in actual.keys().filter(|n| !wanted.contains_key(*n) && !keep.contains(n)) {
            writes += 1;
            match self.mtx.delete(name).await {
                Ok(()) | Err(MtxError::NotFound(_)) => report.deleted += 1,
                Err(e) => return Err(e),
            }
        }
        let now = self.clock.now();
        self.plane.update(|s| {
            s.reachable = true;
            s.last_sync = Some(now);
            // A change that came in during this pass is applied by the next one.
            let newer = self.plane.generation.load(std::sync::atomic::Ordering::SeqCst) != generation;
            s.pending = failed.len() + usize::from(newer);
            // Plane-level only: a camera's own failure is in its status, seen by who may see it.
            s.last_error = None;
            s.started = Some(info.started.clone());
            s.version = Some(info.version.clone());
            s.writes += writes;
            s.failed = failed;
        });
        Ok(report)
    }

    /// The checked address of a camera's source: its literal IP, or its name resolved now; every
    /// address must lie in the camera networks.
    async fn address_of(&self, row: &CameraRow) -> std::result::Result<std::net::IpAddr, Placement> {
        let source = SourceUrl::parse("source_url", &row.source_url).map_err(|e| Placement::Outside(e.to_string()))?;
        match self.cameras.checked_addresses("source_url", &source).await {
            Ok(addrs) => addrs.first().map(|a| a.ip()).ok_or_else(|| Placement::Unresolved("no address".into())),
            Err(e) if e.message().contains("outside the camera networks") => {
                Err(Placement::Outside(e.message().to_owned()))
            }
            Err(e) => Err(Placement::Unresolved(e.message().to_owned())),
        }
    }

    /// Whether MediaMTX restarted since the last convergence (cheap: one `/v3/info`).
    async fn restarted(&self) -> bool {
        match self.mtx.info().await {
            Ok(info) => self.plane.state().started.is_some_and(|s| s != info.started),
            Err(_) => false,
        }
    }

    /// Runs until dropped: converges on a camera change, on a MediaMTX restart (checked four times a
    /// second)
    /// and every `sync_every`, backing off while MediaMTX is unreachable.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let next_full = match self.converge().await {
                Ok(report) => {
                    backoff = Duration::from_millis(500);
                    if report != Report::default() {
                        tracing::info!(?report, "MediaMTX converged");
                    }
                    tokio::time::Instant::now() + self.config.sync_every
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::warn!(error = %message, retry_in = ?backoff, "MediaMTX not converged");
                    let was = self.plane.state();
                    if matches!(e, MtxError::Unreachable(_)) && (was.reachable || was.last_sync.is_none()) {
                        let (version, started) = (was.version.unwrap_or_default(), was.started.unwrap_or_default());
                        self.cameras.events.publish(media_event(self.clock.now(), false, &version, &started, &message));
                    }
                    self.plane.update(|s| {
                        s.reachable = !matches!(e, MtxError::Unreachable(_));
                        s.last_error = Some(message);
                        s.pending = s.pending.max(1);
                    });
                    let next = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    next
                }
            };
            // Wait for a change, a restart, or the next period.
            loop {
                let tick = tokio::time::sleep(Duration::from_millis(250));
                tokio::select! {
                    _ = self.plane.wake.notified() => break,
                    _ = tokio::time::sleep_until(next_full) => break,
                    _ = tick => {
                        if self.plane.state().reachable && self.restarted().await {
                            break;
                        }
                    }
                }
            }
        }
    }
}

impl Reconciler {
    /// Ends the sessions of viewers who may no longer watch what they watch (their tokens outlive a
    /// revoked grant or a disabled user: MediaMTX checks a token only when a session opens). Runs
    /// with the status watcher, so within seconds of the change, and again for a viewer who reopens
    /// with a token that has not expired yet.
    async fn end_unwanted_viewers(&self) {
        let sessions = match self.mtx.viewer_sessions().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list MediaMTX's viewer sessions");
                return;
            }
        };
        let unwanted = match self.cameras.unwanted_viewers(sessions).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "cannot judge MediaMTX's viewer sessions");
                return;
            }
        };
        for (session, camera, reason) in unwanted {
            match self.mtx.kick(&session).await {
                Ok(()) => {
                    tracing::info!(session = %session.id, user = %session.user, %camera, reason, "viewer session ended");
                    if let Err(e) = self.cameras.viewer_ended(&session, camera, reason).await {
                        tracing::warn!(error = %e, "viewer session ended but not recorded in the audit trail");
                    }
                }
                Err(e) => tracing::warn!(error = %e, session = %session.id, "cannot end a viewer session"),
            }
        }
    }

    /// Publishes cameras going online and offline, as MediaMTX reports them (polled every 2 s).
    pub async fn watch_status(self) {
        let mut available: BTreeMap<String, bool> = BTreeMap::new();
        let mut counters: BTreeMap<String, (i64, tokio::time::Instant)> = BTreeMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = self.plane.poked.notified() => {}
            }
            let Ok(Some(paths)) = self.plane.runtimes().await else { continue };
            if paths.iter().any(|p| p.name.starts_with(PATH_PREFIX) && p.readers > 0) {
                self.end_unwanted_viewers().await;
            }
            let now = tokio::time::Instant::now();
            if let Ok(mut rates) = self.plane.rates.lock() {
                rates.clear();
                for p in &paths {
                    if let Some((bytes, at)) = counters.insert(p.name.clone(), (p.inbound_bytes, now)) {
                        let secs = now.duration_since(at).as_secs_f64();
                        // Counters restart with the path: a drop is no traffic measure.
                        if secs > 0.0 && p.inbound_bytes >= bytes {
                            rates.insert(p.name.clone(), ((p.inbound_bytes - bytes) as f64 * 8.0 / secs) as i64);
                        }
                    }
                }
            }
            for p in paths.iter().filter(|p| p.name.starts_with(PATH_PREFIX)) {
                let before = available.insert(p.name.clone(), p.available);
                let Some(camera) = uuid::Uuid::parse_str(&p.name[PATH_PREFIX.len()..]).ok() else { continue };
                if before.unwrap_or(false) == p.available {
                    continue;
                }
                let (state, previous) = if p.available {
                    (CameraState::Online, if before.is_some() { CameraState::Offline } else { CameraState::Connecting })
                } else {
                    (CameraState::Offline, CameraState::Online)
                };
                self.cameras.events.publish(SiteEvent::new(
                    self.clock.now(),
                    Some(camera),
                    EventKind::CameraState { state, previous, error: String::new() },
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_mediamtx_messages() {
        let secrets = vec!["rtsp://u:p%40ss@10.0.0.1/x".to_owned(), "p%40ss".to_owned(), "p@ss".to_owned()];
        let m = scrub("invalid source: 'rtsp://u:p%40ss@10.0.0.1/x' (p@ss)", &secrets);
        assert_eq!(m, "invalid source: '<redacted>' (<redacted>)");
    }

    #[test]
    fn durations_compare_by_length() {
        assert_eq!(go_millis("60s"), Some(60_000));
        assert_eq!(go_millis("1m0s"), Some(60_000));
        assert_eq!(go_millis("1h0m0s"), go_millis("3600s"));
        assert_eq!(go_millis(""), Some(0));
        assert_eq!(go_millis("0s"), Some(0));
        assert_eq!(go_millis("1d"), Some(86_400_000));
        assert_eq!(go_millis("5x"), None);
        assert!(same("recordSegmentDuration", Some(&json!("1m0s")), &json!("60s")));
        assert!(same("recordDeleteAfter", Some(&json!("")), &json!("0s")));
        assert!(!same("record", Some(&json!(false)), &json!(true)));
    }
}
