//! The one layer every gRPC call passes: it works out the client address, authenticates the bearer
//! access token (signature, expiry, revocation — without touching the database), checks the
//! permission the RPC needs from the policy table, and records metrics.
use super::policy::{Access, PolicyTable};
use crate::app::{Client, Principal};
use crate::metrics::Metrics;
use crate::security::revocation::RevocationCache;
use crate::security::token::TokenIssuer;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tonic::Status;

/// What the gate needs.
pub struct Gate {
    pub policies: PolicyTable,
    pub tokens: TokenIssuer,
    pub revocations: RevocationCache,
    pub trusted_proxies: Vec<IpAddr>,
    pub metrics: Metrics,
}

/// Methods outside `opennvr.v1` that are open: health (probes) and reflection (the schema is public).
const OPEN_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

fn deny(status: Status) -> Response {
    status.into_http::<axum::body::Body>().into_response()
}

/// The client address: the socket peer, or — only when the peer is a trusted proxy — the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded =
        req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    forwarded
        .split(',')
        .rev()
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted.contains(ip))
        .or(Some(peer))
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// The middleware.
pub async fn gate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let response = match authorize(&gate, &mut req, &path) {
        Ok(()) => next.run(req).await,
        Err(status) => deny(status),
    };
    let code = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(grpc_code_name).unwrap_or("OK");
    // Only known methods become label values, so junk paths cannot grow the metric set.
    let known = gate.policies.get(&path).is_some() || OPEN_METHODS.contains(&path.as_ref());
    gate.metrics.observe_rpc(if known { &path } else { "unknown" }, code, started.elapsed().as_secs_f64());
    response
}

fn authorize(gate: &Gate, req: &mut Request, path: &str) -> Result<(), Status> {
    let client = Client {
        address: client_address(req, &gate.trusted_proxies),
        user_agent: req
            .headers()
            .get("x-user-agent")
            .or_else(|| req.headers().get(http::header::USER_AGENT))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    };
    req.extensions_mut().insert(client);
    if OPEN_METHODS.contains(&path) {
        return Ok(());
    }
    let Some(policy) = gate.policies.get(path) else {
        return Err(Status::unimplemented(format!("unknown method {path}")));
    };
    if policy.access == Access::Public {
        return Ok(());
    }
    let token = bearer(req).ok_or_else(|| Status::unauthenticated("missing bearer access token"))?;
    let claims = gate.tokens.verify(token).map_err(super::status::to_status)?;
    if gate.revocations.is_revoked(claims.sid) {
        return Err(super::status::to_status(
            crate::error::Error::new(crate::error::ErrorKind::Unauthenticated, "session has been revoked")
                .with_reason(crate::error::reason::CREDENTIAL_REVOKED),
        ));
    }
    let principal = Principal { user_id: claims.sub, session_id: claims.sid, role: claims.role };
    if let Access::Permission(p) = policy.access {
        principal.require(p).map_err(super::status::to_status)?;
    }
    req.extensions_mut().insert(principal);
    Ok(())
}

fn grpc_code_name(code: &str) -> &'static str {
    match code {
        "0" => "OK",
        "1" => "CANCELLED",
        "2" => "UNKNOWN",
        "3" => "INVALID_ARGUMENT",
        "4" => "DEADLINE_EXCEEDED",
        "5" => "NOT_FOUND",
        "6" => "ALREADY_EXISTS",
        "7" => "PERMISSION_DENIED",
        "8" => "RESOURCE_EXHAUSTED",
        "9" => "FAILED_PRECONDITION",
        "10" => "ABORTED",
        "11" => "OUT_OF_RANGE",
        "12" => "UNIMPLEMENTED",
        "13" => "INTERNAL",
        "14" => "UNAVAILABLE",
        "15" => "DATA_LOSS",
        "16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}
