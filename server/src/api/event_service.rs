//! `opennvr.v1.EventService`: decode, call [`EventsApp`], encode. Nothing else.
use super::call;
use super::camera_service::camera_state_pb;
use super::convert;
use super::convert::timestamp;
use super::ids_service::ids_alert;
use super::inference_service::adapter_health;
use super::inference_service::circuit_state;
use super::inference_service::detection;
use super::status::{ApiResult, to_status};
use crate::app::PageRequest;
use crate::app::events::{EventsApp, Topic, WatchItem, resume_token};
use crate::domain::inference::Health;
use crate::error::Error;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::event_service_server::EventService;
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Status};

/// The gRPC face of the site events.
pub struct EventApi {
    pub app: EventsApp,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The topics a request names; types not published yet are accepted (they simply do not occur).
/// The topics of event `types` (field `field`): `None` when every type asked for is one the server
/// never stores or streams.
pub(super) fn topics(field: &'static str, types: &[i32]) -> Result<Option<Vec<Topic>>, Status> {
    crate::app::distinct(field, types.to_vec()).map_err(to_status)?;
    let mut out = Vec::new();
    for t in types {
        let topic = match pb::EventType::try_from(*t) {
            Ok(pb::EventType::CameraOnline) => Topic::CameraOnline,
            Ok(pb::EventType::CameraOffline) => Topic::CameraOffline,
            Ok(pb::EventType::CameraCreated) => Topic::CameraCreated,
            Ok(pb::EventType::CameraUpdated) => Topic::CameraUpdated,
            Ok(pb::EventType::CameraDeleted) => Topic::CameraDeleted,
            Ok(pb::EventType::MediaServerRestarted) => Topic::MediaServerRestarted,
            Ok(pb::EventType::MediaServerUnavailable) => Topic::MediaServerUnavailable,
            Ok(pb::EventType::RecordingStarted) => Topic::RecordingStarted,
            Ok(pb::EventType::RecordingStopped) => Topic::RecordingStopped,
            Ok(pb::EventType::IdsAlert) => Topic::IdsAlert,
            Ok(pb::EventType::Detection) => Topic::Detection,
            Ok(pb::EventType::Motion) => Topic::Motion,
            Ok(pb::EventType::AdapterHealthy) | Ok(pb::EventType::AdapterUnhealthy) => Topic::AdapterHealth,
            Ok(pb::EventType::Unspecified) | Err(_) => {
                return Err(to_status(Error::invalid(field, format!("{field}: {t} is not an event type"))));
            }
            Ok(_) => continue,
        };
        out.push(topic);
    }
    // Only types that never occur yet: an empty filter would mean "everything".
    Ok(if out.is_empty() && !types.is_empty() { None } else { Some(out) })
}

/// Wire site event.
/// The wire type of `topic` (adapter health as its unhealthy side: the topic holds both).
pub fn event_type(topic: Topic) -> pb::EventType {
    match topic {
        Topic::CameraOnline => pb::EventType::CameraOnline,
        Topic::CameraOffline => pb::EventType::CameraOffline,
        Topic::CameraCreated => pb::EventType::CameraCreated,
        Topic::CameraUpdated => pb::EventType::CameraUpdated,
        Topic::CameraDeleted => pb::EventType::CameraDeleted,
        Topic::MediaServerRestarted => pb::EventType::MediaServerRestarted,
        Topic::MediaServerUnavailable => pb::EventType::MediaServerUnavailable,
        Topic::RecordingStarted => pb::EventType::RecordingStarted,
        Topic::RecordingStopped => pb::EventType::RecordingStopped,
        Topic::IdsAlert => pb::EventType::IdsAlert,
        Topic::AdapterHealth => pb::EventType::AdapterUnhealthy,
        Topic::Detection => pb::EventType::Detection,
        Topic::Motion => pb::EventType::Motion,
    }
}

/// Wire box.
pub fn frame_box(b: crate::domain::motion::FrameBox) -> pb::BoundingBox {
    pb::BoundingBox { x: b.x, y: b.y, width: b.width, height: b.height }
}

pub fn site_event(e: &crate::domain::event::SiteEvent) -> pb::Event {
    use crate::domain::camera::CameraState;
    use crate::domain::event::{ConfigChange, EventKind};
    let (ty, severity, payload) = match &e.kind {
        EventKind::CameraState { state, previous, error } => (
            if *state == CameraState::Online { pb::EventType::CameraOnline } else { pb::EventType::CameraOffline },
            if *state == CameraState::Online { pb::EventSeverity::Info } else { pb::EventSeverity::Warning },
            pb::event::Payload::CameraState(pb::CameraStateChange {
                state: camera_state_pb(*state) as i32,
                previous_state: camera_state_pb(*previous) as i32,
                error: error.clone(),
            }),
        ),
        EventKind::CameraConfig { change, name, changed_fields, actor_user_id } => (
            match change {
                ConfigChange::Created => pb::EventType::CameraCreated,
                ConfigChange::Updated => pb::EventType::CameraUpdated,
                ConfigChange::Deleted => pb::EventType::CameraDeleted,
            },
            pb::EventSeverity::Info,
            pb::event::Payload::CameraConfig(pb::CameraConfigChange {
                camera_name: name.clone(),
                changed_fields: changed_fields.clone(),
                actor_user_id: actor_user_id.clone(),
            }),
        ),
        EventKind::MediaServer { restarted, version, started, error } => (
            if *restarted { pb::EventType::MediaServerRestarted } else { pb::EventType::MediaServerUnavailable },
            if *restarted { pb::EventSeverity::Warning } else { pb::EventSeverity::Critical },
            pb::event::Payload::MediaServer(pb::MediaServerChange {
                version: version.clone(),
                start_time: chrono::DateTime::parse_from_rfc3339(started)
                    .ok()
                    .map(|t| timestamp(t.with_timezone(&chrono::Utc))),
                error: error.clone(),
                reconcile_duration: None,
            }),
        ),
        EventKind::Recording { recording, reason } => (
            if *recording { pb::EventType::RecordingStarted } else { pb::EventType::RecordingStopped },
            if *recording { pb::EventSeverity::Info } else { pb::EventSeverity::Critical },
            pb::event::Payload::RecordingState(pb::RecordingStateChange { reason: reason.clone() }),
        ),
        EventKind::AdapterHealth { adapter_id, name, health, previous, circuit, error } => (
            if matches!(health, Health::Healthy) {
                pb::EventType::AdapterHealthy
            } else {
                pb::EventType::AdapterUnhealthy
            },
            if matches!(health, Health::Unhealthy) { pb::EventSeverity::Warning } else { pb::EventSeverity::Info },
            pb::event::Payload::AdapterHealth(pb::AdapterHealthChange {
                adapter_id: adapter_id.to_string(),
                adapter_name: name.clone(),
                health: adapter_health(*health) as i32,
                previous_health: adapter_health(*previous) as i32,
                circuit_state: circuit_state(*circuit).0 as i32,
                last_error: error.clone(),
            }),
        ),
        EventKind::Detections { adapter_id, binding_id, frame_time, detections } => (
            pb::EventType::Detection,
            pb::EventSeverity::Info,
            pb::event::Payload::Detections(pb::DetectionBatch {
                adapter_id: adapter_id.to_string(),
                binding_id: binding_id.to_string(),
                frame_time: Some(timestamp(*frame_time)),
                detections: detections.iter().map(detection).collect(),
            }),
        ),
        EventKind::Motion(ep) => (
            pb::EventType::Motion,
            pb::EventSeverity::Info,
            pb::event::Payload::Motion(pb::MotionEpisode {
                start_time: Some(timestamp(ep.start)),
                end_time: Some(timestamp(ep.end)),
                peak_area: ep.peak_area,
                peak_time: Some(timestamp(ep.peak_time)),
                peak_box: Some(frame_box(ep.peak_box)),
            }),
        ),
        EventKind::IdsAlert { id, alert, cameras, ingest_time } => (
            pb::EventType::IdsAlert,
            // Suricata's severity 1 is the highest.
            match alert.severity {
                1 => pb::EventSeverity::Critical,
                2 => pb::EventSeverity::Warning,
                _ => pb::EventSeverity::Info,
            },
            pb::event::Payload::IdsAlert(ids_alert(&crate::store::ids::IdsAlertRow::of(
                *id,
                alert,
                cameras,
                *ingest_time,
            ))),
        ),
    };
    pb::Event {
        id: e.id.to_string(),
        time: Some(timestamp(e.time)),
        r#type: ty as i32,
        severity: severity as i32,
        camera_id: e.camera_id.map(|c| c.to_string()).unwrap_or_default(),
        has_snapshot: false,
        payload: Some(payload),
    }
}

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = ResponseStream<pb::WatchEventsResponse>;

    async fn watch_events(&self, req: Request<pb::WatchEventsRequest>) -> ApiResult<Self::WatchEventsStream> {
        let call = call(&req)?;
        let r = req.into_inner();
        let Some(topics) = topics("types", &r.types)? else {
            return Ok(tonic::Response::new(Box::pin(tokio_stream::pending())));
        };
        let rx = self.app.watch(&call, &r.camera_ids, topics, &r.resume_token).await.map_err(to_status)?;
        let stream = ReceiverStream::new(rx).map(|item| {
            let (kind, at) = match item {
                WatchItem::Event(e, at) => (pb::watch_events_response::Kind::Event(site_event(&e)), at),
                WatchItem::Heartbeat(at) => (pb::watch_events_response::Kind::Heartbeat(pb::Heartbeat::default()), at),
                WatchItem::Expired => return Err(to_status(crate::app::events::resume_point_expired())),
            };
            Ok(pb::WatchEventsResponse { kind: Some(kind), resume_token: resume_token(at) })
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn list_events(&self, req: Request<pb::ListEventsRequest>) -> ApiResult<pb::ListEventsResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let Some(topics) = topics("types", &r.types)? else {
            return Ok(tonic::Response::new(pb::ListEventsResponse::default()));
        };
        let time = |field, t: Option<&prost_types::Timestamp>| {
            t.map(|t| convert::from_timestamp(field, t)).transpose().map_err(to_status)
        };
        let range = (time("start_time", r.start_time.as_ref())?, time("end_time", r.end_time.as_ref())?);
        let binding = format!(
            "{:?}|{:?}|{:?}|{:?}|{}",
            r.camera_ids,
            r.types,
            range.0.map(|t| t.timestamp_micros()),
            range.1.map(|t| t.timestamp_micros()),
            r.oldest_first
        );
        let page = PageRequest::new(r.page_size, &r.page_token, &binding).map_err(to_status)?;
        let listed =
            self.app.list(&call, &r.camera_ids, topics, range, r.oldest_first, page).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::ListEventsResponse {
            events: listed
                .events
                .iter()
                .map(|e| pb::Event { has_snapshot: listed.with_snapshot.contains(&e.id), ..site_event(e) })
                .collect(),
            next_page_token: listed.next_page_token,
            watch_resume_token: listed.watch_resume_token.unwrap_or_default(),
        }))
    }

    async fn get_event_snapshot(
        &self,
        req: Request<pb::GetEventSnapshotRequest>,
    ) -> ApiResult<pb::GetEventSnapshotResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let s = self.app.snapshot(&call, &r.camera_id, &r.event_id).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::GetEventSnapshotResponse {
            jpeg: s.jpeg,
            time: Some(timestamp(s.time)),
            r#box: Some(pb::BoundingBox { x: s.box_x, y: s.box_y, width: s.box_width, height: s.box_height }),
            label: s.label,
            score: s.score,
        }))
    }
}
