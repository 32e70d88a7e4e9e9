//! `opennvr.v1.InferenceService`: decode, call the app, encode. IDS alerts are served; adapter
//! routing answers UNIMPLEMENTED (naming the capability) until it is built.
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::ids::IdsApp;
use crate::app::inference::{AdapterSpec, AdapterView, InferenceApp};
use crate::app::{Call, PageRequest};
use crate::error::{Error, ErrorKind};
use crate::store::ids::IdsAlertFilter;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::inference_service_server::InferenceService;
use tonic::{Request, Status};

/// The gRPC face of inference routing and IDS alerts.
pub struct InferenceApi {
    pub ids: IdsApp,
    pub adapters: InferenceApp,
}

fn later() -> Status {
    to_status(Error::new(
        ErrorKind::Unimplemented,
        "not implemented yet: arrives with inference routing (adapters, bindings, detections)",
    ))
}

fn principal(call: &Call) -> Result<crate::app::Principal, Status> {
    call.principal().cloned().map_err(to_status)
}

/// The filter of a listing request; bad fields are named.
fn ids_filter(r: &pb::ListIdsAlertsRequest) -> Result<IdsAlertFilter, Status> {
    let time = |field: &'static str, t: &Option<prost_types::Timestamp>| {
        t.as_ref().map(|t| convert::from_timestamp(field, t)).transpose().map_err(to_status)
    };
    let ip = |field: &'static str, v: &str| -> Result<Option<String>, Status> {
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<std::net::IpAddr>()
            .map(|ip| Some(ip.to_string()))
            .map_err(|_| to_status(Error::invalid(field, format!("{field} {v:?} is not an IP address"))))
    };
    if r.max_severity < 0 {
        return Err(to_status(Error::invalid("max_severity", "max_severity must not be negative")));
    }
    let camera = if r.camera_id.is_empty() {
        None
    } else {
        Some(crate::app::parse_id("camera_id", &r.camera_id).map_err(to_status)?)
    };
    let action = match pb::IdsAlertAction::try_from(r.action) {
        Ok(pb::IdsAlertAction::Unspecified) => None,
        Ok(pb::IdsAlertAction::Allowed) => Some("allowed".to_owned()),
        Ok(pb::IdsAlertAction::Blocked) => Some("blocked".to_owned()),
        Err(_) => return Err(to_status(Error::invalid("action", format!("action {} is not known", r.action)))),
    };
    let filter = IdsAlertFilter {
        start: time("start_time", &r.start_time)?,
        end: time("end_time", &r.end_time)?,
        max_severity: (r.max_severity > 0).then_some(r.max_severity),
        src_ip: ip("src_ip", &r.src_ip)?,
        dest_ip: ip("dest_ip", &r.dest_ip)?,
        camera,
        signature_id: (r.signature_id != 0).then_some(r.signature_id),
        action,
    };
    if let (Some(s), Some(e)) = (filter.start, filter.end)
        && e <= s
    {
        return Err(to_status(Error::invalid("end_time", "end_time must be after start_time")));
    }
    Ok(filter)
}

/// Wire adapter.
fn adapter(v: &AdapterView) -> pb::Adapter {
    let r = &v.row;
    let (health, last_error) = match &v.runtime {
        Some(rt) => (convert::adapter_health(rt.health()), rt.last_error()),
        None => (pb::AdapterHealth::Unknown, None),
    };
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
        capabilities: r.tasks.clone(),
        supported_labels: r.supported_labels.clone(),
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
    use crate::inference::bulkhead::Circuit;
    let Some(rt) = &v.runtime else {
        return pb::AdapterStatus { adapter_id: v.row.id.to_string(), ..Default::default() };
    };
    let s = rt.snapshot();
    let (circuit, open_until) = match s.circuit {
        Circuit::Closed => (pb::CircuitState::Closed, None),
        Circuit::HalfOpen => (pb::CircuitState::HalfOpen, None),
        Circuit::Open { until } => (pb::CircuitState::Open, Some(convert::timestamp(until))),
    };
    let last_error = rt.last_error();
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    pb::AdapterStatus {
        adapter_id: rt.id.to_string(),
        health: convert::adapter_health(rt.health()) as i32,
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

/// Wire detection of something an adapter found (not stored: no id).
fn detection(f: &crate::inference::client::Found, adapter_id: &str) -> pb::Detection {
    pb::Detection {
        adapter_id: adapter_id.to_owned(),
        label: f.label.clone(),
        confidence: f.confidence,
        bounding_box: Some(pb::BoundingBox { x: f.x, y: f.y, width: f.width, height: f.height }),
        attributes: f.attributes.clone().into_iter().collect(),
        track_id: f.track_id.clone(),
        ..Default::default()
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
        let r = req.into_inner();
        if r.image_jpeg.is_empty() {
            return Err(to_status(Error::new(
                ErrorKind::Unimplemented,
                "not implemented yet: frames of cameras arrive with frame sources; send image_jpeg with adapter_id",
            )));
        }
        if !r.camera_id.is_empty() {
            return Err(to_status(Error::invalid("camera_id", "with image_jpeg, leave camera_id empty for now")));
        }
        let (found, took) = self.adapters.infer_image(&r.adapter_id, r.image_jpeg, &r.task).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::RunInferenceResponse {
            frame_time: None,
            runs: vec![pb::AdapterRun {
                detections: found.iter().map(|f| detection(f, &r.adapter_id)).collect(),
                adapter_id: r.adapter_id,
                latency: Some(millis(took.as_secs_f64() * 1000.0)),
                error: String::new(),
            }],
        }))
    }

    async fn list_ids_alerts(&self, req: Request<pb::ListIdsAlertsRequest>) -> ApiResult<pb::ListIdsAlertsResponse> {
        let who = principal(&call(&req)?)?;
        let r = req.into_inner();
        let filter = ids_filter(&r)?;
        let binding = format!("{filter:?}");
        let page = PageRequest::new(r.page_size, &r.page_token, &binding).map_err(to_status)?;
        respond(self.ids.list(&who, filter, page).await.map(|(rows, next)| pb::ListIdsAlertsResponse {
            alerts: rows.iter().map(convert::ids_alert).collect(),
            next_page_token: next,
        }))
    }

    async fn get_ids_alert(&self, req: Request<pb::GetIdsAlertRequest>) -> ApiResult<pb::GetIdsAlertResponse> {
        let who = principal(&call(&req)?)?;
        let r = req.into_inner();
        respond(
            self.ids
                .get(&who, &r.ids_alert_id)
                .await
                .map(|a| pb::GetIdsAlertResponse { alert: Some(convert::ids_alert(&a)) }),
        )
    }

    async fn create_adapter_binding(
        &self,
        _: Request<pb::CreateAdapterBindingRequest>,
    ) -> ApiResult<pb::CreateAdapterBindingResponse> {
        Err(later())
    }

    async fn get_adapter_binding(
        &self,
        _: Request<pb::GetAdapterBindingRequest>,
    ) -> ApiResult<pb::GetAdapterBindingResponse> {
        Err(later())
    }

    async fn list_adapter_bindings(
        &self,
        _: Request<pb::ListAdapterBindingsRequest>,
    ) -> ApiResult<pb::ListAdapterBindingsResponse> {
        Err(later())
    }

    async fn update_adapter_binding(
        &self,
        _: Request<pb::UpdateAdapterBindingRequest>,
    ) -> ApiResult<pb::UpdateAdapterBindingResponse> {
        Err(later())
    }

    async fn delete_adapter_binding(
        &self,
        _: Request<pb::DeleteAdapterBindingRequest>,
    ) -> ApiResult<pb::DeleteAdapterBindingResponse> {
        Err(later())
    }

    async fn list_detections(&self, _: Request<pb::ListDetectionsRequest>) -> ApiResult<pb::ListDetectionsResponse> {
        Err(later())
    }
}
