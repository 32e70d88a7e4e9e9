//! `alerts list`: network intrusion alerts (Suricata) of the cameras you may see and the network.
use crate::output::{self, Format};
use crate::session;
use anyhow::Result;
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first.
    List {
        /// Only alerts about this camera (name or id).
        #[arg(long)]
        camera: Option<String>,
        /// The last span of time, e.g. 90m, 24h, 7d.
        #[arg(long)]
        last: Option<String>,
        /// Only alerts at least this severe (1 = highest).
        #[arg(long)]
        max_severity: Option<i32>,
        /// Only alerts from this address.
        #[arg(long)]
        src_ip: Option<String>,
        /// Only alerts to this address.
        #[arg(long)]
        dest_ip: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub async fn run(server: Option<String>, format: Format, c: AlertsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    let AlertsCommand::List { camera, last, max_severity, src_ip, dest_ip, limit } = c;
    let camera_id = match camera {
        Some(c) => client.find_camera(&c).await?.id,
        None => String::new(),
    };
    let start_time = crate::cmd::recordings::since(last.as_deref())?;
    let alerts = client
        .first_ids_alerts(
            pb::ListIdsAlertsRequest {
                start_time,
                max_severity: max_severity.unwrap_or(0),
                src_ip: src_ip.unwrap_or_default(),
                dest_ip: dest_ip.unwrap_or_default(),
                camera_id,
                ..Default::default()
            },
            limit,
        )
        .await?;
    let rows = alerts
        .iter()
        .map(|a| {
            vec![
                output::time(a.time.as_ref()),
                a.severity.to_string(),
                a.signature.clone(),
                a.category.clone(),
                format!("{}:{}", a.src_ip, a.src_port),
                format!("{}:{}", a.dest_ip, a.dest_port),
                a.proto.clone(),
                a.camera_ids.join(" "),
                a.id.clone(),
            ]
        })
        .collect();
    output::print(
        format,
        &["Time", "Severity", "Signature", "Category", "Source", "Destination", "Proto", "Cameras", "Id"],
        rows,
    );
    Ok(())
}
