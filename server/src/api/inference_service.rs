//! `opennvr.v1.InferenceService`: decode, call the app, encode.
use super::convert::timestamp;
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::PageRequest;
use crate::app::bindings::{BindingSpec, BindingsApp};
use crate::app::inference::{AdapterSpec, AdapterView, InferenceApp};
use crate::domain::inference::Health;
use crate::error::{Error, ErrorKind};
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::inference_service_server::InferenceService;
use tonic::{Request, Status};

/// The gRPC face of inference routing.
pub struct InferenceApi {
    pub adapters: InferenceApp,
    pub bindings: BindingsApp,
}

/// Wire adapter.
fn adapter(v: &AdapterView) -> pb::Adapter {
    let r = &v.row;
    // Health first, then what the adapter said of itself: a probe takes that up before it counts,
    // so a healthy adapter is never shown without its capabilities (the row may be older).
    let (health, last_error) = match &v.runtime {
        Some(rt) => (adapter_health(rt.health()), rt.last_error()),
        None => (pb::AdapterHealth::Unknown, None),
    };
    let caps = v.runtime.as_ref().map_or_else(|| r.capabilities(), |rt| rt.capabilities());
    pb::Adapter {
        id: r.id.to_string(),
        name: r.name.clone(),
        description: r.description.clone(),
        endpoint_url: r.endpoint_url.clone(),
        has_token: r.token_sealed.is_some(),
        timeout: Some(prost_types::Duration {
            seconds: i64::from(r.timeout_ms / 1000),
            nanos: (r.timeout_ms % 1000) * 1_000_000,
        }),
        max_concurrency: r.max_concurrency,
        max_queue: r.max_queue,
        enabled: r.enabled,
        health: health as i32,
        last_error: last_error.as_ref().map(|(e, _)| e.clone()).unwrap_or_default(),
        last_error_time: last_error.map(|(_, t)| convert::timestamp(t)),
        capabilities: caps.tasks,
        supported_labels: caps.labels,
        model: caps.model,
        model_version: caps.model_version,
        max_in_flight: caps.max_in_flight,
        create_time: Some(convert::timestamp(r.created_at)),
        update_time: Some(convert::timestamp(r.updated_at)),
        etag: format!("\"{}\"", r.version),
    }
}

/// A duration of `ms` milliseconds.
fn millis(ms: f64) -> prost_types::Duration {
    prost_types::Duration { seconds: (ms / 1000.0) as i64, nanos: ((ms % 1000.0) * 1e6) as i32 }
}

/// Wire adapter status (health and bulkhead counters).
fn status(v: &AdapterView) -> pb::AdapterStatus {
    let Some(rt) = &v.runtime else {
        return pb::AdapterStatus { adapter_id: v.row.id.to_string(), ..Default::default() };
    };
    let s = rt.snapshot();
    let (circuit, open_until) = circuit_state(s.circuit);
    let last_error = rt.last_error();
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    pb::AdapterStatus {
        adapter_id: rt.id.to_string(),
        health: adapter_health(rt.health()) as i32,
        circuit_state: circuit as i32,
        open_until,
        in_flight: i32::try_from(s.in_flight).unwrap_or(i32::MAX),
        queued: i32::try_from(s.queued).unwrap_or(i32::MAX),
        max_concurrency: rt.max_concurrency,
        max_queue: rt.max_queue,
        requests_total: count(s.requests),
        succeeded_total: count(s.succeeded),
        failed_total: count(s.failed),
        rejected_total: count(s.rejected + s.dropped),
        timeouts_total: count(s.timeouts),
        latency_p50: s.latency_p50_ms.map(millis),
        latency_p95: s.latency_p95_ms.map(millis),
        last_success_time: s.last_success.map(convert::timestamp),
        last_error: last_error.as_ref().map(|(e, _)| e.clone()).unwrap_or_default(),
        last_error_time: last_error.map(|(_, t)| convert::timestamp(t)),
    }
}

/// The adapter fields of a request.
fn spec(a: &pb::Adapter) -> AdapterSpec {
    AdapterSpec {
        name: a.name.clone(),
        description: a.description.clone(),
        endpoint_url: a.endpoint_url.clone(),
        timeout_ms: a.timeout.as_ref().map(|d| d.seconds.saturating_mul(1000) + i64::from(d.nanos / 1_000_000)),
        max_concurrency: a.max_concurrency,
        max_queue: a.max_queue,
        enabled: a.enabled,
    }
}

/// Wire polygons.
pub fn polygons(regions: &[crate::domain::inference::Region]) -> Vec<pb::Polygon> {
    regions
        .iter()
        .map(|g| pb::Polygon { points: g.points.iter().map(|p| pb::NormalizedPoint { x: p.x, y: p.y }).collect() })
        .collect()
}

/// The regions of wire polygons.
pub fn regions(polygons: &[pb::Polygon]) -> Vec<crate::domain::inference::Region> {
    use crate::domain::inference::{Point, Region};
    polygons.iter().map(|g| Region { points: g.points.iter().map(|p| Point { x: p.x, y: p.y }).collect() }).collect()
}

/// Wire binding.
fn binding(r: &crate::store::inference::BindingRow) -> pb::AdapterBinding {
    pb::AdapterBinding {
        id: r.id.to_string(),
        camera_id: r.camera_id.to_string(),
        adapter_id: r.adapter_id.to_string(),
        frame_interval: Some(prost_types::Duration {
            seconds: i64::from(r.frame_interval_ms / 1000),
            nanos: (r.frame_interval_ms % 1000) * 1_000_000,
        }),
        regions: polygons(&crate::app::bindings::regions_of(r)),
        min_confidence: r.min_confidence,
        labels: r.labels.clone(),
        enabled: r.enabled,
        task: r.task.clone(),
        motion_gated: r.motion_gated,
        create_time: Some(convert::timestamp(r.created_at)),
        update_time: Some(convert::timestamp(r.updated_at)),
        etag: format!("\"{}\"", r.version),
    }
}

/// The binding fields of a request.
fn binding_spec(b: &pb::AdapterBinding) -> Result<BindingSpec, Status> {
    let frame_interval_ms = match &b.frame_interval {
        None => None,
        Some(d) if d.seconds < 0 || d.nanos < 0 => {
            return Err(to_status(Error::invalid("binding.frame_interval", "binding.frame_interval must be positive")));
        }
        Some(d) => Some(d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos / 1_000_000))),
    };
    Ok(BindingSpec {
        camera_id: b.camera_id.clone(),
        adapter_id: b.adapter_id.clone(),
        task: b.task.clone(),
        frame_interval_ms,
        regions: regions(&b.regions),
        min_confidence: b.min_confidence,
        labels: b.labels.clone(),
        enabled: b.enabled,
        motion_gated: b.motion_gated,
    })
}

/// The filter of a detection listing; bad fields are named.
fn detection_filter(r: &pb::ListDetectionsRequest) -> Result<crate::store::inference::DetectionFilter, Status> {
    let time = |field: &'static str, t: &Option<prost_types::Timestamp>| {
        t.as_ref().map(|t| convert::from_timestamp(field, t)).transpose().map_err(to_status)
    };
    let cameras = crate::app::parse_ids("camera_ids", &r.camera_ids).map_err(to_status)?;
    let adapter = if r.adapter_id.is_empty() {
        None
    } else {
        Some(crate::app::parse_id("adapter_id", &r.adapter_id).map_err(to_status)?)
    };
    if !r.min_confidence.is_finite() || !(0.0..=1.0).contains(&r.min_confidence) {
        return Err(to_status(Error::invalid("min_confidence", "min_confidence must be within [0, 1]")));
    }
    let filter = crate::store::inference::DetectionFilter {
        cameras,
        adapter,
        labels: crate::app::distinct(
            "labels",
            r.labels.iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect(),
        )
        .map_err(to_status)?,
        min_confidence: r.min_confidence,
        start: time("start_time", &r.start_time)?,
        end: time("end_time", &r.end_time)?,
    };
    if let (Some(s), Some(e)) = (filter.start, filter.end)
        && e <= s
    {
        return Err(to_status(Error::invalid("end_time", "end_time must be after start_time")));
    }
    Ok(filter)
}

/// Wire adapter health.
pub fn adapter_health(h: Health) -> pb::AdapterHealth {
    match h {
        Health::Unknown => pb::AdapterHealth::Unknown,
        Health::Healthy => pb::AdapterHealth::Healthy,
        Health::Degraded => pb::AdapterHealth::Degraded,
        Health::Unhealthy => pb::AdapterHealth::Unhealthy,
        Health::Disabled => pb::AdapterHealth::Disabled,
    }
}

/// Wire detection.
pub fn detection(d: &crate::domain::inference::Detection) -> pb::Detection {
    pb::Detection {
        id: d.id.map(|i| i.to_string()).unwrap_or_default(),
        camera_id: d.camera_id.map(|i| i.to_string()).unwrap_or_default(),
        adapter_id: d.adapter_id.to_string(),
        binding_id: d.binding_id.map(|i| i.to_string()).unwrap_or_default(),
        frame_time: d.frame_time.map(timestamp),
        label: d.found.label.clone(),
        confidence: d.found.confidence,
        bounding_box: Some(pb::BoundingBox {
            x: d.found.x,
            y: d.found.y,
            width: d.found.width,
            height: d.found.height,
        }),
        attributes: d.found.attributes.clone().into_iter().collect(),
        track_id: d.found.track_id.clone(),
        task: d.task.clone(),
    }
}

/// An adapter's circuit, and until when it is open.
pub fn circuit_state(c: crate::domain::inference::Circuit) -> (pb::CircuitState, Option<prost_types::Timestamp>) {
    use crate::domain::inference::Circuit;
    match c {
        Circuit::Closed => (pb::CircuitState::Closed, None),
        Circuit::HalfOpen => (pb::CircuitState::HalfOpen, None),
        Circuit::Open { until } => (pb::CircuitState::Open, Some(timestamp(until))),
    }
}

#[tonic::async_trait]
impl InferenceService for InferenceApi {
    async fn create_adapter(&self, req: Request<pb::CreateAdapterRequest>) -> ApiResult<pb::CreateAdapterResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let a = r.adapter.ok_or_else(|| to_status(Error::invalid("adapter", "adapter is required")))?;
        respond(
            self.adapters
                .create(&call, spec(&a), &r.token)
                .await
                .map(|v| pb::CreateAdapterResponse { adapter: Some(adapter(&v)) }),
        )
    }

    async fn get_adapter(&self, req: Request<pb::GetAdapterRequest>) -> ApiResult<pb::GetAdapterResponse> {
        let r = req.into_inner();
        respond(self.adapters.get(&r.adapter_id).await.map(|v| pb::GetAdapterResponse { adapter: Some(adapter(&v)) }))
    }

    async fn list_adapters(&self, req: Request<pb::ListAdaptersRequest>) -> ApiResult<pb::ListAdaptersResponse> {
        let r = req.into_inner();
        let page = PageRequest::new(r.page_size, &r.page_token, "").map_err(to_status)?;
        respond(self.adapters.list(page).await.map(|(views, next)| pb::ListAdaptersResponse {
            adapters: views.iter().map(adapter).collect(),
            next_page_token: next,
        }))
    }

    async fn update_adapter(&self, req: Request<pb::UpdateAdapterRequest>) -> ApiResult<pb::UpdateAdapterResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let a = r.adapter.ok_or_else(|| to_status(Error::invalid("adapter", "adapter is required")))?;
        let mask = r.update_mask.ok_or_else(|| to_status(Error::invalid("update_mask", "update_mask is required")))?;
        if mask.paths.is_empty() {
            return Err(to_status(Error::invalid("update_mask", "update_mask names no field")));
        }
        let etag = convert::etag("adapter.etag", &a.etag).map_err(to_status)?;
        respond(
            self.adapters
                .update(&call, &a.id, spec(&a), &mask.paths, &r.token, etag)
                .await
                .map(|v| pb::UpdateAdapterResponse { adapter: Some(adapter(&v)) }),
        )
    }

    async fn delete_adapter(&self, req: Request<pb::DeleteAdapterRequest>) -> ApiResult<pb::DeleteAdapterResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let etag = convert::etag("etag", &r.etag).map_err(to_status)?;
        respond(self.adapters.delete(&call, &r.adapter_id, etag, r.force).await.map(|()| pb::DeleteAdapterResponse {}))
    }

    async fn get_adapter_status(
        &self,
        req: Request<pb::GetAdapterStatusRequest>,
    ) -> ApiResult<pb::GetAdapterStatusResponse> {
        let r = req.into_inner();
        respond(
            self.adapters.get(&r.adapter_id).await.map(|v| pb::GetAdapterStatusResponse { status: Some(status(&v)) }),
        )
    }

    async fn list_adapter_statuses(
        &self,
        req: Request<pb::ListAdapterStatusesRequest>,
    ) -> ApiResult<pb::ListAdapterStatusesResponse> {
        let r = req.into_inner();
        let page = PageRequest::new(r.page_size, &r.page_token, "").map_err(to_status)?;
        respond(self.adapters.list(page).await.map(|(views, next)| pb::ListAdapterStatusesResponse {
            statuses: views.iter().map(status).collect(),
            next_page_token: next,
        }))
    }

    async fn run_inference(&self, req: Request<pb::RunInferenceRequest>) -> ApiResult<pb::RunInferenceResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        if r.image_jpeg.is_empty() {
            if r.frame_time.is_some() {
                return Err(to_status(Error::new(
                    ErrorKind::Unimplemented,
                    "inference on recorded frames is not available: leave frame_time unset for the live frame",
                )));
            }
            let (time, runs) =
                self.adapters.infer_camera(&call, &r.camera_id, &r.adapter_id, &r.task).await.map_err(to_status)?;
            return Ok(tonic::Response::new(pb::RunInferenceResponse {
                frame_time: Some(convert::timestamp(time)),
                runs: runs
                    .into_iter()
                    .map(|run| pb::AdapterRun {
                        adapter_id: run.adapter_id.to_string(),
                        detections: run.found.iter().map(detection).collect(),
                        latency: Some(millis(run.latency.as_secs_f64() * 1000.0)),
                        error: run.error,
                    })
                    .collect(),
            }));
        }
        if !r.camera_id.is_empty() {
            return Err(to_status(Error::invalid(
                "camera_id",
                "camera_id and image_jpeg exclude each other: send the camera's frame or an image",
            )));
        }
        let (found, took) = self.adapters.infer_image(&r.adapter_id, r.image_jpeg, &r.task).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::RunInferenceResponse {
            frame_time: None,
            runs: vec![pb::AdapterRun {
                detections: found.iter().map(detection).collect(),
                adapter_id: r.adapter_id,
                latency: Some(millis(took.as_secs_f64() * 1000.0)),
                error: String::new(),
            }],
        }))
    }

    async fn create_adapter_binding(
        &self,
        req: Request<pb::CreateAdapterBindingRequest>,
    ) -> ApiResult<pb::CreateAdapterBindingResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let b = r.binding.ok_or_else(|| to_status(Error::invalid("binding", "binding is required")))?;
        let spec = binding_spec(&b)?;
        respond(
            self.bindings
                .create(&call, spec)
                .await
                .map(|row| pb::CreateAdapterBindingResponse { binding: Some(binding(&row)) }),
        )
    }

    async fn get_adapter_binding(
        &self,
        req: Request<pb::GetAdapterBindingRequest>,
    ) -> ApiResult<pb::GetAdapterBindingResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.bindings
                .get(&call, &r.binding_id)
                .await
                .map(|row| pb::GetAdapterBindingResponse { binding: Some(binding(&row)) }),
        )
    }

    async fn list_adapter_bindings(
        &self,
        req: Request<pb::ListAdapterBindingsRequest>,
    ) -> ApiResult<pb::ListAdapterBindingsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let filters = format!("{}/{}", r.camera_id, r.adapter_id);
        let page = PageRequest::new(r.page_size, &r.page_token, &filters).map_err(to_status)?;
        respond(self.bindings.list(&call, &r.camera_id, &r.adapter_id, page).await.map(|(rows, next)| {
            pb::ListAdapterBindingsResponse { bindings: rows.iter().map(binding).collect(), next_page_token: next }
        }))
    }

    async fn update_adapter_binding(
        &self,
        req: Request<pb::UpdateAdapterBindingRequest>,
    ) -> ApiResult<pb::UpdateAdapterBindingResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let b = r.binding.ok_or_else(|| to_status(Error::invalid("binding", "binding is required")))?;
        let mask = r.update_mask.ok_or_else(|| to_status(Error::invalid("update_mask", "update_mask is required")))?;
        if mask.paths.is_empty() {
            return Err(to_status(Error::invalid("update_mask", "update_mask names no field")));
        }
        let etag = convert::etag("binding.etag", &b.etag).map_err(to_status)?;
        let spec = binding_spec(&b)?;
        respond(
            self.bindings
                .update(&call, &b.id, spec, &mask.paths, etag)
                .await
                .map(|row| pb::UpdateAdapterBindingResponse { binding: Some(binding(&row)) }),
        )
    }

    async fn delete_adapter_binding(
        &self,
        req: Request<pb::DeleteAdapterBindingRequest>,
    ) -> ApiResult<pb::DeleteAdapterBindingResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let etag = convert::etag("etag", &r.etag).map_err(to_status)?;
        respond(self.bindings.delete(&call, &r.binding_id, etag).await.map(|()| pb::DeleteAdapterBindingResponse {}))
    }

    async fn list_detections(&self, req: Request<pb::ListDetectionsRequest>) -> ApiResult<pb::ListDetectionsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let filter = detection_filter(&r)?;
        let bound = format!("{filter:?}");
        let page = PageRequest::new(r.page_size, &r.page_token, &bound).map_err(to_status)?;
        respond(self.bindings.detections(&call, filter, page).await.map(|(found, next)| pb::ListDetectionsResponse {
            detections: found.iter().map(detection).collect(),
            next_page_token: next,
        }))
    }
}
