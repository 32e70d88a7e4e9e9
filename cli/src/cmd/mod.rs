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
