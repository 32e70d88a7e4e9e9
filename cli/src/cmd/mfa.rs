//! `mfa totp enrol|disable`, `mfa recovery-codes`, `mfa step-up`, and the second-factor steps the
//! other commands share: the TOTP enrolment walk, the code prompt, and the step-up.
use crate::output::Format;
use crate::session;
use anyhow::{Context, Result, anyhow, bail};
use opennvr_sdk::{Client, pb};

#[derive(Debug, clap::Subcommand)]
pub enum MfaCommand {
    /// Time-based one-time codes from an authenticator app.
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Replace your recovery codes with ten new ones (asks for a second factor).
    RecoveryCodes,
    /// Present a second factor now, so that destructive commands pass for a few minutes.
    StepUp,
}

#[derive(Debug, clap::Subcommand)]
pub enum TotpCommand {
    /// Enrol an authenticator app: shows the otpauth:// URI and secret, then asks for a code.
    Enrol {
        /// Label of the credential.
        #[arg(long, default_value = "TOTP")]
        name: String,
    },
    /// Remove your TOTP (asks for a second factor; sessions signed in with it end).
    Disable,
}

pub async fn run(server: Option<String>, format: Format, c: MfaCommand) -> Result<()> {
    let client = session::signed_in(server.clone()).await?;
    match c {
        MfaCommand::Totp(TotpCommand::Enrol { name }) => {
            enrol_totp(&client, format, &name).await?;
            // A full session follows the enrolment; refreshing saves it (see `session::signed_in`).
            client.refresh().await?;
        }
        MfaCommand::Totp(TotpCommand::Disable) => {
            let creds = client.all_credentials(pb::ListCredentialsRequest::default()).await?;
            let totp = creds
                .iter()
                .find(|c| c.r#type == pb::CredentialType::Totp as i32)
                .ok_or_else(|| anyhow!("you have no TOTP enrolled"))?;
            client.auth().delete_credential(pb::DeleteCredentialRequest { credential_id: totp.id.clone() }).await?;
            eprintln!("TOTP removed.");
        }
        MfaCommand::RecoveryCodes => {
            let codes =
                client.auth().regenerate_recovery_codes(pb::RegenerateRecoveryCodesRequest {}).await?.into_inner();
            print_recovery_codes(format, &codes.recovery_codes);
        }
        MfaCommand::StepUp => {
            let up = step_up(&client).await?;
            eprintln!("Stepped up until {}.", crate::output::time(up.step_up_expire_time.as_ref()));
        }
    }
    Ok(())
}

/// Reads a one-time code: a line of standard input (prompting on a terminal).
pub fn read_code(prompt: &str) -> Result<String> {
    use std::io::{IsTerminal, Write};
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the code from standard input")?;
    let code = line.trim().to_owned();
    if code.is_empty() {
        bail!("no code given");
    }
    Ok(code)
}

/// A typed code as a factor: six digits are a TOTP code, anything else a recovery code.
pub fn factor(code: &str) -> pb::second_factor::Method {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        pb::second_factor::Method::TotpCode(code.to_owned())
    } else {
        pb::second_factor::Method::RecoveryCode(code.to_owned())
    }
}

/// Asks for a TOTP or recovery code and steps up the session with it.
pub async fn step_up(client: &Client) -> Result<pb::StepUpResponse> {
    let code = read_code("This needs a recent second factor. TOTP code (or a recovery code): ")?;
    let up = client
        .auth()
        .step_up(pb::StepUpRequest {
            ticket: String::new(),
            factor: Some(pb::SecondFactor { method: Some(factor(&code)) }),
        })
        .await?;
    Ok(up.into_inner())
}

/// Walks the signed-in user through enrolling TOTP: shows the URI and secret, asks for a code,
/// shows the recovery codes of a first factor.
pub async fn enrol_totp(client: &Client, format: Format, name: &str) -> Result<()> {
    // An enrolment this profile started and did not confirm (a crash midway) goes on with its secret.
    let resume_enrollment_token = session::pending_enrollment()?.unwrap_or_default();
    let started = client
        .auth()
        .start_totp_enrollment(pb::StartTotpEnrollmentRequest { resume_enrollment_token })
        .await?
        .into_inner();
    session::set_pending_enrollment(Some(&started.enrollment_token))?;
    match format {
        Format::Json => {
            crate::output::outln!(
                "{}",
                serde_json::json!({ "otpauth_uri": started.otpauth_uri, "secret": started.secret })
            )
        }
        Format::Table => {
            crate::output::outln!(
                "Add this account to your authenticator app (scan the URI as a QR code, or type the secret):"
            );
            crate::output::outln!("  {}", started.otpauth_uri);
            crate::output::outln!("  secret: {}", started.secret);
        }
    }
    // A mistyped code asks again for the same secret (the server allows a few wrong ones).
    let mut attempt = 1;
    let done = loop {
        let code = read_code("Code shown by the app: ")?;
        let finished = client
            .auth()
            .finish_totp_enrollment(pb::FinishTotpEnrollmentRequest {
                enrollment_token: started.enrollment_token.clone(),
                code,
                name: name.to_owned(),
            })
            .await;
        match finished {
            Ok(done) => break done.into_inner(),
            Err(e) if e.code() == tonic::Code::InvalidArgument && attempt < WRONG_CODES_ASKED_AGAIN => {
                eprintln!("error: {}: type the code the app shows now", e.message());
                attempt += 1;
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(
                    "the enrolment was not confirmed: sign in again (`nvrctl login`) to resume it with the same secret",
                ));
            }
        }
    };
    session::set_pending_enrollment(None)?;
    if done.recovery_codes.is_empty() {
        eprintln!("TOTP enrolled.");
    } else {
        print_recovery_codes(format, &done.recovery_codes);
    }
    Ok(())
}

/// How many codes an enrolment asks for before it gives up (the server takes five wrong ones).
const WRONG_CODES_ASKED_AGAIN: u32 = 4;

fn print_recovery_codes(format: Format, codes: &[String]) {
    match format {
        Format::Json => crate::output::outln!("{}", serde_json::json!({ "recovery_codes": codes })),
        Format::Table => {
            crate::output::outln!("Recovery codes — each works once instead of a TOTP code; keep them somewhere safe:");
            for c in codes {
                crate::output::outln!("  {c}");
            }
        }
    }
}

/// Refreshes the saved session (after enrolling, an enrolment-only session becomes a full one).
/// After a sign-in: saves the session and, when it is enrolment-only, walks through enrolling TOTP
/// and saves the full session that follows.
pub async fn finish_sign_in(client: &Client, server: &str, format: Format, tokens: pb::Tokens) -> Result<pb::Tokens> {
    session::save(server, &tokens)?;
    if !tokens.mfa_enrolment_required {
        return Ok(tokens);
    }
    eprintln!("Your role requires a second factor: enrol an authenticator app now.");
    enrol_totp(client, format, "TOTP").await?;
    let tokens = client.refresh().await?;
    session::save(server, &tokens)?;
    Ok(tokens)
}
