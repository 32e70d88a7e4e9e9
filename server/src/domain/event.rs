//! What happens on the site, as events watchers receive: plain data.
use super::camera::CameraState;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A camera's configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfigChange {
    Created,
    Updated,
    Deleted,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A camera's source went up or down.
    CameraState { state: CameraState, previous: CameraState, error: String },
    /// A camera was created, changed or deleted.
    CameraConfig { change: ConfigChange, name: String, changed_fields: Vec<String>, actor_user_id: String },
    /// MediaMTX restarted (its API-made config was lost and is re-applied), or cannot be reached.
    MediaServer { restarted: bool, version: String, started: String, error: String },
    /// A camera that should record stopped producing footage (`recording` false), or footage came
    /// back (`recording` true); `reason` says what was seen.
    Recording { recording: bool, reason: String },
    /// The network IDS raised an alert (stored under `id`), about `cameras` if their addresses are
    /// in it.
    IdsAlert { id: Uuid, alert: Box<super::ids::EveAlert>, cameras: Vec<Uuid>, ingest_time: DateTime<Utc> },
    /// An adapter's health changed.
    AdapterHealth {
        adapter_id: Uuid,
        name: String,
        health: super::inference::Health,
        previous: super::inference::Health,
        circuit: super::inference::Circuit,
        error: String,
    },
    /// What one adapter found in one frame of the event's camera, after its binding's filters.
    Detections {
        adapter_id: Uuid,
        binding_id: Uuid,
        frame_time: DateTime<Utc>,
        detections: Vec<super::inference::Detection>,
    },
    /// A motion episode of the camera's built-in detector ended.
    Motion(super::motion::Episode),
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteEvent {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    /// The camera concerned; `None` for site-wide events.
    pub camera_id: Option<Uuid>,
    pub kind: EventKind,
    /// Users who may see this event although they no longer hold a grant on its camera (those who
    /// held one on a camera just deleted).
    pub also_for: Vec<Uuid>,
}

impl SiteEvent {
    /// When a lasting event (a motion episode) ended; `None` for an instant.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        match &self.kind {
            EventKind::Motion(ep) => Some(ep.end),
            _ => None,
        }
    }

    /// A new event of `kind` at `time`.
    pub fn new(time: DateTime<Utc>, camera_id: Option<Uuid>, kind: EventKind) -> SiteEvent {
        SiteEvent { id: Uuid::new_v4(), time, camera_id, kind, also_for: Vec::new() }
    }
}

/// The kinds of event: what a watcher asks for, and what the history stores.
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
    Motion,
}

impl Topic {
    /// The topic of `e`.
    pub fn of(e: &SiteEvent) -> Topic {
        use super::camera::CameraState;
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
            EventKind::Motion(_) => Topic::Motion,
        }
    }

    /// Every topic.
    pub const ALL: [Topic; 13] = [
        Topic::CameraOnline,
        Topic::CameraOffline,
        Topic::CameraCreated,
        Topic::CameraUpdated,
        Topic::CameraDeleted,
        Topic::MediaServerRestarted,
        Topic::MediaServerUnavailable,
        Topic::RecordingStarted,
        Topic::RecordingStopped,
        Topic::IdsAlert,
        Topic::AdapterHealth,
        Topic::Detection,
        Topic::Motion,
    ];

    /// The topics whose footage counts as event footage unless a camera says otherwise.
    pub const FOOTAGE_DEFAULT: [Topic; 3] = [Topic::Motion, Topic::Detection, Topic::IdsAlert];

    /// The topic stored as `name`.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Topic::CameraOnline => "camera.online",
            Topic::CameraOffline => "camera.offline",
            Topic::CameraCreated => "camera.created",
            Topic::CameraUpdated => "camera.updated",
            Topic::CameraDeleted => "camera.deleted",
            Topic::MediaServerRestarted => "media_server.restarted",
            Topic::MediaServerUnavailable => "media_server.unavailable",
            Topic::RecordingStarted => "recording.started",
            Topic::RecordingStopped => "recording.stopped",
            Topic::IdsAlert => "ids.alert",
            Topic::AdapterHealth => "adapter.health",
            Topic::Detection => "detection",
            Topic::Motion => "motion",
        }
    }

    /// The permission seeing events of this topic needs beyond seeing their camera, if any.
    pub fn permission(self) -> Option<super::Permission> {
        match self {
            Topic::Detection | Topic::AdapterHealth => Some(super::Permission::InferenceRead),
            Topic::IdsAlert => Some(super::Permission::IdsRead),
            _ => None,
        }
    }

    /// Whether watching this topic on a camera needs recording.read there (camera.read otherwise).
    pub fn about_recordings(self) -> bool {
        matches!(self, Topic::RecordingStarted | Topic::RecordingStopped)
    }
}

/// One bucket of a timeline overlay: how many events of a topic fell in it, and the first of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub bucket_start: DateTime<Utc>,
    pub topic: Topic,
    pub count: i64,
    pub first_time: DateTime<Utc>,
    pub first_id: Uuid,
}
