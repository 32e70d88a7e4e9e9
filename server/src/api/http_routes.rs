//! Plain HTTP on the gRPC port: liveness and readiness (open), Prometheus metrics and readiness
//! details (for a bearer credential holding `metrics.read`), the JWKS and MediaMTX's hooks.
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
    pub media: crate::media::plane::MediaPlane,
    /// The hook client's secret; `None`: the hook endpoint is off.
    pub hook_secret: Option<crate::security::secret::SecretDigest>,
    /// Where segment hooks go.
    pub recordings: crate::app::recordings::RecordingApp,
    /// AI adapters, for their metrics.
    pub adapters: crate::inference::AdapterRegistry,
    /// Who may read the metrics and readiness details.
    pub gate: Arc<super::authn::Gate>,
}

/// The refusal of a plain request whose credential does not hold `metrics.read`.
fn refused(status: &tonic::Status) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let code =
        if status.code() == tonic::Code::PermissionDenied { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
    (code, [(header::WWW_AUTHENTICATE, "Bearer")], format!("{}\n", status.message()))
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
/// it, since cameras are stored and served while MediaMTX is away, and converge when it returns —
/// to a caller holding `metrics.read` (anyone else gets the status alone).
async fn ready(State(s): State<Arc<HttpState>>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let detailed = super::authn::http_caller(&s.gate, &headers, crate::domain::Permission::MetricsRead).is_ok();
    let up = s.store.ping().await;
    if !detailed {
        return if up {
            (StatusCode::OK, "ready\n".to_owned())
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned())
        };
    }
    let media = s.media.state();
    let mut media_line = match (media.configured, media.reachable) {
        (false, _) => format!("media: not configured ({})\n", media.absent_reason.as_deref().unwrap_or("no MediaMTX")),
        (true, true) if media.pending == 0 => "media: in sync\n".to_owned(),
        (true, true) => format!("media: reachable, {} change(s) pending\n", media.pending),
        (true, false) => format!("media: unreachable ({})\n", media.last_error.as_deref().unwrap_or("no answer yet")),
    };
    if let Some(c) = &media.supervised {
        let pid = c.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
        media_line.push_str(&format!("mediamtx: supervised, {}{pid}, {} restart(s)\n", c.state, c.restarts));
    }
    if up {
        (StatusCode::OK, format!("ready\n{media_line}"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable\n{media_line}"))
    }
}

/// The Prometheus scrape, for a bearer credential holding `metrics.read` (an API key, typically).
async fn metrics(State(s): State<Arc<HttpState>>, headers: axum::http::HeaderMap) -> axum::response::Response {
    if let Err(status) = super::authn::http_caller(&s.gate, &headers, crate::domain::Permission::MetricsRead) {
        return refused(&status).into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.render(Some(s.store.usage()), Some(&s.media.state()), &s.adapters.figures()),
    )
        .into_response()
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

/// MediaMTX's hooks: availability changes make the status watcher look at once; segment events feed
/// the recording index. Answers 404 when hooks are off, 401 for a wrong secret (compared in
/// constant time), 400 for a malformed call and 404 for a path that is not a camera's, each with a
/// message and a log line.
async fn hook(
    State(s): State<Arc<HttpState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let Some(expected) = s.hook_secret else { return (StatusCode::NOT_FOUND, "hooks are off\n".into()) };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !expected.matches(presented) {
        tracing::warn!("MediaMTX hook refused: wrong or missing secret");
        return (StatusCode::UNAUTHORIZED, "wrong hook secret\n".into());
    }
    let refuse = |status: StatusCode, message: String| {
        tracing::warn!(%status, %message, "MediaMTX hook refused");
        (status, format!("{message}\n"))
    };
    let call = match serde_json::from_slice::<HookCall>(&body) {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed hook call: {e}")),
    };
    if !call.path.starts_with(crate::domain::camera::PATH_PREFIX) {
        return refuse(StatusCode::NOT_FOUND, format!("path {:?} is not one of OpenNVR's cameras", call.path));
    }
    let segment = |duration: bool| -> Result<(&str, Option<&str>), String> {
        let file = call.segment_path.as_deref().filter(|f| !f.is_empty()).ok_or("segment_path is required")?;
        let d = call.segment_duration.as_deref();
        if duration && d.is_none() {
            return Err("segment_duration is required".into());
        }
        Ok((file, d.filter(|_| duration)))
    };
    let ingest = match call.event.as_str() {
        "available" | "unavailable" => {
            s.media.poke();
            return (StatusCode::ACCEPTED, String::new());
        }
        "segment-create" => segment(false),
        "segment-complete" => segment(true),
        other => return refuse(StatusCode::BAD_REQUEST, format!("unknown hook event {other:?}")),
    };
    let (file, duration) = match ingest {
        Ok(x) => x,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    match s.recordings.segment_hook(&call.path, file, duration).await {
        Ok(_) => (StatusCode::ACCEPTED, String::new()),
        Err(e) => {
            let status = match e.kind() {
                crate::error::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                crate::error::ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            refuse(status, e.message().to_owned())
        }
    }
}
