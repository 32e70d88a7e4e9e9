//! `events watch`: the site's events as they happen (camera state, recording, detections, IDS
//! alerts, adapter health), for the cameras you may see.
use crate::output::{self, Format};
use crate::session;
use anyhow::{Result, anyhow};
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
        _ => String::new(),
    }
}

fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}

pub async fn run(server: Option<String>, format: Format, c: EventsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    let EventsCommand::Watch { cameras, types } = c;
    let mut camera_ids = Vec::new();
    for c in cameras {
        camera_ids.push(client.find_camera(&c).await?.id);
    }
    let types = types
        .iter()
        .map(|t| {
            pb::EventType::from_str_name(&format!("EVENT_TYPE_{}", t.to_uppercase()))
                .map(|t| t as i32)
                .ok_or_else(|| anyhow!("{t:?} is not an event type (detection, camera_offline, ids_alert, ...)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let request = pb::WatchEventsRequest { camera_ids, types, ..Default::default() };
    let reopen = || {
        let (mut events, request) = (client.events(), request.clone());
        async move { events.watch_events(request).await }
    };
    let mut stream = reopen().await?.into_inner();
    while let Some(msg) = crate::session::next_watched(&client, &mut stream, reopen).await? {
        let row = match msg.kind {
            Some(pb::watch_events_response::Kind::Event(e)) => vec![
                output::time(e.time.as_ref()),
                pb::EventType::try_from(e.r#type).map(|t| short(t.as_str_name(), "EVENT_TYPE_")).unwrap_or_default(),
                pb::EventSeverity::try_from(e.severity)
                    .map(|s| short(s.as_str_name(), "EVENT_SEVERITY_"))
                    .unwrap_or_default(),
                e.camera_id.clone(),
                details(&e),
            ],
            Some(pb::watch_events_response::Kind::Lagged(l)) => {
                eprintln!("nvrctl: fell behind: {} events were dropped", l.dropped_events);
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
