//! `bootstrap`, `login`, `logout`, `whoami`.
use crate::output::{self, Format};
use crate::session;
use anyhow::{Context, Result, anyhow, bail};
use opennvr_sdk::{LoginOutcome, pb};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct BootstrapArgs {
    /// The setup token the server wrote at first start.
    #[arg(long, conflicts_with = "setup_token_file", env = "NVRCTL_SETUP_TOKEN", hide_env_values = true)]
    setup_token: Option<String>,
    /// File holding the setup token (the server logs its path, by default ./var/setup-token).
    #[arg(long)]
    setup_token_file: Option<PathBuf>,
    /// Username of the first administrator.
    #[arg(long, short = 'u')]
    username: String,
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Your username.
    #[arg(long, short = 'u')]
    username: String,
}

pub async fn bootstrap(server: Option<String>, format: Format, a: BootstrapArgs) -> Result<()> {
    let token = match (a.setup_token, a.setup_token_file) {
        (Some(t), _) => t,
        (None, Some(f)) => std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => return Err(anyhow!("give --setup-token-file (or --setup-token)")),
    };
    let server = session::server_url(server)?;
    session::check_replace(&server, &a.username)?;
    let password = crate::cmd::read_password("Password for the new administrator: ")?;
    let client = session::anonymous(&server).await?;
    let tokens = client.bootstrap(token.trim(), &a.username, &password).await?;
    // Administrators must have a second factor: the walk enrols TOTP before anything else.
    let tokens = crate::cmd::mfa::finish_sign_in(&client, &server, format, tokens).await?;
    print_user(format, tokens.user.as_ref());
    Ok(())
}

pub async fn login(server: Option<String>, format: Format, a: LoginArgs) -> Result<()> {
    let server = session::server_url(server)?;
    session::check_replace(&server, &a.username)?;
    let password = crate::cmd::read_password("Password: ")?;
    let client = session::anonymous(&server).await?;
    let tokens = match client.login_start(&a.username, &password).await? {
        LoginOutcome::SignedIn(tokens) => tokens,
        LoginOutcome::MfaRequired(challenge) => {
            let typed = [pb::SecondFactorMethod::Totp, pb::SecondFactorMethod::RecoveryCode];
            if !challenge.methods.iter().any(|m| typed.iter().any(|t| *t as i32 == *m)) {
                bail!("this account signs in with a passkey only: use the dashboard in a browser");
            }
            let code = crate::cmd::mfa::read_code("TOTP code (or a recovery code): ")?;
            client.finish_mfa(&challenge.ticket, crate::cmd::mfa::factor(&code)).await?
        }
    };
    let tokens = crate::cmd::mfa::finish_sign_in(&client, &server, format, tokens).await?;
    print_user(format, tokens.user.as_ref());
    Ok(())
}

pub async fn logout(server: Option<String>) -> Result<()> {
    if std::env::var("NVRCTL_API_KEY").is_ok_and(|k| !k.is_empty()) {
        bail!(
            "NVRCTL_API_KEY is set: an API key is no session to sign out of (revoke it with `nvrctl apikeys revoke`)"
        );
    }
    let client = session::signed_in(server).await?;
    let ended = client.logout().await;
    session::clear()?;
    Ok(ended?)
}

pub async fn whoami(server: Option<String>, format: Format) -> Result<()> {
    let client = session::signed_in(server).await?;
    let me = client.auth().who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
    let user = me.user.unwrap_or_default();
    let second_factor = match (user.has_totp, user.passkey_count) {
        (_, _) if !me.api_key_id.is_empty() => "(API key)".to_owned(),
        (false, 0) if me.mfa_enrolment_required => "none: enrol one (nvrctl mfa totp enrol)".to_owned(),
        (false, 0) => "none".to_owned(),
        (totp, passkeys) => {
            let mut v = Vec::new();
            if totp {
                v.push("totp".to_owned());
            }
            if passkeys > 0 {
                v.push(format!("{passkeys} passkey(s)"));
            }
            v.join(", ")
        }
    };
    output::print_one(
        format,
        &["Username", "Role", "Session", "Second factor", "Stepped up until", "Permissions"],
        vec![
            user.username.into(),
            output::role(user.role).into(),
            me.session_id.into(),
            second_factor.into(),
            output::time(me.step_up_expire_time.as_ref()).into(),
            output::Cell::List(me.permissions),
        ],
    );
    Ok(())
}

fn print_user(format: Format, user: Option<&pb::User>) {
    let u = user.cloned().unwrap_or_default();
    output::print_one(format, &["Signed in as", "Role", "Id"], vec![u.username, output::role(u.role), u.id]);
}
