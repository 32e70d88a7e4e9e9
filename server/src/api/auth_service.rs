//! `opennvr.v1.AuthService` (sign-in, sessions, second factors): decode, call [`AuthApp`], encode.
use super::convert::role_to_pb;
use super::convert::timestamp;
use super::status::{ApiResult, respond, to_status};
use super::user_service::user_message;
use super::{call, convert, principal};
use crate::app::PageRequest;
use crate::app::auth::AuthApp;
use crate::app::auth::IssuedTokens;
use crate::app::mfa::Factor;
use crate::app::mfa::FactorKind;
use crate::app::mfa::LoginOutcome;
use crate::app::mfa::MfaChallenge;
use crate::store::credentials::CredentialRow;
use crate::store::credentials::FactorSummary;
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::auth_service_server::AuthService;
use tonic::{Request, Status};

/// The gRPC face of sign-in, sessions and second factors.
pub struct AuthApi {
    pub app: AuthApp,
}

/// Wire tokens, their user with its second factors. The session exists already: if the factors
/// cannot be read now, the tokens go out without them rather than be lost.
async fn tokens_message(app: &AuthApp, t: &crate::app::auth::IssuedTokens) -> Result<pb::Tokens, Status> {
    let mut tokens = tokens(t);
    if let Ok(user) = user_message(app, &t.user).await {
        tokens.user = Some(user);
    }
    Ok(tokens)
}

/// Wire user with what second factors it has.
pub fn user_with(u: &UserRow, factors: Option<&FactorSummary>) -> pb::User {
    let factors = factors.copied().unwrap_or_default();
    pb::User { has_totp: factors.has_totp, passkey_count: factors.passkeys, ..user(u) }
}

/// Wire user (without its second factors).
pub fn user(u: &UserRow) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: role_to_pb(u.role) as i32,
        disabled: u.disabled,
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
        etag: format!("\"{}\"", u.version),
        has_totp: false,
        passkey_count: 0,
    }
}

/// Wire session; `current` marks the caller's own.
pub fn session_message(s: &SessionRow, current: uuid::Uuid) -> pb::Session {
    pb::Session {
        id: s.id.to_string(),
        user_id: s.user_id.map(|u| u.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(s.created_at)),
        last_refresh_time: Some(timestamp(s.last_refresh_at)),
        expire_time: Some(timestamp(s.expires_at)),
        client_address: s.client_address.clone(),
        user_agent: s.user_agent.clone(),
        current: s.id == current,
        step_up_time: s.step_up_at.map(timestamp),
        auth_methods: s.auth_methods.clone(),
        mfa_enrolment_required: false,
    }
}

/// Wire tokens.
pub fn tokens(t: &IssuedTokens) -> pb::Tokens {
    pb::Tokens {
        access_token: t.access_token.clone(),
        access_token_expire_time: Some(timestamp(t.access_expires_at)),
        refresh_token: t.refresh_token.clone(),
        refresh_token_expire_time: Some(timestamp(t.refresh_expires_at)),
        session_id: t.session_id.to_string(),
        user: Some(user(&t.user)),
        mfa_enrolment_required: t.mfa_enrolment_required,
    }
}

/// Wire second-factor method.
pub fn factor_kind(k: FactorKind) -> pb::SecondFactorMethod {
    match k {
        FactorKind::Totp => pb::SecondFactorMethod::Totp,
        FactorKind::Passkey => pb::SecondFactorMethod::Passkey,
        FactorKind::RecoveryCode => pb::SecondFactorMethod::RecoveryCode,
    }
}

/// Wire MFA challenge.
pub fn challenge(c: &MfaChallenge) -> pb::MfaChallenge {
    pb::MfaChallenge {
        ticket: c.ticket.clone(),
        methods: c.methods.iter().map(|m| factor_kind(*m) as i32).collect(),
        passkey_request_options_json: c.passkey_options.clone(),
        expire_time: Some(timestamp(c.expires_at)),
    }
}

/// A presented second factor; `None` when the request carries none.
pub fn factor(f: Option<pb::SecondFactor>) -> Option<Factor> {
    match f?.method? {
        pb::second_factor::Method::TotpCode(c) => Some(Factor::Totp(c)),
        pb::second_factor::Method::PasskeyAssertionJson(j) => Some(Factor::Passkey(j)),
        pb::second_factor::Method::RecoveryCode(c) => Some(Factor::RecoveryCode(c)),
    }
}

/// Wire credential (never its secret or public key).
pub fn credential(r: &CredentialRow) -> pb::Credential {
    pb::Credential {
        id: r.id.to_string(),
        user_id: r.user_id.to_string(),
        r#type: match r.kind {
            crate::domain::mfa::CredentialKind::Totp => pb::CredentialType::Totp,
            crate::domain::mfa::CredentialKind::Passkey => pb::CredentialType::Passkey,
        } as i32,
        name: r.name.clone(),
        create_time: Some(timestamp(r.created_at)),
        last_use_time: r.last_used_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn bootstrap(&self, req: Request<pb::BootstrapRequest>) -> ApiResult<pb::BootstrapResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let t = self.app.bootstrap(&r.setup_token, &r.username, &r.password, &r.display_name, &call).await;
        let t = t.map_err(to_status)?;
        Ok(tonic::Response::new(pb::BootstrapResponse { tokens: Some(tokens_message(&self.app, &t).await?) }))
    }

    async fn login(&self, req: Request<pb::LoginRequest>) -> ApiResult<pb::LoginResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let result = match self.app.login(&r.username, &r.password, &call).await.map_err(to_status)? {
            LoginOutcome::SignedIn(t) => pb::login_response::Result::Tokens(tokens_message(&self.app, &t).await?),
            LoginOutcome::MfaRequired(c) => pb::login_response::Result::MfaRequired(challenge(&c)),
        };
        Ok(tonic::Response::new(pb::LoginResponse { result: Some(result) }))
    }

    async fn start_mfa(&self, req: Request<pb::StartMfaRequest>) -> ApiResult<pb::StartMfaResponse> {
        let r = req.into_inner();
        respond(self.app.start_mfa(&r.ticket).await.map(|c| pb::StartMfaResponse { challenge: Some(challenge(&c)) }))
    }

    async fn finish_mfa(&self, req: Request<pb::FinishMfaRequest>) -> ApiResult<pb::FinishMfaResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let t = self.app.finish_mfa(&r.ticket, factor(r.factor), &call).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::FinishMfaResponse { tokens: Some(tokens_message(&self.app, &t).await?) }))
    }

    async fn get_sign_in_options(
        &self,
        _req: Request<pb::GetSignInOptionsRequest>,
    ) -> ApiResult<pb::GetSignInOptionsResponse> {
        respond(self.app.sign_in_options().await.map(|o| pb::GetSignInOptionsResponse {
            setup_required: o.setup_required,
            passkeys_enabled: o.passkeys_rp_id.is_some(),
            webauthn_rp_id: o.passkeys_rp_id.unwrap_or_default(),
        }))
    }

    async fn start_passkey_login(
        &self,
        req: Request<pb::StartPasskeyLoginRequest>,
    ) -> ApiResult<pb::StartPasskeyLoginResponse> {
        let call = call(&req)?;
        respond(
            self.app
                .start_passkey_login(&call)
                .await
                .map(|c| pb::StartPasskeyLoginResponse { challenge: Some(challenge(&c)) }),
        )
    }

    async fn finish_passkey_login(
        &self,
        req: Request<pb::FinishPasskeyLoginRequest>,
    ) -> ApiResult<pb::FinishPasskeyLoginResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let t = self.app.finish_passkey_login(&r.ticket, &r.passkey_assertion_json, &call).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::FinishPasskeyLoginResponse { tokens: Some(tokens_message(&self.app, &t).await?) }))
    }

    async fn refresh(&self, req: Request<pb::RefreshRequest>) -> ApiResult<pb::RefreshResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let t = self.app.refresh(&r.refresh_token, &call).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::RefreshResponse { tokens: Some(tokens_message(&self.app, &t).await?) }))
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> ApiResult<pb::LogoutResponse> {
        let call = call(&req)?;
        respond(self.app.logout(&call).await.map(|()| pb::LogoutResponse {}))
    }

    async fn who_am_i(&self, req: Request<pb::WhoAmIRequest>) -> ApiResult<pb::WhoAmIResponse> {
        let call = call(&req)?;
        let who = principal(&call)?;
        let permissions = who.permissions().iter().map(|p| p.name().to_owned()).collect();
        if who.api_key.is_some() {
            let (user, key) = self.app.who_am_i_key(&who).await.map_err(to_status)?;
            return Ok(tonic::Response::new(pb::WhoAmIResponse {
                user: user.as_ref().map(|(u, factors)| user_with(u, Some(factors))),
                permissions,
                api_key_id: key.id.to_string(),
                api_key: Some(super::api_key_service::api_key(&key)),
                ..Default::default()
            }));
        }
        let account = self.app.account(&who).await.map_err(to_status)?;
        let (user, session, factors) = &*account;
        let window = self.app.mfa.step_up_window;
        let now = self.app.clock.now();
        let enrol = who.enrolment_only;
        Ok(tonic::Response::new(pb::WhoAmIResponse {
            user: Some(user_with(user, Some(factors))),
            session_id: session.id.to_string(),
            permissions: if enrol { Vec::new() } else { permissions },
            camera_permissions: Vec::new(),
            api_key_id: String::new(),
            step_up_time: session.step_up_at.map(convert::timestamp),
            api_key: None,
            mfa_enrolment_required: enrol,
            step_up_expire_time: session.step_up_at.map(|t| t + window).filter(|t| *t > now).map(convert::timestamp),
        }))
    }

    async fn change_password(&self, req: Request<pb::ChangePasswordRequest>) -> ApiResult<pb::ChangePasswordResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .change_password(&call, &r.current_password, &r.new_password, r.keep_other_sessions)
                .await
                .map(|()| pb::ChangePasswordResponse {}),
        )
    }

    async fn list_sessions(&self, req: Request<pb::ListSessionsRequest>) -> ApiResult<pb::ListSessionsResponse> {
        let who = principal(&call(&req)?)?;
        let r = req.into_inner();
        let page = PageRequest::new(r.page_size, &r.page_token, &r.user_id).map_err(to_status)?;
        respond(self.app.list_sessions(&who, &r.user_id, page).await.map(|(rows, next)| pb::ListSessionsResponse {
            sessions: rows.iter().map(|s| session_message(s, who.session_id)).collect(),
            next_page_token: next,
        }))
    }

    async fn revoke_session(&self, req: Request<pb::RevokeSessionRequest>) -> ApiResult<pb::RevokeSessionResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.revoke_session(&call, &r.session_id).await.map(|()| pb::RevokeSessionResponse {}))
    }

    async fn start_step_up(&self, req: Request<pb::StartStepUpRequest>) -> ApiResult<pb::StartStepUpResponse> {
        let call = call(&req)?;
        respond(self.app.start_step_up(&call).await.map(|c| pb::StartStepUpResponse { challenge: Some(challenge(&c)) }))
    }

    async fn step_up(&self, req: Request<pb::StepUpRequest>) -> ApiResult<pb::StepUpResponse> {
        let call = call(&req)?;
        let who = principal(&call)?;
        let r = req.into_inner();
        respond(self.app.step_up(&call, &r.ticket, factor(r.factor)).await.map(|(session, until)| pb::StepUpResponse {
            session: Some(session_message(&session, who.session_id)),
            step_up_expire_time: Some(convert::timestamp(until)),
        }))
    }

    async fn start_passkey_registration(
        &self,
        req: Request<pb::StartPasskeyRegistrationRequest>,
    ) -> ApiResult<pb::StartPasskeyRegistrationResponse> {
        let call = call(&req)?;
        respond(self.app.start_passkey_registration(&call).await.map(|r| pb::StartPasskeyRegistrationResponse {
            registration_token: r.token,
            creation_options_json: r.options,
            expire_time: Some(convert::timestamp(r.expires_at)),
        }))
    }

    async fn finish_passkey_registration(
        &self,
        req: Request<pb::FinishPasskeyRegistrationRequest>,
    ) -> ApiResult<pb::FinishPasskeyRegistrationResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app.finish_passkey_registration(&call, &r.registration_token, &r.credential_json, &r.name).await.map(
                |(cred, recovery_codes)| pb::FinishPasskeyRegistrationResponse {
                    credential: Some(credential(&cred)),
                    recovery_codes,
                },
            ),
        )
    }

    async fn start_totp_enrollment(
        &self,
        req: Request<pb::StartTotpEnrollmentRequest>,
    ) -> ApiResult<pb::StartTotpEnrollmentResponse> {
        let call = call(&req)?;
        let resume = req.into_inner().resume_enrollment_token;
        respond(self.app.start_totp_enrollment(&call, &resume).await.map(|e| pb::StartTotpEnrollmentResponse {
            enrollment_token: e.token,
            otpauth_uri: e.uri,
            secret: e.secret,
            expire_time: Some(convert::timestamp(e.expires_at)),
        }))
    }

    async fn finish_totp_enrollment(
        &self,
        req: Request<pb::FinishTotpEnrollmentRequest>,
    ) -> ApiResult<pb::FinishTotpEnrollmentResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.finish_totp_enrollment(&call, &r.enrollment_token, &r.code, &r.name).await.map(
            |(cred, recovery_codes)| pb::FinishTotpEnrollmentResponse {
                credential: Some(credential(&cred)),
                recovery_codes,
            },
        ))
    }

    async fn regenerate_recovery_codes(
        &self,
        req: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> ApiResult<pb::RegenerateRecoveryCodesResponse> {
        let call = call(&req)?;
        respond(
            self.app
                .regenerate_recovery_codes(&call)
                .await
                .map(|recovery_codes| pb::RegenerateRecoveryCodesResponse { recovery_codes }),
        )
    }

    async fn list_credentials(
        &self,
        req: Request<pb::ListCredentialsRequest>,
    ) -> ApiResult<pb::ListCredentialsResponse> {
        let who = principal(&call(&req)?)?;
        let r = req.into_inner();
        let page = PageRequest::new(r.page_size, &r.page_token, &format!("user={}", r.user_id)).map_err(to_status)?;
        respond(self.app.list_credentials(&who, &r.user_id, page).await.map(|(rows, next)| {
            pb::ListCredentialsResponse { credentials: rows.iter().map(credential).collect(), next_page_token: next }
        }))
    }

    async fn rename_credential(
        &self,
        req: Request<pb::RenameCredentialRequest>,
    ) -> ApiResult<pb::RenameCredentialResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .rename_credential(&call, &r.credential_id, &r.name)
                .await
                .map(|c| pb::RenameCredentialResponse { credential: Some(credential(&c)) }),
        )
    }

    async fn delete_credential(
        &self,
        req: Request<pb::DeleteCredentialRequest>,
    ) -> ApiResult<pb::DeleteCredentialResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.delete_credential(&call, &r.credential_id).await.map(|()| pb::DeleteCredentialResponse {}))
    }
}
