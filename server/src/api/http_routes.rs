//! Plain HTTP on the gRPC port: liveness, readiness, Prometheus metrics and the JWKS.
use crate::metrics::Metrics;
use crate::security::keyring::KeyRing;
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

/// What the plain routes read.
pub struct HttpState {
    pub store: Store,
    pub keys: KeyRing,
    pub metrics: Metrics,
    pub media: crate::media::reconciler::MediaPlane,
    /// The hook client's secret; `None`: the hook endpoint is off.
    pub hook_secret: Option<crate::security::secret::SecretDigest>,
}

/// The plain routes.
pub fn routes(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/hooks/mediamtx", axum::routing::post(hook))
        .with_state(state)
}

/// Ready when the database answers: the API then works. The media plane's state is reported beside
/// it, since cameras are stored and served while MediaMTX is away, and converge when it returns.
async fn ready(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let media = s.media.state();
    let media_line = match (media.configured, media.reachable) {
        (false, _) => "media: not configured\n".to_owned(),
        (true, true) if media.pending == 0 => "media: in sync\n".to_owned(),
        (true, true) => format!("media: reachable, {} change(s) pending\n", media.pending),
        (true, false) => format!("media: unreachable ({})\n", media.last_error.as_deref().unwrap_or("no answer yet")),
    };
    if s.store.ping().await {
        (StatusCode::OK, format!("ready\n{media_line}"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable\n{media_line}"))
    }
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.render(Some(s.store.usage()), Some(&s.media.state())),
    )
}

async fn jwks(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")],
        s.keys.jwks().to_string(),
    )
}

/// What MediaMTX's hook client sends.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HookCall {
    event: String,
    path: String,
    #[serde(default)]
    segment_path: Option<String>,
    #[serde(default)]
    segment_duration: Option<String>,
}

/// MediaMTX's hooks: availability changes make the status watcher look at once; segment events are
/// accepted and logged (the recording index takes them over). Answers 404 when hooks are off, 401
/// for a wrong secret, 400 for an unknown event.
async fn hook(State(s): State<Arc<HttpState>>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let Some(expected) = s.hook_secret else { return StatusCode::NOT_FOUND };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !expected.matches(presented) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(call) = serde_json::from_slice::<HookCall>(&body) else { return StatusCode::BAD_REQUEST };
    if !call.path.starts_with(crate::domain::camera::PATH_PREFIX) {
        return StatusCode::BAD_REQUEST;
    }
    match call.event.as_str() {
        "available" | "unavailable" => s.media.poke(),
        "segment-create" | "segment-complete" => {
            tracing::debug!(path = %call.path, segment = ?call.segment_path, duration = ?call.segment_duration, event = %call.event, "segment hook");
        }
        _ => return StatusCode::BAD_REQUEST,
    }
    StatusCode::ACCEPTED
}
