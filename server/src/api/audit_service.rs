//! `opennvr.v1.AuditService`: decode, call [`AuditApp`], encode.
use super::convert;
use super::convert::timestamp;
use super::status::{ApiResult, respond, to_status};
use crate::app::PageRequest;
use crate::app::audit::{AuditApp, ExportFormat, WatchItem};
use crate::audit::ChainFailure;
use crate::error::Error;
use crate::store::audit::EventFilter;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::audit_service_server::AuditService;
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Status};

/// The gRPC face of the audit trail.
pub struct AuditApi {
    pub app: AuditApp,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn filter(f: Option<pb::AuditEventFilter>) -> Result<EventFilter, Status> {
    let f = f.unwrap_or_default();
    let result = match pb::AuditResult::try_from(f.result) {
        Ok(pb::AuditResult::Unspecified) => "",
        Ok(pb::AuditResult::Success) => "success",
        Ok(pb::AuditResult::Denied) => "denied",
        Ok(pb::AuditResult::Failed) => "failed",
        Err(_) => return Err(to_status(Error::invalid("filter.result", "filter.result is not a known result"))),
    };
    if !f.code.is_empty() && !crate::domain::STATUS_CODES.contains(&f.code.as_str()) {
        return Err(to_status(Error::invalid(
            "filter.code",
            "filter.code must be a gRPC status code name such as NOT_FOUND",
        )));
    }
    Ok(EventFilter {
        code: f.code,
        actor_user_id: f.actor_user_id,
        actor_api_key_id: f.actor_api_key_id,
        action: f.action,
        camera_id: f.camera_id,
        target_type: f.target_type,
        target_id: f.target_id,
        result: result.to_owned(),
        start_time: f
            .start_time
            .map(|t| convert::from_timestamp("filter.start_time", &t))
            .transpose()
            .map_err(to_status)?,
        end_time: f.end_time.map(|t| convert::from_timestamp("filter.end_time", &t)).transpose().map_err(to_status)?,
    })
}

/// Wire audit event.
pub fn audit_event(r: &crate::store::audit::AuditEventRow) -> pb::AuditEvent {
    let actor_type = match r.actor_type.as_str() {
        "user" => pb::ActorType::User,
        "api_key" => pb::ActorType::ApiKey,
        "system" => pb::ActorType::System,
        "anonymous" => pb::ActorType::Anonymous,
        _ => pb::ActorType::Unspecified,
    };
    let result = match r.result.as_str() {
        "success" => pb::AuditResult::Success,
        "denied" => pb::AuditResult::Denied,
        "failed" => pb::AuditResult::Failed,
        _ => pb::AuditResult::Unspecified,
    };
    pb::AuditEvent {
        sequence: r.sequence,
        id: r.id.to_string(),
        time: Some(timestamp(r.time)),
        actor: Some(pb::AuditActor {
            r#type: actor_type as i32,
            user_id: r.actor_user_id.clone(),
            username: r.actor_username.clone(),
            api_key_id: r.actor_api_key_id.clone(),
            session_id: r.actor_session_id.clone(),
            client_address: r.client_address.clone(),
            user_agent: r.user_agent.clone(),
        }),
        action: r.action.clone(),
        method: r.method.clone(),
        target_type: r.target_type.clone(),
        target_id: r.target_id.clone(),
        camera_id: r.camera_id.clone(),
        result: result as i32,
        code: r.code.clone(),
        reason: r.reason.clone(),
        details: serde_json::from_str(&r.details).unwrap_or_default(),
        request_id: r.request_id.clone(),
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
    }
}

/// Wire checkpoint.
pub fn checkpoint(c: &crate::store::audit::CheckpointRow) -> pb::AuditCheckpoint {
    pb::AuditCheckpoint {
        sequence: c.sequence,
        hash: c.hash.clone(),
        time: Some(timestamp(c.time)),
        key_id: c.key_id.clone(),
        signature: c.signature.clone(),
    }
}

/// Wire audit signing key (public half as a JWK).
pub fn audit_key(k: &crate::store::audit::AuditKeyRow) -> pb::AuditSigningKey {
    use base64::Engine;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&k.public_key);
    pb::AuditSigningKey {
        key_id: k.kid.clone(),
        algorithm: "EdDSA".to_owned(),
        public_key_jwk: serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": k.kid, "x": x})
            .to_string(),
        create_time: Some(timestamp(k.created_at)),
        retire_time: k.retired_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> ApiResult<pb::ListAuditEventsResponse> {
        let r = req.into_inner();
        let f = filter(r.filter)?;
        let page =
            PageRequest::new(r.page_size, &r.page_token, &AuditApp::binding(&f, r.oldest_first)).map_err(to_status)?;
        respond(self.app.list(f, r.oldest_first, page).await.map(|(rows, next)| pb::ListAuditEventsResponse {
            events: rows.iter().map(audit_event).collect(),
            next_page_token: next,
        }))
    }

    type WatchAuditEventsStream = ResponseStream<pb::WatchAuditEventsResponse>;

    async fn watch_audit_events(
        &self,
        req: Request<pb::WatchAuditEventsRequest>,
    ) -> ApiResult<Self::WatchAuditEventsStream> {
        let r = req.into_inner();
        let f = filter(r.filter)?;
        if r.after_sequence.is_some_and(|s| s < 0) {
            return Err(to_status(Error::invalid("after_sequence", "after_sequence must not be negative")));
        }
        let rx = self.app.watch(f, r.after_sequence).await.map_err(to_status)?;
        let stream = ReceiverStream::new(rx).map(|item| match item {
            Ok(WatchItem::Event(row)) => Ok(pb::WatchAuditEventsResponse {
                kind: Some(pb::watch_audit_events_response::Kind::Event(audit_event(&row))),
            }),
            Ok(WatchItem::Heartbeat) => Ok(pb::WatchAuditEventsResponse {
                kind: Some(pb::watch_audit_events_response::Kind::Heartbeat(pb::Heartbeat::default())),
            }),
            Err(e) => Err(to_status(e)),
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    type ExportAuditEventsStream = ResponseStream<pb::ExportAuditEventsResponse>;

    async fn export_audit_events(
        &self,
        req: Request<pb::ExportAuditEventsRequest>,
    ) -> ApiResult<Self::ExportAuditEventsStream> {
        let r = req.into_inner();
        let format = match pb::AuditExportFormat::try_from(r.format) {
            Ok(pb::AuditExportFormat::Unspecified | pb::AuditExportFormat::Jsonl) => ExportFormat::JsonLines,
            Ok(pb::AuditExportFormat::Csv) => ExportFormat::Csv,
            Err(_) => return Err(to_status(Error::invalid("format", "format is not a known export format"))),
        };
        let start_time =
            r.start_time.map(|t| convert::from_timestamp("start_time", &t)).transpose().map_err(to_status)?;
        let end_time = r.end_time.map(|t| convert::from_timestamp("end_time", &t)).transpose().map_err(to_status)?;
        let rx =
            self.app.export(format, r.start_sequence, r.end_sequence, start_time, end_time).await.map_err(to_status)?;
        let stream = ReceiverStream::new(rx)
            .map(|chunk| chunk.map(|data| pb::ExportAuditEventsResponse { data }).map_err(to_status));
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn verify_audit_chain(
        &self,
        req: Request<pb::VerifyAuditChainRequest>,
    ) -> ApiResult<pb::VerifyAuditChainResponse> {
        let r = req.into_inner();
        respond(self.app.verify(r.start_sequence, r.end_sequence).await.map(|rep| {
            let (broken, failure, detail) = match rep.broken {
                Some((seq, f, d)) => (
                    Some(seq),
                    match f {
                        ChainFailure::HashMismatch => pb::AuditChainFailure::HashMismatch,
                        ChainFailure::LinkMismatch => pb::AuditChainFailure::LinkMismatch,
                        ChainFailure::SequenceGap => pb::AuditChainFailure::SequenceGap,
                        ChainFailure::CheckpointSignature => pb::AuditChainFailure::CheckpointSignature,
                        ChainFailure::CheckpointMismatch => pb::AuditChainFailure::CheckpointMismatch,
                    },
                    d,
                ),
                None => (None, pb::AuditChainFailure::Unspecified, String::new()),
            };
            pb::VerifyAuditChainResponse {
                ok: broken.is_none(),
                first_sequence: rep.first_sequence,
                last_sequence: rep.last_sequence,
                verified_count: rep.verified,
                checkpoints_verified: rep.checkpoints_verified,
                first_broken_sequence: broken,
                failure: failure as i32,
                failure_detail: detail,
                last_verified_checkpoint: rep.last_checkpoint.as_ref().map(checkpoint),
            }
        }))
    }

    async fn list_audit_signing_keys(
        &self,
        req: Request<pb::ListAuditSigningKeysRequest>,
    ) -> ApiResult<pb::ListAuditSigningKeysResponse> {
        let r = req.into_inner();
        let page = PageRequest::new(r.page_size, &r.page_token, "").map_err(to_status)?;
        respond(self.app.keys(page).await.map(|(keys, next)| pb::ListAuditSigningKeysResponse {
            keys: keys.iter().map(audit_key).collect(),
            next_page_token: next,
        }))
    }
}
