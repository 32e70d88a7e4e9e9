//! `opennvr.v1.ApiKeyService` (service-account credentials): decode, call [`ApiKeyApp`], encode.
use super::convert::role_to_pb;
use super::convert::timestamp;
use super::status::{ApiResult, respond, to_status};
use super::{call, convert};
use crate::app::PageRequest;
use crate::app::api_keys::{ApiKeyApp, NewApiKey};
use crate::error::Error;
use crate::store::api_keys::ApiKeyRow;
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::api_key_service_server::ApiKeyService;
use tonic::Request;

/// The gRPC face of API keys.
pub struct ApiKeyApi {
    pub api_keys: ApiKeyApp,
}

/// Wire API key (never its secret or hash).
pub fn api_key(r: &ApiKeyRow) -> pb::ApiKey {
    pb::ApiKey {
        id: r.id.to_string(),
        name: r.name.clone(),
        user_id: r.created_by.map(|u| u.to_string()).unwrap_or_default(),
        role: role_to_pb(r.role) as i32,
        permissions: r.permissions.clone(),
        create_time: Some(timestamp(r.created_at)),
        expire_time: r.expires_at.map(timestamp),
        last_use_time: r.last_used_at.map(timestamp),
        revoke_time: r.revoked_at.map(timestamp),
        secret_prefix: r.secret_prefix.clone(),
        camera_ids: r.camera_ids.iter().map(|c| c.to_string()).collect(),
        step_up_methods: r.step_up_methods.clone(),
        created_by: r.created_by_username.clone(),
    }
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn create_api_key(&self, req: Request<pb::CreateApiKeyRequest>) -> ApiResult<pb::CreateApiKeyResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        let key = r.api_key.ok_or_else(|| to_status(Error::invalid("api_key", "api_key is required")))?;
        let spec = NewApiKey {
            role: convert::role_from_pb("api_key.role", key.role).map_err(to_status)?,
            expires_at: key
                .expire_time
                .as_ref()
                .map(|t| convert::from_timestamp("api_key.expire_time", t))
                .transpose()
                .map_err(to_status)?,
            name: key.name,
            permissions: key.permissions,
            camera_ids: key.camera_ids,
            step_up_methods: key.step_up_methods,
        };
        respond(
            self.api_keys
                .create(&call, spec)
                .await
                .map(|(row, secret)| pb::CreateApiKeyResponse { api_key: Some(api_key(&row)), secret }),
        )
    }

    async fn list_api_keys(&self, req: Request<pb::ListApiKeysRequest>) -> ApiResult<pb::ListApiKeysResponse> {
        let r = req.into_inner();
        let page =
            PageRequest::new(r.page_size, &r.page_token, &format!("revoked={}", r.show_revoked)).map_err(to_status)?;
        respond(self.api_keys.list(page, r.show_revoked).await.map(|(rows, next)| pb::ListApiKeysResponse {
            api_keys: rows.iter().map(api_key).collect(),
            next_page_token: next,
        }))
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> ApiResult<pb::RevokeApiKeyResponse> {
        let call = call(&req)?;
        let r = req.into_inner();
        respond(
            self.api_keys
                .revoke(&call, &r.api_key_id)
                .await
                .map(|k| pb::RevokeApiKeyResponse { api_key: Some(api_key(&k)) }),
        )
    }
}
