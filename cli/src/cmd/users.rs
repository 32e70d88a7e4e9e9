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
        username: String,
        #[arg(long)]
        role: RoleArg,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Change a user's role, display name or disabled flag.
    Update {
        /// Username or id.
        user: String,
        #[arg(long)]
        role: Option<RoleArg>,
        #[arg(long)]
        display_name: Option<String>,
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

async fn find(client: &opennvr_sdk::Client, who: &str) -> Result<pb::User> {
    let mut token = String::new();
    loop {
        let page = client
            .users()
            .list_users(pb::ListUsersRequest { page_size: 500, page_token: token, role: 0 })
            .await?
            .into_inner();
        if let Some(u) = page.users.into_iter().find(|u| u.id == who || u.username == who.to_lowercase()) {
            return Ok(u);
        }
        if page.next_page_token.is_empty() {
            return Err(anyhow!("no user {who}"));
        }
        token = page.next_page_token;
    }
}

pub async fn run(server: Option<String>, format: Format, c: UsersCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        UsersCommand::List { role } => {
            let mut rows = Vec::new();
            let mut token = String::new();
            loop {
                let page = client
                    .users()
                    .list_users(pb::ListUsersRequest {
                        page_size: 500,
                        page_token: token,
                        role: role.map(|r| pb::Role::from(r) as i32).unwrap_or(0),
                    })
                    .await?
                    .into_inner();
                rows.extend(page.users.iter().map(row));
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            output::print(format, &HEADER, rows);
        }
        UsersCommand::Create { username, role, display_name } => {
            let password = crate::cmd::read_password(&format!("Password for {username}: "))?;
            let user = pb::User { username, display_name, role: pb::Role::from(role) as i32, ..Default::default() };
            let created = client.users().create_user(pb::CreateUserRequest { user: Some(user), password }).await?;
            output::print(format, &HEADER, created.into_inner().user.iter().map(row).collect());
        }
        UsersCommand::Update { user, role, display_name, disabled } => {
            let mut u = find(&client, &user).await?;
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
            let u = find(&client, &user).await?;
            client.users().delete_user(pb::DeleteUserRequest { user_id: u.id, etag: u.etag }).await?;
        }
    }
    Ok(())
}
