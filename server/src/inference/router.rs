//! Routing camera frames to adapters: one supervised frame source (an `ffmpeg` child) per active
//! binding, kept in line with the database; every frame goes into its adapter's bulkhead, and what
//! comes back is filtered by the binding, stored and published. The router never waits on an
//! adapter: a frame the bulkhead refuses is counted there and forgotten.
use super::AdapterRegistry;
use super::bulkhead::{Job, Refusal};
use super::frames::{self, FrameSourceConfig, JpegSplitter};
use super::motion::MotionTracker;
use crate::bus::EventBus;
use crate::clock::SharedClock;
use crate::domain::camera::path_name;
use crate::domain::event::{EventKind, SiteEvent};
use crate::domain::inference::{Detection, Finding, Keep, Region};
use crate::domain::motion::MotionSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::media::{LiveView, SERVER_READER};
use crate::store::Store;
use crate::store::inference::{BindingRow, DetectionRow};
use crate::store::snapshots::SnapshotRow;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often the router re-reads the active bindings without being told of a change.
const RESYNC_EVERY: Duration = Duration::from_secs(10);
/// Restart delays of a failing frame source: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A source that ran this long is considered healthy again (its backoff starts over).
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// Frames' detections waiting to be stored at most; beyond, they are lost (and counted).
const WRITE_QUEUE: usize = 4096;
/// Frames' detections stored in one statement at most.
const WRITE_BATCH: usize = 256;
/// One-off frame grabs (`ffmpeg` children) running at once at most.
const GRABS: usize = 2;
/// How long a one-off frame grab may take.
const GRAB_TIMEOUT: Duration = Duration::from_secs(15);
/// A kept frame younger than this serves as "the latest frame" of its camera.
const FRESH: Duration = Duration::from_secs(10);

/// One decoded frame of a camera.
#[derive(Debug, Clone)]
pub struct Frame {
    pub jpeg: Arc<Vec<u8>>,
    /// When it was taken (as the server received it).
    pub time: DateTime<Utc>,
    received: Instant,
}

impl Frame {
    /// A frame received now, taken at `time` (kept to the microsecond, as the database keeps it).
    pub fn new(jpeg: Vec<u8>, time: DateTime<Utc>) -> Frame {
        let time = DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time);
        Frame { jpeg: Arc::new(jpeg), time, received: Instant::now() }
    }
}

/// Counters of the router since start.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Frames decoded by the frame sources (or fed in).
    pub frames: AtomicU64,
    /// Frames handed to an adapter's bulkhead.
    pub routed: AtomicU64,
    /// Frames an adapter answered, and the detections kept of them.
    pub answered: AtomicU64,
    pub detections: AtomicU64,
    /// Frames whose detections were lost: the write queue was full or the database refused them.
    pub lost: AtomicU64,
    /// Frame source starts after the first (crashes, lost streams).
    pub restarts: AtomicU64,
    /// Frames handed to an adapter whose outcome (detections, refusal or failure) was handled.
    pub settled: AtomicU64,
    /// Server time spent routing frames outside the adapter calls (handing them in, taking the
    /// answer, filtering, queueing for the writer), in total: divided by `settled`, per frame.
    pub overhead_ns: AtomicU64,
    /// Time the writer spent storing and publishing detections (commits included), in total, and
    /// in how many batches.
    pub store_ns: AtomicU64,
    pub writes: AtomicU64,
}

/// What a frame source feeds: an adapter binding, or a camera's motion detector.
#[derive(Debug, Clone)]
enum Work {
    Route(Route),
    Motion { camera: Uuid, version: i64, settings: MotionSettings },
}

impl Work {
    fn camera(&self) -> Uuid {
        match self {
            Work::Route(r) => r.camera_id,
            Work::Motion { camera, .. } => *camera,
        }
    }

    fn version(&self) -> i64 {
        match self {
            Work::Route(r) => r.version,
            Work::Motion { version, .. } => *version,
        }
    }

    /// What it feeds, for the logs.
    fn name(&self) -> String {
        match self {
            Work::Route(r) => format!("adapter {}", r.adapter_id),
            Work::Motion { .. } => "motion".to_owned(),
        }
    }

    fn interval(&self) -> Duration {
        match self {
            Work::Route(r) => r.interval,
            Work::Motion { settings, .. } => Duration::from_millis(u64::from(settings.frame_interval_ms)),
        }
    }
}

/// Which frame source: a binding's, or a camera's motion detector's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    Binding(Uuid),
    Motion(Uuid),
}

/// One binding as the router runs it.
#[derive(Debug, Clone)]
pub struct Route {
    pub binding_id: Uuid,
    pub camera_id: Uuid,
    pub adapter_id: Uuid,
    /// The binding's task; empty: the adapter's first.
    pub task: String,
    pub interval: Duration,
    pub keep: Keep,
    /// Frames go to the adapter only while the camera's motion detector reports motion.
    pub motion_gated: bool,
    version: i64,
}

impl Route {
    /// The route of `row` (an empty task: the adapter's first, resolved when a frame is sent).
    pub fn of(row: &BindingRow) -> Route {
        let regions: Vec<Region> = serde_json::from_value(row.regions.clone()).unwrap_or_default();
        Route {
            binding_id: row.id,
            camera_id: row.camera_id,
            adapter_id: row.adapter_id,
            task: row.task.clone(),
            interval: Duration::from_millis(u64::try_from(row.frame_interval_ms).unwrap_or(1000)),
            keep: Keep { labels: row.labels.clone(), min_confidence: row.min_confidence, regions },
            motion_gated: row.motion_gated,
            version: row.version,
        }
    }

    /// A route of `camera` to `adapter` for `task` that keeps everything (no binding).
    pub fn unfiltered(camera: Uuid, adapter: Uuid, task: String) -> Route {
        Route {
            binding_id: Uuid::nil(),
            camera_id: camera,
            adapter_id: adapter,
            task,
            interval: Duration::from_secs(1),
            keep: Keep::default(),
            motion_gated: false,
            version: 0,
        }
    }

    /// The detections of `found` this route keeps, for a frame taken at `time` (`stored`: with ids).
    pub fn kept(&self, found: &[Finding], time: DateTime<Utc>, stored: bool) -> Vec<Detection> {
        found
            .iter()
            .filter(|f| self.keep.keeps(f))
            .map(|f| Detection {
                id: stored.then(Uuid::new_v4),
                camera_id: Some(self.camera_id),
                adapter_id: self.adapter_id,
                binding_id: stored.then_some(self.binding_id),
                task: self.task.clone(),
                frame_time: Some(time),
                found: f.clone(),
            })
            .collect()
    }
}

/// The detections one frame kept, waiting to be stored and published.
struct Kept {
    route: Route,
    time: DateTime<Utc>,
    jpeg: Arc<Vec<u8>>,
    detections: Vec<Detection>,
}

/// A detection track seen lately: the best frame of it so far (the most confident sighting).
struct Track {
    camera: Uuid,
    event_id: Uuid,
    time: DateTime<Utc>,
    jpeg: Arc<Vec<u8>>,
    found: Finding,
    last_seen: Instant,
}

/// A track not seen for this long has ended: its snapshot is stored.
const TRACK_END: Duration = Duration::from_secs(10);
/// Tracks followed at once at most (a new one beyond is not given a snapshot).
const MAX_TRACKS: usize = 1024;

struct Running {
    version: i64,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    registry: AdapterRegistry,
    events: EventBus,
    live: LiveView,
    source: FrameSourceConfig,
    running: Mutex<HashMap<SourceKey, Running>>,
    /// Cameras whose motion detector reports an episode under way.
    moving: super::motion::Moving,
    motion_metrics: super::motion::MotionMetrics,
    latest: Mutex<HashMap<Uuid, Frame>>,
    /// Detection tracks by (binding, track id or label).
    tracks: Mutex<HashMap<(Uuid, String), Track>>,
    changed: Notify,
    counters: RouteCounters,
    /// Kept detections on their way to the writer ([`FrameRouter::run`] takes the receiver).
    kept: tokio::sync::mpsc::Sender<Kept>,
    kept_rx: Mutex<Option<tokio::sync::mpsc::Receiver<Kept>>>,
    /// One-off frame grabs running at once at most (each is an `ffmpeg`).
    grabs: tokio::sync::Semaphore,
    stopping: std::sync::atomic::AtomicBool,
}

/// The frame router. Cheap to clone.
#[derive(Clone)]
pub struct FrameRouter {
    inner: Arc<Inner>,
}

impl FrameRouter {
    /// A router with no frame source running yet ([`FrameRouter::run`] starts them).
    pub fn new(
        store: Store,
        clock: SharedClock,
        registry: AdapterRegistry,
        events: EventBus,
        live: LiveView,
        source: FrameSourceConfig,
        motion_metrics: super::motion::MotionMetrics,
    ) -> FrameRouter {
        let (kept, kept_rx) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        FrameRouter {
            inner: Arc::new(Inner {
                store,
                clock,
                registry,
                events,
                live,
                source,
                running: Mutex::default(),
                moving: super::motion::Moving::default(),
                motion_metrics,
                latest: Mutex::default(),
                tracks: Mutex::default(),
                changed: Notify::new(),
                counters: RouteCounters::default(),
                kept,
                kept_rx: Mutex::new(Some(kept_rx)),
                grabs: tokio::sync::Semaphore::new(GRABS),
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Asks the router to take up a change of bindings, adapters or cameras at once.
    pub fn poke(&self) {
        self.inner.changed.notify_one();
    }

    /// The router's counters.
    pub fn counters(&self) -> &RouteCounters {
        &self.inner.counters
    }

    /// Starts the frame sources of new bindings, restarts those of changed ones and stops those of
    /// bindings gone, disabled, or whose camera or adapter is.
    pub async fn sync(&self) -> Result<()> {
        let (active, motion) = self
            .inner
            .store
            .run(|c| Ok((BindingRow::active(c)?, crate::store::cameras::CameraRow::with_motion(c)?)))
            .await?;
        let mut wanted: HashMap<SourceKey, Work> =
            active.iter().map(|b| (SourceKey::Binding(b.id), Work::Route(Route::of(b)))).collect();
        for (camera, version, settings) in motion {
            match serde_json::from_value::<MotionSettings>(settings) {
                Ok(settings) => {
                    wanted.insert(SourceKey::Motion(camera), Work::Motion { camera, version, settings });
                }
                Err(e) => tracing::warn!(%camera, error = %e, "motion settings cannot be read; detector not started"),
            }
        }
        // Latest frames only of cameras still bound, or fresh.
        self.inner
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|camera, f| wanted.values().any(|w| w.camera() == *camera) || f.received.elapsed() < FRESH);
        let mut stopped = Vec::new();
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
            if self.inner.stopping.load(Ordering::Relaxed) {
                return Ok(()); // the server is stopping: start nothing new
            }
            let gone: Vec<SourceKey> = running
                .iter()
                .filter(|(id, r)| wanted.get(*id).is_none_or(|w| w.version() != r.version))
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                if let Some(r) = running.remove(&id) {
                    let _ = r.stop.send(true);
                    stopped.push(r.task);
                }
            }
            for (id, work) in wanted {
                if running.contains_key(&id) {
                    continue;
                }
                let (stop, rx) = watch::channel(false);
                let version = work.version();
                let task = tokio::spawn(self.clone().source(work, rx));
                running.insert(id, Running { version, stop, task });
            }
        }
        for t in stopped {
            let _ = t.await;
        }
        Ok(())
    }

    /// Keeps the frame sources in line with the database until the task is dropped: on every
    /// change the apps report, every camera change, and every few seconds.
    pub async fn run(self) {
        let writer = self.inner.kept_rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        match writer {
            Some(rx) => {
                tokio::join!(self.follow_bindings(), self.write(rx), self.end_tracks());
            }
            None => self.follow_bindings().await,
        }
    }

    /// Keeps the frame sources in line with the bindings, re-reading them on a change or every
    /// few seconds.
    async fn follow_bindings(&self) {
        use tokio::sync::broadcast::error::RecvError;
        let mut bus = self.inner.events.subscribe();
        loop {
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e.message(), "cannot load the adapter bindings");
            }
            let deadline = tokio::time::Instant::now() + RESYNC_EVERY;
            loop {
                tokio::select! {
                    _ = self.inner.changed.notified() => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                    e = bus.recv() => match e {
                        Ok(e) if matches!(e.kind, EventKind::CameraConfig { .. }) => break,
                        Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => {
                            tokio::time::sleep_until(deadline).await;
                            break;
                        }
                    },
                }
            }
        }
    }

    /// Stops every frame source and waits until their `ffmpeg` children are gone; none starts
    /// after.
    pub async fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        let all: Vec<Running> =
            self.inner.running.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, r)| r).collect();
        for r in &all {
            let _ = r.stop.send(true);
        }
        for r in all {
            let _ = r.task.await;
        }
        // Let the writer store what it was handed (for a few seconds at most).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.inner.kept.capacity() < self.inner.kept.max_capacity() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.close_tracks(true).await;
    }

    /// Stops every frame source at once, without waiting (their children are killed as their
    /// handles drop).
    pub fn abort(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        for (_, r) in self.inner.running.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            r.task.abort();
        }
    }

    /// Runs one frame source until told to stop: starts `ffmpeg`, routes its frames to the binding's
    /// adapter or the camera's motion detector, restarts it with backoff when it ends. A motion
    /// episode under way when it stops is stored.
    async fn source(self, work: Work, mut stop: watch::Receiver<bool>) {
        let camera = work.camera();
        let path = path_name(camera);
        let mut tracker = match &work {
            Work::Motion { settings, .. } => Some(MotionTracker::new(
                camera,
                settings.clone(),
                self.inner.store.clone(),
                self.inner.events.clone(),
                self.inner.moving.clone(),
            )),
            Work::Route(_) => None,
        };
        self.run_source(&work, &path, &mut tracker, &mut stop).await;
        if let Some(t) = tracker.as_mut() {
            t.finish().await;
        }
    }

    /// [`FrameRouter::source`]'s restart loop.
    async fn run_source(
        &self,
        work: &Work,
        path: &str,
        tracker: &mut Option<MotionTracker>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let mut backoff = BACKOFF_FIRST;
        let mut first = true;
        loop {
            if *stop.borrow() {
                return;
            }
            if !first {
                self.inner.counters.restarts.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let started = Instant::now();
            let ended = match self.stream(work, path, tracker, stop).await {
                Ok(true) => return,
                Ok(false) => "the stream ended".to_owned(),
                Err(e) => e.message().to_owned(),
            };
            if started.elapsed() >= HEALTHY_RUN {
                backoff = BACKOFF_FIRST;
            }
            tracing::warn!(
                camera = %work.camera(), source = %work.name(), error = %ended, retry_in = ?backoff,
                "frame source stopped; restarting"
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One run of `ffmpeg` for `work`: `Ok(true)` when told to stop, `Ok(false)` when the stream
    /// ended, an error (never holding the token) when it could not run.
    async fn stream(
        &self,
        work: &Work,
        path: &str,
        tracker: &mut Option<MotionTracker>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool> {
        if self.inner.source.rtsp_url.is_none() {
            // No media plane to read from: wait for a change.
            let _ = stop.changed().await;
            return Ok(true);
        }
        let (mut child, mut out, said) = self.start_ffmpeg(path, Some(work.interval()))?;
        let mut splitter = JpegSplitter::default();
        let mut buf = vec![0u8; 256 << 10];
        let stopped = loop {
            tokio::select! {
                _ = stop.changed() => break true,
                n = out.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => {
                        for jpeg in splitter.push(&buf[..n]) {
                            let frame = Frame::new(jpeg, self.inner.clock.now());
                            match (work, tracker.as_mut()) {
                                (Work::Route(route), _) => self.deliver(route, frame),
                                (Work::Motion { .. }, Some(t)) => self.analyse(t, frame).await,
                                (Work::Motion { .. }, None) => {}
                            }
                        }
                    }
                },
            }
        };
        let _ = child.start_kill();
        let status = child.wait().await;
        let said = said.await.unwrap_or_default();
        if stopped {
            return Ok(true);
        }
        match status {
            Ok(s) if !said.is_empty() => Err(Error::new(ErrorKind::Unavailable, format!("ffmpeg {s}: {said}"))),
            _ => Ok(false),
        }
    }

    /// Starts `ffmpeg` on the restream of `path` with a fresh read token (one frame per `interval`,
    /// or a single frame): the child, its stdout, and what it will have said on stderr (the token
    /// blotted out).
    fn start_ffmpeg(
        &self,
        path: &str,
        interval: Option<Duration>,
    ) -> Result<(tokio::process::Child, tokio::process::ChildStdout, JoinHandle<String>)> {
        let Some(base) = self.inner.source.rtsp_url.as_deref() else {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                "no live frames: the media server's RTSP address is not configured (OPENNVR_MEDIAMTX_RTSP_URL)",
            ));
        };
        let (token, _) = self.inner.live.token(path, SERVER_READER, "read", Some(crate::media::VIEWER_TTL_MIN))?;
        let url = frames::stream_url(base, path, &token);
        let mut child = frames::spawn(&self.inner.source.ffmpeg, &url, interval).map_err(|e| {
            Error::new(ErrorKind::Unavailable, format!("cannot start {}: {e}", self.inner.source.ffmpeg.display()))
        })?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::internal("ffmpeg started without pipes"));
        };
        let said = tokio::spawn(async move { frames::stderr_tail(err, &token).await });
        Ok((child, out, said))
    }

    /// Feeds one frame to a camera's motion detector (it is also the camera's latest frame).
    async fn analyse(&self, tracker: &mut MotionTracker, frame: Frame) {
        let c = &self.inner.counters;
        c.frames.fetch_add(1, Ordering::Relaxed);
        self.inner.latest.lock().unwrap_or_else(|e| e.into_inner()).insert(tracker.camera(), frame.clone());
        let (spent, ended) = tracker.frame(frame).await;
        let m = &self.inner.motion_metrics;
        m.frames.get_or_create(&super::motion::CameraLabels { camera_id: tracker.camera().to_string() }).inc();
        m.seconds.inc_by(spent.as_secs_f64());
        if ended {
            m.episodes.inc();
        }
    }

    /// Whether `camera`'s motion detector reports an episode under way.
    pub fn moving(&self, camera: Uuid) -> bool {
        self.inner.moving.lock().unwrap_or_else(|e| e.into_inner()).contains(&camera)
    }

    /// Hands one frame of `route`'s camera to its adapter; what comes back is filtered, stored and
    /// published by a task of its own (the caller never waits on the adapter). A motion-gated
    /// route's frame goes only while its camera moves.
    pub fn deliver(&self, route: &Route, frame: Frame) {
        let began = Instant::now();
        let c = &self.inner.counters;
        c.frames.fetch_add(1, Ordering::Relaxed);
        self.inner.latest.lock().unwrap_or_else(|e| e.into_inner()).insert(route.camera_id, frame.clone());
        if route.motion_gated && !self.moving(route.camera_id) {
            self.inner.motion_metrics.gated.inc();
            return;
        }
        let Some(rt) = self.inner.registry.get(route.adapter_id).filter(|rt| rt.enabled) else { return };
        // A binding without a task runs the adapter's first, as the adapter last said it.
        let mut route = route.clone();
        route.task = rt.task_or_first(&route.task);
        if route.task.is_empty() {
            return; // not probed yet: nothing to ask it
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        rt.bulkhead.submit(Job {
            jpeg: frame.jpeg.as_ref().clone(),
            task: route.task.clone(),
            camera_id: Some(route.camera_id),
            frame_time: Some(frame.time),
            reply,
        });
        c.routed.fetch_add(1, Ordering::Relaxed);
        let handed_in = began.elapsed();
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = answer.await;
            let back = Instant::now();
            this.inner.registry.report(&rt);
            if let Ok(Ok(found)) = outcome {
                this.keep(&route, &found, &frame);
            } else if let Ok(Err(Refusal::Call(e))) = outcome {
                tracing::debug!(adapter = %rt.name, error = %e, "adapter call failed");
            }
            let spent = handed_in + back.elapsed();
            this.inner.counters.overhead_ns.fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
            this.inner.counters.settled.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Queues what `route` keeps of `found` in `frame` for the writer.
    fn keep(&self, route: &Route, found: &[Finding], frame: &Frame) {
        let c = &self.inner.counters;
        c.answered.fetch_add(1, Ordering::Relaxed);
        let time = frame.time;
        let detections = route.kept(found, time, true);
        if detections.is_empty() {
            return;
        }
        let kept = Kept { route: route.clone(), time, jpeg: frame.jpeg.clone(), detections };
        if self.inner.kept.try_send(kept).is_err() {
            c.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(camera = %route.camera_id, "detections lost: the database cannot keep up");
        }
    }

    /// Stores kept detections in batches (whatever waits, up to a batch, in one statement: one
    /// commit for many frames under load, no added delay when idle), then publishes them.
    async fn write(&self, mut rx: tokio::sync::mpsc::Receiver<Kept>) {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            let began = Instant::now();
            let frames = std::mem::take(&mut batch);
            let stored = self.store_all(frames).await;
            let c = &self.inner.counters;
            for (k, event) in stored {
                c.detections.fetch_add(k.detections.len() as u64, Ordering::Relaxed);
                self.follow_tracks(&k, event.id);
                self.inner.events.announce_stored(event);
            }
            c.store_ns.fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
            c.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Follows the tracks `k`'s detections belong to (by track id, else by label): a sighting more
    /// confident than the track's best so far makes its frame the track's snapshot.
    fn follow_tracks(&self, k: &Kept, event_id: Uuid) {
        let mut tracks = self.inner.tracks.lock().unwrap_or_else(|e| e.into_inner());
        for d in &k.detections {
            let f = &d.found;
            let id =
                if f.track_id.is_empty() { format!("label:{}", f.label.to_lowercase()) } else { f.track_id.clone() };
            let key = (k.route.binding_id, id);
            if !tracks.contains_key(&key) && tracks.len() >= MAX_TRACKS {
                continue;
            }
            let track = tracks.entry(key).or_insert_with(|| Track {
                camera: k.route.camera_id,
                event_id,
                time: k.time,
                jpeg: k.jpeg.clone(),
                found: f.clone(),
                last_seen: Instant::now(),
            });
            track.last_seen = Instant::now();
            if f.confidence > track.found.confidence {
                (track.event_id, track.time, track.jpeg, track.found) = (event_id, k.time, k.jpeg.clone(), f.clone());
            }
        }
    }

    /// Stores the snapshots of tracks ended (not seen for [`TRACK_END`]), or of all (`all`).
    async fn close_tracks(&self, all: bool) {
        let ended: Vec<SnapshotRow> = {
            let mut tracks = self.inner.tracks.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<(Uuid, String)> = tracks
                .iter()
                .filter(|(_, t)| all || t.last_seen.elapsed() >= TRACK_END)
                .map(|(k, _)| k.clone())
                .collect();
            gone.into_iter()
                .filter_map(|k| tracks.remove(&k))
                .map(|t| SnapshotRow {
                    id: Uuid::new_v4(),
                    event_id: t.event_id,
                    camera_id: t.camera,
                    time: t.time,
                    jpeg: t.jpeg.as_ref().clone(),
                    box_x: t.found.x,
                    box_y: t.found.y,
                    box_width: t.found.width,
                    box_height: t.found.height,
                    label: t.found.label,
                    score: t.found.confidence,
                })
                .collect()
        };
        if ended.is_empty() {
            return;
        }
        if let Err(e) = self.inner.store.run(move |c| SnapshotRow::insert_of_stored_events(c, ended)).await {
            tracing::warn!(error = %e.message(), "cannot store detection snapshots");
        }
    }

    /// Stores the snapshots of ended tracks every few seconds, until the task is dropped.
    async fn end_tracks(&self) {
        loop {
            tokio::time::sleep(TRACK_END / 4).await;
            self.close_tracks(false).await;
        }
    }

    /// Stores the detections of `frames` and their events (one per frame) in one transaction;
    /// when that fails (a camera deleted meanwhile, say), frame by frame, so that one bad frame
    /// loses only its own. What was stored, each frame with its event.
    async fn store_all(&self, frames: Vec<Kept>) -> Vec<(Kept, SiteEvent)> {
        let now = self.inner.clock.now();
        let rows = |k: &Kept| k.detections.iter().filter_map(|d| DetectionRow::of(d, now)).collect::<Vec<_>>();
        let event = |k: &Kept| {
            SiteEvent::new(
                k.time,
                Some(k.route.camera_id),
                EventKind::Detections {
                    adapter_id: k.route.adapter_id,
                    binding_id: k.route.binding_id,
                    frame_time: k.time,
                    detections: k.detections.clone(),
                },
            )
        };
        let write = |rows: Vec<DetectionRow>, events: Vec<SiteEvent>| {
            self.inner.store.transaction(move |c| {
                DetectionRow::insert_all(c, &rows)?;
                crate::store::events::append_all(c, &events)?;
                Ok(events)
            })
        };
        let all: Vec<DetectionRow> = frames.iter().flat_map(rows).collect();
        if let Ok(events) = write(all, frames.iter().map(event).collect()).await {
            return frames.into_iter().zip(events).collect();
        }
        let mut stored = Vec::with_capacity(frames.len());
        for k in frames {
            match write(rows(&k), vec![event(&k)]).await {
                Ok(mut events) => stored.extend(events.pop().map(|e| (k, e))),
                Err(e) => {
                    // The detections are lost, not the router.
                    self.inner.counters.lost.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(camera = %k.route.camera_id, error = %e.message(), "cannot store detections");
                }
            }
        }
        stored
    }

    /// The latest frame of `camera`: the one a running source decoded in the last seconds, or one
    /// grabbed now from its restream.
    pub async fn latest_frame(&self, camera: Uuid) -> Result<Frame> {
        let kept = self.inner.latest.lock().unwrap_or_else(|e| e.into_inner()).get(&camera).cloned();
        if let Some(f) = kept.filter(|f| f.received.elapsed() < FRESH) {
            return Ok(f);
        }
        let Ok(_slot) = self.inner.grabs.try_acquire() else {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!("{GRABS} frame grabs are running already: retry in a few seconds"),
            ));
        };
        let (mut child, mut out, said) = self.start_ffmpeg(&path_name(camera), None)?;
        let mut all = Vec::new();
        let read = tokio::time::timeout(GRAB_TIMEOUT, out.read_to_end(&mut all)).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        let said = said.await.unwrap_or_default();
        let image = JpegSplitter::default().push(&all).into_iter().next();
        match (read, image) {
            (Ok(_), Some(jpeg)) => {
                let frame = Frame::new(jpeg, self.inner.clock.now());
                // Calls for the same camera in the next seconds share it.
                self.inner.latest.lock().unwrap_or_else(|e| e.into_inner()).insert(camera, frame.clone());
                Ok(frame)
            }
            (Err(_), _) => Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("camera {camera} gave no frame within {} s: is it online?", GRAB_TIMEOUT.as_secs()),
            )),
            (Ok(_), None) => Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("camera {camera} gave no frame: is it online? ({said})"),
            )),
        }
    }
}
