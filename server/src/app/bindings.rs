//! Bindings and detections: which camera's frames go to which adapter (set up by who may change the
//! camera), and what the adapters found, shown only for cameras the caller may see and kept for a
//! limited time.
use super::authorizer::{authorize, held_on, visible};
use super::{Call, PageRequest, Principal, parse_id};
use crate::clock::SharedClock;
use crate::domain::Permission;
use crate::domain::inference::{Detection, MAX_LABELS, Region, check_regions};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::inference::router::FrameRouter;
use crate::store::Store;
use crate::store::inference::{AdapterRow, BindingRow, DetectionFilter, DetectionRow};
use chrono::Duration;
use diesel::PgConnection;
use uuid::Uuid;

/// Default time between two frames of a binding.
pub const DEFAULT_FRAME_INTERVAL_MS: i64 = 1_000;
/// Fastest and slowest frame rates of a binding (5 fps, one frame an hour).
pub const MIN_FRAME_INTERVAL_MS: i64 = 200;
pub const MAX_FRAME_INTERVAL_MS: i64 = 3_600_000;

/// Fields an update may change.
pub const UPDATABLE: [&str; 7] =
    ["frame_interval", "regions", "min_confidence", "labels", "enabled", "task", "motion_gated"];

/// A binding as a request describes it.
#[derive(Debug, Clone, Default)]
pub struct BindingSpec {
    pub camera_id: String,
    pub adapter_id: String,
    pub task: String,
    /// `None`: the default (1 s).
    pub frame_interval_ms: Option<i64>,
    pub regions: Vec<Region>,
    pub min_confidence: f32,
    pub labels: Vec<String>,
    pub enabled: bool,
    pub motion_gated: bool,
}

/// The checked, normalised values of a spec: interval, regions (as stored), labels.
struct Checked {
    frame_interval_ms: i32,
    regions: serde_json::Value,
    labels: Vec<String>,
    task: String,
}

/// Checks a spec against its adapter; with `new_task`, the task must be one the adapter lists (an
/// adapter not probed yet is taken at its word).
fn check(s: &BindingSpec, adapter: &AdapterRow, new_task: bool) -> Result<Checked> {
    let ms = s.frame_interval_ms.unwrap_or(DEFAULT_FRAME_INTERVAL_MS);
    if !(MIN_FRAME_INTERVAL_MS..=MAX_FRAME_INTERVAL_MS).contains(&ms) {
        return Err(Error::invalid(
            "binding.frame_interval",
            "binding.frame_interval must be between 200 ms (5 frames a second) and 1 h",
        ));
    }
    check_regions("binding.regions", &s.regions)?;
    if !s.min_confidence.is_finite() || !(0.0..=1.0).contains(&s.min_confidence) {
        return Err(Error::invalid("binding.min_confidence", "binding.min_confidence must be within [0, 1]"));
    }
    let mut labels: Vec<String> = Vec::new();
    for l in &s.labels {
        let l = l.trim();
        if l.is_empty() || l.chars().count() > 128 || l.chars().any(char::is_control) {
            return Err(Error::invalid("binding.labels", "binding.labels holds 1-128 printable characters each"));
        }
        if !labels.iter().any(|k| k.eq_ignore_ascii_case(l)) {
            labels.push(l.to_owned());
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid("binding.labels", format!("binding.labels: at most {MAX_LABELS} labels")));
    }
    let task = s.task.trim();
    if task.chars().count() > 64 || task.chars().any(char::is_control) {
        return Err(Error::invalid("binding.task", "binding.task is at most 64 printable characters"));
    }
    if new_task && !task.is_empty() && !adapter.tasks.is_empty() && !adapter.tasks.iter().any(|t| t == task) {
        return Err(Error::invalid(
            "binding.task",
            format!("binding.task {task:?} is not a task of adapter {} ({})", adapter.name, adapter.tasks.join(", ")),
        ));
    }
    Ok(Checked {
        frame_interval_ms: ms as i32,
        regions: serde_json::to_value(&s.regions).map_err(Error::internal)?,
        labels,
        task: task.to_owned(),
    })
}

/// The regions of a stored binding.
pub fn regions_of(row: &BindingRow) -> Vec<Region> {
    serde_json::from_value(row.regions.clone()).unwrap_or_default()
}

fn not_found(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("binding {id} not found"))
}

fn adapter_not_found(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("adapter {id} not found"))
}

fn etag_mismatch(id: Uuid) -> Error {
    Error::new(
        ErrorKind::Aborted,
        format!("binding {id} was changed by someone else (etag mismatch); reload and retry"),
    )
    .with_reason(reason::ETAG_MISMATCH)
}

/// The binding `id`, if `p` may change its camera (camera.write there): an invisible camera hides
/// the binding.
fn writable(c: &mut PgConnection, p: &Principal, id: Uuid, now: chrono::DateTime<chrono::Utc>) -> Result<BindingRow> {
    let row = BindingRow::find_for_update(c, id)?.ok_or_else(|| not_found(id))?;
    authorize(c, p, row.camera_id, Permission::CameraWrite, now, false).map_err(|e| match e.kind() {
        ErrorKind::NotFound => not_found(id),
        _ => e,
    })?;
    Ok(row)
}

/// Binding and detection use cases.
#[derive(Clone)]
pub struct BindingsApp {
    pub store: Store,
    pub clock: SharedClock,
    pub router: FrameRouter,
    /// How long detections are kept.
    pub retention: Duration,
}

impl BindingsApp {
    /// Routes a camera's frames to an adapter: needs camera.write on the camera.
    pub async fn create(&self, call: &Call, spec: BindingSpec) -> Result<BindingRow> {
        let camera = parse_id("binding.camera_id", &spec.camera_id)?;
        let adapter = parse_id("binding.adapter_id", &spec.adapter_id)?;
        call.about("adapter_binding", "", &camera.to_string());
        let (p, now) = (call.principal()?.clone(), crate::audit::to_micros(self.clock.now()));
        let id = Uuid::new_v4();
        let record = call
            .record("adapter_binding", &id.to_string())
            .detail("camera_id", camera.to_string())
            .detail("adapter_id", adapter.to_string());
        let row = call
            .audited(&self.store, now, record, move |c, record| {
                authorize(c, &p, camera, Permission::CameraWrite, now, true)?;
                let a = AdapterRow::find(c, adapter)?.ok_or_else(|| adapter_not_found(adapter))?;
                let checked = check(&spec, &a, true)?;
                let row = BindingRow {
                    id,
                    camera_id: camera,
                    adapter_id: adapter,
                    task: checked.task,
                    frame_interval_ms: checked.frame_interval_ms,
                    regions: checked.regions,
                    min_confidence: spec.min_confidence,
                    labels: checked.labels,
                    enabled: spec.enabled,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                    motion_gated: spec.motion_gated,
                };
                row.insert(c).map_err(|e| match e.kind() {
                    ErrorKind::AlreadyExists => Error::new(
                        ErrorKind::AlreadyExists,
                        format!("camera {camera} is bound to adapter {} already: update that binding", a.name),
                    ),
                    _ => e,
                })?;
                record.note("enabled", row.enabled.to_string());
                Ok(row)
            })
            .await?;
        self.router.poke();
        Ok(row)
    }

    /// One binding of a camera the caller may see.
    pub async fn get(&self, call: &Call, id: &str) -> Result<BindingRow> {
        let id = parse_id("binding_id", id)?;
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        self.store
            .run(move |c| {
                let row = BindingRow::find(c, id)?.ok_or_else(|| not_found(id))?;
                if held_on(c, &p, row.camera_id, now)?.is_empty() {
                    return Err(not_found(id));
                }
                Ok(row)
            })
            .await
    }

    /// A page of bindings of cameras the caller may see, optionally of one camera or adapter.
    pub async fn list(
        &self,
        call: &Call,
        camera: &str,
        adapter: &str,
        page: PageRequest,
    ) -> Result<(Vec<BindingRow>, String)> {
        let camera = if camera.is_empty() { None } else { Some(parse_id("camera_id", camera)?) };
        let adapter = if adapter.is_empty() { None } else { Some(parse_id("adapter_id", adapter)?) };
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let after = match &page.after {
            None => None,
            Some(a) => {
                let bad = || Error::invalid("page_token", "page_token is not one this server issued");
                let (cam, ad) = a.split_once('/').ok_or_else(bad)?;
                Some((Uuid::parse_str(cam).map_err(|_| bad())?, Uuid::parse_str(ad).map_err(|_| bad())?))
            }
        };
        let limit = page.size;
        let rows =
            self.store.run(move |c| BindingRow::page(c, visible(&p, now), camera, adapter, after, limit)).await?;
        let last = rows.last().map(|r| format!("{}/{}", r.camera_id, r.adapter_id));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// Changes the fields `mask` names: needs camera.write on the binding's camera.
    pub async fn update(
        &self,
        call: &Call,
        id: &str,
        spec: BindingSpec,
        mask: &[String],
        expected_version: Option<i64>,
    ) -> Result<BindingRow> {
        let id = parse_id("binding.id", id)?;
        super::check_mask(mask, &UPDATABLE)?;
        let mask = mask.to_vec();
        let (p, now) = (call.principal()?.clone(), crate::audit::to_micros(self.clock.now()));
        let record = call.record("adapter_binding", &id.to_string()).detail("fields", mask.join(" "));
        let row = call
            .audited(&self.store, now, record, move |c, record| {
                let current = writable(c, &p, id, now)?;
                if expected_version.is_some_and(|v| v != current.version) {
                    return Err(etag_mismatch(id));
                }
                let a =
                    AdapterRow::find(c, current.adapter_id)?.ok_or_else(|| adapter_not_found(current.adapter_id))?;
                let has = |p: &str| mask.iter().any(|m| m == p);
                let merged = BindingSpec {
                    camera_id: String::new(),
                    adapter_id: String::new(),
                    task: if has("task") { spec.task.clone() } else { current.task.clone() },
                    frame_interval_ms: if has("frame_interval") {
                        spec.frame_interval_ms
                    } else {
                        Some(i64::from(current.frame_interval_ms))
                    },
                    regions: if has("regions") { spec.regions.clone() } else { regions_of(&current) },
                    min_confidence: if has("min_confidence") { spec.min_confidence } else { current.min_confidence },
                    labels: if has("labels") { spec.labels.clone() } else { current.labels.clone() },
                    enabled: if has("enabled") { spec.enabled } else { current.enabled },
                    motion_gated: if has("motion_gated") { spec.motion_gated } else { current.motion_gated },
                };
                // A task the adapter no longer lists is only refused when it is the one being set.
                let checked = check(&merged, &a, has("task"))?;
                let next = BindingRow {
                    task: checked.task,
                    frame_interval_ms: checked.frame_interval_ms,
                    regions: checked.regions,
                    min_confidence: merged.min_confidence,
                    labels: checked.labels,
                    enabled: merged.enabled,
                    motion_gated: merged.motion_gated,
                    updated_at: now,
                    ..current.clone()
                };
                let row = next.replace(c)?;
                record.note("camera_id", row.camera_id.to_string());
                Ok(row)
            })
            .await?;
        self.router.poke();
        Ok(row)
    }

    /// Removes a binding (its detections stay): needs camera.write on its camera.
    pub async fn delete(&self, call: &Call, id: &str, expected_version: Option<i64>) -> Result<()> {
        let id = parse_id("binding_id", id)?;
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let record = call.record("adapter_binding", &id.to_string());
        call.audited(&self.store, now, record, move |c, record| {
            let row = writable(c, &p, id, now)?;
            if expected_version.is_some_and(|v| v != row.version) {
                return Err(etag_mismatch(id));
            }
            BindingRow::delete(c, id)?;
            record.note("camera_id", row.camera_id.to_string());
            record.note("adapter_id", row.adapter_id.to_string());
            Ok(())
        })
        .await?;
        self.router.poke();
        Ok(())
    }

    /// A page of stored detections of cameras the caller may see, newest first. Naming a camera
    /// the caller may not see answers NOT_FOUND, as for any camera-scoped call.
    pub async fn detections(
        &self,
        call: &Call,
        filter: DetectionFilter,
        page: PageRequest,
    ) -> Result<(Vec<Detection>, String)> {
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let (after, limit) = (page.after_time_and_id()?, page.size);
        let rows = self
            .store
            .run(move |c| {
                // Every camera named must be visible: one query for the whole list.
                super::authorizer::authorize_all(c, &p, &filter.cameras, None, now)?;
                DetectionRow::page(c, visible(&p, now), &filter, after, limit)
            })
            .await?;
        let last = rows.last().map(|r| super::time_and_id(r.frame_time, r.id));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows.iter().map(DetectionRow::detection).collect(), next))
    }

    /// Drops detections older than the retention, in batches; returns how many went.
    pub async fn enforce_retention(&self) -> Result<usize> {
        expire_detections(&self.store, self.clock.now() - self.retention).await
    }
}

/// Drops detections of frames older than `before`, in batches; returns how many went.
pub async fn expire_detections(store: &Store, before: chrono::DateTime<chrono::Utc>) -> Result<usize> {
    store.delete_in_batches(move |c, batch| DetectionRow::delete_older(c, before, batch)).await
}
