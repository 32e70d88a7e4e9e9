//! `opennvr.v1.IdsService` (network intrusion alerts): decode, call [`IdsApp`], encode.
use super::convert::timestamp;
use super::status::{ApiResult, respond, to_status};
use super::{call, convert, principal};
use crate::app::PageRequest;
use crate::app::ids::IdsApp;
use crate::error::Error;
use crate::store::ids::IdsAlertFilter;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::ids_service_server::IdsService;
use tonic::{Request, Status};

/// The gRPC face of IDS alerts.
pub struct IdsApi {
    pub ids: IdsApp,
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

/// Wire IDS alert.
pub fn ids_alert(r: &crate::store::ids::IdsAlertRow) -> pb::IdsAlert {
    let metadata: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_value(r.metadata.clone()).unwrap_or_default();
    pb::IdsAlert {
        id: r.id.to_string(),
        time: Some(timestamp(r.time)),
        ingest_time: Some(timestamp(r.ingest_time)),
        flow_id: r.flow_id,
        in_iface: r.in_iface.clone(),
        community_id: r.community_id.clone(),
        src_ip: r.src_ip.clone(),
        src_port: r.src_port,
        dest_ip: r.dest_ip.clone(),
        dest_port: r.dest_port,
        proto: r.proto.clone(),
        app_proto: r.app_proto.clone(),
        action: match r.action.as_str() {
            "allowed" => pb::IdsAlertAction::Allowed,
            "blocked" => pb::IdsAlertAction::Blocked,
            _ => pb::IdsAlertAction::Unspecified,
        } as i32,
        gid: r.gid,
        signature_id: r.signature_id,
        rev: r.rev,
        signature: r.signature.clone(),
        category: r.category.clone(),
        severity: r.severity,
        metadata: metadata.into_iter().map(|(k, values)| (k, pb::IdsMetadataValues { values })).collect(),
        source_ip: r.source_ip.clone(),
        target_ip: r.target_ip.clone(),
        rule: r.rule.clone(),
        camera_ids: r.camera_ids.iter().map(|c| c.to_string()).collect(),
        eve_json: r.eve_json.clone(),
    }
}

#[tonic::async_trait]
impl IdsService for IdsApi {
    async fn list_ids_alerts(&self, req: Request<pb::ListIdsAlertsRequest>) -> ApiResult<pb::ListIdsAlertsResponse> {
        let who = principal(&call(&req)?)?;
        let r = req.into_inner();
        let filter = ids_filter(&r)?;
        let binding = format!("{filter:?}");
        let page = PageRequest::new(r.page_size, &r.page_token, &binding).map_err(to_status)?;
        respond(self.ids.list(&who, filter, page).await.map(|(rows, next)| pb::ListIdsAlertsResponse {
            alerts: rows.iter().map(ids_alert).collect(),
            next_page_token: next,
        }))
    }

    async fn get_ids_alert(&self, req: Request<pb::GetIdsAlertRequest>) -> ApiResult<pb::GetIdsAlertResponse> {
        let who = principal(&call(&req)?)?;
        let r = req.into_inner();
        respond(
            self.ids.get(&who, &r.ids_alert_id).await.map(|a| pb::GetIdsAlertResponse { alert: Some(ids_alert(&a)) }),
        )
    }
}
