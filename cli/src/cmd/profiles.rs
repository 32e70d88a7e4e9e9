//! `profile list|use`: the saved sessions, one per server and user.
use crate::output::{self, Format};
use crate::session;
use anyhow::Result;

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// Every profile with a saved session: server, user, and which one is used by default.
    List,
    /// Use profile NAME when no `--profile` (or NVRCTL_PROFILE) is given.
    Use {
        /// The profile (it need not exist yet: `nvrctl login` fills it).
        name: String,
    },
}

pub fn run(format: Format, c: ProfileCommand) -> Result<()> {
    match c {
        ProfileCommand::List => {
            let default = session::default_profile()?;
            let rows = session::profiles()?
                .into_iter()
                .map(|(name, server, user)| -> Vec<output::Cell> {
                    let is_default = name == default;
                    vec![name.into(), server.into(), user.into(), output::Cell::Bool(is_default)]
                })
                .collect();
            output::print(format, &["Profile", "Server", "User", "Default"], rows);
        }
        ProfileCommand::Use { name } => {
            session::set_default_profile(&name)?;
            eprintln!("Profile {name} is used when none is named.");
        }
    }
    Ok(())
}
