//! `opennvr.v1.AuthService`: decode, call [`AuthApp`], encode. Nothing else.
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::auth::{AuthApp, UserUpdate};
use crate::app::{Call, PageRequest, Principal};
use crate::domain::Role;
use crate::error::{Error, ErrorKind};
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::auth_service_server::AuthService;
use tonic::{Request, Status};

/// The gRPC face of the identity service.
pub struct AuthApi {
    pub app: AuthApp,
    pub keys: crate::app::keys::KeyApp,
}

fn master_key_status(st: crate::app::keys::MasterKeyStatus) -> pb::GetMasterKeyStatusResponse {
    pb::GetMasterKeyStatusResponse {
        current_key_id: st.current,
        loaded_key_ids: st.loaded,
        secrets_by_key_id: st.references.into_iter().collect(),
    }
}

fn principal(call: &Call) -> Result<Principal, Status> {
    call.principal().cloned().map_err(to_status)
}

/// The capability that will implement an RPC that is not built yet.
fn later(capability: &str) -> Status {
    to_status(Error::new(ErrorKind::Unimplemented, format!("not implemented yet: arrives with {capability}")))
}

const STRONG_AUTH: &str = "strong authentication (passkeys, TOTP, step-up)";
const API_KEYS: &str = "API keys";

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn bootstrap(&self, req: Request<pb::BootstrapRequest>) -> ApiResult<pb::BootstrapResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .bootstrap(&r.setup_token, &r.username, &r.password, &r.display_name, &call)
                .await
                .map(|t| pb::BootstrapResponse { tokens: Some(convert::tokens(&t)) }),
        )
    }

    async fn login(&self, req: Request<pb::LoginRequest>) -> ApiResult<pb::LoginResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .login(&r.username, &r.password, &call)
                .await
                .map(|t| pb::LoginResponse { result: Some(pb::login_response::Result::Tokens(convert::tokens(&t))) }),
        )
    }

    async fn complete_second_factor(
        &self,
        _: Request<pb::CompleteSecondFactorRequest>,
    ) -> ApiResult<pb::CompleteSecondFactorResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn refresh(&self, req: Request<pb::RefreshRequest>) -> ApiResult<pb::RefreshResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.app
                .refresh(&r.refresh_token, &call)
                .await
                .map(|t| pb::RefreshResponse { tokens: Some(convert::tokens(&t)) }),
        )
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> ApiResult<pb::LogoutResponse> {
        let call = call(&req)?;
        respond(self.app.logout(&call).await.map(|()| pb::LogoutResponse {}))
    }

    async fn who_am_i(&self, req: Request<pb::WhoAmIRequest>) -> ApiResult<pb::WhoAmIResponse> {
        let who = principal(&call(&req)?)?;
        respond(self.app.who_am_i(&who).await.map(|(user, session)| pb::WhoAmIResponse {
            user: Some(convert::user(&user)),
            session_id: session.id.to_string(),
            permissions: who.role.permissions().iter().map(|p| p.name().to_owned()).collect(),
            camera_permissions: Vec::new(),
            api_key_id: String::new(),
            step_up_time: session.step_up_at.map(convert::timestamp),
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
        // A user has few live sessions: they come in one page.
        PageRequest::new(r.page_size, &r.page_token, &r.user_id).map_err(to_status)?;
        respond(self.app.list_sessions(&who, &r.user_id).await.map(|rows| pb::ListSessionsResponse {
            sessions: rows.iter().map(|s| convert::session(s, who.session_id)).collect(),
            next_page_token: String::new(),
        }))
    }

    async fn revoke_session(&self, req: Request<pb::RevokeSessionRequest>) -> ApiResult<pb::RevokeSessionResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(self.app.revoke_session(&call, &r.session_id).await.map(|()| pb::RevokeSessionResponse {}))
    }

    async fn begin_step_up(&self, _: Request<pb::BeginStepUpRequest>) -> ApiResult<pb::BeginStepUpResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn step_up(&self, _: Request<pb::StepUpRequest>) -> ApiResult<pb::StepUpResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn begin_passkey_registration(
        &self,
        _: Request<pb::BeginPasskeyRegistrationRequest>,
    ) -> ApiResult<pb::BeginPasskeyRegistrationResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn finish_passkey_registration(
        &self,
        _: Request<pb::FinishPasskeyRegistrationRequest>,
    ) -> ApiResult<pb::FinishPasskeyRegistrationResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn begin_totp_enrollment(
        &self,
        _: Request<pb::BeginTotpEnrollmentRequest>,
    ) -> ApiResult<pb::BeginTotpEnrollmentResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn confirm_totp_enrollment(
        &self,
        _: Request<pb::ConfirmTotpEnrollmentRequest>,
    ) -> ApiResult<pb::ConfirmTotpEnrollmentResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn list_credentials(&self, _: Request<pb::ListCredentialsRequest>) -> ApiResult<pb::ListCredentialsResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn delete_credential(
        &self,
        _: Request<pb::DeleteCredentialRequest>,
    ) -> ApiResult<pb::DeleteCredentialResponse> {
        Err(later(STRONG_AUTH))
    }

    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> ApiResult<pb::CreateUserResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let user = r.user.ok_or_else(|| to_status(Error::invalid("user", "user is required")))?;
        let role = convert::role_from_pb("user.role", user.role).map_err(to_status)?;
        let created =
            self.app.create_user(&call, &user.username, &user.display_name, role, user.disabled, &r.password).await;
        respond(created.map(|u| pb::CreateUserResponse { user: Some(convert::user(&u)) }))
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> ApiResult<pb::GetUserResponse> {
        let r = req.into_inner();
        respond(self.app.get_user(&r.user_id).await.map(|u| pb::GetUserResponse { user: Some(convert::user(&u)) }))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> ApiResult<pb::ListUsersResponse> {
        let r = req.into_inner();
        let role = convert::role_from_pb("role", r.role).map_err(to_status)?;
        let page = PageRequest::new(r.page_size, &r.page_token, &format!("role={}", r.role)).map_err(to_status)?;
        respond(self.app.list_users(role, page).await.map(|(rows, next)| pb::ListUsersResponse {
            users: rows.iter().map(convert::user).collect(),
            next_page_token: next,
        }))
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> ApiResult<pb::UpdateUserResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let user = r.user.ok_or_else(|| to_status(Error::invalid("user", "user is required")))?;
        let mask = r.update_mask.ok_or_else(|| to_status(Error::invalid("update_mask", "update_mask is required")))?;
        if mask.paths.is_empty() {
            return Err(to_status(Error::invalid("update_mask", "update_mask names no field")));
        }
        let mut update = UserUpdate {
            expected_version: convert::etag("user.etag", &user.etag).map_err(to_status)?,
            ..Default::default()
        };
        for path in &mask.paths {
            match path.as_str() {
                "display_name" => update.display_name = Some(user.display_name.clone()),
                "disabled" => update.disabled = Some(user.disabled),
                "role" => {
                    update.role =
                        Some(convert::role_from_pb("user.role", user.role).map_err(to_status)?.ok_or_else(|| {
                            to_status(Error::invalid("user.role", "user.role must be set when the mask names it"))
                        })?)
                }
                other => {
                    return Err(to_status(Error::invalid(
                        "update_mask",
                        format!("update_mask path {other:?} is not updatable (display_name, role, disabled)"),
                    )));
                }
            }
        }
        respond(
            self.app
                .update_user(&call, &user.id, update)
                .await
                .map(|u| pb::UpdateUserResponse { user: Some(convert::user(&u)) }),
        )
    }

    async fn set_user_password(
        &self,
        req: Request<pb::SetUserPasswordRequest>,
    ) -> ApiResult<pb::SetUserPasswordResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let result = self.app.set_user_password(&call, &r.user_id, &r.new_password).await;
        respond(
            result.map_err(|e| rename_field(e, "password", "new_password")).map(|()| pb::SetUserPasswordResponse {}),
        )
    }

    async fn delete_user(&self, req: Request<pb::DeleteUserRequest>) -> ApiResult<pb::DeleteUserResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let etag = convert::etag("etag", &r.etag).map_err(to_status)?;
        respond(self.app.delete_user(&call, &r.user_id, etag).await.map(|()| pb::DeleteUserResponse {}))
    }

    async fn list_roles(&self, req: Request<pb::ListRolesRequest>) -> ApiResult<pb::ListRolesResponse> {
        let r = req.into_inner();
        PageRequest::new(r.page_size, &r.page_token, "").map_err(to_status)?;
        let describe = |role: Role| match role {
            Role::Admin => ("Administrator", "Everything, including users, keys, retention and audit."),
            Role::Operator => {
                ("Operator", "Runs the site day to day: cameras, live, playback, export, holds, inference.")
            }
            Role::Viewer => ("Viewer", "Watches live and recorded video."),
            Role::Auditor => ("Auditor", "Reads, exports and verifies the audit trail; no video."),
        };
        Ok(tonic::Response::new(pb::ListRolesResponse {
            roles: Role::ALL
                .into_iter()
                .map(|role| {
                    let (name, text) = describe(role);
                    pb::RoleDefinition {
                        role: convert::role_to_pb(role) as i32,
                        display_name: name.to_owned(),
                        description: text.to_owned(),
                        permissions: role.permissions().iter().map(|p| p.name().to_owned()).collect(),
                    }
                })
                .collect(),
            next_page_token: String::new(),
        }))
    }

    async fn create_api_key(&self, _: Request<pb::CreateApiKeyRequest>) -> ApiResult<pb::CreateApiKeyResponse> {
        Err(later(API_KEYS))
    }

    async fn list_api_keys(&self, _: Request<pb::ListApiKeysRequest>) -> ApiResult<pb::ListApiKeysResponse> {
        Err(later(API_KEYS))
    }

    async fn revoke_api_key(&self, _: Request<pb::RevokeApiKeyRequest>) -> ApiResult<pb::RevokeApiKeyResponse> {
        Err(later(API_KEYS))
    }

    async fn get_master_key_status(
        &self,
        _: Request<pb::GetMasterKeyStatusRequest>,
    ) -> ApiResult<pb::GetMasterKeyStatusResponse> {
        respond(self.keys.status().await.map(master_key_status))
    }

    async fn rotate_master_key(
        &self,
        req: Request<pb::RotateMasterKeyRequest>,
    ) -> ApiResult<pb::RotateMasterKeyResponse> {
        let call = call(&req)?;
        respond(
            self.keys
                .rotate(&call)
                .await
                .map(|(rewrapped, st)| pb::RotateMasterKeyResponse { rewrapped, status: Some(master_key_status(st)) }),
        )
    }
}

fn rename_field(e: Error, from: &str, to: &'static str) -> Error {
    match e.field() {
        Some(f) if f == from => Error::invalid(to, e.message().to_owned()),
        _ => e,
    }
}
