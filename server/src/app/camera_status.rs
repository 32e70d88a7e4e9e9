//! A camera's live side as camera use cases: its status as MediaMTX reports it, the connection test
//! before saving, viewer tokens for live view, and ending viewer sessions whose rights are gone.
use super::authorizer::{authorize, held_on, visible};
use super::cameras::{CameraApp, CameraStatusView, ConnectionTest, SyncKind};
use super::{Call, PageRequest, Principal, parse_id};
use crate::domain::Permission;
use crate::domain::camera::{self, SourceUrl, Transport};
use crate::error::{Error, ErrorKind, Result};
use crate::store::cameras::CameraRow;
use crate::store::users::UserRow;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Default and bounds of a connection test's timeout: above the 4 s some cameras (and MediaMTX)
/// wait before refusing credentials.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const PROBE_TIMEOUT_MIN: std::time::Duration = std::time::Duration::from_secs(5);
const PROBE_TIMEOUT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

impl CameraApp {
    /// The live status of one camera the caller may read.
    pub async fn status(&self, call: &Call, id: &str) -> Result<CameraStatusView> {
        let row = self.get(call, id).await?;
        self.statuses_of(vec![row]).await.into_iter().next().ok_or_else(|| Error::internal("no status computed"))
    }

    /// The live status of the cameras the caller may read (those of `ids` only, if given).
    pub async fn statuses(
        &self,
        call: &Call,
        ids: &[String],
        page: PageRequest,
    ) -> Result<(Vec<CameraStatusView>, String)> {
        if ids.is_empty() {
            let (rows, next) = self.list(call, BTreeMap::new(), None, page).await?;
            return Ok((self.statuses_of(rows.into_iter().map(|(r, _)| r).collect()).await, next));
        }
        let ids = super::parse_ids("camera_ids", ids)?;
        let visible = visible(call.principal()?, self.clock.now());
        let wanted = ids.clone();
        let rows = self.store.run(move |c| CameraRow::with_ids(c, visible, &wanted)).await?;
        // A camera that does not exist and one the caller may not see answer alike.
        if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|r| r.id == **id)) {
            return Err(Error::new(ErrorKind::NotFound, format!("camera {missing} not found")));
        }
        Ok((self.statuses_of(rows).await, String::new()))
    }

    async fn statuses_of(&self, rows: Vec<CameraRow>) -> Vec<CameraStatusView> {
        let now = self.clock.now();
        let sync = self.media.state();
        let (runtimes, media_error) = match self.media.recent_runtimes().await {
            Ok(Some(paths)) => (paths, None),
            Ok(None) => (Vec::new(), Some("no media server is configured (OPENNVR_MEDIAMTX_API_URL)".to_owned())),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        rows.into_iter()
            .map(|row| {
                let path = camera::path_name(row.id);
                let runtime = runtimes.iter().find(|p| p.name == path).cloned();
                let failed = sync.failed.get(&path).or_else(|| sync.failed.get(&row.id.to_string())).cloned();
                let not_applied = row.enabled && (media_error.is_some() || failed.is_some());
                let available = runtime.as_ref().is_some_and(|r| r.available);
                let kind = match (&failed, row.enabled) {
                    (Some(_), true) => SyncKind::Failed,
                    _ if !row.enabled => SyncKind::InSync,
                    _ if !sync.reachable || (runtime.is_none() && media_error.is_none()) => SyncKind::Pending,
                    _ => SyncKind::InSync,
                };
                CameraStatusView {
                    camera_id: row.id,
                    state: camera::camera_state(row.enabled, not_applied, available, self.media.seen_online(&path)),
                    recording: row.enabled && row.recording_enabled && available,
                    bitrate_bps: self.media.bitrate(&path),
                    runtime,
                    sync: if media_error.is_some() && row.enabled { SyncKind::Failed } else { kind },
                    last_error: if row.enabled { failed.or_else(|| media_error.clone()) } else { None },
                    observed: now,
                }
            })
            .collect()
    }

    /// The addresses `source`'s host resolves to, all inside the camera networks (resolved once:
    /// connections then go to these addresses). `field` names the URL in errors.
    pub async fn checked_addresses(
        &self,
        field: &'static str,
        source: &SourceUrl,
    ) -> Result<Vec<std::net::SocketAddr>> {
        let (host, port) = source.endpoint();
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let addrs: Vec<std::net::SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| Error::invalid(field, format!("{field}: the host {host} cannot be resolved: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Error::invalid(field, format!("{field}: the host {host} has no address")));
        }
        if let Some(outside) = addrs.iter().find(|a| !self.networks.contains(a.ip())) {
            return Err(Error::invalid(
                field,
                format!("{field}: {host} is {}, outside the camera networks (OPENNVR_CAMERA_NETWORKS)", outside.ip()),
            ));
        }
        Ok(addrs)
    }

    /// Probes an RTSP source (a saved camera's, or one given) without saving anything.
    pub async fn test_connection(&self, call: &Call, t: ConnectionTest) -> Result<crate::media::probe::ProbeReport> {
        let timeout = t.timeout.unwrap_or(PROBE_TIMEOUT);
        if !(PROBE_TIMEOUT_MIN..=PROBE_TIMEOUT_MAX).contains(&timeout) {
            return Err(Error::invalid("timeout", "timeout must be between 5 s and 30 s"));
        }
        let (mut url, mut username, mut password) = (t.source_url.clone(), t.username.clone(), t.password.clone());
        if !t.camera_id.is_empty() {
            let id = parse_id("camera_id", &t.camera_id)?;
            call.about("camera", &id.to_string(), &id.to_string());
            let (p, now) = (call.principal()?.clone(), self.clock.now());
            let row = self.store.run(move |c| authorize(c, &p, id, Permission::CameraWrite, now, false)).await?;
            if url.is_empty() {
                url = row.source_url.clone();
            }
            if username.is_empty() {
                username = row.username.clone();
            }
            if password.is_empty() {
                // The stored password only ever goes to the camera's own host and port.
                let same = SourceUrl::parse("source_url", &url)?.endpoint()
                    == SourceUrl::parse("source_url", &row.source_url)?.endpoint();
                if same {
                    password = self.password(&row)?.unwrap_or_default();
                }
            }
        }
        let source = SourceUrl::parse("source_url", &url)?;
        camera::validate_password("password", &password)?;
        let addrs = self.checked_addresses("source_url", &source).await?;
        let mut target_url =
            url::Url::parse(source.as_str()).map_err(|e| Error::invalid("source_url", e.to_string()))?;
        let address = addrs[0];
        target_url
            .set_ip_host(address.ip())
            .map_err(|_| Error::invalid("source_url", "source_url cannot carry an address"))?;
        let target = crate::media::probe::ProbeTarget {
            tls: target_url.scheme() == "rtsps",
            url: target_url,
            address,
            username,
            password,
            udp: t.transport == Some(Transport::Udp),
        };
        Ok(crate::media::probe::probe(target, timeout).await)
    }

    /// A live-view ticket for one camera: needs camera.live on it, and the camera enabled.
    pub async fn live(&self, call: &Call, id: &str, ttl: Option<(i64, i32)>) -> Result<crate::media::LiveTicket> {
        let id = parse_id("camera_id", id)?;
        call.about("camera", &id.to_string(), &id.to_string());
        let ttl = crate::media::requested_ttl(ttl)?;
        let (p, now) = (call.principal()?.clone(), self.clock.now());
        let user = p.user_id;
        let row = self.store.run(move |c| authorize(c, &p, id, Permission::CameraLive, now, false)).await?;
        if !row.enabled {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("camera {id} is disabled: nothing to watch"),
            ));
        }
        self.live.ticket(&camera::path_name(id), &user.to_string(), ttl)
    }

    /// Of the viewer sessions MediaMTX holds on OpenNVR's paths, those whose user may no longer watch
    /// that camera (grant revoked, expired or narrowed; user disabled, demoted or deleted; camera gone),
    /// each with the reason. A session without a user cannot be judged and is left alone (MediaMTX
    /// versions before the JWT's `sub` was reported).
    pub async fn unwanted_viewers(
        &self,
        sessions: Vec<crate::media::mediamtx::ViewerSession>,
    ) -> Result<Vec<(crate::media::mediamtx::ViewerSession, Uuid, &'static str)>> {
        let now = self.clock.now();
        let judged: Vec<_> = sessions
            .into_iter()
            .filter(|s| !s.user.is_empty() && s.user != crate::media::SERVER_READER)
            .filter_map(|s| {
                let camera = s.path.strip_prefix(camera::PATH_PREFIX).and_then(|id| Uuid::parse_str(id).ok())?;
                Some((s, camera))
            })
            .collect();
        if judged.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .run(move |c| {
                let mut users: std::collections::HashMap<String, Option<Principal>> = Default::default();
                let mut unwanted = Vec::new();
                for (s, camera) in judged {
                    if !users.contains_key(&s.user) {
                        let found = match Uuid::parse_str(&s.user) {
                            Ok(id) => UserRow::find(c, id)?,
                            Err(_) => None,
                        };
                        let principal = found.filter(|u| !u.disabled).map(|u| Principal {
                            user_id: u.id,
                            session_id: Uuid::nil(),
                            role: u.role,
                            username: u.username,
                            api_key: None,
                            enrolment_only: false,
                        });
                        users.insert(s.user.clone(), principal);
                    }
                    let reason = match users.get(&s.user).cloned().flatten() {
                        None => "the user is disabled or no longer exists",
                        Some(p) => match CameraRow::find(c, camera)? {
                            Some(row) if !row.enabled => "the camera is disabled",
                            None => "the camera no longer exists",
                            Some(_) if !held_on(c, &p, camera, now)?.contains(&Permission::CameraLive) => {
                                "the user may no longer watch this camera"
                            }
                            Some(_) => continue,
                        },
                    };
                    unwanted.push((s, camera, reason));
                }
                Ok(unwanted)
            })
            .await
    }

    /// Records that the server ended a viewer's session on `camera`.
    pub async fn viewer_ended(
        &self,
        session: &crate::media::mediamtx::ViewerSession,
        camera: Uuid,
        reason: &str,
    ) -> Result<()> {
        let record = crate::domain::AuditRecord::system("viewer_session.end", "viewer_session", &session.id)
            .detail("user_id", session.user.clone())
            .detail("protocol", session.collection)
            .detail("reason", reason);
        let record = crate::domain::AuditRecord { camera_id: camera.to_string(), ..record };
        let now = self.clock.now();
        crate::audit::commit(&self.store, now, move |_| Ok(((), vec![record]))).await
    }
}
