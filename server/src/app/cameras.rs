//! Camera use cases — add, read, list, change, re-source, delete, grant. Every camera-scoped question
//! goes to the authorizer (`super::authorizer`). Every change is audited in its own transaction.
use super::authorizer::{authorize, visible};
use super::{Call, PageRequest, parse_id};
use crate::clock::SharedClock;
use crate::domain::camera::{self, GRANTABLE, RecordingMode, SourceUrl, Transport};
use crate::domain::event::{ConfigChange, EventKind, SiteEvent};
use crate::domain::{Permission, Role};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::security::seal::{MasterKey, Sealed};
use crate::store::Store;
use crate::store::cameras::{CameraChanges, CameraGrantRow, CameraRow};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A camera's settings as a request gives them; checked by [`CameraApp`].
#[derive(Debug, Clone, Default)]
pub struct CameraSpec {
    pub name: String,
    pub description: String,
    pub location: String,
    pub source_url: String,
    pub username: String,
    pub transport: Option<Transport>,
    pub enabled: bool,
    pub recording_enabled: bool,
    pub recording_mode: Option<RecordingMode>,
    /// (seconds, nanos); `None` = the default.
    pub segment_duration: Option<(i64, i32)>,
    pub event_pre_roll: Option<(i64, i32)>,
    pub event_post_roll: Option<(i64, i32)>,
    pub labels: BTreeMap<String, String>,
    pub ip_addresses: Vec<String>,
    /// `None`: no motion detection.
    pub motion: Option<crate::domain::motion::MotionSettings>,
    /// Empty: the default footage topics.
    pub recording_event_types: Vec<crate::domain::event::Topic>,
}

/// Fields an update may change (the update mask's paths).
pub const UPDATABLE: [&str; 14] = [
    "name",
    "description",
    "location",
    "transport",
    "enabled",
    "recording_enabled",
    "recording_mode",
    "segment_duration",
    "event_pre_roll",
    "event_post_roll",
    "labels",
    "ip_addresses",
    "motion",
    "recording_event_types",
];

/// A new source for a camera.
#[derive(Debug, Clone, Default)]
pub struct SourceChange {
    pub source_url: String,
    pub username: String,
    pub password: String,
    pub keep_password: bool,
    pub expected_version: Option<i64>,
}

/// Camera use cases.
#[derive(Clone)]
pub struct CameraApp {
    pub store: Store,
    pub clock: SharedClock,
    pub master: MasterKey,
    /// Told of every change, so that MediaMTX follows at once.
    pub media: crate::media::plane::MediaPlane,
    /// Issues viewer tokens.
    pub live: crate::media::LiveView,
    /// Where cameras may be: sources and connection tests are limited to these networks.
    pub networks: camera::CameraNetworks,
    /// Where camera changes are announced.
    pub events: crate::bus::EventBus,
}

/// A connection test as asked.
#[derive(Debug, Clone, Default)]
pub struct ConnectionTest {
    pub source_url: String,
    pub username: String,
    pub password: String,
    pub transport: Option<Transport>,
    pub camera_id: String,
    pub timeout: Option<std::time::Duration>,
}

/// Whether MediaMTX holds what the server wants for a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    InSync,
    Pending,
    Failed,
}

/// The live status of one camera.
#[derive(Debug, Clone)]
pub struct CameraStatusView {
    pub camera_id: Uuid,
    pub state: camera::CameraState,
    pub runtime: Option<crate::media::mediamtx::RuntimePath>,
    pub sync: SyncKind,
    /// Never holds credentials.
    pub last_error: Option<String>,
    pub recording: bool,
    /// Inbound bits per second over the last few seconds (0 when unknown).
    pub bitrate_bps: i64,
    pub observed: DateTime<Utc>,
}

/// The event of a configuration change of camera `id` (named `name`) by `call`'s caller at `at`, for
/// its watchers and for `also_for` (who held a grant on a camera just deleted).
fn config_event(
    call: &Call,
    at: DateTime<Utc>,
    (id, name): (Uuid, &str),
    change: ConfigChange,
    fields: &[String],
    also_for: Vec<Uuid>,
) -> SiteEvent {
    let actor = call.principal.as_ref().map(|p| p.user_id.to_string()).unwrap_or_default();
    let mut event = SiteEvent::new(
        at,
        Some(id),
        EventKind::CameraConfig {
            change,
            name: name.to_owned(),
            changed_fields: fields.to_vec(),
            actor_user_id: actor,
        },
    );
    event.also_for = also_for;
    event
}

fn password_owner(id: Uuid) -> String {
    format!("cameras/{id}/password")
}

fn etag_mismatch(id: Uuid) -> Error {
    Error::new(ErrorKind::Aborted, format!("camera {id} was changed by someone else (etag mismatch); reload and retry"))
        .with_reason(reason::ETAG_MISMATCH)
}

fn name_taken(name: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e.kind() {
        ErrorKind::AlreadyExists => {
            Error::new(ErrorKind::AlreadyExists, format!("a camera named {name:?} exists already"))
        }
        _ => e,
    }
}

fn labels_json(labels: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect())
}

/// The labels of a stored camera.
pub fn labels_of(row: &CameraRow) -> BTreeMap<String, String> {
    row.labels
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

impl CameraApp {
    fn seal(&self, id: Uuid, password: &str) -> Result<Option<Sealed>> {
        if password.is_empty() {
            Ok(None)
        } else {
            self.master.seal(&password_owner(id), password.as_bytes()).map(Some)
        }
    }

    /// The camera's password in clear (for MediaMTX and connection tests only, in memory).
    pub fn password(&self, row: &CameraRow) -> Result<Option<String>> {
        match (&row.password_sealed, &row.password_kek_id) {
            (Some(blob), Some(kek_id)) => {
                let sealed = Sealed { kek_id: kek_id.clone(), blob: blob.clone() };
                let bytes = self.master.open(&password_owner(row.id), &sealed)?;
                String::from_utf8(bytes).map(Some).map_err(|_| Error::internal("a camera password is not UTF-8"))
            }
            _ => Ok(None),
        }
    }

    /// Adds a camera. Outside the admin role, the creator is granted on it what their role allows.
    pub async fn create(&self, call: &Call, spec: CameraSpec, password: &str) -> Result<CameraRow> {
        let p = call.principal()?.clone();
        // As stored (microseconds), so the answer matches what a later read returns.
        let now = crate::audit::to_micros(self.clock.now());
        let id = Uuid::new_v4();
        let source = SourceUrl::parse("camera.source_url", &spec.source_url)?;
        self.checked_addresses("camera.source_url", &source).await?;
        camera::validate_password("password", password)?;
        let sealed = self.seal(id, password)?;
        let row = CameraRow {
            id,
            name: camera::validate_name("camera.name", &spec.name)?,
            description: camera::validate_text("camera.description", &spec.description, 1000)?,
            location: camera::validate_text("camera.location", &spec.location, 200)?,
            source_url: source.as_str().to_owned(),
            username: camera::validate_username("camera.username", &spec.username)?,
            password_kek_id: sealed.as_ref().map(|s| s.kek_id.clone()),
            password_sealed: sealed.map(|s| s.blob),
            transport: spec.transport.unwrap_or(Transport::Automatic),
            enabled: spec.enabled,
            recording_enabled: spec.recording_enabled,
            recording_mode: spec.recording_mode.unwrap_or(RecordingMode::Continuous),
            segment_seconds: match spec.segment_duration {
                Some((s, n)) => camera::validate_segment_seconds("camera.segment_duration", s, n)?,
                None => camera::DEFAULT_SEGMENT_SECONDS,
            },
            event_pre_roll_ms: spec
                .event_pre_roll
                .map(|(s, n)| camera::validate_roll("camera.event_pre_roll", s, n))
                .transpose()?,
            event_post_roll_ms: spec
                .event_post_roll
                .map(|(s, n)| camera::validate_roll("camera.event_post_roll", s, n))
                .transpose()?,
            labels: {
                camera::validate_labels("camera.labels", &spec.labels)?;
                labels_json(&spec.labels)
            },
            ip_addresses: camera::validate_ip_addresses("camera.ip_addresses", &spec.ip_addresses, &self.networks)?,
            version: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            motion: camera::validate_motion("camera.motion", spec.motion.as_ref())?,
            recording_event_types: camera::validate_footage_topics(
                "camera.recording_event_types",
                &spec.recording_event_types,
            )?,
        };
        let record = call
            .record("camera", &id.to_string())
            .detail("name", row.name.clone())
            .detail("source_host", source.endpoint().0)
            .detail("password_set", row.password_sealed.is_some().to_string())
            .detail("enabled", row.enabled.to_string())
            .detail("recording_enabled", row.recording_enabled.to_string())
            .detail("ip_addresses", row.ip_addresses.join(" "));
        let mut record = record;
        record.camera_id = id.to_string();
        let insert = row.clone();
        // A person outside the admin role is granted what their role allows on what they add (an
        // API key is no person: it holds no grants).
        let creator_grant = (p.role != Role::Admin && p.api_key.is_none()).then(|| CameraGrantRow {
            camera_id: id,
            user_id: p.user_id,
            permissions: GRANTABLE.iter().filter(|g| p.role.allows(**g)).map(|g| g.name().to_owned()).collect(),
            expire_at: None,
            grantor_user_id: Some(p.user_id),
            created_at: now,
            updated_at: now,
        });
        let name = row.name.clone();
        let event = config_event(call, now, (row.id, &row.name), ConfigChange::Created, &[], Vec::new());
        let stored = event.clone();
        call.audited(&self.store, now, record, move |c, _| {
            insert.insert(c)?;
            if let Some(g) = creator_grant {
                g.upsert(c)?;
            }
            crate::store::events::append(c, &stored)
        })
        .await
        .map_err(name_taken(&name))?;
        self.media.changed();
        self.events.announce_stored(event);
        Ok(row)
    }

    /// One camera the caller may see.
    pub async fn get(&self, call: &Call, id: &str) -> Result<CameraRow> {
        let id = parse_id("camera_id", id)?;
        call.about("camera", &id.to_string(), &id.to_string());
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        self.store.run(move |c| authorize(c, &p, id, Permission::CameraRead, now, false)).await
    }

    /// A page of the cameras the caller may see, carrying all of `labels`.
    pub async fn list(
        &self,
        call: &Call,
        labels: BTreeMap<String, String>,
        enabled: Option<bool>,
        page: PageRequest,
    ) -> Result<(Vec<(CameraRow, Option<crate::store::recordings::RecordingSummary>)>, String)> {
        camera::validate_labels("labels", &labels)?;
        let p = call.principal()?.clone();
        let visible = visible(&p, self.clock.now());
        let filter = (!labels.is_empty()).then(|| labels_json(&labels));
        let (after, limit) = (page.after.clone(), page.size);
        let rows = self
            .store
            .run(move |c| {
                let rows = CameraRow::page(c, visible, filter.as_ref(), enabled, after.as_deref(), limit)?;
                // Latest footage from the maintained totals: one lookup per page, whatever the
                // number of segments.
                let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
                let mut sums = crate::store::recordings::RecordingSummary::of(c, &ids)?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        let sum = sums.iter().position(|s| s.camera_id == r.id).map(|i| sums.swap_remove(i));
                        (r, sum)
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        let last = rows.last().map(|(r, _)| r.name.to_lowercase());
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// Changes the fields named in `mask` to their values in `spec`.
    pub async fn update(
        &self,
        call: &Call,
        id: &str,
        spec: CameraSpec,
        mask: &[String],
        expected_version: Option<i64>,
    ) -> Result<CameraRow> {
        let id = parse_id("camera.id", id)?;
        call.about("camera", &id.to_string(), &id.to_string());
        if mask.is_empty() {
            return Err(Error::invalid("update_mask", "update_mask names no field"));
        }
        let mut changes = CameraChanges::default();
        for path in mask {
            match path.as_str() {
                "name" => changes.name = Some(camera::validate_name("camera.name", &spec.name)?),
                "description" => {
                    changes.description = Some(camera::validate_text("camera.description", &spec.description, 1000)?)
                }
                "location" => changes.location = Some(camera::validate_text("camera.location", &spec.location, 200)?),
                "transport" => changes.transport = Some(spec.transport.unwrap_or(Transport::Automatic)),
                "enabled" => changes.enabled = Some(spec.enabled),
                "recording_enabled" => changes.recording_enabled = Some(spec.recording_enabled),
                "recording_mode" => {
                    changes.recording_mode = Some(spec.recording_mode.unwrap_or(RecordingMode::Continuous))
                }
                "segment_duration" => {
                    changes.segment_seconds = Some(match spec.segment_duration {
                        Some((s, n)) => camera::validate_segment_seconds("camera.segment_duration", s, n)?,
                        None => camera::DEFAULT_SEGMENT_SECONDS,
                    })
                }
                "event_pre_roll" => {
                    changes.event_pre_roll_ms = Some(
                        spec.event_pre_roll
                            .map(|(s, n)| camera::validate_roll("camera.event_pre_roll", s, n))
                            .transpose()?,
                    )
                }
                "event_post_roll" => {
                    changes.event_post_roll_ms = Some(
                        spec.event_post_roll
                            .map(|(s, n)| camera::validate_roll("camera.event_post_roll", s, n))
                            .transpose()?,
                    )
                }
                "labels" => {
                    camera::validate_labels("camera.labels", &spec.labels)?;
                    changes.labels = Some(labels_json(&spec.labels));
                }
                "ip_addresses" => {
                    changes.ip_addresses =
                        Some(camera::validate_ip_addresses("camera.ip_addresses", &spec.ip_addresses, &self.networks)?)
                }
                "motion" => changes.motion = Some(camera::validate_motion("camera.motion", spec.motion.as_ref())?),
                "recording_event_types" => {
                    changes.recording_event_types = Some(camera::validate_footage_topics(
                        "camera.recording_event_types",
                        &spec.recording_event_types,
                    )?)
                }
                other => {
                    return Err(Error::invalid(
                        "update_mask",
                        format!("update_mask path {other:?} is not updatable ({})", UPDATABLE.join(", ")),
                    ));
                }
            }
        }
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let mut record = call.record("camera", &id.to_string()).detail("update_mask", mask.join(","));
        if let Some(addresses) = &changes.ip_addresses {
            // Addresses link intrusion alerts to the camera: who set which is on record.
            record.details.insert("ip_addresses".into(), addresses.join(" "));
        }
        record.camera_id = id.to_string();
        let name = changes.name.clone().unwrap_or_default();
        let (who, fields) = (call.clone(), mask.to_vec());
        let (row, event) = call
            .audited(&self.store, now, record, move |c, _| {
                let current = authorize(c, &p, id, Permission::CameraWrite, now, true)?;
                if expected_version.is_some_and(|v| v != current.version) {
                    return Err(etag_mismatch(id));
                }
                let row = CameraRow::update(c, id, &changes, now)?;
                let event = config_event(&who, now, (row.id, &row.name), ConfigChange::Updated, &fields, Vec::new());
                crate::store::events::append(c, &event)?;
                Ok((row, event))
            })
            .await
            .map_err(name_taken(&name))?;
        self.media.changed();
        self.events.announce_stored(event);
        Ok(row)
    }

    /// Replaces the source URL and credentials together. A kept password only ever goes back to the
    /// same host and port.
    pub async fn set_source(&self, call: &Call, id: &str, change: SourceChange) -> Result<CameraRow> {
        let id = parse_id("camera_id", id)?;
        call.about("camera", &id.to_string(), &id.to_string());
        let source = SourceUrl::parse("source_url", &change.source_url)?;
        // Who may not change this camera learns nothing, not even how a name resolves.
        let (who, at) = (call.principal()?.clone(), self.clock.now());
        self.store.run(move |c| authorize(c, &who, id, Permission::CameraWrite, at, false)).await?;
        self.checked_addresses("source_url", &source).await?;
        let username = camera::validate_username("username", &change.username)?;
        if !change.keep_password {
            camera::validate_password("password", &change.password)?;
        }
        let sealed = if change.keep_password { None } else { self.seal(id, &change.password)? };
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let mut record = call.record("camera", &id.to_string()).detail("source_host", source.endpoint().0).detail(
            "password",
            if change.keep_password {
                "kept"
            } else if sealed.is_some() {
                "replaced"
            } else {
                "removed"
            },
        );
        record.camera_id = id.to_string();
        let who = call.clone();
        let (row, event) = call.audited(&self.store, now, record, move |c, _| {
                let current = authorize(c, &p, id, Permission::CameraWrite, now, true)?;
                if change.expected_version.is_some_and(|v| v != current.version) {
                    return Err(etag_mismatch(id));
                }
                let mut changes = CameraChanges {
                    source_url: Some(source.as_str().to_owned()),
                    username: Some(username),
                    ..Default::default()
                };
                if change.keep_password {
                    let old = SourceUrl::parse("source_url", &current.source_url)?;
                    if current.password_sealed.is_some() && old.endpoint() != source.endpoint() {
                        return Err(Error::invalid(
                            "keep_password",
                            "keep_password needs the same host and port: a stored password is never sent to another host",
                        ));
                    }
                } else {
                    changes.password_kek_id = Some(sealed.as_ref().map(|s| s.kek_id.clone()));
                    changes.password_sealed = Some(sealed.map(|s| s.blob));
                }
                let row = CameraRow::update(c, id, &changes, now)?;
                let fields = ["source_url".to_owned(), "username".to_owned()];
                let event = config_event(&who, now, (row.id, &row.name), ConfigChange::Updated, &fields, Vec::new());
                crate::store::events::append(c, &event)?;
                Ok((row, event))
            })
            .await?;
        self.media.changed();
        self.events.announce_stored(event);
        Ok(row)
    }

    /// Deletes a camera: it leaves the media plane and loses its grants; its recordings stay under
    /// retention unless `delete_recordings` (which needs recording.delete).
    pub async fn delete(
        &self,
        call: &Call,
        id: &str,
        expected_version: Option<i64>,
        delete_recordings: bool,
    ) -> Result<()> {
        let id = parse_id("camera_id", id)?;
        call.about("camera", &id.to_string(), &id.to_string());
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        if delete_recordings {
            p.require(Permission::RecordingDelete)?;
        }
        let mut record = call.record("camera", &id.to_string()).detail(
            "recordings",
            if delete_recordings { "deleted by the next retention pass" } else { "kept under retention" },
        );
        record.camera_id = id.to_string();
        let who = call.clone();
        let event = call
            .audited(&self.store, now, record, move |c, record| {
                let current = authorize(c, &p, id, Permission::CameraWrite, now, true)?;
                if expected_version.is_some_and(|v| v != current.version) {
                    return Err(etag_mismatch(id));
                }
                // Evidence is never stranded: no deletion while a hold covers the camera.
                crate::store::recordings::lock_recordings(c, id)?;
                if crate::store::recordings::camera_has_active_hold(c, id)? {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        format!("camera {id} has recordings under an evidence hold: release the hold first"),
                    )
                    .with_reason(reason::UNDER_HOLD));
                }
                if delete_recordings {
                    let n = crate::store::recordings::SegmentRow::mark_all_deleting(c, id)?;
                    record.details.insert("segments_marked".into(), n.to_string());
                }
                CameraRow::mark_deleted(c, id, now)?;
                let revoked = CameraGrantRow::delete_for_camera(c, id)?;
                record.note("grants_removed", revoked.len().to_string());
                // Those who held a grant hear of the deletion, although their grant went with it.
                let event = config_event(&who, now, (id, &current.name), ConfigChange::Deleted, &[], revoked);
                crate::store::events::append(c, &event)?;
                Ok(event)
            })
            .await?;
        self.media.changed();
        self.events.announce_stored(event);
        Ok(())
    }
}
