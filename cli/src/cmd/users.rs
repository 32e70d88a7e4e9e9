//! `users list|create|update|delete`.
use crate::output::{self, Format};
use crate::session;
use anyhow::{Result, anyhow};
use opennvr_sdk::pb;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Admin,
    Operator,
    Viewer,
    Auditor,
}

impl From<RoleArg> for pb::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => pb::Role::Admin,
            RoleArg::Operator => pb::Role::Operator,
            RoleArg::Viewer => pb::Role::Viewer,
            RoleArg::Auditor => pb::Role::Auditor,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// List users.
    List {
        /// Only users with this role.
        #[arg(long)]
        role: Option<RoleArg>,
    },
    /// Create a user (the password is read from NVRCTL_PASSWORD, standard input, or a prompt).
    Create {
        /// The new user's username.
        username: String,
        /// The role: admin, operator or viewer.
        #[arg(long)]
        role: RoleArg,
        /// The name shown to people.
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Change a user's role, display name or disabled flag.
    Update {
        /// Username or id.
        user: String,
        /// The role: admin, operator or viewer.
        #[arg(long)]
        role: Option<RoleArg>,
        /// The name shown to people.
        #[arg(long)]
        display_name: Option<String>,
        /// Disable (true) or enable (false) the account.
        #[arg(long)]
        disabled: Option<bool>,
    },
    /// Delete a user.
    Delete {
        /// Username or id.
        user: String,
    },
}

fn row(u: &pb::User) -> Vec<String> {
    vec![
        u.username.clone(),
        output::role(u.role),
        if u.disabled { "disabled" } else { "enabled" }.to_owned(),
        u.display_name.clone(),
        u.id.clone(),
        output::time(u.create_time.as_ref()),
    ]
}

const HEADER: [&str; 6] = ["Username", "Role", "State", "Display name", "Id", "Created"];

pub async fn run(server: Option<String>, format: Format, c: UsersCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        UsersCommand::List { role } => {
            let role = role.map(|r| pb::Role::from(r) as i32).unwrap_or(0);
            let users = client.all_users(pb::ListUsersRequest { role, ..Default::default() }).await?;
            output::print(format, &HEADER, users.iter().map(row).collect());
        }
        UsersCommand::Create { username, role, display_name } => {
            let password = crate::cmd::read_password(&format!("Password for {username}: "))?;
            let user = pb::User { username, display_name, role: pb::Role::from(role) as i32, ..Default::default() };
            let created = client.users().create_user(pb::CreateUserRequest { user: Some(user), password }).await?;
            output::print(format, &HEADER, created.into_inner().user.iter().map(row).collect());
        }
        UsersCommand::Update { user, role, display_name, disabled } => {
            let mut u = client.find_user(&user).await?;
            let mut paths = Vec::new();
            if let Some(r) = role {
                u.role = pb::Role::from(r) as i32;
                paths.push("role".to_owned());
            }
            if let Some(d) = display_name {
                u.display_name = d;
                paths.push("display_name".to_owned());
            }
            if let Some(d) = disabled {
                u.disabled = d;
                paths.push("disabled".to_owned());
            }
            if paths.is_empty() {
                return Err(anyhow!("nothing to change: give --role, --display-name or --disabled"));
            }
            let updated = client
                .users()
                .update_user(pb::UpdateUserRequest {
                    user: Some(u),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await?;
            output::print(format, &HEADER, updated.into_inner().user.iter().map(row).collect());
        }
        UsersCommand::Delete { user } => {
            let u = client.find_user(&user).await?;
            client.users().delete_user(pb::DeleteUserRequest { user_id: u.id, etag: u.etag }).await?;
        }
    }
    Ok(())
}
