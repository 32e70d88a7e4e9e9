//! `opennvr.v1.CameraService`: decode, call [`CameraApp`], encode. Nothing else.
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
    })
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
                .map(|row| pb::CreateCameraResponse { camera: Some(convert::camera(&row)) }),
        )
    }

    async fn get_camera(&self, req: Request<pb::GetCameraRequest>) -> ApiResult<pb::GetCameraResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .get(&call, &r.camera_id)
                .await
                .map(|row| pb::GetCameraResponse { camera: Some(convert::camera(&row)) }),
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
                        ..convert::camera(row)
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
                .map(|row| pb::UpdateCameraResponse { camera: Some(convert::camera(&row)) }),
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
                .map(|row| pb::SetCameraSourceResponse { camera: Some(convert::camera(&row)) }),
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
                .map(|st| pb::GetCameraStatusResponse { status: Some(convert::camera_status(&st)) }),
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
            pb::ListCameraStatusesResponse {
                statuses: rows.iter().map(convert::camera_status).collect(),
                next_page_token: next,
            }
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
        respond(self.app.test_connection(&call, test).await.map(|p| convert::probe(&p)))
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
                .map(|g| pb::GrantCameraAccessResponse { grant: Some(convert::camera_grant(&g)) }),
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
            pb::ListCameraGrantsResponse {
                grants: rows.iter().map(convert::camera_grant).collect(),
                next_page_token: next,
            }
        }))
    }
}
