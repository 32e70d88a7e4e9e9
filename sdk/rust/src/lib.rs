//! OpenNVR Rust client: connect to a server, sign in, keep the session's tokens fresh, and reach
//! every `opennvr.v1` service with the bearer token attached.
#![deny(clippy::unwrap_used, clippy::expect_used)]

/// The audit trail's hash scheme and offline verification of exports (the `opennvr-audit-chain`
/// crate, which the server uses too).
pub use opennvr_audit_chain as audit;
pub mod find;
pub mod paging;

pub use opennvr_proto::v1 as pb;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::auth_service_client::AuthServiceClient;
use pb::camera_service_client::CameraServiceClient;
use pb::event_service_client::EventServiceClient;
use pb::ids_service_client::IdsServiceClient;
use pb::inference_service_client::InferenceServiceClient;
use pb::master_key_service_client::MasterKeyServiceClient;
use pb::recording_service_client::RecordingServiceClient;
use pb::user_service_client::UserServiceClient;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Errors of the client.
#[derive(thiserror::Error)]
pub enum Error {
    /// The server could not be reached.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    /// The server answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] Status),
    /// The server answered without the tokens it should have sent.
    #[error("the server sent no tokens")]
    NoTokens,
    /// The password was right and the account has a second factor: finish with
    /// [`Client::finish_mfa`] and the challenge's ticket.
    #[error("this account needs a second factor (TOTP, recovery code or passkey)")]
    MfaRequired(Box<pb::MfaChallenge>),
    /// Nothing of this kind has this id or name (see [`find`]).
    #[error("no {kind} {wanted:?}: no {kind} has that id or name")]
    NotFound { kind: &'static str, wanted: String },
    /// Several of this kind have this name, in different case (see [`find`]): give an id.
    #[error("{} {kind}s are named {wanted:?} (ids {}): give an id", .ids.len(), .ids.join(", "))]
    Ambiguous { kind: &'static str, wanted: String, ids: Vec<String> },
}

/// Result of client calls.
pub type Result<T> = std::result::Result<T, Error>;

impl std::fmt::Debug for Error {
    /// Like the derived form, without the MFA ticket (a short-lived secret) of a challenge.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect { endpoint, source } => {
                f.debug_struct("Connect").field("endpoint", endpoint).field("source", source).finish()
            }
            Error::Status(s) => f.debug_tuple("Status").field(s).finish(),
            Error::NoTokens => f.write_str("NoTokens"),
            Error::NotFound { kind, wanted } => {
                f.debug_struct("NotFound").field("kind", kind).field("wanted", wanted).finish()
            }
            Error::Ambiguous { kind, wanted, ids } => {
                f.debug_struct("Ambiguous").field("kind", kind).field("wanted", wanted).field("ids", ids).finish()
            }
            Error::MfaRequired(c) => f
                .debug_struct("MfaRequired")
                .field("methods", &c.methods)
                .field("ticket", &"<redacted>")
                .finish_non_exhaustive(),
        }
    }
}

/// The stable reason a status carries (`google.rpc.ErrorInfo.reason`, e.g.
/// `ERROR_REASON_STEP_UP_REQUIRED`), if any.
pub fn error_reason(status: &Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|info| info.reason)
}

impl Error {
    /// The stable reason of a status error (see [`error_reason`]).
    pub fn reason(&self) -> Option<String> {
        match self {
            Error::Status(s) => error_reason(s),
            _ => None,
        }
    }
}

/// What a client presents: a session's tokens, or an API key.
#[derive(Clone)]
enum Credential {
    Session(Box<pb::Tokens>),
    ApiKey(String),
}

/// What time it is, for judging token expiry: the system clock unless a test or an embedder sets
/// another with [`Client::set_clock`].
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Told the new tokens after every refresh (to save a rotated session).
type RefreshHook = Arc<dyn Fn(&pb::Tokens) + Send + Sync>;

/// How long before the access token expires a call refreshes it first, unless told otherwise.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// A client's credential and what keeps it fresh, shared by every service client it hands out.
struct Session {
    credential: RwLock<Option<Credential>>,
    /// Held while a refresh is under way, so that one refresh token is exchanged once.
    refreshing: tokio::sync::Mutex<()>,
    margin: RwLock<Duration>,
    clock: RwLock<Clock>,
    on_refresh: RwLock<Option<RefreshHook>>,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            credential: RwLock::default(),
            refreshing: tokio::sync::Mutex::default(),
            margin: RwLock::new(DEFAULT_REFRESH_MARGIN),
            clock: RwLock::new(Arc::new(SystemTime::now)),
            on_refresh: RwLock::default(),
        }
    }
}

/// Reads a lock, whether or not a writer panicked while holding it.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Writes a lock, whether or not a writer panicked while holding it.
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    fn tokens(&self) -> Option<pb::Tokens> {
        match &*read(&self.credential) {
            Some(Credential::Session(t)) => Some((**t).clone()),
            _ => None,
        }
    }

    fn secret(&self) -> Option<String> {
        match &*read(&self.credential) {
            Some(Credential::Session(t)) => Some(t.access_token.clone()),
            Some(Credential::ApiKey(k)) => Some(k.clone()),
            None => None,
        }
    }

    fn set_tokens(&self, tokens: Option<pb::Tokens>) {
        *write(&self.credential) = tokens.map(|t| Credential::Session(Box::new(t)));
    }

    /// Whether the session's access token expires within `margin` (tokens without an expiry time
    /// count as expiring).
    fn expires_within(&self, margin: Duration) -> bool {
        let Some(t) = self.tokens() else { return false };
        let expires = t.access_token_expire_time.map_or(0, |ts| ts.seconds);
        let now = (read(&self.clock))().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        expires - now <= margin.as_secs() as i64
    }

    /// Whether a call should refresh first: a session (with a refresh token) whose access token
    /// is known to expire within the margin.
    fn needs_refresh(&self) -> bool {
        let known = self.tokens().is_some_and(|t| !t.refresh_token.is_empty() && t.access_token_expire_time.is_some());
        known && self.expires_within(*read(&self.margin))
    }

    /// Exchanges the refresh token for new tokens over `channel` (without this session's
    /// interceptor), keeps them, and tells the refresh hook.
    async fn refresh(&self, channel: Channel) -> Result<pb::Tokens> {
        let refresh_token = self.tokens().map(|t| t.refresh_token).ok_or(Error::NoTokens)?;
        let r = AuthServiceClient::new(channel).refresh(pb::RefreshRequest { refresh_token }).await?;
        let tokens = r.into_inner().tokens.ok_or(Error::NoTokens)?;
        self.set_tokens(Some(tokens.clone()));
        let hook = read(&self.on_refresh).clone();
        if let Some(hook) = hook {
            hook(&tokens);
        }
        Ok(tokens)
    }

    /// Refreshes when `expiring` says so, one refresh at a time: a caller that waited for another
    /// one's refresh finds the new tokens fresh and uses them.
    async fn refresh_when(&self, channel: &Channel, expiring: impl Fn(&Session) -> bool) -> Result<()> {
        if !expiring(self) {
            return Ok(());
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if expiring(self) {
            self.refresh(channel.clone()).await?;
        }
        Ok(())
    }
}

/// The channel every service client calls through: it refreshes the session first when its
/// access token is about to expire, then attaches `authorization: Bearer <access token or API
/// key>` when the client holds one.
#[derive(Clone)]
pub struct Authorized {
    channel: Channel,
    session: Arc<Session>,
}

impl Service<http::Request<Body>> for Authorized {
    type Response = http::Response<Body>;
    type Error = StdError;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The channel polled ready is the one to call; a fresh clone takes its place.
        let fresh = self.channel.clone();
        let mut ready = std::mem::replace(&mut self.channel, fresh);
        let session = self.session.clone();
        Box::pin(async move {
            let channel = ready.clone();
            session.refresh_when(&channel, Session::needs_refresh).await.map_err(|e| match e {
                Error::Status(status) => StdError::from(status),
                other => StdError::from(Status::unauthenticated(other.to_string())),
            })?;
            if let Some(secret) = session.secret() {
                let value = format!("Bearer {secret}")
                    .parse()
                    .map_err(|_| Status::internal("the credential is not a valid header value"))?;
                req.headers_mut().insert("authorization", value);
            }
            ready.call(req).await.map_err(Into::into)
        })
    }
}

/// The answer to a password login.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Signed in (the client keeps the tokens).
    SignedIn(pb::Tokens),
    /// A second factor is needed: call [`Client::finish_mfa`] with the challenge's ticket.
    MfaRequired(pb::MfaChallenge),
}

type Svc = Authorized;

/// A connection to one OpenNVR server, holding the signed-in session's tokens and refreshing them
/// before a call when the access token is about to expire.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    session: Arc<Session>,
    /// The page size the `all_*` listings ask for when their filter sets none (0: the server's).
    page_size: Arc<AtomicI32>,
}

impl Client {
    /// Connects to `endpoint` (`http://host:7450`, or `https://...` verified against the public web
    /// roots).
    pub async fn connect(endpoint: &str) -> Result<Client> {
        Client::connect_with_ca(endpoint, None).await
    }

    /// Connects to `endpoint`; for `https://` with `ca_pem`, the server certificate is verified
    /// against that CA (a site's own certificate authority) instead of the public web roots.
    pub async fn connect_with_ca(endpoint: &str, ca_pem: Option<&[u8]>) -> Result<Client> {
        let err = |source| Error::Connect { endpoint: endpoint.to_owned(), source };
        let mut ep = Endpoint::from_shared(endpoint.to_owned()).map_err(err)?;
        if endpoint.starts_with("https://") {
            let tls = match ca_pem {
                Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            ep = ep.tls_config(tls).map_err(err)?;
        }
        let channel = ep.connect().await.map_err(|source| Error::Connect { endpoint: endpoint.to_owned(), source })?;
        Ok(Client { channel, session: Arc::default(), page_size: Arc::default() })
    }

    /// The tokens held, if signed in with a session.
    pub fn tokens(&self) -> Option<pb::Tokens> {
        self.session.tokens()
    }

    /// Replaces the tokens (e.g. restored from a saved session).
    pub fn set_tokens(&self, tokens: Option<pb::Tokens>) {
        self.session.set_tokens(tokens);
    }

    /// The secret sent as `authorization: Bearer`: the access token, or the API key.
    pub fn credential(&self) -> Option<String> {
        self.session.secret()
    }

    /// Authenticates every call with an API key (`nvr_ak_...`) instead of a session.
    pub fn set_api_key(&self, secret: &str) {
        *write(&self.session.credential) = Some(Credential::ApiKey(secret.to_owned()));
    }

    /// The page size the `all_*` listings ask for when their filter sets none (0, the default,
    /// leaves it to the server).
    pub fn set_page_size(&self, page_size: i32) {
        self.page_size.store(page_size, Ordering::Relaxed);
    }

    /// The page size the `all_*` listings ask for when their filter sets none.
    pub fn page_size(&self) -> i32 {
        self.page_size.load(Ordering::Relaxed)
    }

    /// How long before the access token expires a call refreshes it first
    /// ([`DEFAULT_REFRESH_MARGIN`] unless set).
    pub fn set_refresh_margin(&self, margin: Duration) {
        *write(&self.session.margin) = margin;
    }

    /// The clock expiry is judged by (the system clock unless set; a test sets the server's).
    pub fn set_clock(&self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) {
        *write(&self.session.clock) = Arc::new(clock);
    }

    /// Calls `hook` with the new tokens after every refresh, automatic or asked for: the place to
    /// save a rotated session (the old refresh token no longer works).
    pub fn on_refresh(&self, hook: impl Fn(&pb::Tokens) + Send + Sync + 'static) {
        *write(&self.session.on_refresh) = Some(Arc::new(hook));
    }

    fn keep(&self, tokens: Option<pb::Tokens>) -> Result<pb::Tokens> {
        let tokens = tokens.ok_or(Error::NoTokens)?;
        self.set_tokens(Some(tokens.clone()));
        Ok(tokens)
    }

    /// Creates the first administrator with the server's one-time setup token, and signs in as it.
    pub async fn bootstrap(&self, setup_token: &str, username: &str, password: &str) -> Result<pb::Tokens> {
        let r = self
            .auth()
            .bootstrap(pb::BootstrapRequest {
                setup_token: setup_token.to_owned(),
                username: username.to_owned(),
                password: password.to_owned(),
                display_name: String::new(),
            })
            .await?;
        self.keep(r.into_inner().tokens)
    }

    /// Signs in with a password; fails with [`Error::MfaRequired`] when the account has a second
    /// factor (see [`Client::login_start`] for the two-step form).
    pub async fn login(&self, username: &str, password: &str) -> Result<pb::Tokens> {
        match self.login_start(username, password).await? {
            LoginOutcome::SignedIn(t) => Ok(t),
            LoginOutcome::MfaRequired(c) => Err(Error::MfaRequired(Box::new(c))),
        }
    }

    /// Signs in with a password: tokens, or the challenge of a second factor.
    pub async fn login_start(&self, username: &str, password: &str) -> Result<LoginOutcome> {
        let r = self
            .auth()
            .login(pb::LoginRequest { username: username.to_owned(), password: password.to_owned() })
            .await?
            .into_inner();
        match r.result {
            Some(pb::login_response::Result::Tokens(t)) => self.keep(Some(t)).map(LoginOutcome::SignedIn),
            Some(pb::login_response::Result::MfaRequired(c)) => Ok(LoginOutcome::MfaRequired(c)),
            None => Err(Error::NoTokens),
        }
    }

    /// Finishes a login with a second factor (a TOTP code, a recovery code or a passkey assertion).
    pub async fn finish_mfa(&self, ticket: &str, factor: pb::second_factor::Method) -> Result<pb::Tokens> {
        let r = self
            .auth()
            .finish_mfa(pb::FinishMfaRequest {
                ticket: ticket.to_owned(),
                factor: Some(pb::SecondFactor { method: Some(factor) }),
            })
            .await?;
        self.keep(r.into_inner().tokens)
    }

    /// Signs in with a password and, when asked for one, the TOTP code `totp` returns.
    pub async fn login_with_totp(
        &self,
        username: &str,
        password: &str,
        totp: impl FnOnce() -> String,
    ) -> Result<pb::Tokens> {
        match self.login_start(username, password).await? {
            LoginOutcome::SignedIn(t) => Ok(t),
            LoginOutcome::MfaRequired(c) => {
                self.finish_mfa(&c.ticket, pb::second_factor::Method::TotpCode(totp())).await
            }
        }
    }

    /// Presents a TOTP code on the current session, so that step-up RPCs pass for a few minutes.
    pub async fn step_up_totp(&self, code: &str) -> Result<pb::StepUpResponse> {
        let r = self
            .auth()
            .step_up(pb::StepUpRequest {
                ticket: String::new(),
                factor: Some(pb::SecondFactor { method: Some(pb::second_factor::Method::TotpCode(code.to_owned())) }),
            })
            .await?;
        Ok(r.into_inner())
    }

    /// Exchanges the held refresh token for new tokens (waiting for a refresh under way first).
    pub async fn refresh(&self) -> Result<pb::Tokens> {
        let _one_at_a_time = self.session.refreshing.lock().await;
        self.session.refresh(self.channel.clone()).await
    }

    /// Refreshes when the access token expires within `margin` (or has no expiry time).
    pub async fn refresh_if_expiring(&self, margin: Duration) -> Result<()> {
        self.session.refresh_when(&self.channel, |s| s.expires_within(margin)).await
    }

    /// Refreshes now if the next call would (see [`Client::set_refresh_margin`]); every call does
    /// this by itself, so this is for a caller that must refresh at a moment of its choosing (e.g.
    /// while it holds a lock on a saved session).
    pub async fn ensure_fresh(&self) -> Result<()> {
        self.session.refresh_when(&self.channel, Session::needs_refresh).await
    }

    /// Ends the session on the server (its access and refresh tokens stop working) and forgets
    /// the tokens. The tokens are forgotten even when the server cannot be told.
    pub async fn logout(&self) -> Result<()> {
        let ended = self.auth().logout(pb::LogoutRequest {}).await;
        self.set_tokens(None);
        ended?;
        Ok(())
    }

    fn svc(&self) -> Svc {
        Authorized { channel: self.channel.clone(), session: self.session.clone() }
    }

    /// AuthService: sign-in, sessions, second factors.
    pub fn auth(&self) -> AuthServiceClient<Svc> {
        AuthServiceClient::new(self.svc())
    }

    /// UserService: users and roles.
    pub fn users(&self) -> UserServiceClient<Svc> {
        UserServiceClient::new(self.svc())
    }

    /// ApiKeyService: service-account credentials.
    pub fn api_keys(&self) -> ApiKeyServiceClient<Svc> {
        ApiKeyServiceClient::new(self.svc())
    }

    /// MasterKeyService: the BYOK master key.
    pub fn master_key(&self) -> MasterKeyServiceClient<Svc> {
        MasterKeyServiceClient::new(self.svc())
    }

    /// IdsService: network intrusion alerts.
    pub fn ids(&self) -> IdsServiceClient<Svc> {
        IdsServiceClient::new(self.svc())
    }

    /// CameraService.
    pub fn cameras(&self) -> CameraServiceClient<Svc> {
        CameraServiceClient::new(self.svc())
    }

    /// RecordingService.
    pub fn recordings(&self) -> RecordingServiceClient<Svc> {
        RecordingServiceClient::new(self.svc())
    }

    /// AuditService.
    pub fn audit(&self) -> AuditServiceClient<Svc> {
        AuditServiceClient::new(self.svc())
    }

    /// InferenceService.
    pub fn inference(&self) -> InferenceServiceClient<Svc> {
        InferenceServiceClient::new(self.svc())
    }

    /// EventService.
    pub fn events(&self) -> EventServiceClient<Svc> {
        EventServiceClient::new(self.svc())
    }

    /// The underlying channel, for raw calls.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}
