//! One module per noun.
pub mod adapters;
pub mod alerts;
pub mod apikeys;
pub mod audit;
pub mod auth;
pub mod bindings;
pub mod cameras;
pub mod credentials;
pub mod events;
pub mod keys;
pub mod mfa;
pub mod profiles;
pub mod recordings;
pub mod sessions;
pub mod users;

use anyhow::{Context, Result, bail};
use std::io::IsTerminal;

/// Reads a password: from `NVRCTL_PASSWORD`, from one line of standard input when it is not a
/// terminal, or by prompting without echo.
pub fn read_password(prompt: &str) -> Result<String> {
    if let Ok(p) = std::env::var("NVRCTL_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.is_empty() {
            bail!("empty password on standard input");
        }
        return Ok(p);
    }
    Ok(rpassword::prompt_password(prompt)?)
}

/// Names of the cameras and users the caller may see, by id, so that tables show what a person
/// reads; an id stays as it is when its name is unknown (deleted, or not the caller's to list).
#[derive(Debug, Default)]
pub struct Names {
    cameras: std::collections::HashMap<String, String>,
    users: std::collections::HashMap<String, String>,
    adapters: std::collections::HashMap<String, String>,
}

impl Names {
    /// Loads the cameras' names and, when `users` and the caller may list users, the users'.
    pub async fn load(client: &opennvr_sdk::Client, users: bool) -> Names {
        use opennvr_sdk::pb;
        let cameras = client.all_cameras(pb::ListCamerasRequest::default()).await.unwrap_or_default();
        let users = if users {
            client.all_users(pb::ListUsersRequest::default()).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let adapters = client.all_adapters(pb::ListAdaptersRequest::default()).await.unwrap_or_default();
        Names {
            cameras: cameras.into_iter().map(|c| (c.id, c.name)).collect(),
            users: users.into_iter().map(|u| (u.id, u.username)).collect(),
            adapters: adapters.into_iter().map(|a| (a.id, a.name)).collect(),
        }
    }

    /// Adapter `id`'s name, else the id.
    pub fn adapter(&self, id: &str) -> String {
        self.adapters.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// Camera `id`'s name, else the id.
    pub fn camera(&self, id: &str) -> String {
        self.cameras.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// User `id`'s username, else the id.
    pub fn user(&self, id: &str) -> String {
        self.users.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// An audit target (`camera/<id>`, `user/<id>`, …) with the name in place of the id.
    pub fn target(&self, kind: &str, id: &str) -> String {
        let name = match kind {
            "camera" => self.camera(id),
            "user" => self.user(id),
            "adapter" => self.adapter(id),
            _ => id.to_owned(),
        };
        if name.is_empty() { kind.to_owned() } else { format!("{kind}/{name}") }
    }
}
