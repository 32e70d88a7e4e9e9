//! The reconciler: one serialised worker that makes MediaMTX's path configs match the cameras in the
//! database, over the pure desired-state diff of `media::desired`. It runs as soon as a camera
//! changes, when MediaMTX restarted (`/v3/info.started` changed: its API-made config is gone), and
//! periodically. While MediaMTX is unreachable it backs off; camera writes still succeed and
//! converge when it returns. Beside it, the status watcher publishes cameras going online and
//! offline and ends viewer sessions whose rights are gone.
use super::cameras::CameraApp;
use crate::clock::SharedClock;
use crate::domain::camera::{CameraState, PATH_PREFIX, SourceUrl, path_name};
use crate::domain::event::{EventKind, SiteEvent};
use crate::media::MediaConfig;
use crate::media::desired::{self, PathWrite, scrub};
use crate::media::mediamtx::{MediaMtx, MtxError};
use crate::media::plane::{MediaPlane, Report};
use crate::store::cameras::CameraRow;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest wait between attempts while MediaMTX is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

    /// One convergence: reads the cameras and MediaMTX's path configs, writes the differences.
    pub async fn converge(&self) -> std::result::Result<Report, MtxError> {
        let generation = self.plane.generation();
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
            match desired::desired(&self.config, row, password.as_deref(), address) {
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
                wanted.insert(name, desired::retained(&self.config));
            }
        }
        let actual: BTreeMap<String, Map<String, Value>> =
            self.mtx.path_configs().await?.into_iter().filter(|(n, _)| n.starts_with(PATH_PREFIX)).collect();
        let mut report = Report::default();
        let mut writes = 0u64;
        for write in desired::diff(&wanted, &actual, &keep) {
            writes += 1;
            let (name, step) = match &write {
                PathWrite::Add(name, conf) => (name, self.mtx.replace(name, conf).await.map(|()| report.added += 1)),
                PathWrite::Patch(name, only) => (name, self.mtx.patch(name, only).await.map(|()| report.patched += 1)),
                PathWrite::Replace(name, conf) => {
                    (name, self.mtx.replace(name, conf).await.map(|()| report.replaced += 1))
                }
                PathWrite::Delete(name) => match self.mtx.delete(name).await {
                    Ok(()) | Err(MtxError::NotFound(_)) => {
                        report.deleted += 1;
                        (name, Ok(()))
                    }
                    Err(e) => return Err(e),
                },
            };
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
        // Each camera's trouble is logged by its name when it starts or changes, not at every pass.
        let before = self.plane.state().failed;
        for (path, reason) in failed.iter().filter(|(p, r)| before.get(*p) != Some(*r)) {
            let row = rows.iter().find(|r| path_name(r.id) == *path);
            let (camera, id) = row.map(|r| (r.name.clone(), r.id.to_string())).unwrap_or_default();
            tracing::warn!(%camera, camera_id = %id, %reason, "MediaMTX does not hold this camera as wanted");
        }
        let now = self.clock.now();
        self.plane.update(|s| {
            s.reachable = true;
            s.last_sync = Some(now);
            // A change that came in during this pass is applied by the next one.
            let newer = self.plane.generation() != generation;
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
                    _ = self.plane.changes() => break,
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
                _ = self.plane.poked() => {}
            }
            let Ok(Some(paths)) = self.plane.runtimes().await else { continue };
            if paths.iter().any(|p| p.name.starts_with(PATH_PREFIX) && p.readers > 0) {
                self.end_unwanted_viewers().await;
            }
            let now = tokio::time::Instant::now();
            let mut rates = std::collections::HashMap::new();
            for p in &paths {
                if let Some((bytes, at)) = counters.insert(p.name.clone(), (p.inbound_bytes, now)) {
                    let secs = now.duration_since(at).as_secs_f64();
                    // Counters restart with the path: a drop is no traffic measure.
                    if secs > 0.0 && p.inbound_bytes >= bytes {
                        rates.insert(p.name.clone(), ((p.inbound_bytes - bytes) as f64 * 8.0 / secs) as i64);
                    }
                }
            }
            self.plane.set_bitrates(rates);
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
