//! `opennvr.v1.MasterKeyService` (the BYOK master key): decode, call [`KeyApp`], encode.
use super::call;
use super::status::{ApiResult, respond};
use crate::app::keys::{KeyApp, MasterKeyStatus};
use opennvr_proto::v1 as pb;
use opennvr_proto::v1::master_key_service_server::MasterKeyService;
use tonic::Request;

/// The gRPC face of the master key.
pub struct MasterKeyApi {
    pub keys: KeyApp,
}

fn master_key_status(st: MasterKeyStatus) -> pb::GetMasterKeyStatusResponse {
    pb::GetMasterKeyStatusResponse {
        current_key_id: st.current,
        loaded_key_ids: st.loaded,
        secrets_by_key_id: st.references.into_iter().collect(),
    }
}

#[tonic::async_trait]
impl MasterKeyService for MasterKeyApi {
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
