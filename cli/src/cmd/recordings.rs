//! `recordings list|timeline|play|export|delete`, `holds list|create|release`,
//! `retention show|set|run` and `storage`: what has been recorded, and how long it is kept.
use crate::output::{self, Format};
use crate::session;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use opennvr_sdk::pb;
use std::io::Write;

/// A time range on the command line: `--since`/`--until` (RFC 3339) or `--last` (e.g. `90m`, `2h`, `7d`).
#[derive(Debug, Clone, clap::Args)]
pub struct Range {
    /// Start, RFC 3339 (e.g. 2026-11-25T08:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// End, RFC 3339 [default: now].
    #[arg(long)]
    until: Option<String>,
    /// The last span of time up to now, e.g. 90m, 2h, 7d (instead of --since).
    #[arg(long)]
    last: Option<String>,
}

/// `90s`, `15m`, `2h`, `7d`.
pub fn span(text: &str) -> Result<chrono::Duration> {
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = n.parse().map_err(|_| anyhow!("{text:?} is not a span like 90s, 15m, 2h or 7d"))?;
    Ok(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => bail!("{text:?} is not a span like 90s, 15m, 2h or 7d"),
    })
}

/// The start of the last `span` up to now (`--last 24h`), as the API takes it; `None`: no span.
pub fn since(span_text: Option<&str>) -> Result<Option<prost_types::Timestamp>> {
    span_text
        .map(|t| {
            let at = Utc::now() - span(t)?;
            Ok(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 })
        })
        .transpose()
}

fn instant(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))
}

impl Range {
    /// The range, both ends required.
    fn bounds(&self) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
        let end = self.until.as_deref().map(instant).transpose()?.unwrap_or_else(Utc::now);
        let start = match (&self.since, &self.last) {
            (Some(s), None) => instant(s)?,
            (None, Some(l)) => end - span(l)?,
            (None, None) => bail!("give --since or --last"),
            (Some(_), Some(_)) => bail!("give --since or --last, not both"),
        };
        Ok((start, end))
    }
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn show(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn secs(d: &Option<prost_types::Duration>) -> String {
    d.as_ref().map(|d| format!("{:.1}", d.seconds as f64 + f64::from(d.nanos) / 1e9)).unwrap_or_default()
}

#[derive(Debug, clap::Subcommand)]
pub enum RecordingsCommand {
    /// The segments of a camera in a range.
    List {
        /// The camera (name or id).
        camera: String,
        #[command(flatten)]
        range: Range,
    },
    /// Recorded runs and gaps of a camera over a range.
    Timeline {
        /// The camera (name or id).
        camera: String,
        #[command(flatten)]
        range: Range,
    },
    /// A short-lived playback URL and token for a stretch of recordings.
    Play {
        /// The camera (name or id).
        camera: String,
        /// Start, RFC 3339.
        #[arg(long)]
        since: String,
        /// How long, e.g. 90s, 10m.
        #[arg(long, default_value = "5m")]
        duration: String,
    },
    /// Export a clip to a file; the reason is kept with the export and in the audit trail.
    Export {
        /// The camera (name or id).
        camera: String,
        #[command(flatten)]
        range: Range,
        /// Why the clip is exported (required).
        #[arg(long)]
        reason: String,
        /// Case or incident reference.
        #[arg(long, default_value = "")]
        case: String,
        /// Where to write the MP4.
        #[arg(short = 'o', long = "out")]
        out: std::path::PathBuf,
    },
    /// Delete a camera's recordings lying wholly in a range (refused if any is under a hold).
    Delete {
        /// The camera (name or id).
        camera: String,
        #[command(flatten)]
        range: Range,
        /// Why (required; kept in the audit trail).
        #[arg(long)]
        reason: String,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum HoldsCommand {
    /// Active holds (with --all, released ones too).
    List {
        /// Released and expired holds too.
        #[arg(long)]
        all: bool,
    },
    /// Keep a range of recordings of one or more cameras from any deletion until released.
    Create {
        /// Cameras (names or ids).
        #[arg(required = true)]
        cameras: Vec<String>,
        /// Start, RFC 3339.
        #[arg(long)]
        since: String,
        /// End, RFC 3339 [default: open-ended].
        #[arg(long)]
        until: Option<String>,
        /// The case or incident number.
        #[arg(long)]
        case: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Release a hold: its recordings follow retention again.
    Release {
        /// The hold (its id).
        hold: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// The site default and every camera override.
    Show,
    /// Change the site default (no camera) or a camera's override; `none` removes a limit.
    Set {
        /// The camera (name or id).
        camera: Option<String>,
        /// Maximum age, e.g. 30d, or none.
        #[arg(long)]
        max_age: Option<String>,
        /// Maximum bytes, or none.
        #[arg(long)]
        max_bytes: Option<String>,
        /// Site only: free bytes to keep on the recordings volume, or none.
        #[arg(long)]
        min_free_bytes: Option<String>,
        /// Site only: share of the recordings volume to keep free, 1 to 90 percent, or none (the
        /// larger of this and --min-free-bytes is kept free).
        #[arg(long)]
        min_free_percent: Option<String>,
    },
    /// Run a retention pass now.
    Run,
}

/// `none` or a positive number.
fn limit(text: &str) -> Result<Option<i64>> {
    if text == "none" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| anyhow!("{text:?} is neither a number of bytes nor none"))
}

async fn camera_id(client: &opennvr_sdk::Client, which: &str) -> Result<String> {
    Ok(client.find_camera(which).await?.id)
}

pub async fn recordings(server: Option<String>, format: Format, c: RecordingsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        RecordingsCommand::List { camera, range } => {
            let (start, end) = range.bounds()?;
            let id = camera_id(&client, &camera).await?;
            let segments = client
                .all_segments(pb::ListSegmentsRequest {
                    camera_id: id,
                    start_time: Some(ts(start)),
                    end_time: Some(ts(end)),
                    ..Default::default()
                })
                .await?;
            let rows = segments
                .iter()
                .map(|s| {
                    let state = if s.in_progress { "recording" } else { "complete" };
                    vec![show(&s.start_time), secs(&s.duration), s.size_bytes.to_string(), state.to_owned()]
                })
                .collect();
            output::print(format, &["Start", "Seconds", "Bytes", "State"], rows);
        }
        RecordingsCommand::Timeline { camera, range } => {
            let (start, end) = range.bounds()?;
            let id = camera_id(&client, &camera).await?;
            let t = client
                .recordings()
                .get_timeline(pb::GetTimelineRequest {
                    camera_id: id,
                    start_time: Some(ts(start)),
                    end_time: Some(ts(end)),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let rows = t.runs.iter().map(|r| vec![show(&r.start_time), show(&r.end_time)]).collect();
            output::print(format, &["Recorded from", "Until"], rows);
        }
        RecordingsCommand::Play { camera, since, duration } => {
            let id = camera_id(&client, &camera).await?;
            let d = span(&duration)?;
            let t = client
                .recordings()
                .create_playback_token(pb::CreatePlaybackTokenRequest {
                    camera_id: id,
                    start_time: Some(ts(instant(&since)?)),
                    duration: Some(prost_types::Duration { seconds: d.num_seconds(), nanos: 0 }),
                    format: pb::MediaFormat::Fmp4 as i32,
                    ttl: None,
                })
                .await?
                .into_inner();
            crate::output::outln!("URL:     {}", t.url);
            crate::output::outln!("Token:   {}", t.token);
            crate::output::outln!("Expires: {}", show(&t.expire_time));
            crate::output::outln!("Send the token as `Authorization: Bearer <token>`.");
        }
        RecordingsCommand::Export { camera, range, reason, case, out } => {
            let (start, end) = range.bounds()?;
            let id = camera_id(&client, &camera).await?;
            let mut stream = client
                .recordings()
                .export_clip(pb::ExportClipRequest {
                    camera_id: id,
                    start_time: Some(ts(start)),
                    end_time: Some(ts(end)),
                    format: pb::MediaFormat::Mp4 as i32,
                    reason,
                    case_id: case,
                    stream_data: true,
                })
                .await?
                .into_inner();
            let partial = out.with_extension("part");
            let mut file =
                std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
            let mut export = None;
            // On a terminal, a bar of the bytes written (standard error; nothing in a pipe).
            let bar = indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {binary_bytes} ({binary_bytes_per_sec})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("exporting to {}", out.display()));
            while let Some(msg) = stream.message().await? {
                match msg.kind {
                    Some(pb::export_clip_response::Kind::Chunk(c)) => {
                        file.write_all(&c.data)?;
                        bar.inc(c.data.len() as u64);
                    }
                    Some(pb::export_clip_response::Kind::Progress(p)) => {
                        bar.set_position(p.bytes_written.max(0) as u64)
                    }
                    Some(pb::export_clip_response::Kind::Export(e)) => export = Some(e),
                    None => {}
                }
            }
            bar.finish_and_clear();
            let export = export.ok_or_else(|| anyhow!("the export ended without its result"))?;
            file.sync_all()?;
            std::fs::rename(&partial, &out)?;
            crate::output::outln!(
                "Exported {} to {} (export {}, SHA-256 {}).",
                output::bytes(export.size_bytes),
                out.display(),
                export.id,
                hex::encode(&export.sha256)
            );
        }
        RecordingsCommand::Delete { camera, range, reason, dry_run } => {
            let (start, end) = range.bounds()?;
            let id = camera_id(&client, &camera).await?;
            let r = client
                .recordings()
                .delete_recordings(pb::DeleteRecordingsRequest {
                    camera_id: id,
                    start_time: Some(ts(start)),
                    end_time: Some(ts(end)),
                    reason,
                    validate_only: dry_run,
                })
                .await?
                .into_inner();
            let verb = if dry_run { "Would delete" } else { "Deleted" };
            crate::output::outln!("{verb} {} segment(s), {} bytes.", r.segment_count, r.size_bytes);
        }
    }
    Ok(())
}

pub async fn holds(server: Option<String>, format: Format, c: HoldsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        HoldsCommand::List { all } => {
            let holds = client.all_holds(pb::ListHoldsRequest { show_released: all, ..Default::default() }).await?;
            let rows = holds
                .iter()
                .map(|h| {
                    vec![
                        h.id.clone(),
                        h.case_id.clone(),
                        h.camera_ids.join(","),
                        show(&h.start_time),
                        show(&h.end_time),
                        if h.release_time.is_some() { "released" } else { "active" }.to_owned(),
                        h.reason.clone(),
                    ]
                })
                .collect();
            output::print(format, &["Hold", "Case", "Cameras", "From", "Until", "State", "Reason"], rows);
        }
        HoldsCommand::Create { cameras, since, until, case, reason } => {
            let mut ids = Vec::new();
            for c in &cameras {
                ids.push(camera_id(&client, c).await?);
            }
            let hold = pb::Hold {
                camera_ids: ids,
                start_time: Some(ts(instant(&since)?)),
                end_time: until.as_deref().map(instant).transpose()?.map(ts),
                case_id: case,
                reason,
                ..Default::default()
            };
            let h = client.recordings().create_hold(pb::CreateHoldRequest { hold: Some(hold) }).await?.into_inner();
            crate::output::outln!("Hold {} placed.", h.hold.map(|h| h.id).unwrap_or_default());
        }
        HoldsCommand::Release { hold, reason } => {
            client.recordings().release_hold(pb::ReleaseHoldRequest { hold_id: hold.clone(), reason }).await?;
            crate::output::outln!("Hold {hold} released.");
        }
    }
    Ok(())
}

pub async fn retention(server: Option<String>, format: Format, c: RetentionCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        RetentionCommand::Show => {
            use output::Cell;
            let all = client.all_retention_policies(pb::ListRetentionPoliciesRequest::default()).await?;
            let names = crate::cmd::Names::load(&client, false).await;
            let age = |d: &Option<prost_types::Duration>| d.as_ref().map_or(Cell::None, |d| Cell::Secs(d.seconds));
            let size = |v: Option<i64>| v.map_or(Cell::None, Cell::Bytes);
            let rows: Vec<Vec<Cell>> = all
                .iter()
                .map(|p| {
                    vec![
                        if p.camera_id.is_empty() { "site default".to_owned() } else { names.camera(&p.camera_id) }
                            .into(),
                        age(&p.max_age),
                        age(&p.event_max_age),
                        size(p.max_bytes),
                        size(p.min_free_bytes),
                        p.min_free_percent.into(),
                        p.camera_id.clone().into(),
                    ]
                })
                .collect();
            let header =
                ["Policy", "Max age", "Event max age", "Max size", "Min free", "Min free percent", "Camera id"];
            output::print(format, &header, rows);
        }
        RetentionCommand::Set { camera, max_age, max_bytes, min_free_bytes, min_free_percent } => {
            let camera_id = match camera {
                Some(c) => camera_id(&client, &c).await?,
                None => String::new(),
            };
            let mut policy = pb::RetentionPolicy { camera_id, ..Default::default() };
            let mut mask = Vec::new();
            if let Some(a) = max_age {
                policy.max_age = if a == "none" {
                    None
                } else {
                    Some(prost_types::Duration { seconds: span(&a)?.num_seconds(), nanos: 0 })
                };
                mask.push("max_age".to_owned());
            }
            if let Some(b) = max_bytes {
                policy.max_bytes = limit(&b)?;
                mask.push("max_bytes".to_owned());
            }
            if let Some(f) = min_free_bytes {
                policy.min_free_bytes = limit(&f)?;
                mask.push("min_free_bytes".to_owned());
            }
            if let Some(f) = min_free_percent {
                policy.min_free_percent = limit(&f)?.map(i32::try_from).transpose()?;
                mask.push("min_free_percent".to_owned());
            }
            if mask.is_empty() {
                bail!("give --max-age, --max-bytes, --min-free-bytes or --min-free-percent");
            }
            client
                .recordings()
                .update_retention_policy(pb::UpdateRetentionPolicyRequest {
                    policy: Some(policy),
                    update_mask: Some(prost_types::FieldMask { paths: mask }),
                })
                .await?;
            crate::output::outln!("Retention policy updated.");
        }
        RetentionCommand::Run => {
            let r = client.recordings().enforce_retention(pb::EnforceRetentionRequest {}).await?.into_inner();
            crate::output::outln!("Removed {} segment(s), {} bytes.", r.segment_count, r.size_bytes);
            for u in &r.unmet {
                crate::output::outln!("Still unmet: {u}");
            }
        }
    }
    Ok(())
}

pub async fn storage(server: Option<String>, format: Format) -> Result<()> {
    use output::Cell;
    let client = session::signed_in(server).await?;
    let st = client.recordings().get_storage_stats(pb::GetStorageStatsRequest {}).await?.into_inner();
    let names = crate::cmd::Names::load(&client, false).await;
    const HEADER: [&str; 9] =
        ["Camera", "Recorded", "Events", "Segments", "Oldest", "Newest end", "Held", "Written/s", "Id"];
    let rows: Vec<Vec<Cell>> = st
        .cameras
        .iter()
        .map(|c| {
            vec![
                names.camera(&c.camera_id).into(),
                Cell::Bytes(c.recorded_bytes),
                Cell::Bytes(c.event_bytes),
                c.segment_count.into(),
                show(&c.oldest_segment_time).into(),
                show(&c.newest_segment_end_time).into(),
                Cell::Bytes(c.held_bytes),
                Cell::Bytes(c.write_bytes_per_second),
                c.camera_id.clone().into(),
            ]
        })
        .collect();
    match format {
        // One document for scripts: the volumes and the cameras.
        Format::Json => {
            let volumes: Vec<serde_json::Value> = st
                .volumes
                .iter()
                .map(|v| {
                    serde_json::json!({"path": v.path, "total_bytes": v.total_bytes, "free_bytes": v.free_bytes,
                        "floor_bytes": v.floor_bytes, "low": v.low})
                })
                .collect();
            let cameras: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|r| {
                    let keys = [
                        "camera",
                        "recorded_bytes",
                        "event_bytes",
                        "segments",
                        "oldest",
                        "newest_end",
                        "held_bytes",
                        "written_bytes_per_second",
                        "id",
                    ];
                    serde_json::Value::Object(
                        keys.iter().map(|k| (*k).to_owned()).zip(r.iter().map(Cell::json)).collect(),
                    )
                })
                .collect();
            let doc = serde_json::json!({"volumes": volumes, "cameras": cameras});
            crate::output::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Table => {
            for v in &st.volumes {
                let low = if v.low { ", below the free-space floor" } else { "" };
                crate::output::outln!(
                    "{}: {} free of {} (floor {}{low})",
                    v.path,
                    output::bytes(v.free_bytes),
                    output::bytes(v.total_bytes),
                    output::bytes(v.floor_bytes)
                );
            }
            output::print(format, &HEADER, rows);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_limits_read_as_written() {
        assert_eq!(span("90s").ok(), Some(chrono::Duration::seconds(90)));
        assert_eq!(span("7d").ok(), Some(chrono::Duration::days(7)));
        assert!(span("7w").is_err() && span("d").is_err() && span("").is_err());
        assert_eq!(since(None).ok(), Some(None));
        let hour_ago = since(Some("1h")).ok().flatten().map(|t| t.seconds).unwrap_or_default();
        assert!((hour_ago - (Utc::now().timestamp() - 3600)).abs() <= 5, "{hour_ago}");
        assert!(since(Some("soon")).is_err());
        assert_eq!(limit("none").ok(), Some(None));
        assert_eq!(limit("1000").ok(), Some(Some(1000)));
        assert!(limit("lots").is_err());
        let r = Range { since: None, until: Some("2026-11-25T10:00:00Z".into()), last: Some("2h".into()) };
        assert_eq!(r.bounds().map(|(a, b)| (b - a).num_hours()).ok(), Some(2));
        assert!(Range { since: None, until: None, last: None }.bounds().is_err());
    }
}
