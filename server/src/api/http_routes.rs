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
}

/// The plain routes.
pub fn routes(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

async fn ready(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    if s.store.ping().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
    }
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.render(Some(s.store.usage())),
    )
}

async fn jwks(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")],
        s.keys.jwks().to_string(),
    )
}
