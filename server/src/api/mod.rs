//! The gRPC, grpc-web and plain HTTP face of the server, on one router: thin services over the app
//! layer, one authentication layer, one error mapping.
pub mod api_key_service;
pub mod audit_service;
pub mod auth_service;
pub mod authn;
pub mod camera_service;
pub mod convert;
pub mod dashboard;
pub mod event_service;
pub mod http_routes;
pub mod ids_service;
pub mod inference_service;
pub mod master_key_service;
pub mod policy;
pub mod recording_service;
pub mod status;
pub mod user_service;

use crate::error::{Error, Result};
use axum::Router;
use opennvr_proto::v1::auth_service_server::AuthServiceServer;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The call context the authentication layer attached to a request.
fn call<T>(req: &tonic::Request<T>) -> std::result::Result<crate::app::Call, tonic::Status> {
    req.extensions().get::<crate::app::Call>().cloned().ok_or_else(|| tonic::Status::internal("call context missing"))
}

/// The signed-in caller of `call`, or UNAUTHENTICATED.
fn principal(call: &crate::app::Call) -> std::result::Result<crate::app::Principal, tonic::Status> {
    call.principal().cloned().map_err(status::to_status)
}

/// Package whose RPCs the policy table covers.
pub const PACKAGE: &str = "opennvr.v1";

/// Services that later capabilities implement, and the capability each comes with.
const LATER: &[(&str, &str)] = &[];

/// What the router is made of.
pub struct RouterParts {
    pub auth: auth_service::AuthApi,
    pub users: user_service::UserApi,
    pub api_keys: api_key_service::ApiKeyApi,
    pub master_key: master_key_service::MasterKeyApi,
    pub ids: ids_service::IdsApi,
    pub audit: audit_service::AuditApi,
    pub cameras: camera_service::CameraApi,
    pub events: event_service::EventApi,
    pub recordings: recording_service::RecordingApi,
    pub inference: inference_service::InferenceApi,
    pub gate: Arc<authn::Gate>,
    pub http: Arc<http_routes::HttpState>,
    pub cors_origins: Vec<String>,
    /// The web dashboard served under `/ui/`.
    pub dashboard: dashboard::DashboardConfig,
}

/// Answers calls to services that are not built yet with UNIMPLEMENTED naming the capability.
async fn not_yet(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("").trim_start_matches("opennvr.v1.");
    let status = match LATER.iter().find(|(s, _)| *s == service) {
        Some((s, capability)) => {
            tonic::Status::unimplemented(format!("{s} is not implemented yet: it arrives with {capability}"))
        }
        None => tonic::Status::unimplemented(format!("unknown method {path}")),
    };
    status.into_http::<axum::body::Body>().into_response()
}

/// Builds the whole router: gRPC + grpc-web services behind the gate, and the plain HTTP routes.
pub fn router(parts: RouterParts) -> Result<Router> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // The reporter only needs to mark the services we serve; it is cheap to keep in a task.
    tokio::spawn(async move {
        health_reporter.set_serving::<AuthServiceServer<auth_service::AuthApi>>().await;
    });
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(opennvr_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Error::internal)?;
    let grpc = tonic::service::Routes::new(AuthServiceServer::new(parts.auth))
        .add_service(opennvr_proto::v1::audit_service_server::AuditServiceServer::new(parts.audit))
        .add_service(opennvr_proto::v1::camera_service_server::CameraServiceServer::new(parts.cameras))
        .add_service(opennvr_proto::v1::event_service_server::EventServiceServer::new(parts.events))
        .add_service(opennvr_proto::v1::recording_service_server::RecordingServiceServer::new(parts.recordings))
        .add_service(opennvr_proto::v1::inference_service_server::InferenceServiceServer::new(parts.inference))
        .add_service(opennvr_proto::v1::user_service_server::UserServiceServer::new(parts.users))
        .add_service(opennvr_proto::v1::api_key_service_server::ApiKeyServiceServer::new(parts.api_keys))
        .add_service(opennvr_proto::v1::master_key_service_server::MasterKeyServiceServer::new(parts.master_key))
        .add_service(opennvr_proto::v1::ids_service_server::IdsServiceServer::new(parts.ids))
        .add_service(health)
        .add_service(reflection)
        .into_axum_router()
        .fallback(not_yet)
        .layer(axum::middleware::from_fn_with_state(parts.gate, authn::gate))
        .layer(tonic_web::GrpcWebLayer::new());
    let mut app = http_routes::routes(parts.http).merge(dashboard::routes(&parts.dashboard)?).merge(grpc);
    if !parts.cors_origins.is_empty() {
        let origins = parts
            .cors_origins
            .iter()
            .map(|o| {
                o.parse().map_err(|_| {
                    crate::error::Error::config(format!("OPENNVR_CORS_ORIGINS: {o:?} is not a valid origin"))
                })
            })
            .collect::<Result<Vec<http::HeaderValue>>>()?;
        let h = |s: &'static str| http::HeaderName::from_static(s);
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([http::Method::POST, http::Method::GET, http::Method::OPTIONS])
                .allow_headers([
                    h("content-type"),
                    h("authorization"),
                    h("x-grpc-web"),
                    h("x-user-agent"),
                    h("grpc-timeout"),
                    h("connect-protocol-version"),
                    h("connect-timeout-ms"),
                ])
                .expose_headers([h("grpc-status"), h("grpc-message"), h("grpc-status-details-bin")])
                .max_age(std::time::Duration::from_secs(600)),
        );
    }
    Ok(app)
}
