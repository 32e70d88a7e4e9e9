//! The recording watchdog: a camera that should record but produces no footage — unavailable in
//! MediaMTX, inbound bytes not growing, or no segment opened for twice its segment duration — is
//! reported once as stopped (`recording stalled`), and again as started when footage returns.
//! Judged on the server's own clock: when segments were reported, not the times in their names.
use super::recordings::RecordingApp;
use crate::domain::camera::path_name;
use crate::domain::event::{EventKind, SiteEvent};
use crate::error::Result;
use crate::store::cameras::CameraRow;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// How often the watchdog looks.
const PERIOD: Duration = Duration::from_secs(2);

/// What the watchdog remembers of one camera.
#[derive(Debug, Clone)]
struct Watch {
    /// Since when the camera should record (its grace period starts there).
    since: DateTime<Utc>,
    /// Last inbound byte count seen, and when it last grew.
    bytes: i64,
    grew: DateTime<Utc>,
    stalled: bool,
}

impl RecordingApp {
    /// Runs until dropped.
    pub async fn watchdog(self) {
        let mut watches: HashMap<Uuid, Watch> = HashMap::new();
        loop {
            tokio::time::sleep(PERIOD).await;
            if let Err(e) = self.watch_once(&mut watches).await {
                tracing::debug!(error = %e, "recording watchdog skipped a round");
            }
        }
    }

    async fn watch_once(&self, watches: &mut HashMap<Uuid, Watch>) -> Result<()> {
        let Ok(Some(runtimes)) = self.media.recent_runtimes().await else { return Ok(()) };
        let cameras: Vec<CameraRow> = self
            .store
            .run(|c| Ok(CameraRow::all(c)?.into_iter().filter(|r| r.enabled && r.recording_enabled).collect()))
            .await?;
        let reported = self.last_segment.lock().map(|m| m.clone()).unwrap_or_default();
        let now = self.clock.now();
        watches.retain(|id, _| cameras.iter().any(|c| c.id == *id));
        for camera in &cameras {
            let path = path_name(camera.id);
            let runtime = runtimes.iter().find(|r| r.name == path);
            let bytes = runtime.map(|r| r.inbound_bytes).unwrap_or(0);
            let w = watches.entry(camera.id).or_insert(Watch { since: now, bytes, grew: now, stalled: false });
            if bytes > w.bytes {
                w.grew = now;
            }
            w.bytes = bytes;
            let allowance = chrono::Duration::seconds(2 * i64::from(camera.segment_seconds));
            let last_footage = reported.get(&camera.id).map_or(w.since, |t| (*t).max(w.since));
            let stall = if !runtime.is_some_and(|r| r.available) {
                (now - w.since > allowance).then(|| "the camera is unavailable in MediaMTX".to_owned())
            } else if now - w.grew > allowance {
                Some(format!("no media has arrived for {} s", (now - w.grew).num_seconds()))
            } else if now - last_footage > allowance {
                Some(format!("no segment was opened for {} s", (now - last_footage).num_seconds()))
            } else {
                None
            };
            let (recording, reason) = match (&stall, w.stalled) {
                (Some(why), false) => (false, why.clone()),
                (None, true) => (true, "footage is being recorded again".to_owned()),
                _ => continue,
            };
            w.stalled = !recording;
            tracing::info!(camera = %camera.name, camera_id = %camera.id, recording, %reason, "recording watchdog");
            self.events.publish(SiteEvent::new(now, Some(camera.id), EventKind::Recording { recording, reason }));
        }
        Ok(())
    }
}
