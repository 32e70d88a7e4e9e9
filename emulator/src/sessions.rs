//! Viewer sessions: who reads which path over which protocol, and the v3 API's per-protocol session
//! lists, gets and kicks.
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::api::{Page, error, list_page, ok};
use crate::auth::authenticate;
use crate::{Inner, Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    let mut router = Router::new();
    for protocol in Protocol::ALL {
        let c = protocol.collection();
        router = router
            .route(
                &format!("/v3/{c}/list"),
                get(move |State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Page>| {
                    sessions_list(s, headers, q, protocol)
                }),
            )
            .route(
                &format!("/v3/{c}/get/{{id}}"),
                get(move |State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>| {
                    session_get(s, headers, id, protocol)
                }),
            )
            .route(
                &format!("/v3/{c}/kick/{{id}}"),
                post(move |State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>| {
                    session_kick(s, headers, id, protocol)
                }),
            );
    }
    router
}

/// How a viewer reads a path; each has its own session list and kick endpoint in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    WebRtc,
    Hls,
    Rtsp,
    Rtsps,
}

impl Protocol {
    /// Every protocol whose sessions the API lists.
    pub const ALL: [Protocol; 4] = [Protocol::WebRtc, Protocol::Hls, Protocol::Rtsp, Protocol::Rtsps];

    /// The API's collection name (`/v3/<name>/list`, `/v3/<name>/kick/{id}`).
    pub fn collection(self) -> &'static str {
        match self {
            Protocol::WebRtc => "webrtcsessions",
            Protocol::Hls => "hlssessions",
            Protocol::Rtsp => "rtspsessions",
            Protocol::Rtsps => "rtspssessions",
        }
    }

    /// The `openapi.yaml` schema of one session.
    fn schema(self) -> &'static str {
        match self {
            Protocol::WebRtc => "WebRTCSession",
            Protocol::Hls => "HLSSession",
            Protocol::Rtsp | Protocol::Rtsps => "RTSPSession",
        }
    }

    /// How `/v3/paths` lists such a reader (`PathReaderType`).
    pub(crate) fn reader_type(self) -> &'static str {
        match self {
            Protocol::WebRtc => "webRTCSession",
            Protocol::Hls => "hlsSession",
            Protocol::Rtsp => "rtspSession",
            Protocol::Rtsps => "rtspsSession",
        }
    }
}

/// A viewer reading a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub protocol: Protocol,
    pub path: String,
    /// The JWT's `sub`, which MediaMTX reports as the session's user.
    pub user: String,
    pub created: DateTime<Utc>,
}

/// A session as the API reports it: every property of its `openapi.yaml` schema, zero-valued unless
/// known here.
fn session_json(g: &Inner, s: &Session) -> Value {
    let mut v = g.schema.sessions.get(s.protocol.schema()).cloned().unwrap_or_default();
    v.insert("id".into(), json!(s.id));
    v.insert("created".into(), json!(s.created.to_rfc3339_opts(SecondsFormat::Nanos, true)));
    v.insert("remoteAddr".into(), json!("127.0.0.1:50000"));
    v.insert("path".into(), json!(s.path));
    v.insert("user".into(), json!(s.user));
    if v.contains_key("state") {
        v.insert("state".into(), json!("read"));
    }
    Value::Object(v)
}

async fn sessions_list(s: Shared, headers: HeaderMap, q: Page, protocol: Protocol) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    let all: Vec<Session> = g.sessions.values().filter(|x| x.protocol == protocol).cloned().collect();
    list_page(&all, &q, |x| session_json(&g, x))
}

/// The session `id` of `protocol`, or the error MediaMTX answers (400 for a malformed id).
fn find_session(g: &Inner, id: &str, protocol: Protocol) -> Result<Session, (StatusCode, String)> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err((StatusCode::BAD_REQUEST, format!("invalid UUID: {id}")));
    }
    g.sessions
        .get(id)
        .filter(|x| x.protocol == protocol)
        .cloned()
        .ok_or_else(|| (StatusCode::NOT_FOUND, "session not found".to_owned()))
}

async fn session_get(s: Shared, headers: HeaderMap, id: String, protocol: Protocol) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    match find_session(&g, &id, protocol) {
        Ok(x) => axum::Json(session_json(&g, &x)).into_response(),
        Err((status, e)) => error(status, e),
    }
}

async fn session_kick(s: Shared, headers: HeaderMap, id: String, protocol: Protocol) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let mut g = lock(&s);
    match find_session(&g, &id, protocol) {
        Ok(x) => {
            g.sessions.remove(&id);
            g.kicked.push(x);
            ok()
        }
        Err((status, e)) => error(status, e),
    }
}
