//! `opennvr.v1.RecordingService`: decode, call [`RecordingApp`], encode. Nothing else.
use super::convert::duration_of_us;
use super::convert::etag;
use super::convert::timestamp;
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::exports::{ExportEvent, ExportSpec};
use crate::app::recordings::{HoldSpec, RecordingApp};
use crate::domain::recording::ExportFormat;
use crate::domain::recording::ExportState;
use crate::error::Error;
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

/// Wire segment.
pub fn segment(camera: uuid::Uuid, s: &crate::store::recordings::SegmentEntry) -> pb::Segment {
    pb::Segment {
        camera_id: camera.to_string(),
        start_time: Some(timestamp(s.start_time)),
        duration: Some(duration_of_us(s.duration_us)),
        size_bytes: s.size_bytes,
        in_progress: s.state == crate::domain::recording::SegmentState::Recording,
    }
}

/// Wire export state.
pub fn export_state(state: ExportState) -> pb::ExportState {
    match state {
        ExportState::Running => pb::ExportState::Running,
        ExportState::Succeeded => pb::ExportState::Succeeded,
        ExportState::Failed => pb::ExportState::Failed,
        ExportState::Expired => pb::ExportState::Expired,
    }
}

/// Wire export.
pub fn export(r: &crate::store::exports::ExportRow) -> pb::Export {
    pb::Export {
        id: r.id.to_string(),
        camera_id: r.camera_id.to_string(),
        start_time: Some(timestamp(r.start_time)),
        end_time: Some(timestamp(r.end_time)),
        format: match r.format {
            ExportFormat::Fmp4 => pb::MediaFormat::Fmp4,
            ExportFormat::Mp4 => pb::MediaFormat::Mp4,
        } as i32,
        state: export_state(r.state) as i32,
        reason: r.reason.clone(),
        case_id: r.case_id.clone(),
        creator_user_id: r.creator_user_id.map(|u| u.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(r.created_at)),
        finish_time: r.finished_at.map(timestamp),
        expire_time: r.expire_at.map(timestamp),
        size_bytes: r.size_bytes,
        sha256: r.sha256.clone().unwrap_or_default(),
        progress: if r.state == ExportState::Running { 0.0 } else { 1.0 },
        error: r.error.clone(),
        media_duration: Some(duration_of_us(r.media_duration_us)),
        file_name: r.file_name.clone(),
    }
}

/// Wire hold.
pub fn hold(v: &crate::app::recordings::HoldView) -> pb::Hold {
    let (h, cameras) = v;
    pb::Hold {
        id: h.id.to_string(),
        case_id: h.case_id.clone(),
        reason: h.reason.clone(),
        camera_ids: cameras.iter().map(uuid::Uuid::to_string).collect(),
        start_time: Some(timestamp(h.start_time)),
        end_time: h.end_time.map(timestamp),
        creator_user_id: h.creator_user_id.map(|u| u.to_string()).unwrap_or_default(),
        creator_username: h.creator_username.clone(),
        create_time: Some(timestamp(h.created_at)),
        release_time: h.released_at.map(timestamp),
        release_user_id: h.release_user_id.map(|u| u.to_string()).unwrap_or_default(),
        release_reason: h.release_reason.clone().unwrap_or_default(),
    }
}

/// Wire retention policy.
pub fn retention_policy(p: &crate::app::retention::Policy) -> pb::RetentionPolicy {
    pb::RetentionPolicy {
        camera_id: p.camera_id.map(|c| c.to_string()).unwrap_or_default(),
        max_age: p.max_age_secs.map(duration_of_secs),
        event_max_age: p.event_max_age_secs.map(duration_of_secs),
        max_bytes: p.max_bytes,
        min_free_bytes: p.min_free_bytes,
        min_free_percent: p.min_free_percent,
        update_time: Some(timestamp(p.updated_at)),
        etag: p.version.to_string(),
    }
}

/// A policy change from the wire: the masked fields, unset ones meaning "no limit / inherit".
pub fn policy_change(
    p: pb::RetentionPolicy,
    mask: Option<prost_types::FieldMask>,
) -> crate::error::Result<crate::app::retention::PolicyChange> {
    let mask = mask.map(|m| m.paths).unwrap_or_default();
    if mask.is_empty() {
        return Err(Error::invalid("update_mask", "update_mask is required"));
    }
    let mut change = crate::app::retention::PolicyChange {
        camera_id: p.camera_id.clone(),
        expected_version: etag("policy.etag", &p.etag)?,
        ..Default::default()
    };
    for path in &mask {
        match path.as_str() {
            "max_age" => {
                let secs = match &p.max_age {
                    None => None,
                    Some(d) if d.nanos == 0 => Some(d.seconds),
                    Some(_) => return Err(Error::invalid("policy.max_age", "policy.max_age must be whole seconds")),
                };
                change.max_age_secs = Some(secs);
            }
            "event_max_age" => {
                let secs = match &p.event_max_age {
                    None => None,
                    Some(d) if d.nanos == 0 => Some(d.seconds),
                    Some(_) => {
                        return Err(Error::invalid(
                            "policy.event_max_age",
                            "policy.event_max_age must be whole seconds",
                        ));
                    }
                };
                change.event_max_age_secs = Some(secs);
            }
            "max_bytes" => change.max_bytes = Some(p.max_bytes),
            "min_free_bytes" => change.min_free_bytes = Some(p.min_free_bytes),
            "min_free_percent" => change.min_free_percent = Some(p.min_free_percent),
            other => {
                return Err(Error::invalid(
                    "update_mask",
                    format!(
                        "update_mask: {other:?} is not max_age, event_max_age, max_bytes, min_free_bytes or min_free_percent"
                    ),
                ));
            }
        }
    }
    Ok(change)
}

/// Wire storage figures.
pub fn storage_stats(st: &crate::app::retention::StorageStats) -> pb::GetStorageStatsResponse {
    let cameras: Vec<pb::CameraStorage> = st
        .cameras
        .iter()
        .map(|c| pb::CameraStorage {
            camera_id: c.summary.camera_id.to_string(),
            recorded_bytes: c.summary.bytes,
            segment_count: c.summary.segments,
            oldest_segment_time: c.summary.oldest_start.map(timestamp),
            newest_segment_end_time: c.summary.newest_end.map(timestamp),
            held_bytes: c.held_bytes,
            write_bytes_per_second: c.write_bytes_per_second,
            event_bytes: c.summary.event_bytes,
            continuous_bytes: c.summary.bytes - c.summary.event_bytes,
        })
        .collect();
    pb::GetStorageStatsResponse {
        volumes: st
            .volume
            .iter()
            .map(|(path, total, free, floor)| pb::StorageVolume {
                path: path.clone(),
                total_bytes: *total,
                free_bytes: *free,
                low: floor.is_some_and(|f| *free < f),
                floor_bytes: floor.unwrap_or(0),
            })
            .collect(),
        recorded_bytes: cameras.iter().map(|c| c.recorded_bytes).sum(),
        held_bytes: cameras.iter().map(|c| c.held_bytes).sum(),
        oldest_segment_time: st.cameras.iter().filter_map(|c| c.summary.oldest_start).min().map(timestamp),
        write_bytes_per_second: cameras.iter().map(|c| c.write_bytes_per_second).sum(),
        compute_time: Some(timestamp(st.computed)),
        event_bytes: cameras.iter().map(|c| c.event_bytes).sum(),
        continuous_bytes: cameras.iter().map(|c| c.continuous_bytes).sum(),
        cameras,
    }
}

fn duration_of_secs(secs: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: secs, nanos: 0 }
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
                segments: page.segments.iter().map(|s| segment(page.camera_id, s)).collect(),
                next_page_token: page.next_page_token,
            }
        }))
    }

    async fn get_timeline(&self, req: Request<pb::GetTimelineRequest>) -> ApiResult<pb::GetTimelineResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let overlay = if r.event_types.is_empty() {
            Vec::new()
        } else {
            super::event_service::topics("event_types", &r.event_types)?.unwrap_or_default()
        };
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
        respond(self.app.timelines(&call, &ids, range, bucket, &overlay).await.map(|(all, marks)| {
            let marks = marks
                .iter()
                .map(|m| pb::TimelineMark {
                    bucket_start_time: Some(convert::timestamp(m.bucket_start)),
                    r#type: super::event_service::event_type(m.topic) as i32,
                    count: i32::try_from(m.count).unwrap_or(i32::MAX),
                    first_event_time: Some(convert::timestamp(m.first_time)),
                    first_event_id: m.first_id.to_string(),
                })
                .collect();
            if single {
                pb::GetTimelineResponse {
                    runs: all.first().map(|(_, r)| runs(r)).unwrap_or_default(),
                    marks,
                    ..Default::default()
                }
            } else {
                pb::GetTimelineResponse {
                    camera_timelines: all
                        .iter()
                        .map(|(camera, r)| pb::CameraTimeline { camera_id: camera.to_string(), runs: runs(r) })
                        .collect(),
                    marks,
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
                        state: export_state(state) as i32,
                        progress,
                        bytes_written: bytes,
                    }),
                    ExportEvent::Chunk { offset, data } => Kind::Chunk(pb::ExportChunk { offset, data }),
                    ExportEvent::Done(row) => Kind::Export(export(&row)),
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
                .map(|row| pb::GetExportResponse { export: Some(export(&row)) }),
        )
    }

    async fn list_exports(&self, req: Request<pb::ListExportsRequest>) -> ApiResult<pb::ListExportsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let filter = (r.camera_id.as_str(), r.case_id.as_str(), r.creator_user_id.as_str());
        respond(self.app.list_exports(&call, filter, r.page_size, &r.page_token).await.map(
            |(rows, next_page_token)| pb::ListExportsResponse {
                exports: rows.iter().map(export).collect(),
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
        respond(self.app.create_hold(&call, spec).await.map(|v| pb::CreateHoldResponse { hold: Some(hold(&v)) }))
    }

    async fn get_hold(&self, req: Request<pb::GetHoldRequest>) -> ApiResult<pb::GetHoldResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.get_hold(&call, &r.hold_id).await.map(|v| pb::GetHoldResponse { hold: Some(hold(&v)) }))
    }

    async fn list_holds(&self, req: Request<pb::ListHoldsRequest>) -> ApiResult<pb::ListHoldsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .list_holds(&call, &r.camera_id, &r.case_id, r.show_released, r.page_size, &r.page_token)
                .await
                .map(|(holds, next_page_token)| pb::ListHoldsResponse {
                    holds: holds.iter().map(hold).collect(),
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
                .map(|v| pb::ReleaseHoldResponse { hold: Some(hold(&v)) }),
        )
    }

    async fn get_retention_policy(
        &self,
        req: Request<pb::GetRetentionPolicyRequest>,
    ) -> ApiResult<pb::GetRetentionPolicyResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.retention_policy(&call, &r.camera_id).await.map(|(own, effective)| {
            pb::GetRetentionPolicyResponse {
                policy: own.as_ref().map(retention_policy),
                effective_policy: Some(retention_policy(&effective)),
            }
        }))
    }

    async fn list_retention_policies(
        &self,
        req: Request<pb::ListRetentionPoliciesRequest>,
    ) -> ApiResult<pb::ListRetentionPoliciesResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.retention_policies(&call, r.page_size, &r.page_token).await.map(|(page, next_page_token)| {
            pb::ListRetentionPoliciesResponse { policies: page.iter().map(retention_policy).collect(), next_page_token }
        }))
    }

    async fn update_retention_policy(
        &self,
        req: Request<pb::UpdateRetentionPolicyRequest>,
    ) -> ApiResult<pb::UpdateRetentionPolicyResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let change = policy_change(r.policy.unwrap_or_default(), r.update_mask).map_err(super::status::to_status)?;
        respond(
            self.app
                .update_retention_policy(&call, change)
                .await
                .map(|p| pb::UpdateRetentionPolicyResponse { policy: Some(retention_policy(&p)) }),
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
        req: Request<pb::GetStorageStatsRequest>,
    ) -> ApiResult<pb::GetStorageStatsResponse> {
        let call = call(&req)?;
        respond(self.app.storage_stats(&call).await.map(|st| storage_stats(&st)))
    }
}
