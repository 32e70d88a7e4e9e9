//! The one layer every gRPC call passes: it works out the client address, authenticates the bearer
//! credential — an access token (signature, expiry, revocation) or an API key (from the key cache),
//! without touching the database — keeps enrolment-only sessions to enrolling, checks the
//! permission the RPC needs from the policy table and its step-up, records the audit entry of every
//! call the app did not record itself (denials, failures, sensitive reads), and records metrics.
use super::policy::{Access, PolicyTable, StepUp};
use crate::app::{Call, Client, Principal};
use crate::audit::AuditTrail;
use crate::domain::{STATUS_CODES, action_of};
use crate::metrics::Metrics;
use crate::security::revocation::RevocationCache;
use crate::security::token::TokenIssuer;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::Status;

/// What the gate needs.
pub struct Gate {
    pub policies: PolicyTable,
    pub tokens: TokenIssuer,
    pub revocations: RevocationCache,
    pub api_keys: crate::security::api_keys::ApiKeyCache,
    pub step_up: crate::app::mfa::StepUpGuard,
    pub trusted_proxies: Vec<IpAddr>,
    pub metrics: Metrics,
    pub audit: AuditTrail,
    /// Calls without a credential (public RPCs, refusals) allowed per client address.
    pub anonymous: crate::security::budget::Budget,
    /// Streams open per caller.
    pub streams: StreamSlots,
}

/// The most streams (watches, exports, downloads) one caller — a user across their sessions, or an
/// API key — may hold open at once.
pub const MAX_STREAMS_PER_CALLER: usize = 32;

/// Streams open per caller.
#[derive(Clone, Default)]
pub struct StreamSlots(crate::security::budget::Occupancy<String>);

/// One open stream of a caller; its slot frees when the stream's body is dropped.
type StreamSlot = crate::security::budget::Place<String>;

impl StreamSlots {
    /// A slot for one more stream of `p`, or RESOURCE_EXHAUSTED naming the limit.
    fn take(&self, p: &Principal) -> Result<StreamSlot, Status> {
        let caller = match &p.api_key {
            Some(key) => format!("key:{}", key.id),
            None => format!("user:{}", p.user_id),
        };
        self.0.take(caller, |open, _| {
            if open < MAX_STREAMS_PER_CALLER {
                return Ok(());
            }
            Err(super::status::to_status(crate::error::Error::new(
                crate::error::ErrorKind::ResourceExhausted,
                format!(
                    "at most {MAX_STREAMS_PER_CALLER} streams may be open at once per user or API key; close one first"
                ),
            )))
        })
    }
}

/// Methods outside `opennvr.v1` that are open: the health check (probes) and reflection (the schema is
/// public). The health Watch stream is not offered: anyone could hold it, and a connection with it,
/// open for ever; probes poll Check.
const OPEN_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
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
    bearer_of(req.headers())
}

/// The bearer credential of `headers`, if any.
fn bearer_of(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Reads that are not audited when they succeed. Everything else is: every change, and the
/// sensitive reads (the audit trail itself, export downloads).
fn is_plain_read(path: &str) -> bool {
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else { return false };
    if service == "opennvr.v1.AuditService" || method == "DownloadExport" {
        return false;
    }
    ["Get", "List", "Watch"].iter().any(|p| method.starts_with(p)) || method == "WhoAmI"
}

/// The middleware.
pub async fn gate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    // Kept for streams, whose caller is checked again while they run.
    let token = bearer(&req).map(str::to_owned);
    let open = OPEN_METHODS.contains(&path.as_str());
    let policy = gate.policies.get(&path);
    let known = open || policy.is_some();
    let streaming = policy.is_some_and(|p| p.streaming);
    // The caller's slot of a stream, held until the stream's body is dropped.
    let mut slot: Option<StreamSlot> = None;
    let (response, call) = if path == "/grpc.health.v1.Health/Watch" {
        (deny(Status::unimplemented("grpc.health.v1.Health/Watch is not offered: poll Health/Check")), None)
    } else if !known {
        (deny(Status::unimplemented(format!("unknown method {path}"))), None)
    } else if open {
        (next.run(req).await, None)
    } else {
        let mut call = new_call(&gate, &req, &path);
        // Calls without a credential spend their address's budget before any work; calls whose
        // credential turns out not to be one spend it too (and are refused for good once it is
        // spent), so a made-up bearer gains nothing.
        let address = call.client.throttle_key();
        let anonymous = bearer(&req).is_none() || policy.is_some_and(|p| p.access == Access::Public);
        let budget = if anonymous { gate.anonymous.spend(&address) } else { Ok(()) };
        let authorized = match budget.map_err(|wait| (too_many_anonymous(wait), None)).and_then(|()| {
            authorize(&gate, &req, &path).map_err(|(status, principal)| match (&principal, anonymous) {
                (None, false) => match gate.anonymous.spend(&address) {
                    Ok(()) => (status, None),
                    Err(wait) => (too_many_anonymous(wait), None),
                },
                _ => (status, principal),
            })
        }) {
            Ok(Some(principal)) => match step_up(&gate, &principal, &path).await {
                Ok(()) if streaming => match gate.streams.take(&principal) {
                    Ok(s) => {
                        slot = Some(s);
                        Ok(Some(principal))
                    }
                    Err(status) => Err((status, Some(principal))),
                },
                Ok(()) => Ok(Some(principal)),
                Err(status) => Err((status, Some(principal))),
            },
            other => other,
        };
        match authorized {
            Ok(principal) => {
                call.principal = principal;
                req.extensions_mut().insert(call.clone());
                (next.run(req).await, Some(call))
            }
            Err((status, principal)) => {
                call.principal = principal;
                (deny(status), Some(call))
            }
        }
    };
    let status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let code = status.clone().unwrap_or_else(|| "0".to_owned());
    let mut response = response;
    match call {
        // A stream that started: its status comes in the trailers (or never, when the client goes
        // away), so its entry is written when it ends.
        Some(call) if streaming && status.is_none() => {
            let gate = gate.clone();
            // A stream outlives the check made when it opened: the caller's access is checked
            // again every second, and the stream ends (recorded with that status) when it ends.
            if let (Some(_), Some(token)) = (&call.principal, token) {
                let g = gate.clone();
                let check: AccessCheck = Box::new(move || still_allowed(&g, &token));
                let slot = slot.take();
                response = response.map(|inner| Body::new(AccessGuard::new(inner, check, slot)));
            }
            response = response.map(|inner| Body::new(AuditedStream::new(inner, gate, call)));
        }
        Some(call) => {
            let message = response.headers().get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            if !record_unaudited(&gate, &call, &code, &message).await && code == "0" {
                // A sensitive read whose entry could not be written is not served.
                response = deny(Status::unavailable("the audit trail cannot be written; try again later"));
            }
        }
        None => {}
    }
    // Only known methods become label values, so junk paths cannot grow the metric set.
    gate.metrics.observe_rpc(
        if known { &path } else { "unknown" },
        grpc_code_name(&code),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn new_call(gate: &Gate, req: &Request, path: &str) -> Call {
    let client = Client {
        address: client_address(req, &gate.trusted_proxies),
        user_agent: req
            .headers()
            .get("x-user-agent")
            .or_else(|| req.headers().get(http::header::USER_AGENT))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(256)
            .collect(),
    };
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", path));
    let service = service.rsplit('.').next().unwrap_or(service);
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Call::new(client, path.to_owned(), action_of(service, method), request_id)
}

/// The refusal of a call without a credential beyond its client address's budget.
fn too_many_anonymous(wait: std::time::Duration) -> Status {
    super::status::to_status(
        crate::error::Error::new(
            crate::error::ErrorKind::ResourceExhausted,
            format!("too many calls without a credential from this address; retry in {} s", wait.as_secs().max(1)),
        )
        .with_retry_after(wait)
        .with_reason(crate::error::reason::RATE_LIMITED),
    )
}

/// The principal of an allowed call (`None` for public RPCs), or the status of a refused one with
/// whoever was recognised.
fn authorize(gate: &Gate, req: &Request, path: &str) -> Result<Option<Principal>, (Status, Option<Principal>)> {
    let Some(policy) = gate.policies.get(path) else {
        return Err((Status::unimplemented(format!("unknown method {path}")), None));
    };
    if policy.access == Access::Public {
        return Ok(None);
    }
    let token = bearer(req).ok_or_else(|| (Status::unauthenticated("missing bearer access token"), None))?;
    if token.starts_with(crate::security::api_keys::SECRET_PREFIX) {
        let key = gate.api_keys.authenticate(token).map_err(|e| (super::status::to_status(e), None))?;
        let principal = crate::app::api_keys::principal_of(&key);
        let denied = |message: String| {
            Err((
                super::status::to_status(crate::error::Error::new(crate::error::ErrorKind::PermissionDenied, message)),
                Some(principal.clone()),
            ))
        };
        match policy.access {
            Access::SignedIn if !path.ends_with("/WhoAmI") => {
                return denied(format!("API keys cannot call {}: it acts on a user's own account", short_name(path)));
            }
            Access::Permission(p) if !principal.allows(p) => {
                return denied(format!("permission {} required (the API key's scope does not hold it)", p.name()));
            }
            // A key limited to cameras reaches cameras only through RPCs that say which camera
            // (adding cameras, probing sources or the media plane's state would reach beyond them).
            Access::Permission(p)
                if !key.cameras.is_empty()
                    && !policy.camera_scoped
                    && crate::domain::camera::GRANTABLE.contains(&p) =>
            {
                return denied(format!(
                    "an API key limited to cameras cannot call {}: it is not about given cameras",
                    short_name(path)
                ));
            }
            _ => {}
        }
        return Ok(Some(principal));
    }
    let claims = session_claims(gate, token).map_err(|e| (e, None))?;
    let principal = session_principal(claims);
    if principal.enrolment_only && !policy.enrolment_only {
        return Err((
            super::status::to_status(
                crate::error::Error::new(
                    crate::error::ErrorKind::PermissionDenied,
                    "your role requires a second factor: enrol one (StartTotpEnrollment or StartPasskeyRegistration), then refresh your tokens",
                )
                .with_reason(crate::error::reason::MFA_ENROLMENT_REQUIRED),
            ),
            Some(principal),
        ));
    }
    if let Access::Permission(p) = policy.access
        && let Err(e) = principal.require(p)
    {
        return Err((super::status::to_status(e), Some(principal)));
    }
    Ok(Some(principal))
}

/// The caller an access token names.
fn session_principal(claims: crate::security::token::AccessClaims) -> Principal {
    Principal {
        user_id: claims.sub,
        session_id: claims.sid,
        role: claims.role,
        username: claims.preferred_username,
        api_key: None,
        enrolment_only: claims.mfa_enrol,
    }
}

/// The caller of a plain HTTP request that needs `permission` (a metrics scrape, readiness
/// details): a bearer access token or API key that holds it. UNAUTHENTICATED without a valid one,
/// PERMISSION_DENIED when it lacks the permission.
pub fn http_caller(
    gate: &Gate,
    headers: &http::HeaderMap,
    permission: crate::domain::Permission,
) -> Result<Principal, Status> {
    let token =
        bearer_of(headers).ok_or_else(|| Status::unauthenticated("a bearer API key or access token is required"))?;
    let principal = if token.starts_with(crate::security::api_keys::SECRET_PREFIX) {
        crate::app::api_keys::principal_of(&*gate.api_keys.authenticate(token).map_err(super::status::to_status)?)
    } else {
        session_principal(session_claims(gate, token)?)
    };
    principal.require(permission).map_err(super::status::to_status)?;
    Ok(principal)
}

/// Whether the credential a stream was opened with still admits its caller: the access token's
/// signature and expiry and its session's revocation, or the API key's revocation and expiry. In
/// memory only (revocations reach the caches within a second); disabling, deleting or demoting a user
/// revokes their sessions and keys.
fn still_allowed(gate: &Gate, token: &str) -> Result<(), Status> {
    if token.starts_with(crate::security::api_keys::SECRET_PREFIX) {
        return gate.api_keys.authenticate(token).map(drop).map_err(super::status::to_status);
    }
    session_claims(gate, token).map(drop)
}

/// The claims of an access token that verifies (signature, expiry) and whose session is not revoked:
/// the one check of a session's token, when a call arrives and while a stream runs.
fn session_claims(gate: &Gate, token: &str) -> Result<crate::security::token::AccessClaims, Status> {
    let claims = gate.tokens.verify(token).map_err(super::status::to_status)?;
    if gate.revocations.is_revoked(claims.sid) {
        return Err(super::status::to_status(
            crate::error::Error::new(crate::error::ErrorKind::Unauthenticated, "session has been revoked")
                .with_reason(crate::error::reason::CREDENTIAL_REVOKED),
        ));
    }
    Ok(claims)
}

/// The check an [`AccessGuard`] runs.
type AccessCheck = Box<dyn Fn() -> Result<(), Status> + Send + Sync>;

/// How often a running stream checks its caller's access.
const ACCESS_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A response stream that ends, with the status the check gives, once its caller's access ends.
struct AccessGuard {
    inner: Body,
    check: AccessCheck,
    tick: Pin<Box<tokio::time::Sleep>>,
    ended: bool,
    /// The caller's stream slot, freed with the stream.
    _slot: Option<StreamSlot>,
}

impl AccessGuard {
    fn new(inner: Body, check: AccessCheck, slot: Option<StreamSlot>) -> AccessGuard {
        AccessGuard { inner, check, tick: Box::pin(tokio::time::sleep(ACCESS_RECHECK)), ended: false, _slot: slot }
    }
}

impl http_body::Body for AccessGuard {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<axum::body::Bytes>, axum::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        while self.tick.as_mut().poll(cx).is_ready() {
            if let Err(status) = (self.check)() {
                self.ended = true;
                let mut trailers = http::HeaderMap::new();
                if status.add_header(&mut trailers).is_err() {
                    trailers.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
                }
                return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
            }
            let next = tokio::time::Instant::now() + ACCESS_RECHECK;
            self.tick.as_mut().reset(next);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.is_trailers()
        {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

/// `Service.Method` of an RPC path.
fn short_name(path: &str) -> String {
    path.trim_start_matches('/').trim_start_matches("opennvr.v1.").replace('/', ".")
}

/// The step-up the RPC at `path` needs, checked for `principal` (a database read, only on the few
/// RPCs that need one).
async fn step_up(gate: &Gate, principal: &Principal, path: &str) -> Result<(), Status> {
    let Some(policy) = gate.policies.get(path) else { return Ok(()) };
    let once_enrolled = match policy.step_up {
        StepUp::No => return Ok(()),
        StepUp::Yes => false,
        StepUp::Enrolled => true,
    };
    gate.step_up.check(principal, &short_name(path), once_enrolled).await.map_err(super::status::to_status)
}

/// The body of a streaming answer, which writes the call's entry when the stream ends: with the
/// status of its trailers — held back until the entry is written, so a client that saw the end of the
/// stream finds its entry in the trail, and told UNAVAILABLE if it could not be — or CANCELLED when
/// the client went away before the end.
struct AuditedStream {
    inner: Body,
    pending: Option<(Arc<Gate>, Call)>,
    held: Option<http_body::Frame<axum::body::Bytes>>,
    recording: Option<Pin<Box<dyn std::future::Future<Output = bool> + Send>>>,
}

impl AuditedStream {
    fn new(inner: Body, gate: Arc<Gate>, call: Call) -> AuditedStream {
        AuditedStream { inner, pending: Some((gate, call)), held: None, recording: None }
    }

    /// Starts writing the entry (once).
    fn record(
        &mut self,
        code: String,
        message: String,
    ) -> Option<Pin<Box<dyn std::future::Future<Output = bool> + Send>>> {
        let (gate, call) = self.pending.take()?;
        Some(Box::pin(async move { record_unaudited(&gate, &call, &code, &message).await }))
    }
}

impl http_body::Body for AuditedStream {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<axum::body::Bytes>, axum::Error>>> {
        loop {
            if let Some(recording) = self.recording.as_mut() {
                let written = std::task::ready!(recording.as_mut().poll(cx));
                self.recording = None;
                let held = self.held.take();
                if written {
                    return Poll::Ready(held.map(Ok));
                }
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
                trailers.insert("grpc-message", http::HeaderValue::from_static("the audit trail cannot be written"));
                return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
            }
            let polled = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
            let (code, message) = match &polled {
                Some(Ok(frame)) => match frame.trailers_ref() {
                    Some(trailers) => {
                        let text =
                            |name: &str| trailers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        let code =
                            Some(text("grpc-status")).filter(|c| !c.is_empty()).unwrap_or_else(|| "2".to_owned());
                        (code, text("grpc-message"))
                    }
                    None => return Poll::Ready(polled),
                },
                Some(Err(e)) => ("2".to_owned(), format!("the response stream failed: {e}")),
                None => ("2".to_owned(), "the stream ended without a status".to_owned()),
            };
            match self.record(code, message) {
                Some(recording) => {
                    self.recording = Some(recording);
                    self.held = polled.and_then(Result::ok);
                }
                None => return Poll::Ready(polled),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedStream {
    fn drop(&mut self) {
        // The client went away before the end: the entry is written in the background.
        let recording =
            self.recording.take().or_else(|| self.record("1".to_owned(), "the client cancelled the call".to_owned()));
        if let (Some(recording), Ok(runtime)) = (recording, tokio::runtime::Handle::try_current()) {
            runtime.spawn(recording);
        }
    }
}

/// Writes the entry of a call the app did not audit: a denial, a failure, or a sensitive read.
/// Returns false when an entry was due and could not be written.
async fn record_unaudited(gate: &Gate, call: &Call, code: &str, message: &str) -> bool {
    if call.is_audited() || (code == "0" && is_plain_read(&call.method)) {
        return true;
    }
    let mut record = call.record("", "");
    if code != "0" {
        record = record.ended(grpc_code_name(code), &percent_decode(message));
    }
    // Anyone can be refused without end: the refusals of callers nobody could identify (no valid
    // credential, nothing the app recognised, such as the user of a sign-in ticket) are counted,
    // not written one by one.
    let anonymous = code != "0" && call.principal.is_none() && !call.has_target();
    let written = if anonymous {
        gate.audit.record_refusal(&call.client.throttle_key(), record).await
    } else {
        gate.audit.record(record).await
    };
    match written {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, method = %call.method, "could not write the audit entry of a call");
            false
        }
    }
}

/// Decodes a `grpc-message` header (percent-encoded UTF-8).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn grpc_code_name(code: &str) -> &'static str {
    code.parse::<usize>().ok().and_then(|n| STATUS_CODES.get(n)).copied().unwrap_or("UNKNOWN")
}
