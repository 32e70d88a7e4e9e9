//! `credentials list|rename|delete`: second factors (TOTP, passkeys). Passkeys are registered in
//! the browser dashboard (the ceremony needs one).
use crate::output::{self, Format};
use crate::session;
use anyhow::Result;
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum CredentialsCommand {
    /// List your second factors (or another user's, by id, with user.read).
    List {
        /// Whose credentials (username or id; admins only) [default: yours].
        #[arg(long, alias = "user-id")]
        user: Option<String>,
    },
    /// Rename one of your credentials.
    Rename {
        /// The credential (its id, from `credentials list`).
        credential_id: String,
        /// The new name.
        name: String,
    },
    /// Remove a credential (yours, or another user's with user.write); its sessions end.
    Delete {
        /// The credential (its id, from `credentials list`).
        credential_id: String,
    },
}

fn kind(t: i32) -> &'static str {
    match pb::CredentialType::try_from(t) {
        Ok(pb::CredentialType::Totp) => "totp",
        Ok(pb::CredentialType::Passkey) => "passkey",
        _ => "?",
    }
}

pub async fn run(server: Option<String>, format: Format, c: CredentialsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        CredentialsCommand::List { user } => {
            let user_id = match user {
                Some(which) => client.find_user(&which).await?.id,
                None => String::new(),
            };
            let credentials =
                client.all_credentials(pb::ListCredentialsRequest { user_id, ..Default::default() }).await?;
            let rows = credentials
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        kind(c.r#type).to_owned(),
                        c.name.clone(),
                        output::time(c.create_time.as_ref()),
                        output::time(c.last_use_time.as_ref()),
                    ]
                })
                .collect();
            output::print(format, &["Id", "Type", "Name", "Created", "Last used"], rows);
        }
        CredentialsCommand::Rename { credential_id, name } => {
            client.auth().rename_credential(pb::RenameCredentialRequest { credential_id, name }).await?;
        }
        CredentialsCommand::Delete { credential_id } => {
            client.auth().delete_credential(pb::DeleteCredentialRequest { credential_id }).await?;
        }
    }
    Ok(())
}
