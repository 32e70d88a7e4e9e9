//! One camera's motion detector as the router runs it: every frame of the camera's motion source is
//! reduced and fed to the [`Detector`]; the frame of an episode's peak is kept; an episode's start
//! is noted in `motion_open` (retention keeps that footage), and its end is stored in one
//! transaction — the MOTION event, its snapshot, and the note removed — then announced.
use super::router::Frame;
use crate::bus::EventBus;
use crate::domain::event::{EventKind, SiteEvent};
use crate::domain::motion::{Detector, Episode, Grey, MotionSettings, Step};
use crate::store::Store;
use crate::store::snapshots::{self, SnapshotRow};
use prometheus_client::metrics::counter::Counter;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The built-in motion detectors' counters: the frame router increments them, `/metrics` shows
/// them.
#[derive(Clone, Default)]
pub struct MotionMetrics {
    /// Frames analysed per camera, and the server time that took (decoding and comparing), in
    /// seconds.
    pub frames: prometheus_client::metrics::family::Family<CameraLabels, Counter>,
    pub seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Episodes stored.
    pub episodes: Counter,
    /// Frames of motion-gated bindings not sent to their adapter (no motion then).
    pub gated: Counter,
}

/// The label of a camera's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct CameraLabels {
    pub camera_id: String,
}

/// Cameras whose detector reports an episode under way (gated bindings send frames only then).
pub type Moving = Arc<Mutex<HashSet<Uuid>>>;

/// A camera's detector with what it needs to store its episodes.
pub struct MotionTracker {
    camera: Uuid,
    detector: Detector,
    /// The last frames (as many as an episode needs to start): the peak may be the first of them.
    recent: VecDeque<Frame>,
    keep: usize,
    /// The frame of the peak of the episode under way.
    best: Option<Frame>,
    /// The start of the episode under way when noting it failed (retried with every frame: until
    /// noted, retention does not know to keep its footage).
    unnoted: Option<chrono::DateTime<chrono::Utc>>,
    store: Store,
    events: EventBus,
    moving: Moving,
}

impl MotionTracker {
    /// A tracker of `camera` with checked `settings`.
    pub fn new(camera: Uuid, settings: MotionSettings, store: Store, events: EventBus, moving: Moving) -> Self {
        let keep = settings.start_frames.max(1) as usize;
        MotionTracker {
            camera,
            detector: Detector::new(settings),
            recent: VecDeque::new(),
            keep,
            best: None,
            unnoted: None,
            store,
            events,
            moving,
        }
    }

    /// The camera.
    pub fn camera(&self) -> Uuid {
        self.camera
    }

    fn set_moving(&self, on: bool) {
        let mut m = self.moving.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            m.insert(self.camera);
        } else {
            m.remove(&self.camera);
        }
    }

    /// Takes one frame; a frame that cannot be decoded is skipped. Returns the time spent on the
    /// frame itself (decoding and comparing), and whether an episode ended with it, for the
    /// metrics.
    pub async fn frame(&mut self, frame: Frame) -> (std::time::Duration, bool) {
        let began = std::time::Instant::now();
        let grey = match Grey::from_jpeg(&frame.jpeg) {
            Ok(g) => g,
            Err(e) => {
                tracing::debug!(camera = %self.camera, error = %e.message(), "motion: frame skipped");
                return (began.elapsed(), false);
            }
        };
        let step = self.detector.feed(grey, frame.time);
        let spent = began.elapsed();
        if let Some(since) = self.unnoted.take().filter(|_| self.detector.moving()) {
            self.note_start(since, frame.time).await;
        }
        self.recent.push_back(frame.clone());
        while self.recent.len() > self.keep {
            self.recent.pop_front();
        }
        let ended = matches!(step, Step::Ended(_));
        match step {
            Step::Still => {}
            Step::Started { since } => {
                self.set_moving(true);
                let now = frame.time;
                self.best = self.recent.iter().find(|f| f.time == since).cloned().or(Some(frame));
                self.note_start(since, now).await;
            }
            Step::Moving { peak } => {
                if peak {
                    self.best = Some(frame);
                }
            }
            Step::Ended(episode) => {
                let best = self.best.take();
                self.store_episode(episode, best).await;
                if self.detector.moving() {
                    // Cut at its longest: the next episode began with this frame.
                    self.best = Some(frame.clone());
                    self.note_start(frame.time, frame.time).await;
                } else {
                    self.set_moving(false);
                }
            }
        }
        (spent, ended)
    }

    /// Notes that an episode is under way since `since` (retention keeps its footage); a failure is
    /// retried with the next frame.
    async fn note_start(&mut self, since: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) {
        let camera = self.camera;
        if let Err(e) = self.store.run(move |c| snapshots::motion_started(c, camera, since, now)).await {
            tracing::warn!(%camera, error = %e.message(), "motion: cannot note an episode under way; retrying");
            self.unnoted = Some(since);
        }
    }

    /// Ends the episode under way, if any (the detector stops or its settings change).
    pub async fn finish(&mut self) {
        if let Some(episode) = self.detector.finish() {
            let best = self.best.take();
            self.store_episode(episode, best).await;
        }
        self.set_moving(false);
    }

    /// Stores `episode` as a MOTION event with the snapshot of `best`, and forgets it was under way,
    /// in one transaction; then announces it.
    async fn store_episode(&self, episode: Episode, best: Option<Frame>) {
        let camera = self.camera;
        let event = SiteEvent::new(episode.start, Some(camera), EventKind::Motion(episode));
        let snapshot = best.map(|f| SnapshotRow {
            id: Uuid::new_v4(),
            event_id: event.id,
            camera_id: camera,
            time: f.time,
            jpeg: f.jpeg.as_ref().clone(),
            box_x: episode.peak_box.x,
            box_y: episode.peak_box.y,
            box_width: episode.peak_box.width,
            box_height: episode.peak_box.height,
            label: "motion".to_owned(),
            score: episode.peak_area,
        });
        let stored = event.clone();
        let outcome = self
            .store
            .transaction(move |c| {
                crate::store::events::append(c, &stored)?;
                if let Some(s) = &snapshot {
                    s.insert(c)?;
                }
                snapshots::motion_ended(c, camera)
            })
            .await;
        match outcome {
            Ok(()) => self.events.announce_stored(event),
            Err(e) => tracing::warn!(%camera, error = %e.message(), "motion: cannot store an episode"),
        }
    }
}
