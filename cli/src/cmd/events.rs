//! `events watch|list`: the site's events as they happen (camera state, recording, detections,
//! motion, IDS alerts, adapter health), and their stored history with snapshots, for the cameras
//! you may see.
use crate::output::{self, Format};
use crate::session;
use anyhow::{Context, Result, anyhow};
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Follow events until interrupted.
    Watch {
        /// Only this camera (name or id; repeatable).
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// Only this type, e.g. detection, camera_offline, ids_alert (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// List stored events, newest first.
    List {
        /// Only this camera (name or id; repeatable).
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// Only this type, e.g. motion, detection, ids_alert (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Only the last span of time, e.g. 90m, 24h, 7d.
        #[arg(long)]
        last: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Write each listed event's snapshot (motion episodes, detection tracks) into this
        /// directory as <event id>.jpg, with its box in <event id>.json.
        #[arg(long, value_name = "DIR")]
        snapshots: Option<std::path::PathBuf>,
    },
}

const HEADER: [&str; 5] = ["Time", "Type", "Severity", "Camera", "Details"];

/// What an event says, in a few words.
fn details(e: &pb::Event) -> String {
    use pb::event::Payload;
    match &e.payload {
        Some(Payload::Detections(b)) => {
            b.detections.iter().map(|d| format!("{} {:.2}", d.label, d.confidence)).collect::<Vec<_>>().join(", ")
        }
        Some(Payload::IdsAlert(a)) => {
            format!("{} ({}:{} -> {}:{})", a.signature, a.src_ip, a.src_port, a.dest_ip, a.dest_port)
        }
        Some(Payload::AdapterHealth(h)) => format!("{}: {}", h.adapter_name, h.last_error),
        Some(Payload::CameraState(s)) => s.error.clone(),
        Some(Payload::CameraConfig(c)) => format!("{} {}", c.camera_name, c.changed_fields.join(",")),
        Some(Payload::RecordingState(r)) => r.reason.clone(),
        Some(Payload::MediaServer(m)) => m.error.clone(),
        Some(Payload::Motion(m)) => format!(
            "until {} (peak {:.1} % of the frame)",
            output::time(m.end_time.as_ref()),
            f64::from(m.peak_area) * 100.0
        ),
        _ => String::new(),
    }
}

fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}

/// One event as a row of [`HEADER`].
fn row(e: &pb::Event) -> Vec<String> {
    vec![
        output::time(e.time.as_ref()),
        pb::EventType::try_from(e.r#type).map(|t| short(t.as_str_name(), "EVENT_TYPE_")).unwrap_or_default(),
        pb::EventSeverity::try_from(e.severity).map(|s| short(s.as_str_name(), "EVENT_SEVERITY_")).unwrap_or_default(),
        e.camera_id.clone(),
        details(e),
    ]
}

/// The cameras (by name or id) and event types (e.g. `motion`) named on the command line.
async fn filters(
    client: &opennvr_sdk::Client,
    cameras: Vec<String>,
    types: &[String],
) -> Result<(Vec<String>, Vec<i32>)> {
    let mut camera_ids = Vec::new();
    for c in cameras {
        camera_ids.push(client.find_camera(&c).await?.id);
    }
    let types = types
        .iter()
        .map(|t| {
            pb::EventType::from_str_name(&format!("EVENT_TYPE_{}", t.to_uppercase())).map(|t| t as i32).ok_or_else(
                || anyhow!("{t:?} is not an event type (motion, detection, camera_offline, ids_alert, ...)"),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((camera_ids, types))
}

pub async fn run(server: Option<String>, format: Format, c: EventsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    let (cameras, types) = match c {
        EventsCommand::Watch { cameras, types } => (cameras, types),
        EventsCommand::List { cameras, types, last, limit, snapshots } => {
            let (camera_ids, types) = filters(&client, cameras, &types).await?;
            return list(&client, format, (camera_ids, types), last.as_deref(), limit, snapshots.as_deref()).await;
        }
    };
    let (camera_ids, types) = filters(&client, cameras, &types).await?;
    let request = pb::WatchEventsRequest { camera_ids, types, ..Default::default() };
    let reopen = || {
        let (mut events, request) = (client.events(), request.clone());
        async move { events.watch_events(request).await }
    };
    let mut stream = reopen().await?.into_inner();
    while let Some(msg) = crate::session::next_watched(&client, &mut stream, reopen).await? {
        let row = match msg.kind {
            Some(pb::watch_events_response::Kind::Event(e)) => row(&e),
            Some(pb::watch_events_response::Kind::Lagged(l)) => {
                eprintln!("warning: fell behind: {} events were dropped", l.dropped_events);
                continue;
            }
            _ => continue,
        };
        match format {
            Format::Json => output::print(format, &HEADER, vec![row]),
            Format::Table => crate::output::outln!("{}", row.join("  ")),
        }
    }
    Ok(())
}

/// `events list`: stored events, newest first, page after page up to `limit`; with `snapshots`,
/// each listed event's snapshot is written there.
async fn list(
    client: &opennvr_sdk::Client,
    format: Format,
    (camera_ids, types): (Vec<String>, Vec<i32>),
    last: Option<&str>,
    limit: usize,
    snapshots: Option<&std::path::Path>,
) -> Result<()> {
    if let Some(dir) = snapshots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut request = pb::ListEventsRequest {
        camera_ids,
        types,
        start_time: crate::cmd::recordings::since(last)?,
        page_size: limit.min(1000) as i32,
        ..Default::default()
    };
    let mut events = Vec::new();
    loop {
        let page = client.events().list_events(request.clone()).await?.into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() || events.len() >= limit {
            break;
        }
        request.page_token = page.next_page_token;
    }
    events.truncate(limit);
    let mut written = 0;
    if let Some(dir) = snapshots {
        for e in events.iter().filter(|e| e.has_snapshot) {
            let req = pb::GetEventSnapshotRequest { camera_id: e.camera_id.clone(), event_id: e.id.clone() };
            let shot = match client.events().get_event_snapshot(req).await {
                Ok(s) => s.into_inner(),
                // Not the caller's to see (detections need inference.read), or expired meanwhile.
                Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::PermissionDenied) => continue,
                Err(s) => return Err(s.into()),
            };
            std::fs::write(dir.join(format!("{}.jpg", e.id)), &shot.jpeg)?;
            let b = shot.r#box.unwrap_or_default();
            let meta = serde_json::json!({
                "event_id": e.id,
                "camera_id": e.camera_id,
                "time": output::time(shot.time.as_ref()),
                "label": shot.label,
                "score": shot.score,
                "box": { "x": b.x, "y": b.y, "width": b.width, "height": b.height },
            });
            std::fs::write(dir.join(format!("{}.json", e.id)), serde_json::to_vec_pretty(&meta)?)?;
            written += 1;
        }
    }
    output::print(format, &HEADER, events.iter().map(row).collect());
    if let Some(dir) = snapshots {
        eprintln!("{written} snapshots written to {}", dir.display());
    }
    Ok(())
}
