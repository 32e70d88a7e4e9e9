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
    /// A description.
    #[arg(long)]
    pub description: Option<String>,
    /// Where the camera is (free text, e.g. "dock, north wall").
    #[arg(long)]
    pub location: Option<String>,
    /// RTSP transport.
    #[arg(long)]
    pub transport: Option<TransportArg>,
    /// Enabled (true) or disabled (false).
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
        /// The camera's name.
        name: String,
        /// rtsp:// or rtsps:// URL, without credentials.
        #[arg(long)]
        url: String,
        /// RTSP username (the password is asked for).
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
    Get {
        /// The camera (name or id).
        camera: String,
    },
    /// Change a camera's settings (only those given).
    Update {
        /// The camera (name or id).
        camera: String,
        /// The camera's name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Delete a camera (its recordings stay under retention).
    Delete {
        /// The camera (name or id).
        camera: String,
    },
    /// Live status of one camera, or of all you may see.
    Status {
        /// Only this camera (name or id) [default: all you may see].
        camera: Option<String>,
    },
    /// How the media plane (MediaMTX) is doing: reachable, last sync, pending and failed changes.
    Media,
    /// Test an RTSP source: a saved camera (with its stored password), or --url (a password is read
    /// from NVRCTL_PASSWORD, standard input or a prompt when --username is given).
    Test {
        /// The camera (name or id).
        camera: Option<String>,
        /// An rtsp:// or rtsps:// URL without credentials to test instead of a stored camera.
        #[arg(long)]
        url: Option<String>,
        /// RTSP username (the password is asked for).
        #[arg(long, default_value = "")]
        username: String,
        /// Seconds to wait (5-30, default 10).
        #[arg(long)]
        timeout_secs: Option<i64>,
    },
    /// A short-lived live-view token and the URLs to use it on.
    Live {
        /// The camera (name or id).
        camera: String,
        /// Token lifetime in seconds (default 300, at most 3600).
        #[arg(long)]
        ttl_secs: Option<i64>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum GrantsCommand {
    /// List grants, optionally of one camera and/or one user.
    List {
        /// Only this camera (name or id).
        #[arg(long)]
        camera: Option<String>,
        /// Only this user (username or id).
        #[arg(long, alias = "user-id")]
        user: Option<String>,
    },
    /// Give a user permissions on a camera (replacing their grant there): camera.read, camera.live,
    /// camera.write, recording.read, recording.export.
    Set {
        /// The camera (name or id).
        camera: String,
        /// The user (username or id).
        user: String,
        /// The permissions granted.
        #[arg(required = true)]
        permissions: Vec<String>,
    },
    /// Remove a user's grant on a camera.
    Revoke {
        /// The camera (name or id).
        camera: String,
        /// The user (username or id).
        user: String,
    },
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

/// A stored enum value's short name: `RECORDING_MODE_EVENTS` → `events`.
fn short_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}

/// Every field of a camera, as `cameras get` shows it.
fn fields(c: &pb::Camera) -> Vec<(&'static str, output::Cell)> {
    use output::Cell;
    let secs = |d: &Option<prost_types::Duration>| d.as_ref().map_or(Cell::None, |d| Cell::Secs(d.seconds));
    let mut labels: Vec<(String, String)> = c.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    labels.sort();
    let mode = pb::RecordingMode::try_from(c.recording_mode)
        .map(|m| short_name(m.as_str_name(), "RECORDING_MODE_"))
        .unwrap_or_default();
    let event_types: Vec<String> = c
        .recording_event_types
        .iter()
        .filter_map(|t| pb::EventType::try_from(*t).ok())
        .map(|t| short_name(t.as_str_name(), "EVENT_TYPE_"))
        .collect();
    let motion = c.motion.as_ref().map(|m| {
        format!(
            "every {}, threshold {}, min area {:.1} %, {} start frame(s), quiet {}, {} mask(s)",
            output::duration(m.frame_interval.as_ref().map_or(0, |d| d.seconds)),
            m.pixel_threshold,
            m.min_area * 100.0,
            m.start_frames,
            output::duration(m.end_quiet.as_ref().map_or(0, |d| d.seconds)),
            m.masks.len()
        )
    });
    vec![
        ("Name", c.name.clone().into()),
        ("Id", c.id.clone().into()),
        ("Description", c.description.clone().into()),
        ("Location", c.location.clone().into()),
        ("Labels", Cell::Map(labels)),
        ("Source", c.source_url.clone().into()),
        ("Username", c.username.clone().into()),
        ("Password set", c.has_password.into()),
        ("Transport", transport(c.transport).into()),
        ("Addresses", c.ip_addresses.clone().into()),
        ("Enabled", c.enabled.into()),
        ("Recording", c.recording_enabled.into()),
        ("Recording mode", mode.into()),
        ("Segment length", secs(&c.segment_duration)),
        ("Event pre-roll", secs(&c.event_pre_roll)),
        ("Event post-roll", secs(&c.event_post_roll)),
        ("Event types kept", event_types.into()),
        ("Motion", motion.into()),
        ("MediaMTX path", c.path_name.clone().into()),
        ("Latest footage", output::time(c.latest_footage_end_time.as_ref()).into()),
        ("Created", output::time(c.create_time.as_ref()).into()),
        ("Updated", output::time(c.update_time.as_ref()).into()),
        ("Etag", c.etag.clone().into()),
    ]
}

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
            output::print_fields(format, "Camera", fields(&c));
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
            let names = crate::cmd::Names::load(&client, false).await;
            let rows = statuses
                .iter()
                .map(|st| {
                    let video = st
                        .tracks
                        .iter()
                        .map(|t| {
                            if t.width > 0 { format!("{} {}x{}", t.codec, t.width, t.height) } else { t.codec.clone() }
                        })
                        .collect::<Vec<_>>();
                    vec![
                        names.camera(&st.camera_id).into(),
                        state(st).into(),
                        video.into(),
                        st.reader_count.into(),
                        st.last_error.clone().into(),
                        st.camera_id.clone().into(),
                    ]
                })
                .collect::<Vec<Vec<output::Cell>>>();
            output::print(format, &["Camera", "State", "Tracks", "Readers", "Last error", "Id"], rows);
        }
        CamerasCommand::Media => {
            let st = client.cameras().get_media_plane_status(pb::GetMediaPlaneStatusRequest {}).await?.into_inner();
            let when = st
                .last_sync_time
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".into());
            use output::Cell;
            let mut rows: Vec<(&str, Cell)> = vec![
                ("Configured", st.configured.into()),
                ("Reachable", st.reachable.into()),
                ("MediaMTX version", st.mediamtx_version.into()),
                ("MediaMTX started", st.mediamtx_started.into()),
                ("Last sync", when.into()),
                ("Pending changes", st.pending_changes.into()),
                ("Failed cameras", st.failed_cameras.into()),
                ("Config writes", st.config_writes.into()),
                ("Last error", st.last_error.into()),
            ];
            if !st.reason.is_empty() {
                rows.insert(1, ("Reason", st.reason.into()));
            }
            if let Some(m) = st.supervised {
                rows.extend([
                    ("Supervised", m.state.into()),
                    ("Pid", (m.pid > 0).then_some(m.pid).into()),
                    ("Restarts", m.restarts.into()),
                    ("Last exit", m.last_exit.into()),
                    ("Binary", m.binary.into()),
                    ("Config file", m.config_file.into()),
                ]);
            }
            output::print_fields(format, "Media plane", rows);
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
    let names = crate::cmd::Names::load(&client, true).await;
    let grant_row = |g: &pb::CameraGrant| -> Vec<output::Cell> {
        vec![
            names.camera(&g.camera_id).into(),
            names.user(&g.user_id).into(),
            g.permissions.clone().into(),
            output::time(g.expire_time.as_ref()).into(),
            g.camera_id.clone().into(),
            g.user_id.clone().into(),
        ]
    };
    const GRANT_HEADER: [&str; 6] = ["Camera", "User", "Permissions", "Expires", "Camera id", "User id"];
    match c {
        GrantsCommand::List { camera, user } => {
            let camera_id = match camera {
                Some(which) => client.find_camera(&which).await?.id,
                None => String::new(),
            };
            let user_id = match user {
                Some(which) => client.find_user(&which).await?.id,
                None => String::new(),
            };
            let grants = client
                .all_camera_grants(pb::ListCameraGrantsRequest { camera_id, user_id, ..Default::default() })
                .await?;
            output::print(format, &GRANT_HEADER, grants.iter().map(grant_row).collect());
        }
        GrantsCommand::Set { camera, user, permissions } => {
            let c = client.find_camera(&camera).await?;
            let user_id = client.find_user(&user).await?.id;
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
        GrantsCommand::Revoke { camera, user } => {
            let c = client.find_camera(&camera).await?;
            let user_id = client.find_user(&user).await?.id;
            client.cameras().revoke_camera_access(pb::RevokeCameraAccessRequest { camera_id: c.id, user_id }).await?;
            crate::output::outln!("Revoked.");
        }
    }
    Ok(())
}
