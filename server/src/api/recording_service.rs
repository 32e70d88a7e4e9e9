//! `opennvr.v1.RecordingService`: decode, call [`RecordingApp`], encode. Nothing else.
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::exports::{ExportEvent, ExportSpec};
use crate::app::recordings::{HoldSpec, RecordingApp};
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::recording_service_server::RecordingService;
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
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

/// Whether a requested format is fragmented MP4 (unspecified: regular MP4).
fn fragmented(format: i32) -> Result<bool, Status> {
    match pb::MediaFormat::try_from(format) {
        Ok(pb::MediaFormat::Unspecified) | Ok(pb::MediaFormat::Mp4) => Ok(false),
        Ok(pb::MediaFormat::Fmp4) => Ok(true),
        Err(_) => {
            Err(to_status(crate::error::Error::invalid("format", format!("format: {format} is not a media format"))))
        }
    }
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
        if !r.event_types.is_empty() {
            return Err(Status::unimplemented(
                "event_types: timeline overlays need the stored event history, not kept yet",
            ));
        }
        let single = !r.camera_id.is_empty();
        if single && !r.camera_ids.is_empty() {
            return Err(to_status(crate::error::Error::invalid(
                "camera_ids",
                "give camera_id or camera_ids, not both",
            )));
        }
        let ids = if single { vec![r.camera_id.clone()] } else { r.camera_ids.clone() };
        let range = (time("start_time", r.start_time.as_ref())?, time("end_time", r.end_time.as_ref())?);
        let bucket = match r.bucket {
            None => None,
            Some(d) => Some(
                chrono::Duration::try_seconds(d.seconds)
                    .map(|s| s + chrono::Duration::nanoseconds(i64::from(d.nanos)))
                    .ok_or_else(|| to_status(crate::error::Error::invalid("bucket", "bucket is out of range")))?,
            ),
        };
        let runs = |runs: &[crate::domain::recording::Run]| -> Vec<pb::TimelineRun> {
            runs.iter()
                .map(|run| pb::TimelineRun {
                    start_time: Some(convert::timestamp(run.start)),
                    end_time: Some(convert::timestamp(run.end)),
                })
                .collect()
        };
        respond(self.app.timelines(&call, &ids, range, bucket).await.map(|all| {
            if single {
                pb::GetTimelineResponse {
                    runs: all.first().map(|(_, r)| runs(r)).unwrap_or_default(),
                    ..Default::default()
                }
            } else {
                pb::GetTimelineResponse {
                    camera_timelines: all
                        .iter()
                        .map(|(camera, r)| pb::CameraTimeline { camera_id: camera.to_string(), runs: runs(r) })
                        .collect(),
                    ..Default::default()
                }
            }
        }))
    }

    async fn create_playback_token(
        &self,
        req: Request<pb::CreatePlaybackTokenRequest>,
    ) -> ApiResult<pb::CreatePlaybackTokenResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let start = time("start_time", r.start_time.as_ref())?;
        let fragmented = fragmented(r.format)?;
        let duration = r.duration.map(|d| (d.seconds, d.nanos));
        let ttl = r.ttl.map(|d| (d.seconds, d.nanos));
        respond(self.app.playback_token(&call, &r.camera_id, start, duration, fragmented, ttl).await.map(|t| {
            pb::CreatePlaybackTokenResponse {
                token: t.token,
                expire_time: Some(convert::timestamp(t.expires)),
                url: t.url,
            }
        }))
    }

    async fn export_clip(&self, req: Request<pb::ExportClipRequest>) -> ApiResult<Self::ExportClipStream> {
        let call = call(&req)?;
        let r = req.into_inner();
        let spec = ExportSpec {
            camera_id: r.camera_id,
            start: time("start_time", r.start_time.as_ref())?,
            end: time("end_time", r.end_time.as_ref())?,
            fragmented: fragmented(r.format)?,
            reason: r.reason,
            case_id: r.case_id,
            stream_data: r.stream_data,
        };
        let rx = self.app.export_clip(&call, spec).await.map_err(to_status)?;
        let stream = ReceiverStream::new(rx).map(|item| {
            item.map_err(to_status).map(|event| {
                use pb::export_clip_response::Kind;
                let kind = match event {
                    ExportEvent::Progress { id, state, progress, bytes } => Kind::Progress(pb::ExportProgress {
                        export_id: id.to_string(),
                        state: convert::export_state(state) as i32,
                        progress,
                        bytes_written: bytes,
                    }),
                    ExportEvent::Chunk { offset, data } => Kind::Chunk(pb::ExportChunk { offset, data }),
                    ExportEvent::Done(row) => Kind::Export(convert::export(&row)),
                };
                pb::ExportClipResponse { kind: Some(kind) }
            })
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn get_export(&self, req: Request<pb::GetExportRequest>) -> ApiResult<pb::GetExportResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .get_export(&call, &r.export_id)
                .await
                .map(|row| pb::GetExportResponse { export: Some(convert::export(&row)) }),
        )
    }

    async fn list_exports(&self, req: Request<pb::ListExportsRequest>) -> ApiResult<pb::ListExportsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let filter = (r.camera_id.as_str(), r.case_id.as_str(), r.creator_user_id.as_str());
        respond(self.app.list_exports(&call, filter, r.page_size, &r.page_token).await.map(
            |(rows, next_page_token)| pb::ListExportsResponse {
                exports: rows.iter().map(convert::export).collect(),
                next_page_token,
            },
        ))
    }

    async fn download_export(&self, req: Request<pb::DownloadExportRequest>) -> ApiResult<Self::DownloadExportStream> {
        let call = call(&req)?;
        let r = req.into_inner();
        let rx = self.app.download_export(&call, &r.export_id, r.offset).await.map_err(to_status)?;
        let stream = ReceiverStream::new(rx).filter_map(|item| match item {
            Ok(ExportEvent::Chunk { offset, data }) => {
                Some(Ok(pb::DownloadExportResponse { chunk: Some(pb::ExportChunk { offset, data }) }))
            }
            Ok(_) => None,
            Err(e) => Some(Err(to_status(e))),
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn delete_export(&self, req: Request<pb::DeleteExportRequest>) -> ApiResult<pb::DeleteExportResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.delete_export(&call, &r.export_id).await.map(|()| pb::DeleteExportResponse {}))
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
        req: Request<pb::ListRetentionPoliciesRequest>,
    ) -> ApiResult<pb::ListRetentionPoliciesResponse> {
        let r = req.into_inner();
        respond(self.app.retention_policies(r.page_size, &r.page_token).await.map(|(page, next_page_token)| {
            pb::ListRetentionPoliciesResponse {
                policies: page.iter().map(convert::retention_policy).collect(),
                next_page_token,
            }
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
