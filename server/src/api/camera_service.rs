//! `opennvr.v1.CameraService`: decode, call [`CameraApp`], encode. Nothing else.
use super::convert::duration_of_ms;
use super::convert::timestamp;
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::PageRequest;
use crate::app::cameras::{CameraApp, CameraSpec, ConnectionTest, SourceChange};
use crate::domain::camera::{RecordingMode, Transport};
use crate::error::{Error, Result};
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::camera_service_server::CameraService;
use tonic::Request;

/// The gRPC face of the camera service.
pub struct CameraApi {
    pub app: CameraApp,
}

fn duration(d: &Option<prost_types::Duration>) -> Option<(i64, i32)> {
    d.as_ref().map(|d| (d.seconds, d.nanos))
}

/// The settings a request's camera carries.
fn spec(c: &pb::Camera) -> Result<CameraSpec> {
    let transport = match pb::RtspTransport::try_from(c.transport) {
        Ok(pb::RtspTransport::Unspecified) | Ok(pb::RtspTransport::Auto) => Transport::Automatic,
        Ok(pb::RtspTransport::Tcp) => Transport::Tcp,
        Ok(pb::RtspTransport::Udp) => Transport::Udp,
        Err(_) => return Err(Error::invalid("camera.transport", "camera.transport is not a known transport")),
    };
    let recording_mode = match pb::RecordingMode::try_from(c.recording_mode) {
        Ok(pb::RecordingMode::Unspecified) | Ok(pb::RecordingMode::Continuous) => RecordingMode::Continuous,
        Ok(pb::RecordingMode::Events) => RecordingMode::Events,
        Err(_) => return Err(Error::invalid("camera.recording_mode", "camera.recording_mode is not a known mode")),
    };
    Ok(CameraSpec {
        name: c.name.clone(),
        description: c.description.clone(),
        location: c.location.clone(),
        source_url: c.source_url.clone(),
        username: c.username.clone(),
        transport: Some(transport),
        enabled: c.enabled,
        recording_enabled: c.recording_enabled,
        recording_mode: Some(recording_mode),
        segment_duration: duration(&c.segment_duration),
        event_pre_roll: duration(&c.event_pre_roll),
        event_post_roll: duration(&c.event_post_roll),
        labels: c.labels.clone().into_iter().collect(),
        ip_addresses: c.ip_addresses.clone(),
        motion: c.motion.as_ref().map(motion_settings).transpose()?,
        recording_event_types: super::event_service::topics("camera.recording_event_types", &c.recording_event_types)
            .map_err(|_| {
                Error::invalid("camera.recording_event_types", "camera.recording_event_types: unknown event type")
            })?
            .unwrap_or_default(),
    })
}

/// Milliseconds of a wire duration for `field`: unset = 0 (the default), else 1 ms to 10 min.
fn millis(field: &'static str, d: &Option<prost_types::Duration>) -> Result<u32> {
    let Some(d) = d else { return Ok(0) };
    let ms = d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000);
    if d.seconds < 0 || d.nanos < 0 || !(1..=600_000).contains(&ms) {
        return Err(Error::invalid(field, format!("{field} must be between 1 ms and 10 min")));
    }
    Ok(ms as u32)
}

/// The motion settings a request's camera carries (checked by the app).
fn motion_settings(m: &pb::MotionSettings) -> Result<crate::domain::motion::MotionSettings> {
    let pixel_threshold = u8::try_from(m.pixel_threshold)
        .map_err(|_| Error::invalid("camera.motion", "camera.motion.pixel_threshold must be between 1 and 255"))?;
    let start_frames = u32::try_from(m.start_frames)
        .map_err(|_| Error::invalid("camera.motion", "camera.motion.start_frames must be between 1 and 100"))?;
    if !m.min_area.is_finite() || m.min_area < 0.0 {
        return Err(Error::invalid(
            "camera.motion",
            "camera.motion.min_area must be a share of the frame above 0 and at most 1",
        ));
    }
    Ok(crate::domain::motion::MotionSettings {
        frame_interval_ms: millis("camera.motion", &m.frame_interval)?,
        pixel_threshold,
        min_area: m.min_area,
        start_frames,
        end_quiet_ms: millis("camera.motion", &m.end_quiet)?,
        masks: super::inference_service::regions(&m.masks),
    })
}

/// Wire motion settings.
fn motion_message(m: &crate::domain::motion::MotionSettings) -> pb::MotionSettings {
    pb::MotionSettings {
        frame_interval: Some(duration_of_ms(i64::from(m.frame_interval_ms))),
        pixel_threshold: i32::from(m.pixel_threshold),
        min_area: m.min_area,
        start_frames: m.start_frames as i32,
        end_quiet: Some(duration_of_ms(i64::from(m.end_quiet_ms))),
        masks: super::inference_service::polygons(&m.masks),
    }
}

/// Wire camera: never the password, only whether one is set.
pub fn camera_message(c: &crate::store::cameras::CameraRow) -> pb::Camera {
    use crate::domain::camera::{RecordingMode, Transport};
    pb::Camera {
        id: c.id.to_string(),
        name: c.name.clone(),
        description: c.description.clone(),
        location: c.location.clone(),
        source_url: c.source_url.clone(),
        username: c.username.clone(),
        has_password: c.password_sealed.is_some(),
        transport: match c.transport {
            Transport::Tcp => pb::RtspTransport::Tcp,
            Transport::Udp => pb::RtspTransport::Udp,
            Transport::Automatic => pb::RtspTransport::Auto,
        } as i32,
        enabled: c.enabled,
        recording_enabled: c.recording_enabled,
        recording_mode: match c.recording_mode {
            RecordingMode::Events => pb::RecordingMode::Events,
            RecordingMode::Continuous => pb::RecordingMode::Continuous,
        } as i32,
        segment_duration: Some(duration_of_ms(i64::from(c.segment_seconds) * 1000)),
        // Filled in by listings, from the recording totals.
        latest_footage_start_time: None,
        latest_footage_end_time: None,
        event_pre_roll: c.event_pre_roll_ms.map(duration_of_ms),
        event_post_roll: c.event_post_roll_ms.map(duration_of_ms),
        labels: crate::app::cameras::labels_of(c).into_iter().collect(),
        ip_addresses: c.ip_addresses.clone(),
        motion: c.motion_settings().as_ref().map(motion_message),
        recording_event_types: c
            .footage_topics()
            .into_iter()
            .filter(|_| c.recording_event_types.is_some())
            .map(|t| super::event_service::event_type(t) as i32)
            .collect(),
        path_name: crate::domain::camera::path_name(c.id),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
        etag: format!("\"{}\"", c.version),
    }
}

/// Wire camera grant.
pub fn camera_grant(g: &crate::store::cameras::CameraGrantRow) -> pb::CameraGrant {
    pb::CameraGrant {
        camera_id: g.camera_id.to_string(),
        user_id: g.user_id.to_string(),
        permissions: g.permissions.clone(),
        expire_time: g.expire_at.map(timestamp),
        grantor_user_id: g.grantor_user_id.map(|u| u.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(g.created_at)),
        update_time: Some(timestamp(g.updated_at)),
    }
}

/// Wire camera status.
pub fn camera_status(st: &crate::app::cameras::CameraStatusView) -> pb::CameraStatus {
    use crate::app::cameras::SyncKind;
    use crate::domain::camera::CameraState;
    let rt = st.runtime.clone().unwrap_or_default();
    let available_time = rt
        .available_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| timestamp(t.with_timezone(&chrono::Utc)));
    pb::CameraStatus {
        camera_id: st.camera_id.to_string(),
        state: match st.state {
            CameraState::Disabled => pb::CameraState::Disabled,
            CameraState::Connecting => pb::CameraState::Connecting,
            CameraState::Online => pb::CameraState::Online,
            CameraState::Offline => pb::CameraState::Offline,
            CameraState::Error => pb::CameraState::Error,
        } as i32,
        available: rt.available,
        available_time: if rt.available { available_time } else { None },
        reader_count: rt.readers as i32,
        inbound_bytes: rt.inbound_bytes,
        outbound_bytes: rt.outbound_bytes,
        inbound_frames_in_error: rt.inbound_frames_in_error,
        tracks: rt
            .tracks
            .iter()
            .map(|(codec, w, h)| pb::MediaTrack {
                codec: codec.clone(),
                width: *w as i32,
                height: *h as i32,
                ..Default::default()
            })
            .collect(),
        last_error: st.last_error.clone().unwrap_or_default(),
        last_error_time: st.last_error.as_ref().map(|_| timestamp(st.observed)),
        recording: st.recording,
        last_segment_time: None,
        sync_state: match st.sync {
            SyncKind::InSync => pb::MediaSyncState::InSync,
            SyncKind::Pending => pb::MediaSyncState::Pending,
            SyncKind::Failed => pb::MediaSyncState::Failed,
        } as i32,
        observe_time: Some(timestamp(st.observed)),
        inbound_bitrate_bps: st.bitrate_bps,
    }
}

/// Wire connection-test result.
pub fn probe(p: &crate::media::probe::ProbeReport) -> pb::TestCameraConnectionResponse {
    use crate::media::probe::ProbeOutcome;
    let duration =
        |d: std::time::Duration| prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 };
    pb::TestCameraConnectionResponse {
        result: match p.outcome {
            ProbeOutcome::Ok => pb::ConnectionTestResult::Ok,
            ProbeOutcome::Unreachable => pb::ConnectionTestResult::Unreachable,
            ProbeOutcome::Timeout => pb::ConnectionTestResult::Timeout,
            ProbeOutcome::AuthFailed => pb::ConnectionTestResult::AuthFailed,
            ProbeOutcome::NotFound => pb::ConnectionTestResult::NotFound,
            ProbeOutcome::TlsError => pb::ConnectionTestResult::TlsError,
            ProbeOutcome::Unsupported => pb::ConnectionTestResult::Unsupported,
            ProbeOutcome::NotRtsp => pb::ConnectionTestResult::NotRtsp,
            ProbeOutcome::NoVideo => pb::ConnectionTestResult::NoVideo,
        } as i32,
        reachable: p.reachable,
        error_message: p.message.clone(),
        tracks: p
            .tracks
            .iter()
            .map(|t| pb::MediaTrack {
                codec: t.codec.clone(),
                width: t.width as i32,
                height: t.height as i32,
                ..Default::default()
            })
            .collect(),
        latency: p.describe_latency.map(duration),
        first_frame_latency: p.first_frame_latency.map(duration),
    }
}

pub fn camera_state_pb(s: crate::domain::camera::CameraState) -> pb::CameraState {
    use crate::domain::camera::CameraState;
    match s {
        CameraState::Disabled => pb::CameraState::Disabled,
        CameraState::Connecting => pb::CameraState::Connecting,
        CameraState::Online => pb::CameraState::Online,
        CameraState::Offline => pb::CameraState::Offline,
        CameraState::Error => pb::CameraState::Error,
    }
}

#[tonic::async_trait]
impl CameraService for CameraApi {
    async fn create_camera(&self, req: Request<pb::CreateCameraRequest>) -> ApiResult<pb::CreateCameraResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let camera = r.camera.ok_or_else(|| to_status(Error::invalid("camera", "camera is required")))?;
        let spec = spec(&camera).map_err(to_status)?;
        respond(
            self.app
                .create(&call, spec, &r.password)
                .await
                .map(|row| pb::CreateCameraResponse { camera: Some(camera_message(&row)) }),
        )
    }

    async fn get_camera(&self, req: Request<pb::GetCameraRequest>) -> ApiResult<pb::GetCameraResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .get(&call, &r.camera_id)
                .await
                .map(|row| pb::GetCameraResponse { camera: Some(camera_message(&row)) }),
        )
    }

    async fn list_cameras(&self, req: Request<pb::ListCamerasRequest>) -> ApiResult<pb::ListCamerasResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let labels: std::collections::BTreeMap<String, String> = r.labels.into_iter().collect();
        let binding = format!("labels={}|enabled={:?}", serde_json::to_string(&labels).unwrap_or_default(), r.enabled);
        let page = PageRequest::new(r.page_size, &r.page_token, &binding).map_err(to_status)?;
        respond(self.app.list(&call, labels, r.enabled, page).await.map(|(rows, next)| {
            pb::ListCamerasResponse {
                cameras: rows
                    .iter()
                    .map(|(row, footage)| pb::Camera {
                        latest_footage_start_time: footage
                            .as_ref()
                            .and_then(|f| f.newest_start)
                            .map(convert::timestamp),
                        latest_footage_end_time: footage.as_ref().and_then(|f| f.newest_end).map(convert::timestamp),
                        ..camera_message(row)
                    })
                    .collect(),
                next_page_token: next,
            }
        }))
    }

    async fn update_camera(&self, req: Request<pb::UpdateCameraRequest>) -> ApiResult<pb::UpdateCameraResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let camera = r.camera.ok_or_else(|| to_status(Error::invalid("camera", "camera is required")))?;
        let mask = r.update_mask.ok_or_else(|| to_status(Error::invalid("update_mask", "update_mask is required")))?;
        let spec = spec(&camera).map_err(to_status)?;
        let version = convert::etag("camera.etag", &camera.etag).map_err(to_status)?;
        respond(
            self.app
                .update(&call, &camera.id, spec, &mask.paths, version)
                .await
                .map(|row| pb::UpdateCameraResponse { camera: Some(camera_message(&row)) }),
        )
    }

    async fn set_camera_source(
        &self,
        req: Request<pb::SetCameraSourceRequest>,
    ) -> ApiResult<pb::SetCameraSourceResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let change = SourceChange {
            expected_version: convert::etag("etag", &r.etag).map_err(to_status)?,
            source_url: r.source_url,
            username: r.username,
            password: r.password,
            keep_password: r.keep_password,
        };
        respond(
            self.app
                .set_source(&call, &r.camera_id, change)
                .await
                .map(|row| pb::SetCameraSourceResponse { camera: Some(camera_message(&row)) }),
        )
    }

    async fn delete_camera(&self, req: Request<pb::DeleteCameraRequest>) -> ApiResult<pb::DeleteCameraResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let version = convert::etag("etag", &r.etag).map_err(to_status)?;
        respond(
            self.app
                .delete(&call, &r.camera_id, version, r.delete_recordings)
                .await
                .map(|()| pb::DeleteCameraResponse {}),
        )
    }

    async fn get_media_plane_status(
        &self,
        _req: Request<pb::GetMediaPlaneStatusRequest>,
    ) -> ApiResult<pb::GetMediaPlaneStatusResponse> {
        let st = self.app.media.state();
        Ok(tonic::Response::new(pb::GetMediaPlaneStatusResponse {
            configured: st.configured,
            reachable: st.reachable,
            last_sync_time: st.last_sync.map(convert::timestamp),
            pending_changes: i32::try_from(st.pending).unwrap_or(i32::MAX),
            failed_cameras: i32::try_from(st.failed.len()).unwrap_or(i32::MAX),
            last_error: st.last_error.unwrap_or_default(),
            mediamtx_version: st.version.unwrap_or_default(),
            mediamtx_started: st.started.unwrap_or_default(),
            config_writes: i64::try_from(st.writes).unwrap_or(i64::MAX),
            supervised: st.supervised.map(|c| pb::SupervisedMediaMtx {
                binary: c.binary,
                config_file: c.config_file,
                state: c.state,
                pid: c.pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0),
                restarts: i32::try_from(c.restarts).unwrap_or(i32::MAX),
                last_exit: c.last_exit,
            }),
            reason: st.absent_reason.unwrap_or_default(),
        }))
    }

    async fn get_camera_status(
        &self,
        req: Request<pb::GetCameraStatusRequest>,
    ) -> ApiResult<pb::GetCameraStatusResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .status(&call, &r.camera_id)
                .await
                .map(|st| pb::GetCameraStatusResponse { status: Some(camera_status(&st)) }),
        )
    }

    async fn list_camera_statuses(
        &self,
        req: Request<pb::ListCameraStatusesRequest>,
    ) -> ApiResult<pb::ListCameraStatusesResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let page = PageRequest::new(r.page_size, &r.page_token, "labels={}").map_err(to_status)?;
        respond(self.app.statuses(&call, &r.camera_ids, page).await.map(|(rows, next)| {
            pb::ListCameraStatusesResponse { statuses: rows.iter().map(camera_status).collect(), next_page_token: next }
        }))
    }

    async fn test_camera_connection(
        &self,
        req: Request<pb::TestCameraConnectionRequest>,
    ) -> ApiResult<pb::TestCameraConnectionResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let transport = spec(&pb::Camera { transport: r.transport, ..Default::default() })
            .map_err(|e| to_status(Error::invalid("transport", e.to_string())))?
            .transport;
        let test = ConnectionTest {
            source_url: r.source_url,
            username: r.username,
            password: r.password,
            transport,
            camera_id: r.camera_id,
            timeout: r.timeout.map(|d| std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)),
        };
        respond(self.app.test_connection(&call, test).await.map(|p| probe(&p)))
    }

    async fn create_viewer_token(
        &self,
        req: Request<pb::CreateViewerTokenRequest>,
    ) -> ApiResult<pb::CreateViewerTokenResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let ttl = r.ttl.map(|d| (d.seconds, d.nanos));
        respond(self.app.live(&call, &r.camera_id, ttl).await.map(|t| pb::CreateViewerTokenResponse {
            token: t.token,
            expire_time: Some(convert::timestamp(t.expires)),
            whep_url: t.whep_url,
            hls_url: t.hls_url,
            rtsp_url: t.rtsp_url,
        }))
    }

    async fn grant_camera_access(
        &self,
        req: Request<pb::GrantCameraAccessRequest>,
    ) -> ApiResult<pb::GrantCameraAccessResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let expire =
            r.expire_time.as_ref().map(|t| convert::from_timestamp("expire_time", t)).transpose().map_err(to_status)?;
        respond(
            self.app
                .grant(&call, &r.camera_id, &r.user_id, &r.permissions, expire)
                .await
                .map(|g| pb::GrantCameraAccessResponse { grant: Some(camera_grant(&g)) }),
        )
    }

    async fn revoke_camera_access(
        &self,
        req: Request<pb::RevokeCameraAccessRequest>,
    ) -> ApiResult<pb::RevokeCameraAccessResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.revoke(&call, &r.camera_id, &r.user_id).await.map(|_| pb::RevokeCameraAccessResponse {}))
    }

    async fn list_camera_grants(
        &self,
        req: Request<pb::ListCameraGrantsRequest>,
    ) -> ApiResult<pb::ListCameraGrantsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let binding = format!("camera={}|user={}", r.camera_id, r.user_id);
        let page = PageRequest::new(r.page_size, &r.page_token, &binding).map_err(to_status)?;
        respond(self.app.grants(&call, &r.camera_id, &r.user_id, page).await.map(|(rows, next)| {
            pb::ListCameraGrantsResponse { grants: rows.iter().map(camera_grant).collect(), next_page_token: next }
        }))
    }
}
