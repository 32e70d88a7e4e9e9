//! Live site events: watch streams over the event bus that deliver to each caller only the events
//! of cameras they may see. A slow watcher is told how many events it lost; it never slows the server.
use super::{Call, Principal};
use crate::bus::EventBus;
use crate::clock::SharedClock;
use crate::domain::Role;
use crate::domain::event::{EventKind, SiteEvent};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// How long a watcher trusts what it learnt of a camera's visibility (after a revoked grant, the
/// camera's events stop within this time).
const VISIBILITY_TTL: Duration = Duration::from_secs(5);
/// A heartbeat after this long without anything to send.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The kinds of event a watcher can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    CameraOnline,
    CameraOffline,
    CameraCreated,
    CameraUpdated,
    CameraDeleted,
    MediaServerRestarted,
    MediaServerUnavailable,
    RecordingStarted,
    RecordingStopped,
    IdsAlert,
    AdapterHealth,
    Detection,
}

impl Topic {
    /// The topic of `e`.
    pub fn of(e: &SiteEvent) -> Topic {
        use crate::domain::camera::CameraState;
        use crate::domain::event::ConfigChange;
        match &e.kind {
            EventKind::CameraState { state: CameraState::Online, .. } => Topic::CameraOnline,
            EventKind::CameraState { .. } => Topic::CameraOffline,
            EventKind::CameraConfig { change: ConfigChange::Created, .. } => Topic::CameraCreated,
            EventKind::CameraConfig { change: ConfigChange::Updated, .. } => Topic::CameraUpdated,
            EventKind::CameraConfig { change: ConfigChange::Deleted, .. } => Topic::CameraDeleted,
            EventKind::MediaServer { restarted: true, .. } => Topic::MediaServerRestarted,
            EventKind::MediaServer { .. } => Topic::MediaServerUnavailable,
            EventKind::Recording { recording: true, .. } => Topic::RecordingStarted,
            EventKind::Recording { .. } => Topic::RecordingStopped,
            EventKind::IdsAlert { .. } => Topic::IdsAlert,
            EventKind::AdapterHealth { .. } => Topic::AdapterHealth,
            EventKind::Detections { .. } => Topic::Detection,
        }
    }

    /// Whether watching this topic on a camera needs recording.read there (camera.read otherwise).
    pub fn about_recordings(self) -> bool {
        matches!(self, Topic::RecordingStarted | Topic::RecordingStopped)
    }
}

/// What a watch stream carries.
#[derive(Debug, Clone)]
pub enum WatchItem {
    Event(Arc<SiteEvent>),
    Heartbeat,
    Lagged(u64),
}

/// Event use cases.
#[derive(Clone)]
pub struct EventsApp {
    pub store: Store,
    pub clock: SharedClock,
    pub bus: EventBus,
}

impl EventsApp {
    /// Streams events from now on, of `camera_ids` only if given (site-wide events are then left
    /// out) and of `topics` only if given; events of cameras the caller may not see never reach it.
    /// A resume point needs the stored history, which is not kept yet: any token is expired.
    pub async fn watch(
        &self,
        call: &Call,
        camera_ids: &[String],
        topics: Vec<Topic>,
        resume_token: &str,
    ) -> Result<mpsc::Receiver<WatchItem>> {
        if !resume_token.is_empty() {
            return Err(Error::new(ErrorKind::OutOfRange, "resume_token is older than the kept event history")
                .with_reason(reason::RESUME_POINT_EXPIRED));
        }
        let p = call.principal()?.clone();
        let cameras = super::parse_ids("camera_ids", camera_ids)?;
        if !cameras.is_empty() {
            let (who, wanted, now) = (p.clone(), cameras.clone(), self.clock.now());
            self.store.run(move |c| super::authorizer::authorize_all(c, &who, &wanted, None, now).map(drop)).await?;
        }
        let mut rx = self.bus.subscribe();
        let (tx, out) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            // What this watcher may see, remembered for a few seconds: a burst of events costs the
            // database one lookup per camera, not one per event.
            let mut seen: std::collections::HashMap<(Uuid, bool), (bool, tokio::time::Instant)> = Default::default();
            loop {
                let next = tokio::time::timeout(HEARTBEAT, rx.recv()).await;
                let item = match next {
                    Err(_) => WatchItem::Heartbeat,
                    Ok(Err(broadcast::error::RecvError::Lagged(n))) => WatchItem::Lagged(n),
                    Ok(Err(broadcast::error::RecvError::Closed)) => return,
                    Ok(Ok(e)) => {
                        if !topics.is_empty() && !topics.contains(&Topic::of(&e)) {
                            continue;
                        }
                        // Adapter health and detections: for who may read inference.
                        if matches!(e.kind, EventKind::AdapterHealth { .. } | EventKind::Detections { .. })
                            && !p.allows(crate::domain::Permission::InferenceRead)
                        {
                            continue;
                        }
                        if let EventKind::IdsAlert { cameras: linked, .. } = &e.kind {
                            // For who may read IDS alerts (of the cameras they asked for, if they
                            // asked).
                            if !p.allows(crate::domain::Permission::IdsRead) {
                                continue;
                            }
                            if !cameras.is_empty() && !linked.iter().any(|c| cameras.contains(c)) {
                                continue;
                            }
                            let mut shown = Vec::with_capacity(linked.len());
                            for c in linked {
                                let fresh = seen
                                    .get(&(*c, false))
                                    .filter(|(_, at)| at.elapsed() < VISIBILITY_TTL)
                                    .map(|(v, _)| *v);
                                let v = match fresh {
                                    Some(v) => v,
                                    None => {
                                        let v = this.may_see_as(&p, *c, false).await.unwrap_or(false);
                                        seen.insert((*c, false), (v, tokio::time::Instant::now()));
                                        v
                                    }
                                };
                                if v {
                                    shown.push(*c);
                                }
                            }
                            // Every alert reaches who may read alerts (linking one to a camera
                            // never hides it), naming only the cameras they may see.
                            let e = if shown.len() < linked.len() {
                                let mut only = (*e).clone();
                                only.camera_id = shown.first().copied();
                                if let EventKind::IdsAlert { cameras, .. } = &mut only.kind {
                                    *cameras = shown;
                                }
                                Arc::new(only)
                            } else {
                                e
                            };
                            if tx.send(WatchItem::Event(e)).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        match e.camera_id {
                            None if !cameras.is_empty() => continue,
                            Some(c) if !cameras.is_empty() && !cameras.contains(&c) => continue,
                            Some(_) if e.also_for.contains(&p.user_id) => WatchItem::Event(e),
                            Some(c) => {
                                let recordings = Topic::of(&e).about_recordings();
                                let fresh = seen
                                    .get(&(c, recordings))
                                    .filter(|(_, at)| at.elapsed() < VISIBILITY_TTL)
                                    .map(|(v, _)| *v);
                                let visible = match fresh {
                                    Some(v) => v,
                                    None => {
                                        let v = this.may_see_as(&p, c, recordings).await.unwrap_or(false);
                                        seen.insert((c, recordings), (v, tokio::time::Instant::now()));
                                        v
                                    }
                                };
                                if !visible {
                                    continue;
                                }
                                WatchItem::Event(e)
                            }
                            None => WatchItem::Event(e),
                        }
                    }
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        Ok(out)
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
