//! `cameras add|list|get|update|delete|status|live` and `grants list|set|revoke`.
use crate::output::{self, Format};
use crate::session;
use anyhow::{Result, anyhow};
use opennvr_sdk::pb;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TransportArg {
    Auto,
    Tcp,
    Udp,
}

impl From<TransportArg> for pb::RtspTransport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Auto => pb::RtspTransport::Auto,
            TransportArg::Tcp => pb::RtspTransport::Tcp,
            TransportArg::Udp => pb::RtspTransport::Udp,
        }
    }
}

/// Settings shared by `add` and `update`.
#[derive(Debug, clap::Args)]
pub struct Settings {
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long)]
    pub transport: Option<TransportArg>,
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Record continuously.
    #[arg(long)]
    pub record: Option<bool>,
    /// Segment length in seconds (10-3600).
    #[arg(long)]
    pub segment_secs: Option<i64>,
    /// Label as key=value; repeat for several (update replaces them all).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum CamerasCommand {
    /// Add a camera (the RTSP password is read from NVRCTL_PASSWORD, standard input, or a prompt
    /// when --username is given).
    Add {
        name: String,
        /// rtsp:// or rtsps:// URL, without credentials.
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "")]
        username: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// List the cameras you may see.
    List {
        /// Only cameras with this label (key=value); repeat for several.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Only enabled (true) or only disabled (false) cameras.
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// Show one camera.
    Get { camera: String },
    /// Change a camera's settings (only those given).
    Update {
        camera: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Delete a camera (its recordings stay under retention).
    Delete { camera: String },
    /// Live status of one camera, or of all you may see.
    Status { camera: Option<String> },
    /// How the media plane (MediaMTX) is doing: reachable, last sync, pending and failed changes.
    Media,
    /// Test an RTSP source: a saved camera (with its stored password), or --url (a password is read
    /// from NVRCTL_PASSWORD, standard input or a prompt when --username is given).
    Test {
        camera: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "")]
        username: String,
        /// Seconds to wait (5-30, default 10).
        #[arg(long)]
        timeout_secs: Option<i64>,
    },
    /// A short-lived live-view token and the URLs to use it on.
    Live {
        camera: String,
        /// Token lifetime in seconds (default 300, at most 3600).
        #[arg(long)]
        ttl_secs: Option<i64>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum GrantsCommand {
    /// List grants, optionally of one camera and/or one user (by id).
    List {
        #[arg(long)]
        camera: Option<String>,
        #[arg(long)]
        user_id: Option<String>,
    },
    /// Give a user permissions on a camera (replacing their grant there): camera.read, camera.live,
    /// camera.write, recording.read, recording.export.
    Set {
        camera: String,
        user_id: String,
        #[arg(required = true)]
        permissions: Vec<String>,
    },
    /// Remove a user's grant on a camera.
    Revoke { camera: String, user_id: String },
}

fn labels(pairs: &[String]) -> Result<std::collections::HashMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("label {p:?} is not key=value"))
        })
        .collect()
}

fn transport(t: i32) -> String {
    pb::RtspTransport::try_from(t)
        .map(|t| t.as_str_name().trim_start_matches("RTSP_TRANSPORT_").to_lowercase())
        .unwrap_or_default()
}

fn row(c: &pb::Camera) -> Vec<String> {
    vec![
        c.name.clone(),
        if c.enabled { "enabled" } else { "disabled" }.to_owned(),
        if c.recording_enabled { "recording" } else { "live only" }.to_owned(),
        c.source_url.clone(),
        transport(c.transport),
        c.id.clone(),
    ]
}

const HEADER: [&str; 6] = ["Name", "State", "Recording", "Source", "Transport", "Id"];

/// Applies `s` to `camera`, returning the update-mask paths it touched.
fn apply(s: &Settings, camera: &mut pb::Camera) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    if let Some(v) = &s.description {
        camera.description = v.clone();
        paths.push("description");
    }
    if let Some(v) = &s.location {
        camera.location = v.clone();
        paths.push("location");
    }
    if let Some(v) = s.transport {
        camera.transport = pb::RtspTransport::from(v) as i32;
        paths.push("transport");
    }
    if let Some(v) = s.enabled {
        camera.enabled = v;
        paths.push("enabled");
    }
    if let Some(v) = s.record {
        camera.recording_enabled = v;
        paths.push("recording_enabled");
    }
    if let Some(v) = s.segment_secs {
        camera.segment_duration = Some(prost_types::Duration { seconds: v, nanos: 0 });
        paths.push("segment_duration");
    }
    if !s.labels.is_empty() {
        camera.labels = labels(&s.labels)?;
        paths.push("labels");
    }
    Ok(paths.into_iter().map(str::to_owned).collect())
}

fn state(st: &pb::CameraStatus) -> String {
    pb::CameraState::try_from(st.state)
        .map(|s| s.as_str_name().trim_start_matches("CAMERA_STATE_").to_lowercase())
        .unwrap_or_default()
}

pub async fn run(server: Option<String>, format: Format, c: CamerasCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    match c {
        CamerasCommand::Add { name, url, username, settings } => {
            let password = if username.is_empty() {
                String::new()
            } else {
                crate::cmd::read_password(&format!("RTSP password of {username}: "))?
            };
            let mut camera = pb::Camera {
                name,
                source_url: url,
                username,
                enabled: true,
                recording_enabled: true,
                ..Default::default()
            };
            apply(&settings, &mut camera)?;
            let created =
                client.cameras().create_camera(pb::CreateCameraRequest { camera: Some(camera), password }).await?;
            output::print(format, &HEADER, created.into_inner().camera.iter().map(row).collect());
        }
        CamerasCommand::List { labels: wanted, enabled } => {
            let wanted = labels(&wanted)?;
            let cameras =
                client.all_cameras(pb::ListCamerasRequest { labels: wanted, enabled, ..Default::default() }).await?;
            output::print(format, &HEADER, cameras.iter().map(row).collect());
        }
        CamerasCommand::Get { camera } => {
            let c = client.find_camera(&camera).await?;
            output::print(format, &HEADER, vec![row(&c)]);
        }
        CamerasCommand::Update { camera, name, settings } => {
            let mut c = client.find_camera(&camera).await?;
            let mut paths = apply(&settings, &mut c)?;
            if let Some(n) = name {
                c.name = n;
                paths.push("name".into());
            }
            if paths.is_empty() {
                return Err(anyhow!("nothing to change: give at least one setting"));
            }
            let updated = client
                .cameras()
                .update_camera(pb::UpdateCameraRequest {
                    camera: Some(c),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await?;
            output::print(format, &HEADER, updated.into_inner().camera.iter().map(row).collect());
        }
        CamerasCommand::Delete { camera } => {
            let c = client.find_camera(&camera).await?;
            client
                .cameras()
                .delete_camera(pb::DeleteCameraRequest {
                    camera_id: c.id.clone(),
                    etag: c.etag,
                    delete_recordings: false,
                })
                .await?;
            crate::output::outln!("Deleted camera {} ({}); its recordings stay under retention.", c.name, c.id);
        }
        CamerasCommand::Status { camera } => {
            let ids = match camera {
                Some(which) => vec![client.find_camera(&which).await?.id],
                None => Vec::new(),
            };
            let statuses = client
                .all_camera_statuses(pb::ListCameraStatusesRequest { camera_ids: ids, ..Default::default() })
                .await?;
            let rows = statuses
                .iter()
                .map(|st| {
                    let video = st
                        .tracks
                        .iter()
                        .map(|t| {
                            if t.width > 0 { format!("{} {}x{}", t.codec, t.width, t.height) } else { t.codec.clone() }
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    vec![st.camera_id.clone(), state(st), video, st.reader_count.to_string(), st.last_error.clone()]
                })
                .collect();
            output::print(format, &["Camera", "State", "Tracks", "Readers", "Last error"], rows);
        }
        CamerasCommand::Media => {
            let st = client.cameras().get_media_plane_status(pb::GetMediaPlaneStatusRequest {}).await?.into_inner();
            let when = st
                .last_sync_time
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".into());
            let mut rows = vec![
                vec!["configured".into(), st.configured.to_string()],
                vec!["reachable".into(), st.reachable.to_string()],
                vec!["mediamtx".into(), format!("{} (started {})", st.mediamtx_version, st.mediamtx_started)],
                vec!["last sync".into(), when],
                vec!["pending changes".into(), st.pending_changes.to_string()],
                vec!["failed cameras".into(), st.failed_cameras.to_string()],
                vec!["config writes".into(), st.config_writes.to_string()],
                vec!["last error".into(), st.last_error],
            ];
            if !st.reason.is_empty() {
                rows.insert(1, vec!["reason".into(), st.reason]);
            }
            if let Some(m) = st.supervised {
                let pid = if m.pid > 0 { format!(", pid {}", m.pid) } else { String::new() };
                rows.push(vec!["supervised".into(), format!("{}{pid}, {} restart(s)", m.state, m.restarts)]);
                rows.push(vec!["binary".into(), m.binary]);
                rows.push(vec!["config file".into(), m.config_file]);
                if !m.last_exit.is_empty() {
                    rows.push(vec!["last exit".into(), m.last_exit]);
                }
            }
            output::print(format, &["Media plane", "Value"], rows);
        }
        CamerasCommand::Test { camera, url, username, timeout_secs } => {
            let camera_id = match camera {
                Some(which) => client.find_camera(&which).await?.id,
                None => String::new(),
            };
            if camera_id.is_empty() && url.is_none() {
                return Err(anyhow!("give a camera or --url"));
            }
            let password = if username.is_empty() {
                String::new()
            } else {
                crate::cmd::read_password(&format!("RTSP password of {username}: "))?
            };
            let r = client
                .cameras()
                .test_camera_connection(pb::TestCameraConnectionRequest {
                    source_url: url.unwrap_or_default(),
                    username,
                    password,
                    camera_id,
                    timeout: timeout_secs.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let result = pb::ConnectionTestResult::try_from(r.result)
                .map(|v| v.as_str_name().trim_start_matches("CONNECTION_TEST_RESULT_").to_lowercase())
                .unwrap_or_default();
            let tracks = r
                .tracks
                .iter()
                .map(|t| if t.width > 0 { format!("{} {}x{}", t.codec, t.width, t.height) } else { t.codec.clone() })
                .collect::<Vec<_>>()
                .join(", ");
            output::print(
                format,
                &["Result", "Reachable", "Tracks", "Detail"],
                vec![vec![result, r.reachable.to_string(), tracks, r.error_message]],
            );
        }
        CamerasCommand::Live { camera, ttl_secs } => {
            let c = client.find_camera(&camera).await?;
            let t = client
                .cameras()
                .create_viewer_token(pb::CreateViewerTokenRequest {
                    camera_id: c.id,
                    ttl: ttl_secs.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
                })
                .await?
                .into_inner();
            if t.whep_url.is_empty() && t.hls_url.is_empty() && t.rtsp_url.is_empty() {
                return Err(anyhow!(
                    "this server offers no live-view address: its administrator sets OPENNVR_MEDIAMTX_WHEP_URL and \
                     OPENNVR_MEDIAMTX_HLS_URL to the MediaMTX addresses viewers reach (or lets the server run MediaMTX)"
                ));
            }
            output::print(
                format,
                &["Token", "Expires", "WHEP", "HLS", "RTSP"],
                vec![vec![t.token, output::time(t.expire_time.as_ref()), t.whep_url, t.hls_url, t.rtsp_url]],
            );
        }
    }
    Ok(())
}

pub async fn grants(server: Option<String>, format: Format, c: GrantsCommand) -> Result<()> {
    let client = session::signed_in(server).await?;
    let grant_row = |g: &pb::CameraGrant| {
        vec![g.camera_id.clone(), g.user_id.clone(), g.permissions.join(","), output::time(g.expire_time.as_ref())]
    };
    const GRANT_HEADER: [&str; 4] = ["Camera", "User", "Permissions", "Expires"];
    match c {
        GrantsCommand::List { camera, user_id } => {
            let camera_id = match camera {
                Some(which) => client.find_camera(&which).await?.id,
                None => String::new(),
            };
            let grants = client
                .all_camera_grants(pb::ListCameraGrantsRequest {
                    camera_id,
                    user_id: user_id.unwrap_or_default(),
                    ..Default::default()
                })
                .await?;
            output::print(format, &GRANT_HEADER, grants.iter().map(grant_row).collect());
        }
        GrantsCommand::Set { camera, user_id, permissions } => {
            let c = client.find_camera(&camera).await?;
            let g = client
                .cameras()
                .grant_camera_access(pb::GrantCameraAccessRequest {
                    camera_id: c.id,
                    user_id,
                    permissions,
                    expire_time: None,
                })
                .await?
                .into_inner();
            output::print(format, &GRANT_HEADER, g.grant.iter().map(grant_row).collect());
        }
        GrantsCommand::Revoke { camera, user_id } => {
            let c = client.find_camera(&camera).await?;
            client.cameras().revoke_camera_access(pb::RevokeCameraAccessRequest { camera_id: c.id, user_id }).await?;
            crate::output::outln!("Revoked.");
        }
    }
    Ok(())
}
