//! `opennvr.v1.RecordingService`: decode, call [`RecordingApp`], encode. Nothing else. RPCs whose
//! use cases are not built yet answer UNIMPLEMENTED saying so.
use super::status::{ApiResult, respond};
use super::{call, convert};
use crate::app::recordings::{HoldSpec, RecordingApp};
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::recording_service_server::RecordingService;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Status};

/// The gRPC face of the recordings.
pub struct RecordingApi {
    pub app: RecordingApp,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A request time, if set.
fn time(
    field: &'static str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    t.map(|t| convert::from_timestamp(field, t)).transpose().map_err(super::status::to_status)
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented yet"))
}

#[tonic::async_trait]
impl RecordingService for RecordingApi {
    type ExportClipStream = ResponseStream<pb::ExportClipResponse>;
    type DownloadExportStream = ResponseStream<pb::DownloadExportResponse>;

    async fn list_segments(&self, req: Request<pb::ListSegmentsRequest>) -> ApiResult<pb::ListSegmentsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let (from, to) = (time("start_time", r.start_time.as_ref())?, time("end_time", r.end_time.as_ref())?);
        respond(self.app.list_segments(&call, &r.camera_id, from, to, r.page_size, &r.page_token).await.map(|page| {
            pb::ListSegmentsResponse {
                segments: page.segments.iter().map(|s| convert::segment(page.camera_id, s)).collect(),
                next_page_token: page.next_page_token,
            }
        }))
    }

    async fn get_timeline(&self, req: Request<pb::GetTimelineRequest>) -> ApiResult<pb::GetTimelineResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let (from, to) = (time("start_time", r.start_time.as_ref())?, time("end_time", r.end_time.as_ref())?);
        respond(self.app.timeline(&call, &r.camera_id, from, to).await.map(|runs| {
            pb::GetTimelineResponse {
                runs: runs
                    .iter()
                    .map(|run| pb::TimelineRun {
                        start_time: Some(convert::timestamp(run.start)),
                        end_time: Some(convert::timestamp(run.end)),
                    })
                    .collect(),
                marks: Vec::new(),
            }
        }))
    }

    async fn create_playback_token(
        &self,
        _req: Request<pb::CreatePlaybackTokenRequest>,
    ) -> ApiResult<pb::CreatePlaybackTokenResponse> {
        Err(not_yet("CreatePlaybackToken"))
    }

    async fn export_clip(&self, _req: Request<pb::ExportClipRequest>) -> ApiResult<Self::ExportClipStream> {
        Err(not_yet("ExportClip"))
    }

    async fn get_export(&self, _req: Request<pb::GetExportRequest>) -> ApiResult<pb::GetExportResponse> {
        Err(not_yet("GetExport"))
    }

    async fn list_exports(&self, _req: Request<pb::ListExportsRequest>) -> ApiResult<pb::ListExportsResponse> {
        Err(not_yet("ListExports"))
    }

    async fn download_export(&self, _req: Request<pb::DownloadExportRequest>) -> ApiResult<Self::DownloadExportStream> {
        Err(not_yet("DownloadExport"))
    }

    async fn delete_export(&self, _req: Request<pb::DeleteExportRequest>) -> ApiResult<pb::DeleteExportResponse> {
        Err(not_yet("DeleteExport"))
    }

    async fn delete_recordings(
        &self,
        req: Request<pb::DeleteRecordingsRequest>,
    ) -> ApiResult<pb::DeleteRecordingsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let range = (time("start_time", r.start_time.as_ref())?, time("end_time", r.end_time.as_ref())?);
        respond(self.app.delete_recordings(&call, &r.camera_id, range, &r.reason, r.validate_only).await.map(|d| {
            pb::DeleteRecordingsResponse {
                segment_count: d.segments as i64,
                size_bytes: d.bytes,
                start_time: d.span.map(|s| convert::timestamp(s.0)),
                end_time: d.span.map(|s| convert::timestamp(s.1)),
            }
        }))
    }

    async fn create_hold(&self, req: Request<pb::CreateHoldRequest>) -> ApiResult<pb::CreateHoldResponse> {
        let call = call(&req)?;
        let h = req.into_inner().hold.unwrap_or_default();
        let spec = HoldSpec {
            camera_ids: h.camera_ids,
            start: time("hold.start_time", h.start_time.as_ref())?,
            end: time("hold.end_time", h.end_time.as_ref())?,
            case_id: h.case_id,
            reason: h.reason,
        };
        respond(
            self.app.create_hold(&call, spec).await.map(|v| pb::CreateHoldResponse { hold: Some(convert::hold(&v)) }),
        )
    }

    async fn get_hold(&self, req: Request<pb::GetHoldRequest>) -> ApiResult<pb::GetHoldResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app.get_hold(&call, &r.hold_id).await.map(|v| pb::GetHoldResponse { hold: Some(convert::hold(&v)) }),
        )
    }

    async fn list_holds(&self, req: Request<pb::ListHoldsRequest>) -> ApiResult<pb::ListHoldsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .list_holds(&call, &r.camera_id, &r.case_id, r.show_released, r.page_size, &r.page_token)
                .await
                .map(|(holds, next_page_token)| pb::ListHoldsResponse {
                    holds: holds.iter().map(convert::hold).collect(),
                    next_page_token,
                }),
        )
    }

    async fn release_hold(&self, req: Request<pb::ReleaseHoldRequest>) -> ApiResult<pb::ReleaseHoldResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .release_hold(&call, &r.hold_id, &r.reason)
                .await
                .map(|v| pb::ReleaseHoldResponse { hold: Some(convert::hold(&v)) }),
        )
    }

    async fn get_retention_policy(
        &self,
        req: Request<pb::GetRetentionPolicyRequest>,
    ) -> ApiResult<pb::GetRetentionPolicyResponse> {
        let r = req.into_inner();
        respond(self.app.retention_policy(&r.camera_id).await.map(|(own, effective)| pb::GetRetentionPolicyResponse {
            policy: own.as_ref().map(convert::retention_policy),
            effective_policy: Some(convert::retention_policy(&effective)),
        }))
    }

    async fn list_retention_policies(
        &self,
        _req: Request<pb::ListRetentionPoliciesRequest>,
    ) -> ApiResult<pb::ListRetentionPoliciesResponse> {
        respond(self.app.retention_policies().await.map(|all| pb::ListRetentionPoliciesResponse {
            policies: all.iter().map(convert::retention_policy).collect(),
            next_page_token: String::new(),
        }))
    }

    async fn update_retention_policy(
        &self,
        req: Request<pb::UpdateRetentionPolicyRequest>,
    ) -> ApiResult<pb::UpdateRetentionPolicyResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let change =
            convert::policy_change(r.policy.unwrap_or_default(), r.update_mask).map_err(super::status::to_status)?;
        respond(
            self.app
                .update_retention_policy(&call, change)
                .await
                .map(|p| pb::UpdateRetentionPolicyResponse { policy: Some(convert::retention_policy(&p)) }),
        )
    }

    async fn delete_retention_policy(
        &self,
        req: Request<pb::DeleteRetentionPolicyRequest>,
    ) -> ApiResult<pb::DeleteRetentionPolicyResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let version = convert::etag("etag", &r.etag).map_err(super::status::to_status)?;
        respond(
            self.app
                .delete_retention_policy(&call, &r.camera_id, version)
                .await
                .map(|()| pb::DeleteRetentionPolicyResponse {}),
        )
    }

    async fn enforce_retention(
        &self,
        req: Request<pb::EnforceRetentionRequest>,
    ) -> ApiResult<pb::EnforceRetentionResponse> {
        let call = call(&req)?;
        respond(self.app.enforce_retention(Some(&call)).await.map(|r| pb::EnforceRetentionResponse {
            segment_count: r.segments as i64,
            size_bytes: r.bytes,
            segments_by_camera: r.per_camera.iter().map(|(c, n)| (c.to_string(), *n as i64)).collect(),
            unmet: r.unmet,
        }))
    }

    async fn get_storage_stats(
        &self,
        _req: Request<pb::GetStorageStatsRequest>,
    ) -> ApiResult<pb::GetStorageStatsResponse> {
        respond(self.app.storage_stats().await.map(|st| convert::storage_stats(&st)))
    }
}
