//! `adapters add|list|remove|health` and `infer --image|--camera`: AI adapters (external model
//! services).
use crate::output::{self, Format};
use crate::session;
use anyhow::{Context, Result, anyhow};
use opennvr_sdk::pb;

#[derive(Debug, clap::Subcommand)]
pub enum AdaptersCommand {
    /// Register an adapter (its token, if any, is read from NVRCTL_ADAPTER_TOKEN).
    Add {
        /// The adapter's name.
        name: String,
        /// The adapter's base URL, e.g. http://127.0.0.1:8090.
        #[arg(long)]
        url: String,
        /// Per-call timeout in milliseconds [default: 5000].
        #[arg(long)]
        timeout_ms: Option<i64>,
        /// Calls in flight at most [default: 4].
        #[arg(long, default_value_t = 0)]
        concurrency: i32,
        /// Frames waiting at most (the oldest is dropped beyond) [default: 0, no queue].
        #[arg(long, default_value_t = 0)]
        queue: i32,
    },
    /// List adapters with their health.
    List,
    /// Remove an adapter (with --force, its bindings too).
    Remove {
        /// Name or id.
        adapter: String,
        /// Remove it with its bindings.
        #[arg(long)]
        force: bool,
    },
    /// Health, circuit and counters of every adapter.
    Health,
}

fn health(h: i32) -> String {
    pb::AdapterHealth::try_from(h)
        .map(|h| h.as_str_name().trim_start_matches("ADAPTER_HEALTH_").to_lowercase())
        .unwrap_or_default()
}

pub async fn run(server: Option<String>, format: Format, c: AdaptersCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        AdaptersCommand::Add { name, url, timeout_ms, concurrency, queue } => {
            let token = std::env::var("NVRCTL_ADAPTER_TOKEN").unwrap_or_default();
            let a = client
                .inference()
                .create_adapter(pb::CreateAdapterRequest {
                    adapter: Some(pb::Adapter {
                        name,
                        endpoint_url: url,
                        timeout: timeout_ms.map(|ms| prost_types::Duration {
                            seconds: ms / 1000,
                            nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
                        }),
                        max_concurrency: concurrency,
                        max_queue: queue,
                        enabled: true,
                        ..Default::default()
                    }),
                    token,
                })
                .await?
                .into_inner()
                .adapter
                .unwrap_or_default();
            output::print(format, &["Id", "Name", "URL"], vec![vec![a.id, a.name, a.endpoint_url]]);
        }
        AdaptersCommand::List => {
            let all = client.all_adapters(pb::ListAdaptersRequest::default()).await?;
            let rows = all
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.endpoint_url.clone(),
                        health(a.health),
                        a.capabilities.join(" "),
                        a.supported_labels.join(" "),
                        a.last_error.clone(),
                        a.id.clone(),
                    ]
                })
                .collect();
            output::print(format, &["Name", "URL", "Health", "Tasks", "Labels", "Last error", "Id"], rows);
        }
        AdaptersCommand::Remove { adapter, force } => {
            let a = client.find_adapter(&adapter).await?;
            client
                .inference()
                .delete_adapter(pb::DeleteAdapterRequest { adapter_id: a.id, etag: String::new(), force })
                .await?;
        }
        AdaptersCommand::Health => {
            let st = client.all_adapter_statuses(pb::ListAdapterStatusesRequest::default()).await?;
            let ms = |d: Option<&prost_types::Duration>| {
                d.map(|d| format!("{:.1}", d.seconds as f64 * 1000.0 + f64::from(d.nanos) / 1e6)).unwrap_or_default()
            };
            let rows = st
                .iter()
                .map(|s| {
                    vec![
                        s.adapter_id.clone(),
                        health(s.health),
                        pb::CircuitState::try_from(s.circuit_state)
                            .map(|c| c.as_str_name().trim_start_matches("CIRCUIT_STATE_").to_lowercase())
                            .unwrap_or_default(),
                        format!("{}/{}", s.in_flight, s.max_concurrency),
                        format!("{}/{}", s.queued, s.max_queue),
                        s.requests_total.to_string(),
                        s.failed_total.to_string(),
                        s.rejected_total.to_string(),
                        s.timeouts_total.to_string(),
                        ms(s.latency_p50.as_ref()),
                        s.last_error.clone(),
                    ]
                })
                .collect();
            output::print(
                format,
                &[
                    "Adapter",
                    "Health",
                    "Circuit",
                    "In flight",
                    "Queued",
                    "Calls",
                    "Failed",
                    "Shed",
                    "Timeouts",
                    "p50 ms",
                    "Last error",
                ],
                rows,
            );
        }
    }
    Ok(())
}

/// `infer --image FILE --adapter NAME` or `infer --camera NAME [--adapter NAME]`: runs one image,
/// or a camera's live frame, through an adapter (or every adapter bound to the camera).
pub async fn infer(
    server: Option<String>,
    format: Format,
    image: Option<std::path::PathBuf>,
    camera: Option<String>,
    adapter: Option<String>,
    task: String,
) -> Result<()> {
    let client = session::signed_in(server).await?;
    let adapter_id = match &adapter {
        Some(a) => client.find_adapter(a).await?.id,
        None => String::new(),
    };
    let req = match (image, camera) {
        (Some(image), None) => {
            if adapter_id.is_empty() {
                return Err(anyhow!("--image needs --adapter"));
            }
            let jpeg = std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
            pb::RunInferenceRequest { adapter_id, image_jpeg: jpeg, task, ..Default::default() }
        }
        (None, Some(camera)) => {
            let camera_id = client.find_camera(&camera).await?.id;
            pb::RunInferenceRequest { camera_id, adapter_id, task, ..Default::default() }
        }
        _ => return Err(anyhow!("give --image or --camera")),
    };
    let res = client.inference().run_inference(req).await?.into_inner();
    let names = crate::cmd::Names::load(&client, false).await;
    for run in res.runs.iter().filter(|r| !r.error.is_empty()) {
        eprintln!("error: adapter {}: {}", names.adapter(&run.adapter_id), run.error);
    }
    let rows = res
        .runs
        .iter()
        .flat_map(|r| r.detections.iter())
        .map(|d| crate::cmd::bindings::detection_row(d, &names))
        .collect();
    output::print(format, &crate::cmd::bindings::DETECTION_HEADER, rows);
    Ok(())
}
