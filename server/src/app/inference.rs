//! Adapter use cases: register, read, change and remove AI adapters (their token sealed at rest,
//! their address checked against where adapters may live), their health and bulkhead counters, and
//! inference on demand through an adapter's bulkhead.
use super::{Call, PageRequest, parse_id};
use crate::clock::SharedClock;
use crate::domain::inference::{Detection, Finding};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::inference::bulkhead::{Job, Refusal};
use crate::inference::client::CallError;
use crate::inference::{AdapterRegistry, AdapterRuntime, token_owner};
use crate::security::seal::MasterKey;
use crate::store::Store;
use crate::store::inference::{AdapterRow, BindingRow};
use std::sync::Arc;
use uuid::Uuid;

/// Default per-call timeout of an adapter.
pub const DEFAULT_TIMEOUT_MS: i32 = 5_000;
/// Default calls in flight.
pub const DEFAULT_CONCURRENCY: i32 = 4;
/// Largest uploaded image.
pub const MAX_IMAGE_BYTES: usize = 10 << 20;

/// An adapter as a request describes it (`None`: the default).
#[derive(Debug, Clone, Default)]
pub struct AdapterSpec {
    pub name: String,
    pub description: String,
    pub endpoint_url: String,
    pub timeout_ms: Option<i64>,
    pub max_concurrency: i32,
    pub max_queue: i32,
    pub enabled: bool,
}

/// Fields an update may change.
pub const UPDATABLE: [&str; 8] =
    ["name", "description", "endpoint_url", "timeout", "max_concurrency", "max_queue", "enabled", "token"];

/// An adapter with what the server knows of it at run time.
#[derive(Clone)]
pub struct AdapterView {
    pub row: AdapterRow,
    pub runtime: Option<Arc<AdapterRuntime>>,
}

/// Adapter use cases.
#[derive(Clone)]
pub struct InferenceApp {
    pub store: Store,
    pub clock: SharedClock,
    pub master: MasterKey,
    pub registry: AdapterRegistry,
    /// Frames of cameras, for inference on demand.
    pub frames: crate::inference::router::FrameRouter,
}

fn check_spec(s: &AdapterSpec) -> Result<(i32, i32, i32)> {
    let name = s.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::invalid("adapter.name", "adapter.name must be 1-64 printable characters"));
    }
    if s.description.chars().count() > 1024 {
        return Err(Error::invalid("adapter.description", "adapter.description is at most 1024 characters"));
    }
    let timeout = match s.timeout_ms {
        None => DEFAULT_TIMEOUT_MS,
        Some(ms) if (100..=120_000).contains(&ms) => ms as i32,
        Some(_) => return Err(Error::invalid("adapter.timeout", "adapter.timeout must be between 100 ms and 120 s")),
    };
    let concurrency = match s.max_concurrency {
        0 => DEFAULT_CONCURRENCY,
        n if (1..=64).contains(&n) => n,
        _ => return Err(Error::invalid("adapter.max_concurrency", "adapter.max_concurrency must be 1-64")),
    };
    if !(0..=1000).contains(&s.max_queue) {
        return Err(Error::invalid("adapter.max_queue", "adapter.max_queue must be 0-1000"));
    }
    Ok((timeout, concurrency, s.max_queue))
}

fn not_found(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("adapter {id} not found"))
}

fn taken(name: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e.kind() {
        ErrorKind::AlreadyExists => Error::new(ErrorKind::AlreadyExists, format!("an adapter named {name:?} exists")),
        _ => e,
    }
}

impl InferenceApp {
    fn view(&self, row: AdapterRow) -> AdapterView {
        let runtime = self.registry.get(row.id);
        AdapterView { row, runtime }
    }

    /// Registers an adapter.
    pub async fn create(&self, call: &Call, spec: AdapterSpec, token: &str) -> Result<AdapterView> {
        let (timeout_ms, max_concurrency, max_queue) = check_spec(&spec)?;
        self.registry.network.check_endpoint("adapter.endpoint_url", &spec.endpoint_url).await?;
        let now = self.clock.now();
        let id = Uuid::new_v4();
        let sealed = if token.is_empty() { None } else { Some(self.master.seal(&token_owner(id), token.as_bytes())?) };
        let row = AdapterRow {
            id,
            name: spec.name.trim().to_owned(),
            description: spec.description.clone(),
            endpoint_url: spec.endpoint_url.trim_end_matches('/').to_owned(),
            token_kek_id: sealed.as_ref().map(|s| s.kek_id.clone()),
            token_sealed: sealed.map(|s| s.blob),
            timeout_ms,
            max_concurrency,
            max_queue,
            enabled: spec.enabled,
            model: String::new(),
            model_version: String::new(),
            tasks: Vec::new(),
            supported_labels: Vec::new(),
            max_in_flight: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let record = call
            .record("adapter", &id.to_string())
            .detail("name", row.name.clone())
            .detail("endpoint_url", row.endpoint_url.clone())
            .detail("token_set", row.token_sealed.is_some().to_string());
        let insert = row.clone();
        let name = row.name.clone();
        call.audited(&self.store, now, record, move |c, _| {
            insert.insert(c)?;
            Ok(())
        })
        .await
        .map_err(taken(&name))?;
        self.take_up_change().await;
        Ok(self.view(row))
    }

    /// One adapter.
    pub async fn get(&self, id: &str) -> Result<AdapterView> {
        let id = parse_id("adapter_id", id)?;
        let row = self.store.run(move |c| AdapterRow::find(c, id)).await?.ok_or_else(|| not_found(id))?;
        Ok(self.view(row))
    }

    /// A page of adapters by name.
    pub async fn list(&self, page: PageRequest) -> Result<(Vec<AdapterView>, String)> {
        let (after, limit) = (page.after.clone(), page.size);
        let rows = self.store.run(move |c| AdapterRow::page(c, after.as_deref(), limit)).await?;
        let next = page.next_token(rows.len(), rows.last().map(|r| r.name.as_str()));
        Ok((rows.into_iter().map(|r| self.view(r)).collect(), next))
    }

    /// Changes the fields `mask` names (a new host with a stored token needs a new token too).
    pub async fn update(
        &self,
        call: &Call,
        id: &str,
        spec: AdapterSpec,
        mask: &[String],
        token: &str,
        expected_version: Option<i64>,
    ) -> Result<AdapterView> {
        let id = parse_id("adapter.id", id)?;
        super::check_mask(mask, &UPDATABLE)?;
        let has = |p: &str| mask.iter().any(|m| m == p);
        let current = self.store.run(move |c| AdapterRow::find(c, id)).await?.ok_or_else(|| not_found(id))?;
        let mut next = current.clone();
        let merged = AdapterSpec {
            name: if has("name") { spec.name.clone() } else { current.name.clone() },
            description: if has("description") { spec.description.clone() } else { current.description.clone() },
            endpoint_url: if has("endpoint_url") { spec.endpoint_url.clone() } else { current.endpoint_url.clone() },
            timeout_ms: if has("timeout") { spec.timeout_ms } else { Some(i64::from(current.timeout_ms)) },
            max_concurrency: if has("max_concurrency") { spec.max_concurrency } else { current.max_concurrency },
            max_queue: if has("max_queue") { spec.max_queue } else { current.max_queue },
            enabled: if has("enabled") { spec.enabled } else { current.enabled },
        };
        let (timeout_ms, max_concurrency, max_queue) = check_spec(&merged)?;
        if has("endpoint_url") {
            self.registry.network.check_endpoint("adapter.endpoint_url", &merged.endpoint_url).await?;
            if current.token_sealed.is_some()
                && !has("token")
                && !crate::inference::same_origin(&current.endpoint_url, &merged.endpoint_url)
            {
                return Err(Error::invalid(
                    "update_mask",
                    "a new scheme, host or port for the adapter needs its token again (\"token\" in update_mask): a stored token never goes anywhere else",
                ));
            }
        }
        next.name = merged.name.trim().to_owned();
        next.description = merged.description;
        next.endpoint_url = merged.endpoint_url.trim_end_matches('/').to_owned();
        (next.timeout_ms, next.max_concurrency, next.max_queue, next.enabled) =
            (timeout_ms, max_concurrency, max_queue, merged.enabled);
        if has("token") {
            let sealed =
                if token.is_empty() { None } else { Some(self.master.seal(&token_owner(id), token.as_bytes())?) };
            next.token_kek_id = sealed.as_ref().map(|s| s.kek_id.clone());
            next.token_sealed = sealed.map(|s| s.blob);
        }
        let now = self.clock.now();
        next.updated_at = now;
        let record = call.record("adapter", &id.to_string()).detail("fields", mask.join(" "));
        let name = next.name.clone();
        let row = call
            .audited(&self.store, now, record, move |c, _| {
                let locked = AdapterRow::find_for_update(c, id)?.ok_or_else(|| not_found(id))?;
                if expected_version.is_some_and(|v| v != locked.version) || locked.version != current.version {
                    return Err(Error::new(
                        ErrorKind::Aborted,
                        format!("adapter {id} was changed by someone else (etag mismatch); reload and retry"),
                    )
                    .with_reason(reason::ETAG_MISMATCH));
                }
                let row = next.replace(c)?;
                Ok(row)
            })
            .await
            .map_err(taken(&name))?;
        self.take_up_change().await;
        Ok(self.view(row))
    }

    /// Removes an adapter: refused while bindings use it, unless `force` (they go too).
    pub async fn delete(&self, call: &Call, id: &str, expected_version: Option<i64>, force: bool) -> Result<()> {
        let id = parse_id("adapter_id", id)?;
        let now = self.clock.now();
        let record = call.record("adapter", &id.to_string()).detail("force", force.to_string());
        call.audited(&self.store, now, record, move |c, record| {
            let row = AdapterRow::find_for_update(c, id)?.ok_or_else(|| not_found(id))?;
            if expected_version.is_some_and(|v| v != row.version) {
                return Err(Error::new(ErrorKind::Aborted, format!("adapter {id} was changed by someone else"))
                    .with_reason(reason::ETAG_MISMATCH));
            }
            let bound = BindingRow::count_of_adapter(c, id)?;
            if bound > 0 && !force {
                return Err(Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("{bound} binding(s) use adapter {id}: delete them first, or set force"),
                ));
            }
            AdapterRow::delete(c, id)?;
            record.note("name", row.name);
            record.note("bindings_removed", bound.to_string());
            Ok(())
        })
        .await?;
        self.take_up_change().await;
        Ok(())
    }

    /// After a committed change of an adapter: the registry rebuilds it at once (or, failing
    /// that, on its next round — the change is in the database either way) and the router
    /// restarts or stops the frame sources it affects.
    async fn take_up_change(&self) {
        if let Err(e) = self.registry.sync().await {
            tracing::warn!(error = %e.message(), "adapters not reloaded yet; the background task will retry");
        }
        self.registry.poke();
        self.frames.poke();
    }

    /// Runs one uploaded image through adapter `adapter_id` (its bulkhead, queue and circuit).
    pub async fn infer_image(
        &self,
        adapter_id: &str,
        jpeg: Vec<u8>,
        task: &str,
    ) -> Result<(Vec<Detection>, std::time::Duration)> {
        let id = parse_id("adapter_id", adapter_id)?;
        if jpeg.len() > MAX_IMAGE_BYTES {
            return Err(Error::invalid("image_jpeg", "image_jpeg is larger than 10 MiB"));
        }
        if !jpeg.starts_with(&[0xff, 0xd8]) {
            return Err(Error::invalid("image_jpeg", "image_jpeg is not a JPEG image"));
        }
        let rt = self.registry.get(id).ok_or_else(|| not_found(id))?;
        if !rt.enabled {
            return Err(Error::new(ErrorKind::FailedPrecondition, format!("adapter {} is disabled", rt.name)));
        }
        let task = rt.task_or_first(task);
        let (found, took) = self.ask(&rt, jpeg, task.clone(), None, None).await?;
        let detections = found
            .into_iter()
            .map(|found| Detection {
                id: None,
                camera_id: None,
                adapter_id: id,
                binding_id: None,
                task: task.clone(),
                frame_time: None,
                found,
            })
            .collect();
        Ok((detections, took))
    }

    /// One call through `rt`'s bulkhead; its health is reported after.
    async fn ask(
        &self,
        rt: &AdapterRuntime,
        jpeg: Vec<u8>,
        task: String,
        camera_id: Option<Uuid>,
        frame_time: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(Vec<Finding>, std::time::Duration)> {
        let task = rt.task_or_first(&task);
        if task.is_empty() {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("adapter {} has not said which tasks it runs yet (no answered health check)", rt.name),
            ));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let started = std::time::Instant::now();
        rt.bulkhead.submit(Job { jpeg, task, camera_id, frame_time, reply });
        let outcome = answer.await.map_err(|_| Error::new(ErrorKind::Unavailable, "the adapter was removed"))?;
        self.registry.report(rt);
        let took = started.elapsed();
        outcome.map(|found| (found, took)).map_err(|r| refusal(&rt.name, r))
    }

    /// Runs the live frame of a camera (camera.live on it) through `adapter_id`, or through every
    /// adapter bound to it; a binding's filters apply. With one adapter named, its failure is the
    /// answer's; with several, each run reports its own.
    pub async fn infer_camera(
        &self,
        call: &Call,
        camera_id: &str,
        adapter_id: &str,
        task: &str,
    ) -> Result<(chrono::DateTime<chrono::Utc>, Vec<CameraRun>)> {
        use crate::inference::router::Route;
        let camera = parse_id("camera_id", camera_id)?;
        call.about("camera", &camera.to_string(), &camera.to_string());
        let only = if adapter_id.is_empty() { None } else { Some(parse_id("adapter_id", adapter_id)?) };
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let (cam, bindings, adapters) = self
            .store
            .run(move |c| {
                let cam =
                    super::authorizer::authorize(c, &p, camera, crate::domain::Permission::CameraLive, now, false)?;
                Ok((cam, BindingRow::of_camera(c, camera)?, AdapterRow::all(c)?))
            })
            .await?;
        if !cam.enabled {
            return Err(Error::new(ErrorKind::FailedPrecondition, format!("camera {camera} is disabled")));
        }
        let routes: Vec<Route> = match only {
            Some(a) => {
                if !adapters.iter().any(|r| r.id == a) {
                    return Err(not_found(a));
                }
                let mut route = match bindings.iter().find(|b| b.adapter_id == a) {
                    Some(b) => Route::of(b),
                    None => Route::unfiltered(camera, a, String::new()),
                };
                if !task.is_empty() {
                    route.task = task.to_owned();
                }
                vec![route]
            }
            None => bindings
                .iter()
                .filter(|b| b.enabled && self.registry.get(b.adapter_id).is_some_and(|rt| rt.enabled))
                .map(|b| {
                    let mut route = Route::of(b);
                    if !task.is_empty() {
                        route.task = task.to_owned();
                    }
                    route
                })
                .collect(),
        };
        if routes.is_empty() {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("no enabled adapter is bound to camera {camera}: name one in adapter_id"),
            ));
        }
        let frame = self.frames.latest_frame(camera).await?;
        // Every adapter at once, each behind its own bulkhead.
        let mut asks = tokio::task::JoinSet::new();
        for (i, route) in routes.iter().enumerate() {
            let (this, route, frame) = (self.clone(), route.clone(), frame.clone());
            asks.spawn(async move {
                let outcome = async {
                    let rt = this.registry.get(route.adapter_id).ok_or_else(|| not_found(route.adapter_id))?;
                    if !rt.enabled {
                        return Err(Error::new(
                            ErrorKind::FailedPrecondition,
                            format!("adapter {} is disabled", rt.name),
                        ));
                    }
                    let mut route = route;
                    route.task = rt.task_or_first(&route.task);
                    let jpeg = frame.jpeg.as_ref().clone();
                    let (found, took) = this.ask(&rt, jpeg, route.task.clone(), Some(camera), Some(frame.time)).await?;
                    Ok((route.kept(&found, frame.time, false), took))
                }
                .await;
                (i, outcome)
            });
        }
        let mut outcomes: Vec<Option<Result<_>>> = routes.iter().map(|_| None).collect();
        while let Some(done) = asks.join_next().await {
            let (i, outcome) = done.map_err(Error::internal)?;
            outcomes[i] = Some(outcome);
        }
        let mut runs = Vec::with_capacity(routes.len());
        for (route, outcome) in routes.iter().zip(outcomes) {
            let outcome = outcome.ok_or_else(|| Error::internal("an adapter run went missing"))?;
            runs.push(match outcome {
                Ok((found, took)) => {
                    CameraRun { adapter_id: route.adapter_id, found, latency: took, error: String::new() }
                }
                // One adapter asked: its failure is the call's.
                Err(e) if only.is_some() => return Err(e),
                Err(e) => CameraRun {
                    adapter_id: route.adapter_id,
                    found: Vec::new(),
                    latency: std::time::Duration::ZERO,
                    error: e.message().to_owned(),
                },
            });
        }
        Ok((frame.time, runs))
    }
}

/// One adapter's outcome of inference on a camera's frame.
#[derive(Debug, Clone)]
pub struct CameraRun {
    pub adapter_id: Uuid,
    pub found: Vec<Detection>,
    pub latency: std::time::Duration,
    /// Empty on success.
    pub error: String,
}

/// The error a caller gets for a refused or failed call.
pub fn refusal(name: &str, r: Refusal) -> Error {
    match r {
        Refusal::Dropped => Error::new(
            ErrorKind::ResourceExhausted,
            format!("adapter {name} is overloaded: its queue is full (the oldest frame was dropped)"),
        )
        .with_reason(reason::ADAPTER_OVERLOADED),
        Refusal::CircuitOpen { until } => Error::new(
            ErrorKind::Unavailable,
            format!("adapter {name} is failing: its circuit is open until {}", until.to_rfc3339()),
        )
        .with_reason(reason::ADAPTER_CIRCUIT_OPEN),
        Refusal::Call(CallError::Timeout) => {
            Error::new(ErrorKind::DeadlineExceeded, format!("adapter {name} did not answer in time"))
        }
        Refusal::Call(CallError::Rejected(m)) => {
            Error::new(ErrorKind::InvalidArgument, format!("adapter {name} refused the frame: {m}"))
        }
        Refusal::Call(e) => Error::new(ErrorKind::Unavailable, format!("adapter {name} failed: {e}")),
        Refusal::Closed => Error::new(ErrorKind::Unavailable, format!("adapter {name} is being reconfigured")),
    }
}
