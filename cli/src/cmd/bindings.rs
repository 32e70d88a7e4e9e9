//! `bindings add|list|remove` (a camera's frames routed to an AI adapter) and `detections list`
//! (what the adapters found).
use crate::output::{self, Format};
use crate::session;
use anyhow::{Result, anyhow, bail};
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum BindingsCommand {
    /// Route a camera's frames to an adapter.
    Add {
        /// The camera (name or id).
        camera: String,
        /// The adapter (name or id).
        adapter: String,
        /// Milliseconds between two frames (200 = 5 frames a second) [default: 1000].
        #[arg(long)]
        interval_ms: Option<i64>,
        /// The adapter task [default: its first].
        #[arg(long, default_value = "")]
        task: String,
        /// Keep only this label (repeatable) [default: all].
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Keep only detections at least this confident (0..1).
        #[arg(long, default_value_t = 0.0)]
        min_confidence: f32,
        /// A region of interest as "x,y x,y x,y ..." in fractions of the frame (repeatable);
        /// detections centred outside every region are dropped [default: the whole frame].
        #[arg(long = "region")]
        regions: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List bindings, optionally of one camera or adapter.
    List {
        /// Only this camera (name or id).
        #[arg(long)]
        camera: Option<String>,
        /// Only this adapter (name or id).
        #[arg(long)]
        adapter: Option<String>,
    },
    /// Remove a binding (by id); its detections are kept.
    Remove {
        /// The binding (its id, from `bindings list`).
        binding: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum DetectionsCommand {
    /// List stored detections, newest first.
    List {
        /// Only this camera (name or id; repeatable).
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// Only this label (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The last span of time, e.g. 90m, 24h, 7d.
        #[arg(long)]
        last: Option<String>,
        /// Only detections at least this confident (0..1).
        #[arg(long, default_value_t = 0.0)]
        min_confidence: f32,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// A region as `x,y x,y x,y`.
fn region(text: &str) -> Result<pb::Polygon> {
    let points = text
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').ok_or_else(|| anyhow!("{p:?} is not a point x,y"))?;
            Ok(pb::NormalizedPoint { x: x.parse()?, y: y.parse()? })
        })
        .collect::<Result<Vec<_>>>()?;
    if points.len() < 3 {
        bail!("a region needs at least 3 points: {text:?}");
    }
    Ok(pb::Polygon { points })
}

fn ms(d: Option<&prost_types::Duration>) -> String {
    d.map(|d| (d.seconds * 1000 + i64::from(d.nanos / 1_000_000)).to_string()).unwrap_or_default()
}

pub async fn bindings(server: Option<String>, format: Format, c: BindingsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        BindingsCommand::Add { camera, adapter, interval_ms, task, labels, min_confidence, regions, disabled } => {
            let cam = client.find_camera(&camera).await?;
            let a = client.find_adapter(&adapter).await?;
            let b = client
                .inference()
                .create_adapter_binding(pb::CreateAdapterBindingRequest {
                    binding: Some(pb::AdapterBinding {
                        camera_id: cam.id,
                        adapter_id: a.id,
                        frame_interval: interval_ms.map(|ms| prost_types::Duration {
                            seconds: ms / 1000,
                            nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
                        }),
                        regions: regions.iter().map(|r| region(r)).collect::<Result<_>>()?,
                        min_confidence,
                        labels,
                        enabled: !disabled,
                        task,
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .binding
                .unwrap_or_default();
            output::print(
                format,
                &["Id", "Camera", "Adapter", "Interval ms"],
                vec![vec![b.id, cam.name, a.name, ms(b.frame_interval.as_ref())]],
            );
        }
        BindingsCommand::List { camera, adapter } => {
            let camera_id = match camera {
                Some(c) => client.find_camera(&c).await?.id,
                None => String::new(),
            };
            let adapter_id = match adapter {
                Some(a) => client.find_adapter(&a).await?.id,
                None => String::new(),
            };
            let all = client
                .all_adapter_bindings(pb::ListAdapterBindingsRequest { camera_id, adapter_id, ..Default::default() })
                .await?;
            let names = crate::cmd::Names::load(&client, false).await;
            let rows = all
                .iter()
                .map(|b| {
                    vec![
                        names.camera(&b.camera_id),
                        names.adapter(&b.adapter_id),
                        b.task.clone(),
                        ms(b.frame_interval.as_ref()),
                        b.labels.join(" "),
                        format!("{:.2}", b.min_confidence),
                        b.regions.len().to_string(),
                        b.enabled.to_string(),
                        b.id.clone(),
                    ]
                })
                .collect();
            output::print(
                format,
                &["Camera", "Adapter", "Task", "Interval ms", "Labels", "Min confidence", "Regions", "Enabled", "Id"],
                rows,
            );
        }
        BindingsCommand::Remove { binding } => {
            client
                .inference()
                .delete_adapter_binding(pb::DeleteAdapterBindingRequest { binding_id: binding, etag: String::new() })
                .await?;
        }
    }
    Ok(())
}

/// A detection as a row of `DETECTION_HEADER`, cameras and adapters by name.
pub fn detection_row(d: &pb::Detection, names: &crate::cmd::Names) -> Vec<String> {
    let b = d.bounding_box.unwrap_or_default();
    vec![
        output::time(d.frame_time.as_ref()),
        names.camera(&d.camera_id),
        d.label.clone(),
        format!("{:.2}", d.confidence),
        format!("{:.3},{:.3} {:.3}x{:.3}", b.x, b.y, b.width, b.height),
        names.adapter(&d.adapter_id),
    ]
}

pub const DETECTION_HEADER: [&str; 6] = ["Frame time", "Camera", "Label", "Confidence", "Box (x,y wxh)", "Adapter"];

pub async fn detections(server: Option<String>, format: Format, c: DetectionsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    let DetectionsCommand::List { cameras, labels, last, min_confidence, limit } = c;
    let mut camera_ids = Vec::new();
    for c in cameras {
        camera_ids.push(client.find_camera(&c).await?.id);
    }
    let start_time = crate::cmd::recordings::since(last.as_deref())?;
    let detections = client
        .first_detections(
            pb::ListDetectionsRequest { camera_ids, labels, min_confidence, start_time, ..Default::default() },
            limit,
        )
        .await?;
    let names = crate::cmd::Names::load(&client, false).await;
    output::print(format, &DETECTION_HEADER, detections.iter().map(|d| detection_row(d, &names)).collect());
    Ok(())
}
