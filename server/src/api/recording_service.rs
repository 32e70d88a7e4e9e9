//! `opennvr.v1.RecordingService`: decode, call [`RecordingApp`], encode. Nothing else. RPCs whose
//! use cases are not built yet answer UNIMPLEMENTED saying so.
use super::status::{ApiResult, respond};
use super::{call, convert};
use crate::app::recordings::RecordingApp;
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
        _req: Request<pb::DeleteRecordingsRequest>,
    ) -> ApiResult<pb::DeleteRecordingsResponse> {
        Err(not_yet("DeleteRecordings"))
    }

    async fn create_hold(&self, _req: Request<pb::CreateHoldRequest>) -> ApiResult<pb::CreateHoldResponse> {
        Err(not_yet("CreateHold"))
    }

    async fn get_hold(&self, _req: Request<pb::GetHoldRequest>) -> ApiResult<pb::GetHoldResponse> {
        Err(not_yet("GetHold"))
    }

    async fn list_holds(&self, _req: Request<pb::ListHoldsRequest>) -> ApiResult<pb::ListHoldsResponse> {
        Err(not_yet("ListHolds"))
    }

    async fn release_hold(&self, _req: Request<pb::ReleaseHoldRequest>) -> ApiResult<pb::ReleaseHoldResponse> {
        Err(not_yet("ReleaseHold"))
    }

    async fn get_retention_policy(
        &self,
        _req: Request<pb::GetRetentionPolicyRequest>,
    ) -> ApiResult<pb::GetRetentionPolicyResponse> {
        Err(not_yet("GetRetentionPolicy"))
    }

    async fn list_retention_policies(
        &self,
        _req: Request<pb::ListRetentionPoliciesRequest>,
    ) -> ApiResult<pb::ListRetentionPoliciesResponse> {
        Err(not_yet("ListRetentionPolicies"))
    }

    async fn update_retention_policy(
        &self,
        _req: Request<pb::UpdateRetentionPolicyRequest>,
    ) -> ApiResult<pb::UpdateRetentionPolicyResponse> {
        Err(not_yet("UpdateRetentionPolicy"))
    }

    async fn delete_retention_policy(
        &self,
        _req: Request<pb::DeleteRetentionPolicyRequest>,
    ) -> ApiResult<pb::DeleteRetentionPolicyResponse> {
        Err(not_yet("DeleteRetentionPolicy"))
    }

    async fn get_storage_stats(
        &self,
        _req: Request<pb::GetStorageStatsRequest>,
    ) -> ApiResult<pb::GetStorageStatsResponse> {
        Err(not_yet("GetStorageStats"))
    }
}
