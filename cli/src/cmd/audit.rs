//! `audit list|tail|export|verify|check`: read the trail, follow it live, export it, and verify an
//! export offline (no server, no database) or the server's chain in place.
use crate::output::{self, Format};
use crate::session;
use anyhow::{Context, Result, bail};
use opennvr_sdk::pb;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List entries, newest first.
    List {
        /// Exact action (`user.create`) or a prefix ending in `.` (`user.`).
        #[arg(long, default_value = "")]
        action: String,
        /// Only entries by this user (username or id).
        #[arg(long, alias = "user-id")]
        user: Option<String>,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Follow new entries as they are written (Ctrl-C to stop).
    Tail {
        /// Replay entries after this sequence first.
        #[arg(long)]
        after: Option<i64>,
    },
    /// Export the trail (JSON Lines, verifiable offline; or CSV) to FILE.
    Export {
        /// Where to write the export (created with mode 0600).
        file: PathBuf,
        /// CSV instead of JSON Lines (CSV cannot be verified offline).
        #[arg(long)]
        csv: bool,
        /// First entry (sequence number) [default: the first].
        #[arg(long)]
        start_sequence: Option<i64>,
        /// Last entry (sequence number) [default: the last].
        #[arg(long)]
        end_sequence: Option<i64>,
    },
    /// Verify a JSON Lines export offline: every hash, link and checkpoint signature.
    Verify {
        /// The export to verify (JSON Lines, as `audit export` writes it).
        file: PathBuf,
        /// Trust only these audit keys (public key SHA-256, hex, as `nvrctl audit keys` prints it):
        /// a checkpoint signed by any other key fails. Repeat for several keys.
        #[arg(long = "key", value_name = "FINGERPRINT")]
        keys: Vec<String>,
    },
    /// List the audit signing keys (to compare with the keys an export carries).
    Keys,
    /// Ask the server to verify its chain in place.
    Check {
        /// First entry (sequence number) [default: the first].
        #[arg(long)]
        start_sequence: Option<i64>,
        /// Last entry (sequence number) [default: the last].
        #[arg(long)]
        end_sequence: Option<i64>,
    },
}

fn row(e: &pb::AuditEvent) -> Vec<output::Cell> {
    let actor = e.actor.clone().unwrap_or_default();
    // The outcome: OK, or the gRPC code the call was refused or failed with.
    let outcome = if e.code.is_empty() {
        pb::AuditResult::try_from(e.result)
            .map(|r| r.as_str_name().trim_start_matches("AUDIT_RESULT_").to_lowercase())
            .unwrap_or_default()
    } else {
        e.code.clone()
    };
    vec![
        e.sequence.into(),
        output::time(e.time.as_ref()).into(),
        if actor.username.is_empty() { actor.user_id } else { actor.username }.into(),
        actor.client_address.into(),
        e.action.clone().into(),
        format!(
            "{}{}",
            e.target_type,
            if e.target_id.is_empty() { String::new() } else { format!("/{}", e.target_id) }
        )
        .into(),
        outcome.into(),
        e.reason.clone().into(),
    ]
}

const HEADER: [&str; 8] = ["Seq", "Time", "Actor", "Client", "Action", "Target", "Outcome", "Reason"];

/// An entry's row with the target's name in place of its id where it is known.
fn named_row(e: &pb::AuditEvent, names: &crate::cmd::Names) -> Vec<output::Cell> {
    let mut r = row(e);
    r[5] = names.target(&e.target_type, &e.target_id).into();
    r
}

pub async fn run(server: Option<String>, format: Format, c: AuditCommand) -> Result<()> {
    if let AuditCommand::Verify { file, keys } = &c {
        return verify(file, keys);
    }
    let client = session::signed_in(server).await?;
    match c {
        AuditCommand::List { action, user, limit } => {
            let actor_user_id = match user {
                Some(which) => client.find_user(&which).await?.id,
                None => String::new(),
            };
            let filter = pb::AuditEventFilter { action, actor_user_id, ..Default::default() };
            let events = client
                .first_audit_events(pb::ListAuditEventsRequest { filter: Some(filter), ..Default::default() }, limit)
                .await?;
            let names = crate::cmd::Names::load(&client, true).await;
            output::print(format, &HEADER, events.iter().map(|e| named_row(e, &names)).collect());
        }
        AuditCommand::Tail { after } => {
            // Reopened after an expired token, it goes on after the last entry shown.
            let names = crate::cmd::Names::load(&client, true).await;
            let last = std::cell::Cell::new(after);
            let reopen = || {
                let mut audit = client.audit();
                let request = pb::WatchAuditEventsRequest { filter: None, after_sequence: last.get() };
                async move { audit.watch_audit_events(request).await }
            };
            let mut stream = reopen().await?.into_inner();
            while let Some(msg) = crate::session::next_watched(&client, &mut stream, reopen).await? {
                if let Some(pb::watch_audit_events_response::Kind::Event(e)) = msg.kind {
                    last.set(Some(e.sequence));
                    let named = named_row(&e, &names);
                    match format {
                        Format::Json => output::print(format, &HEADER, vec![named]),
                        Format::Table => {
                            crate::output::outln!(
                                "{}",
                                named.iter().map(output::Cell::text).collect::<Vec<_>>().join("  ")
                            )
                        }
                    }
                }
            }
        }
        AuditCommand::Export { file, csv, start_sequence, end_sequence } => {
            let fmt = if csv { pb::AuditExportFormat::Csv } else { pb::AuditExportFormat::Jsonl };
            let mut stream = client
                .audit()
                .export_audit_events(pb::ExportAuditEventsRequest {
                    format: fmt as i32,
                    start_sequence,
                    end_sequence,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let tmp = file.with_extension("partial");
            // Readable by its owner only: the trail names users, addresses and what they did.
            let mut out = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)
            }
            .with_context(|| format!("creating {}", tmp.display()))?;
            let mut bytes = 0usize;
            while let Some(chunk) = stream.message().await? {
                out.write_all(&chunk.data)?;
                bytes += chunk.data.len();
            }
            out.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            eprintln!("wrote {bytes} bytes to {}", file.display());
        }
        AuditCommand::Check { start_sequence, end_sequence } => {
            let r = client
                .audit()
                .verify_audit_chain(pb::VerifyAuditChainRequest { start_sequence, end_sequence })
                .await?
                .into_inner();
            if r.ok {
                crate::output::outln!(
                    "OK: events {}..{} ({} verified), {} checkpoint(s) verified",
                    r.first_sequence,
                    r.last_sequence,
                    r.verified_count,
                    r.checkpoints_verified
                );
            } else {
                bail!(
                    "BROKEN at sequence {}: {}",
                    r.first_broken_sequence.map(|s| s.to_string()).unwrap_or_default(),
                    r.failure_detail
                );
            }
        }
        AuditCommand::Keys => {
            let keys = client.all_audit_signing_keys(pb::ListAuditSigningKeysRequest::default()).await?;
            let rows = keys
                .iter()
                .map(|k| {
                    vec![
                        k.key_id.clone(),
                        opennvr_sdk::audit::jwk_fingerprint(&k.public_key_jwk).unwrap_or_default(),
                        output::time(k.create_time.as_ref()),
                        output::time(k.retire_time.as_ref()),
                    ]
                })
                .collect();
            output::print(format, &["Key", "Public key SHA-256", "Created", "Retired"], rows);
        }
        AuditCommand::Verify { .. } => {}
    }
    Ok(())
}

fn verify(file: &PathBuf, pinned: &[String]) -> Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    // On a terminal, a bar of the file read so far (standard error; nothing in a pipe).
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(size).with_style(
        indicatif::ProgressStyle::with_template("verifying {wide_bar} {binary_bytes}/{binary_total_bytes} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let verified = opennvr_sdk::audit::verify_export(std::io::BufReader::new(bar.wrap_read(f)));
    bar.finish_and_clear();
    match verified {
        Ok(r) => {
            if !pinned.is_empty()
                && let Some((kid, fingerprint)) =
                    r.signing_keys.iter().find(|(_, f)| !pinned.iter().any(|p| p.eq_ignore_ascii_case(f)))
            {
                bail!(
                    "verification FAILED: checkpoints are signed by {kid} (public key SHA-256 {fingerprint}), not a key given with --key"
                );
            }
            crate::output::outln!(
                "OK: {} event(s) {}..{}, {} checkpoint signature(s) verified.",
                r.events,
                r.first_sequence.unwrap_or(0),
                r.last_sequence.unwrap_or(0),
                r.checkpoints
            );
            for (kid, fingerprint) in &r.signing_keys {
                if pinned.is_empty() {
                    crate::output::outln!(
                        "Checkpoints signed by {kid} (public key SHA-256 {fingerprint}): compare with `nvrctl audit keys` or your own record (or pass --key); the keys come from the export itself."
                    );
                } else {
                    crate::output::outln!(
                        "Checkpoints signed by {kid} (public key SHA-256 {fingerprint}), a key given with --key."
                    );
                }
            }
            if !r.anchored_at_genesis {
                crate::output::outln!(
                    "The export starts after sequence 1: its first link rests on the anchor hash in its header."
                );
            }
            match r.last_checkpoint {
                Some(cp) if r.unanchored() > 0 => crate::output::outln!(
                    "Events up to {cp} are vouched for by a signed checkpoint; the {} event(s) after it are covered by the hash chain only.",
                    r.unanchored()
                ),
                Some(cp) => crate::output::outln!("Every event, up to {cp}, is vouched for by a signed checkpoint."),
                None => {
                    crate::output::outln!("No checkpoint in the export: the events are covered by the hash chain only.")
                }
            }
            Ok(())
        }
        Err(e) => bail!("verification FAILED: {e}"),
    }
}
