//! `apikeys create|list|revoke`: credentials of service accounts (scripts, integrations).
use crate::cmd::users::RoleArg;
use crate::output::{self, Format};
use crate::session;
use anyhow::Result;
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key; its secret is shown once (asks for a second factor).
    Create {
        /// Label, e.g. home-assistant.
        name: String,
        /// The role whose permissions the key holds at most.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Narrow the key to these permissions (repeat), e.g. camera.read.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Limit the key to these cameras, by name or id (repeat); default every camera.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// Step-up RPCs the key may call, as Service.Method (repeat), e.g. CameraService.DeleteCamera.
        #[arg(long = "step-up")]
        step_up_methods: Vec<String>,
        /// Lifetime, e.g. 90d or 12h; default: until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key (its id, from `apikeys list`).
        api_key_id: String,
    },
}

fn row(k: &pb::ApiKey) -> Vec<String> {
    vec![
        k.id.clone(),
        k.name.clone(),
        output::role(k.role),
        if k.permissions.is_empty() { "(role)".to_owned() } else { k.permissions.join(" ") },
        if k.camera_ids.is_empty() { "all".to_owned() } else { k.camera_ids.len().to_string() },
        k.step_up_methods.join(" "),
        k.secret_prefix.clone(),
        output::time(k.expire_time.as_ref()),
        output::time(k.last_use_time.as_ref()),
        output::time(k.revoke_time.as_ref()),
    ]
}

const HEADER: [&str; 10] =
    ["Id", "Name", "Role", "Permissions", "Cameras", "Step-up", "Prefix", "Expires", "Last used", "Revoked"];

pub async fn run(server: Option<String>, format: Format, c: ApiKeysCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        ApiKeysCommand::Create { name, role, permissions, cameras, step_up_methods, expires } => {
            let mut camera_ids = Vec::new();
            for c in &cameras {
                camera_ids.push(client.find_camera(c).await?.id);
            }
            let expire_time = match expires {
                Some(span) => {
                    let at = chrono::Utc::now() + crate::cmd::recordings::span(&span)?;
                    Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 })
                }
                None => None,
            };
            let made = client
                .api_keys()
                .create_api_key(pb::CreateApiKeyRequest {
                    api_key: Some(pb::ApiKey {
                        name,
                        role: pb::Role::from(role) as i32,
                        permissions,
                        camera_ids,
                        step_up_methods,
                        expire_time,
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            let key = made.api_key.unwrap_or_default();
            match format {
                Format::Json => crate::output::outln!("{}", serde_json::json!({ "id": key.id, "secret": made.secret })),
                Format::Table => {
                    output::print(format, &HEADER, vec![row(&key)]);
                    crate::output::outln!("Secret (shown once; send it as `authorization: Bearer <secret>`):");
                    crate::output::outln!("  {}", made.secret);
                }
            }
        }
        ApiKeysCommand::List { all } => {
            let keys = client.all_api_keys(pb::ListApiKeysRequest { show_revoked: all, ..Default::default() }).await?;
            output::print(format, &HEADER, keys.iter().map(row).collect());
        }
        ApiKeysCommand::Revoke { api_key_id } => {
            client.api_keys().revoke_api_key(pb::RevokeApiKeyRequest { api_key_id }).await?;
        }
    }
    Ok(())
}
