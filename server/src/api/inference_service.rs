//! `opennvr.v1.InferenceService`: decode, call the app, encode. IDS alerts are served; adapter
//! routing answers UNIMPLEMENTED (naming the capability) until it is built.
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::ids::IdsApp;
use crate::app::{Call, PageRequest};
use crate::error::{Error, ErrorKind};
use crate::store::ids::IdsAlertFilter;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::inference_service_server::InferenceService;
use tonic::{Request, Status};

/// The gRPC face of inference routing and IDS alerts.
pub struct InferenceApi {
    pub ids: IdsApp,
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

#[tonic::async_trait]
impl InferenceService for InferenceApi {
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

    async fn create_adapter(&self, _: Request<pb::CreateAdapterRequest>) -> ApiResult<pb::CreateAdapterResponse> {
        Err(later())
    }

    async fn get_adapter(&self, _: Request<pb::GetAdapterRequest>) -> ApiResult<pb::GetAdapterResponse> {
        Err(later())
    }

    async fn list_adapters(&self, _: Request<pb::ListAdaptersRequest>) -> ApiResult<pb::ListAdaptersResponse> {
        Err(later())
    }

    async fn update_adapter(&self, _: Request<pb::UpdateAdapterRequest>) -> ApiResult<pb::UpdateAdapterResponse> {
        Err(later())
    }

    async fn delete_adapter(&self, _: Request<pb::DeleteAdapterRequest>) -> ApiResult<pb::DeleteAdapterResponse> {
        Err(later())
    }

    async fn get_adapter_status(
        &self,
        _: Request<pb::GetAdapterStatusRequest>,
    ) -> ApiResult<pb::GetAdapterStatusResponse> {
        Err(later())
    }

    async fn list_adapter_statuses(
        &self,
        _: Request<pb::ListAdapterStatusesRequest>,
    ) -> ApiResult<pb::ListAdapterStatusesResponse> {
        Err(later())
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

    async fn run_inference(&self, _: Request<pb::RunInferenceRequest>) -> ApiResult<pb::RunInferenceResponse> {
        Err(later())
    }

    async fn list_detections(&self, _: Request<pb::ListDetectionsRequest>) -> ApiResult<pb::ListDetectionsResponse> {
        Err(later())
    }
}
