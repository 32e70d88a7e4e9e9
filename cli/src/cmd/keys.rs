//! `keys status|rotate`: the master key (BYOK) that seals every stored secret.
use crate::output::{self, Format};
use crate::session;
use anyhow::Result;
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Show the current master key and how many stored secrets each key id wraps.
    Status,
    /// Rewrap every stored secret with the current master key (after pointing OPENNVR_MASTER_KEY_FILE
    /// at a new key and listing the old one in OPENNVR_MASTER_KEY_PREVIOUS_FILES).
    Rotate,
}

fn print(format: Format, st: &pb::GetMasterKeyStatusResponse) {
    let rows = st
        .loaded_key_ids
        .iter()
        .map(|id| {
            vec![
                id.clone(),
                if *id == st.current_key_id { "current" } else { "previous" }.to_owned(),
                st.secrets_by_key_id.get(id).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    output::print(format, &["Key id", "Role", "Secrets"], rows);
}

pub async fn run(server: Option<String>, format: Format, c: KeysCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        KeysCommand::Status => {
            let st = client.master_key().get_master_key_status(pb::GetMasterKeyStatusRequest {}).await?.into_inner();
            print(format, &st);
        }
        KeysCommand::Rotate => {
            let r = client.master_key().rotate_master_key(pb::RotateMasterKeyRequest {}).await?.into_inner();
            crate::output::outln!("Rewrapped {} secret(s).", r.rewrapped);
            if let Some(st) = &r.status {
                print(format, st);
                let left: i64 =
                    st.secrets_by_key_id.iter().filter(|(k, _)| **k != st.current_key_id).map(|(_, n)| n).sum();
                if left == 0 {
                    crate::output::outln!(
                        "No secret needs a previous key: remove it from OPENNVR_MASTER_KEY_PREVIOUS_FILES."
                    );
                } else {
                    crate::output::outln!(
                        "{left} secret(s) still need a previous key (being changed meanwhile): run it again."
                    );
                }
            }
        }
    }
    Ok(())
}
