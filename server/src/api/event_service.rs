//! `opennvr.v1.EventService`: decode, call [`EventsApp`], encode. Nothing else.
use super::status::{ApiResult, to_status};
use super::{call, convert};
use crate::app::events::{EventsApp, Topic, WatchItem};
use crate::error::{Error, ErrorKind};
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
fn topics(types: &[i32]) -> Result<Option<Vec<Topic>>, Status> {
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
            Ok(pb::EventType::AdapterHealthy) | Ok(pb::EventType::AdapterUnhealthy) => Topic::AdapterHealth,
            Ok(pb::EventType::Unspecified) | Err(_) => {
                return Err(to_status(Error::invalid("types", format!("types: {t} is not an event type"))));
            }
            Ok(_) => continue,
        };
        out.push(topic);
    }
    // Only types that never occur yet: an empty filter would mean "everything".
    Ok(if out.is_empty() && !types.is_empty() { None } else { Some(out) })
}

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = ResponseStream<pb::WatchEventsResponse>;

    async fn watch_events(&self, req: Request<pb::WatchEventsRequest>) -> ApiResult<Self::WatchEventsStream> {
        let call = call(&req)?;
        let r = req.into_inner();
        let Some(topics) = topics(&r.types)? else {
            return Ok(tonic::Response::new(Box::pin(tokio_stream::pending())));
        };
        let rx = self.app.watch(&call, &r.camera_ids, topics, &r.resume_token).await.map_err(to_status)?;
        let stream = ReceiverStream::new(rx).map(|item| {
            let kind = match item {
                WatchItem::Event(e) => pb::watch_events_response::Kind::Event(convert::site_event(&e)),
                WatchItem::Heartbeat => pb::watch_events_response::Kind::Heartbeat(pb::Heartbeat::default()),
                WatchItem::Lagged(n) => pb::watch_events_response::Kind::Lagged(pb::Lagged { dropped_events: n }),
            };
            Ok(pb::WatchEventsResponse { kind: Some(kind), resume_token: String::new() })
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn list_events(&self, _: Request<pb::ListEventsRequest>) -> ApiResult<pb::ListEventsResponse> {
        Err(to_status(Error::new(
            ErrorKind::Unimplemented,
            "the stored event history is not built yet: follow events live with WatchEvents; stored detections and IDS alerts are listed by ListDetections and ListIdsAlerts",
        )))
    }
}
