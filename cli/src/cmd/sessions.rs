//! `sessions list|revoke`.
use crate::output::{self, Format};
use crate::session;
use anyhow::Result;
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum SessionsCommand {
    /// List live sessions (yours, or another user's by id with session.manage).
    List {
        /// Whose sessions (username or id; admins only) [default: yours].
        #[arg(long, alias = "user-id")]
        user: Option<String>,
    },
    /// Revoke a session by id.
    Revoke {
        /// The session (its id, from `sessions list`).
        session_id: String,
    },
}

pub async fn run(server: Option<String>, format: Format, c: SessionsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        SessionsCommand::List { user } => {
            let user_id = match user {
                Some(which) => client.find_user(&which).await?.id,
                None => String::new(),
            };
            let sessions = client.all_sessions(pb::ListSessionsRequest { user_id, ..Default::default() }).await?;
            let rows = sessions
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        if s.current { "*" } else { "" }.to_owned(),
                        s.client_address.clone(),
                        s.user_agent.clone(),
                        output::time(s.create_time.as_ref()),
                        output::time(s.last_refresh_time.as_ref()),
                        output::time(s.expire_time.as_ref()),
                    ]
                })
                .collect();
            output::print(format, &["Id", "Current", "Client", "User agent", "Created", "Refreshed", "Expires"], rows);
        }
        SessionsCommand::Revoke { session_id } => {
            client.auth().revoke_session(pb::RevokeSessionRequest { session_id }).await?;
        }
    }
    Ok(())
}
