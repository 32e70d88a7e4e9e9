//! `nvrctl`: the OpenNVR command-line client, a thin layer over the Rust SDK. The binary parses
//! the process's arguments; [`run_captured`] runs the same commands with given arguments, a given
//! session file, and the output written to a given writer (as the server's tests do).
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod cmd;
mod output;
pub mod report;
pub mod session;

use clap::{Parser, Subcommand};
use output::Format;

/// Command-line client for an OpenNVR server.
#[derive(Debug, Parser)]
#[command(name = "nvrctl", version, about)]
struct Cli {
    /// Server URL [default: the signed-in server, else http://127.0.0.1:7450].
    #[arg(long, global = true, env = "NVRCTL_SERVER")]
    server: Option<String>,
    /// Output format (`-o` is the file of `recordings export`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Rows asked for per page of a listing (listings read every page).
    #[arg(long, global = true, env = "NVRCTL_PAGE_SIZE", default_value_t = 500)]
    page_size: i32,
    /// The saved session to use, one per server and user [default: the one `nvrctl profile use`
    /// chose, else `default`].
    #[arg(long, global = true, env = "NVRCTL_PROFILE")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the first administrator with the server's one-time setup token, and sign in.
    Bootstrap(cmd::auth::BootstrapArgs),
    /// Sign in; the session is kept in your config directory and refreshed as needed.
    Login(cmd::auth::LoginArgs),
    /// End the session.
    Logout,
    /// Show who you are signed in as.
    Whoami,
    /// Saved sessions: one profile per server and user (`--profile NAME` picks one).
    #[command(subcommand)]
    Profile(cmd::profiles::ProfileCommand),
    /// Print a shell completion script: `nvrctl completion bash > /etc/bash_completion.d/nvrctl`,
    /// `nvrctl completion zsh > "${fpath[1]}/_nvrctl"`, `nvrctl completion fish > ~/.config/fish/completions/nvrctl.fish`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Manage users.
    #[command(subcommand)]
    Users(cmd::users::UsersCommand),
    /// List or revoke sessions.
    #[command(subcommand)]
    Sessions(cmd::sessions::SessionsCommand),
    /// Manage cameras: add, list, change, delete, status, live view.
    #[command(subcommand)]
    Cameras(cmd::cameras::CamerasCommand),
    /// Per-camera access grants.
    #[command(subcommand)]
    Grants(cmd::cameras::GrantsCommand),
    /// The master key that seals every stored secret: status and rotation.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Read, follow, export and verify the audit trail.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Recorded footage: segments, timelines, playback, clip export, deletion.
    #[command(subcommand)]
    Recordings(cmd::recordings::RecordingsCommand),
    /// Evidence holds: recordings kept from any deletion until released.
    #[command(subcommand)]
    Holds(cmd::recordings::HoldsCommand),
    /// Retention limits, and a retention pass on demand.
    #[command(subcommand)]
    Retention(cmd::recordings::RetentionCommand),
    /// Storage figures: bytes and footage per camera, the recordings volume.
    Storage,
    /// Second factors: TOTP, recovery codes, step-up.
    #[command(subcommand)]
    Mfa(cmd::mfa::MfaCommand),
    /// Your second-factor credentials (TOTP, passkeys): list, rename, delete.
    #[command(subcommand)]
    Credentials(cmd::credentials::CredentialsCommand),
    /// API keys of service accounts: create, list, revoke.
    #[command(subcommand)]
    Apikeys(cmd::apikeys::ApiKeysCommand),
    /// Network intrusion alerts (Suricata) of your cameras and the network.
    #[command(subcommand)]
    Alerts(cmd::alerts::AlertsCommand),
    /// AI adapters: add, list, remove, health.
    #[command(subcommand)]
    Adapters(cmd::adapters::AdaptersCommand),
    /// Route cameras' frames to AI adapters: add, list, remove.
    #[command(subcommand)]
    Bindings(cmd::bindings::BindingsCommand),
    /// What the AI adapters found.
    #[command(subcommand)]
    Detections(cmd::bindings::DetectionsCommand),
    /// Follow the site's events.
    #[command(subcommand)]
    Events(cmd::events::EventsCommand),
    /// Run one image, or a camera's live frame, through an adapter now (not stored).
    #[command(group(clap::ArgGroup::new("frame").required(true).args(["image", "camera"])))]
    Infer {
        /// A JPEG file (needs --adapter).
        #[arg(long)]
        image: Option<std::path::PathBuf>,
        /// A camera (name or id): its live frame.
        #[arg(long)]
        camera: Option<String>,
        /// The adapter (name or id) [with --camera, default: every adapter bound to it].
        #[arg(long)]
        adapter: Option<String>,
        /// The adapter task [default: its first].
        #[arg(long, default_value = "")]
        task: String,
    },
}

/// Runs the command line `args` (its first item is the program name). A command refused for want
/// of a step-up is run again after one on a terminal, and explained to a script.
pub async fn run_args(args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(&args)?;
    let server = cli.server.clone();
    let invocation = session::Invocation {
        page_size: cli.page_size,
        profile: cli.profile.clone().or(session::Invocation::current().profile),
        ..session::Invocation::current()
    };
    let result = session::Invocation::scope(invocation.clone(), run(cli)).await;
    // A destructive command refused for want of a recent second factor: on a terminal, ask for
    // one, step up the session, and run the command again (anything it reads is asked again);
    // a script steps up first (`nvrctl mfa step-up`), since its input cannot be read twice.
    match result {
        Err(e) if needs_step_up(&e) => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                match session::Invocation::scope(invocation.clone(), step_up(server)).await {
                    Ok(()) => session::Invocation::scope(invocation, run(Cli::try_parse_from(&args)?)).await,
                    Err(step) => Err(step.context(format!("{e:#}"))),
                }
            } else {
                Err(e.context("run `nvrctl mfa step-up` first (it reads a TOTP or recovery code), then retry"))
            }
        }
        other => other,
    }
}

/// The server a command line talks to, as its errors name it.
pub async fn server_of(args: &[std::ffi::OsString]) -> String {
    let Ok(cli) = Cli::try_parse_from(args) else { return session::DEFAULT_SERVER.to_owned() };
    // With an API key no saved session is read: the flag (or NVRCTL_SERVER), else the default.
    if std::env::var("NVRCTL_API_KEY").is_ok_and(|k| !k.is_empty()) {
        return cli.server.unwrap_or_else(|| session::DEFAULT_SERVER.to_owned());
    }
    let invocation = session::Invocation { profile: cli.profile, ..session::Invocation::current() };
    session::Invocation::scope(invocation, async { session::server_url(cli.server) })
        .await
        .unwrap_or_else(|_| session::DEFAULT_SERVER.to_owned())
}

/// Runs the command line `args` with the session kept in `session_file`, writing what it prints
/// to `out` (standard error stays the process's).
pub async fn run_captured(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    session_file: &std::path::Path,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let args = args.into_iter().map(Into::into).collect();
    let sink = output::Sink::default();
    let invocation = session::Invocation {
        session_file: Some(session_file.to_owned()),
        out: Some(sink.clone()),
        ..session::Invocation::current()
    };
    let result = session::Invocation::scope(invocation, run_args(args)).await;
    out.write_all(&sink.take())?;
    result
}

/// Whether `e` is the server asking for a step-up.
fn needs_step_up(e: &anyhow::Error) -> bool {
    let reason = e
        .downcast_ref::<tonic::Status>()
        .and_then(opennvr_sdk::error_reason)
        .or_else(|| e.downcast_ref::<opennvr_sdk::Error>().and_then(opennvr_sdk::Error::reason));
    reason.as_deref() == Some("ERROR_REASON_STEP_UP_REQUIRED")
}

async fn step_up(server: Option<String>) -> anyhow::Result<()> {
    let client = session::signed_in(server).await?;
    cmd::mfa::step_up(&client).await.map(|_| ())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bootstrap(a) => cmd::auth::bootstrap(cli.server, cli.output, a).await,
        Command::Login(a) => cmd::auth::login(cli.server, cli.output, a).await,
        Command::Logout => cmd::auth::logout(cli.server).await,
        Command::Whoami => cmd::auth::whoami(cli.server, cli.output).await,
        Command::Profile(c) => cmd::profiles::run(cli.output, c),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "nvrctl", &mut out);
            output::line(format_args!("{}", String::from_utf8_lossy(&out).trim_end()));
            Ok(())
        }
        Command::Users(c) => cmd::users::run(cli.server, cli.output, c).await,
        Command::Sessions(c) => cmd::sessions::run(cli.server, cli.output, c).await,
        Command::Audit(c) => cmd::audit::run(cli.server, cli.output, c).await,
        Command::Keys(c) => cmd::keys::run(cli.server, cli.output, c).await,
        Command::Cameras(c) => cmd::cameras::run(cli.server, cli.output, c).await,
        Command::Grants(c) => cmd::cameras::grants(cli.server, cli.output, c).await,
        Command::Recordings(c) => cmd::recordings::recordings(cli.server, cli.output, c).await,
        Command::Holds(c) => cmd::recordings::holds(cli.server, cli.output, c).await,
        Command::Retention(c) => cmd::recordings::retention(cli.server, cli.output, c).await,
        Command::Storage => cmd::recordings::storage(cli.server, cli.output).await,
        Command::Mfa(c) => cmd::mfa::run(cli.server, cli.output, c).await,
        Command::Credentials(c) => cmd::credentials::run(cli.server, cli.output, c).await,
        Command::Apikeys(c) => cmd::apikeys::run(cli.server, cli.output, c).await,
        Command::Alerts(c) => cmd::alerts::run(cli.server, cli.output, c).await,
        Command::Adapters(c) => cmd::adapters::run(cli.server, cli.output, c).await,
        Command::Bindings(c) => cmd::bindings::bindings(cli.server, cli.output, c).await,
        Command::Detections(c) => cmd::bindings::detections(cli.server, cli.output, c).await,
        Command::Events(c) => cmd::events::run(cli.server, cli.output, c).await,
        Command::Infer { image, camera, adapter, task } => {
            cmd::adapters::infer(cli.server, cli.output, image, camera, adapter, task).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Calls `visit` with every command of the tree under `cmd`, and its path (`nvrctl cameras add`).
    fn each_command(cmd: &clap::Command, path: &str, visit: &mut impl FnMut(&clap::Command, &str)) {
        visit(cmd, path);
        for sub in cmd.get_subcommands() {
            each_command(sub, &format!("{path} {}", sub.get_name()), visit);
        }
    }

    /// Every argument of every command, with the command's path, that has no help text.
    fn without_help(cmd: &clap::Command, out: &mut Vec<String>) {
        each_command(cmd, "nvrctl", &mut |cmd, path| {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    out.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    out.push(format!("{path} {} (command)", sub.get_name()));
                }
            }
        });
    }

    #[test]
    fn every_command_and_argument_has_help_text() {
        let mut missing = Vec::new();
        without_help(&Cli::command(), &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    /// The clashes clap's own `debug_assert` finds only in debug builds (the tests run in release):
    /// in each command, with the global arguments it inherits once built, every argument id, long
    /// flag (aliases too), short flag and subcommand name (aliases too) is used once.
    fn clashes(cmd: &clap::Command, out: &mut Vec<String>) {
        fn once<T: Ord + std::fmt::Debug>(what: &str, path: &str, mut items: Vec<T>, out: &mut Vec<String>) {
            items.sort();
            for pair in items.windows(2).filter(|pair| pair[0] == pair[1]) {
                out.push(format!("{path}: {what} {:?} twice", pair[0]));
            }
        }
        each_command(cmd, "nvrctl", &mut |cmd, path| {
            let args: Vec<&clap::Arg> = cmd.get_arguments().collect();
            once("argument", path, args.iter().map(|a| a.get_id().as_str()).collect(), out);
            let longs =
                args.iter().flat_map(|a| a.get_long().into_iter().chain(a.get_all_aliases().unwrap_or_default()));
            once("long flag", path, longs.collect(), out);
            let shorts = args
                .iter()
                .flat_map(|a| a.get_short().into_iter().chain(a.get_all_short_aliases().unwrap_or_default()));
            once("short flag", path, shorts.collect(), out);
            let subs = cmd.get_subcommands().flat_map(|c| std::iter::once(c.get_name()).chain(c.get_all_aliases()));
            once("subcommand", path, subs.collect(), out);
        });
    }

    #[test]
    fn a_flag_used_twice_is_a_clash() {
        let cmd = clap::Command::new("nvrctl")
            .arg(clap::Arg::new("server").long("server"))
            .subcommand(
                clap::Command::new("cameras").arg(clap::Arg::new("a").short('n')).arg(clap::Arg::new("b").short('n')),
            )
            .subcommand(clap::Command::new("login").alias("cameras"));
        let mut found = Vec::new();
        clashes(&cmd, &mut found);
        assert_eq!(found, ["nvrctl: subcommand \"cameras\" twice", "nvrctl cameras: short flag 'n' twice"]);
    }

    #[test]
    fn the_command_line_is_consistent() {
        let mut cli = Cli::command();
        cli.build();
        let mut found = Vec::new();
        clashes(&cli, &mut found);
        assert!(found.is_empty(), "{found:#?}");
        // clap's fuller check, where it runs (debug builds).
        Cli::command().debug_assert();
        let parsed = Cli::try_parse_from([
            "nvrctl",
            "cameras",
            "add",
            "Dock",
            "--url",
            "rtsp://10.0.0.5/s",
            "--label",
            "site=dock",
            "--segment-secs",
            "120",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(
            Cli::try_parse_from(["nvrctl", "grants", "set", "Dock", "some-user"]).is_err(),
            "permissions are required"
        );
        let export = ["nvrctl", "recordings", "export", "Dock", "--last", "10m", "-o", "clip.mp4"];
        assert!(Cli::try_parse_from(export).is_err(), "an export needs a reason");
        let export = [&export[..], &["--reason", "incident 42"]].concat();
        assert!(Cli::try_parse_from(export).is_ok());
        assert!(Cli::try_parse_from(["nvrctl", "holds", "create", "--since", "2026-11-25T08:00:00Z"]).is_err());
        assert!(Cli::try_parse_from(["nvrctl", "retention", "set", "Dock", "--max-age", "30d"]).is_ok());
        assert!(Cli::try_parse_from(["nvrctl", "mfa", "totp", "enrol"]).is_ok());
        assert!(Cli::try_parse_from(["nvrctl", "credentials", "rename", "id", "YubiKey"]).is_ok());
        let key = ["nvrctl", "apikeys", "create", "ha", "--role", "viewer", "--permission", "camera.live"];
        assert!(Cli::try_parse_from(key).is_ok());
        assert!(Cli::try_parse_from(["nvrctl", "apikeys", "create", "ha"]).is_err(), "a key needs a role");
        assert!(Cli::try_parse_from(["nvrctl", "alerts", "list", "--last", "24h", "--max-severity", "1"]).is_ok());
        let bind = ["nvrctl", "bindings", "add", "Dock", "faces", "--interval-ms", "500", "--label", "face"];
        assert!(Cli::try_parse_from([&bind[..], &["--region", "0,0 1,0 1,1"]].concat()).is_ok());
        assert!(Cli::try_parse_from(["nvrctl", "infer", "--camera", "Dock"]).is_ok());
        assert!(Cli::try_parse_from(["nvrctl", "infer", "--adapter", "faces"]).is_err(), "a frame is required");
        assert!(Cli::try_parse_from(["nvrctl", "infer", "--camera", "Dock", "--image", "x.jpg"]).is_err());
        assert!(Cli::try_parse_from(["nvrctl", "events", "watch", "--type", "detection"]).is_ok());
        assert!(Cli::try_parse_from(["nvrctl", "detections", "list", "--camera", "Dock", "--last", "1h"]).is_ok());
    }
}
