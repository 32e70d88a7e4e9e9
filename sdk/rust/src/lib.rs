//! OpenNVR Rust client: connect to a server, sign in, keep the session's tokens fresh, and reach
//! every `opennvr.v1` service with the bearer token attached.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod audit;

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
use std::sync::{Arc, RwLock};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

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

/// Attaches `authorization: Bearer <access token or API key>` when the client holds one.
#[derive(Clone, Default)]
pub struct Bearer(Arc<RwLock<Option<Credential>>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        let secret = match guard.as_ref() {
            Some(Credential::Session(t)) => Some(t.access_token.as_str()),
            Some(Credential::ApiKey(k)) => Some(k.as_str()),
            None => None,
        };
        if let Some(secret) = secret {
            let value = format!("Bearer {secret}")
                .parse()
                .map_err(|_| Status::internal("the credential is not a valid header value"))?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
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

type Svc = InterceptedService<Channel, Bearer>;

/// A connection to one OpenNVR server, holding the signed-in session's tokens.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    tokens: Bearer,
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
        Ok(Client { channel, tokens: Bearer::default() })
    }

    /// The tokens held, if signed in with a session.
    pub fn tokens(&self) -> Option<pb::Tokens> {
        match &*self.tokens.0.read().unwrap_or_else(|e| e.into_inner()) {
            Some(Credential::Session(t)) => Some((**t).clone()),
            _ => None,
        }
    }

    /// Replaces the tokens (e.g. restored from a saved session).
    pub fn set_tokens(&self, tokens: Option<pb::Tokens>) {
        *self.tokens.0.write().unwrap_or_else(|e| e.into_inner()) = tokens.map(|t| Credential::Session(Box::new(t)));
    }

    /// The secret sent as `authorization: Bearer`: the access token, or the API key.
    pub fn credential(&self) -> Option<String> {
        match &*self.tokens.0.read().unwrap_or_else(|e| e.into_inner()) {
            Some(Credential::Session(t)) => Some(t.access_token.clone()),
            Some(Credential::ApiKey(k)) => Some(k.clone()),
            None => None,
        }
    }

    /// Authenticates every call with an API key (`nvr_ak_...`) instead of a session.
    pub fn set_api_key(&self, secret: &str) {
        *self.tokens.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Credential::ApiKey(secret.to_owned()));
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

    /// Exchanges the held refresh token for new tokens.
    pub async fn refresh(&self) -> Result<pb::Tokens> {
        let refresh_token = self.tokens().map(|t| t.refresh_token).ok_or(Error::NoTokens)?;
        let r = self.auth().refresh(pb::RefreshRequest { refresh_token }).await?;
        self.keep(r.into_inner().tokens)
    }

    /// Refreshes when the access token expires within `margin`.
    pub async fn refresh_if_expiring(&self, margin: std::time::Duration) -> Result<()> {
        let Some(t) = self.tokens() else { return Ok(()) };
        let expires = t.access_token_expire_time.map(|ts| ts.seconds).unwrap_or(0);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        if expires - now <= margin.as_secs() as i64 {
            self.refresh().await?;
        }
        Ok(())
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.tokens.clone())
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
