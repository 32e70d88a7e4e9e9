//! `opennvr.v1.UserService` (users and roles): decode, call [`AuthApp`], encode.
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::PageRequest;
use crate::app::auth::AuthApp;
use crate::app::users::UserUpdate;
use crate::domain::Role;
use crate::error::Error;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::user_service_server::UserService;
use tonic::{Request, Status};

/// The gRPC face of users and roles.
pub struct UserApi {
    pub app: AuthApp,
}

/// The wire user of `u`, with its second factors.
pub(super) async fn user_message(app: &AuthApp, u: &crate::store::users::UserRow) -> Result<pb::User, Status> {
    let factors = app.factors(vec![u.id]).await.map_err(to_status)?;
    Ok(super::auth_service::user_with(u, factors.get(&u.id)))
}

fn rename_field(e: Error, from: &str, to: &'static str) -> Error {
    match e.field() {
        Some(f) if f == from => Error::invalid(to, e.message().to_owned()),
        _ => e,
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> ApiResult<pb::CreateUserResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let user = r.user.ok_or_else(|| to_status(Error::invalid("user", "user is required")))?;
        let role = convert::role_from_pb("user.role", user.role).map_err(to_status)?;
        let created =
            self.app.create_user(&call, &user.username, &user.display_name, role, user.disabled, &r.password).await;
        respond(created.map(|u| pb::CreateUserResponse { user: Some(super::auth_service::user_with(&u, None)) }))
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> ApiResult<pb::GetUserResponse> {
        let r = req.into_inner();
        let u = self.app.get_user(&r.user_id).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::GetUserResponse { user: Some(user_message(&self.app, &u).await?) }))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> ApiResult<pb::ListUsersResponse> {
        let r = req.into_inner();
        let role = convert::role_from_pb("role", r.role).map_err(to_status)?;
        let page = PageRequest::new(r.page_size, &r.page_token, &format!("role={}", r.role)).map_err(to_status)?;
        let (rows, next) = self.app.list_users(role, page).await.map_err(to_status)?;
        let factors = self.app.factors(rows.iter().map(|u| u.id).collect()).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::ListUsersResponse {
            users: rows.iter().map(|u| super::auth_service::user_with(u, factors.get(&u.id))).collect(),
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
        let u = self.app.update_user(&call, &user.id, update).await.map_err(to_status)?;
        Ok(tonic::Response::new(pb::UpdateUserResponse { user: Some(user_message(&self.app, &u).await?) }))
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
}
