//! The media plane against the MediaMTX emulator: a camera change reaches MediaMTX as the right kind
//! of write (and only then), foreign paths are left alone, a MediaMTX restart or outage is survived
//! and converged from, and every call MediaMTX gets carries a token it verifies against our JWKS.
use crate::cameras::{create, grant};
use crate::harness::{TestDb, TestServer, test_options};
use mediamtx_emulator::{AuthConfig, Emulator, Protocol};
use opennvr_sdk::pb;
use serde_json::json;
use std::time::Duration;

/// A server driving a fresh emulator that verifies its API tokens (issuer and audience included),
/// converging every second besides changes and restarts.
pub async fn with_mediamtx() -> (TestServer, Emulator) {
    with_mediamtx_syncing(1).await
}

/// The same, converging periodically every `sync_secs`.
pub async fn with_mediamtx_syncing(sync_secs: u64) -> (TestServer, Emulator) {
    let emu = strict_emulator().await;
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.mediamtx_api_url = Some(emu.url());
    options.mediamtx_sync_secs = Some(sync_secs);
    // Loopback too, so that a source can be given by a name that resolves (localhost).
    options.camera_networks = Some("10.0.0.0/8,127.0.0.0/8".into());
    // Hooks on, as in a deployment (the hook client's secret).
    let secret_file = options.data_dir.clone().unwrap().join("hook.secret");
    std::fs::write(&secret_file, crate::recordings::HOOK_SECRET).unwrap();
    options.hook_secret_file = Some(secret_file);
    let s = TestServer::start_with(db, options).await;
    emu.set_jwks_url(&format!("{}/.well-known/jwks.json", s.url()));
    (s, emu)
}

/// An emulator verifying API tokens as the deployment's MediaMTX does (issuer and audience included);
/// nothing verifies until it is pointed at the server's JWKS with `set_jwks_url`.
pub async fn strict_emulator() -> Emulator {
    Emulator::start(AuthConfig {
        jwks_url: Some("http://127.0.0.1:9/none".into()),
        issuer: Some("opennvr".into()),
        audience: Some("mediamtx".into()),
    })
    .await
    .unwrap()
}

/// Waits (up to 15 s) for `f` to hold.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..150 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// `/readyz` (with its details, for `scraper`) once it says `needle` (or after 10 s).
async fn readiness_saying(s: &TestServer, scraper: &opennvr_sdk::Client, needle: &str) -> String {
    let mut said = String::new();
    for _ in 0..100 {
        said = s.scrape("/readyz", scraper).await;
        if said.contains(needle) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    said
}

pub fn path_of(cam: &pb::Camera) -> String {
    cam.path_name.clone()
}

async fn update(admin: &opennvr_sdk::Client, cam: &pb::Camera, change: pb::Camera, paths: &[&str]) -> pb::Camera {
    admin
        .cameras()
        .update_camera(pb::UpdateCameraRequest {
            camera: Some(pb::Camera { id: cam.id.clone(), etag: String::new(), ..change }),
            update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
        })
        .await
        .unwrap()
        .into_inner()
        .camera
        .unwrap()
}

/// The writes the emulator accepted for `path` since the last clear, as (op, keys sent).
fn writes_to(emu: &Emulator, path: &str) -> Vec<(String, Vec<String>)> {
    emu.writes().into_iter().filter(|w| w.name == path).map(|w| (w.op, w.body.keys().cloned().collect())).collect()
}

/// A server with MediaMTX (the emulator) holding a hand-made path of its own, and camera "Dock"
/// created and applied.
struct Dock {
    _s: TestServer,
    emu: Emulator,
    admin: opennvr_sdk::Client,
    cam: pb::Camera,
    path: String,
}

impl Dock {
    async fn start() -> Dock {
        let (s, emu) = with_mediamtx().await;
        let admin = s.admin().await;
        emu.add_foreign_path(
            "lobby-by-hand",
            serde_json::Map::from_iter([("source".to_owned(), json!("rtsp://10.0.0.9/x"))]),
        );
        let cam = create(&admin, "Dock").await;
        let path = path_of(&cam);
        eventually("the camera's path in MediaMTX", || emu.path(&path).is_some()).await;
        Dock { _s: s, emu, admin, cam, path }
    }

    /// Changes the fields named in `paths` and returns the writes MediaMTX then received for the path.
    async fn change(&mut self, change: pb::Camera, paths: &[&str]) -> Vec<(String, Vec<String>)> {
        self.emu.clear_writes();
        self.cam = update(&self.admin, &self.cam, change, paths).await;
        eventually("a write", || !writes_to(&self.emu, &self.path).is_empty()).await;
        writes_to(&self.emu, &self.path)
    }
}

#[tokio::test]
async fn a_new_camera_reaches_mediamtx_with_its_credentials_only_in_the_source_and_retention_left_to_opennvr() {
    let d = Dock::start().await;
    let conf = d.emu.path(&d.path).unwrap();
    let mut keys: Vec<&str> = conf.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "record",
            "recordDeleteAfter",
            "recordFormat",
            "recordPath",
            "recordSegmentDuration",
            "rtspTransport",
            "runOnAvailable",
            "runOnRecordSegmentComplete",
            "runOnRecordSegmentCreate",
            "runOnUnavailable",
            "source",
            "sourceOnDemand",
        ]
    );
    // Credentials only in the source URL, percent-encoded; the file names carry their UTC offset;
    // MediaMTX never deletes recordings (OpenNVR owns retention).
    assert_eq!(conf["source"], json!("rtsp://viewer:Cam-Secret-7f3a9@10.20.30.40:554/stream1"));
    assert_eq!(conf["record"], json!(true));
    assert_eq!(conf["recordFormat"], json!("fmp4"));
    assert_eq!(conf["recordDeleteAfter"], json!("0s"));
    assert_eq!(conf["recordSegmentDuration"], json!("60s"));
    let record_path = conf["recordPath"].as_str().unwrap();
    for part in ["%path", "%f", "%z"] {
        assert!(record_path.contains(part), "{record_path}");
    }
    assert!(conf.iter().filter(|(k, _)| k.starts_with("runOn")).all(|(_, v)| !v.as_str().unwrap().contains("Secret")));
    // Every call carried a token MediaMTX verified against the server's JWKS.
    assert!(d.emu.requests() > 0);
}

#[tokio::test]
async fn without_a_hook_secret_mediamtx_is_given_no_hook_commands() {
    let emu = strict_emulator().await;
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.mediamtx_api_url = Some(emu.url());
    let s = TestServer::start_with(db, options).await;
    emu.set_jwks_url(&format!("{}/.well-known/jwks.json", s.url()));
    let admin = s.admin().await;
    let cam = create(&admin, "Hookless").await;
    let path = path_of(&cam);
    eventually("the path", || emu.path(&path).is_some()).await;
    let written: Vec<String> = writes_to(&emu, &path).into_iter().flat_map(|(_, keys)| keys).collect();
    assert!(written.iter().any(|k| k == "source"), "{written:?}");
    assert!(!written.iter().any(|k| k.starts_with("runOn")), "hook keys pushed with hooks off: {written:?}");
    let conf = emu.path(&path).unwrap();
    assert!(conf.iter().filter(|(k, _)| k.starts_with("runOn")).all(|(_, v)| v == ""), "{conf:?}");
}

#[tokio::test]
async fn a_recording_only_change_is_a_patch_of_exactly_that_key() {
    let mut d = Dock::start().await;
    let cam = d.cam.clone();
    let writes = d.change(pb::Camera { recording_enabled: false, ..cam }, &["recording_enabled"]).await;
    assert_eq!(writes, vec![("patch".to_owned(), vec!["record".to_owned()])]);
    let minutes = Some(prost_types::Duration { seconds: 120, nanos: 0 });
    let cam = d.cam.clone();
    let writes = d.change(pb::Camera { segment_duration: minutes, ..cam }, &["segment_duration"]).await;
    assert_eq!(writes, vec![("patch".to_owned(), vec!["recordSegmentDuration".to_owned()])]);
}

#[tokio::test]
async fn a_transport_or_source_change_replaces_the_whole_path() {
    let mut d = Dock::start().await;
    let cam = d.cam.clone();
    let writes = d.change(pb::Camera { transport: pb::RtspTransport::Tcp as i32, ..cam }, &["transport"]).await;
    assert_eq!(writes.first().map(|w| w.0.as_str()), Some("replace"));
    assert_eq!(d.emu.path(&d.path).unwrap()["rtspTransport"], json!("tcp"));
    d.emu.clear_writes();
    d.admin
        .cameras()
        .set_camera_source(pb::SetCameraSourceRequest {
            camera_id: d.cam.id.clone(),
            source_url: "rtsps://10.20.30.41/main".into(),
            username: "ad min".into(),
            password: "p@ss:/word".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("the new source", || {
        d.emu.path(&d.path).is_some_and(|c| c["source"] == json!("rtsps://ad%20min:p%40ss%3A%2Fword@10.20.30.41/main"))
    })
    .await;
    assert_eq!(writes_to(&d.emu, &d.path).iter().map(|w| w.0.as_str()).collect::<Vec<_>>(), vec!["replace"]);
}

#[tokio::test]
async fn a_converged_camera_gets_no_more_writes() {
    let d = Dock::start().await;
    d.emu.clear_writes();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(d.emu.writes().is_empty(), "no-op writes: {:?}", d.emu.writes());
}

#[tokio::test]
async fn disabling_takes_a_camera_out_of_mediamtx_enabling_brings_it_back_and_deleting_removes_it() {
    let d = Dock::start().await;
    update(&d.admin, &d.cam, pb::Camera { enabled: false, ..d.cam.clone() }, &["enabled"]).await;
    eventually("the path gone", || d.emu.path(&d.path).is_none()).await;
    update(&d.admin, &d.cam, pb::Camera { enabled: true, ..d.cam.clone() }, &["enabled"]).await;
    eventually("the path back", || d.emu.path(&d.path).is_some()).await;
    let delete = pb::DeleteCameraRequest { camera_id: d.cam.id.clone(), ..Default::default() };
    d.admin.cameras().delete_camera(delete).await.unwrap();
    eventually("the path deleted", || d.emu.path(&d.path).is_none()).await;
    // The hand-made path was never written to, and is still there.
    assert!(d.emu.writes().iter().all(|w| w.name != "lobby-by-hand"));
    assert!(d.emu.path("lobby-by-hand").is_some());
}

#[tokio::test]
async fn a_source_given_by_name_reaches_mediamtx_as_the_address_checked_when_it_was_resolved() {
    // So MediaMTX never resolves the name again (no DNS rebinding past the camera networks).
    let d = Dock::start().await;
    let camera = pb::Camera { source_url: "rtsp://localhost:8554/cam".into(), ..crate::cameras::camera("Named") };
    let req = pb::CreateCameraRequest { camera: Some(camera), password: String::new() };
    let named = d.admin.cameras().create_camera(req).await.unwrap().into_inner().camera.unwrap();
    eventually("the named camera's path", || d.emu.path(&path_of(&named)).is_some()).await;
    let source = d.emu.path(&path_of(&named)).unwrap()["source"].as_str().unwrap().to_owned();
    assert!(
        source.starts_with("rtsp://viewer@127.0.0.1:8554/cam") || source.starts_with("rtsp://viewer@[::1]:8554/cam"),
        "{source}"
    );
}

#[tokio::test]
async fn a_mediamtx_restart_or_outage_is_converged_from() {
    // No periodic pass within the test: a restart is noticed through /v3/info's `started`.
    let (s, emu) = with_mediamtx_syncing(3600).await;
    let admin = s.admin().await;
    let mut paths = Vec::new();
    for name in ["One", "Two", "Three"] {
        paths.push(path_of(&create(&admin, name).await));
    }
    eventually("three paths", || paths.iter().all(|p| emu.path(p).is_some())).await;
    // Restart: MediaMTX forgets every API-made path; the reconciler notices `started` and re-applies.
    emu.restart();
    assert!(emu.path_names().is_empty());
    eventually("paths restored after a restart", || paths.iter().all(|p| emu.path(p).is_some())).await;
    // Down: the API keeps working, readiness says the media plane is unreachable.
    emu.down();
    let four = create(&admin, "Four").await;
    paths.push(path_of(&four));
    let said = readiness_saying(&s, &admin, "media: unreachable").await;
    assert!(said.starts_with("ready\n") && said.contains("media: unreachable"), "{said}");
    let metrics = s.scrape("/metrics", &admin).await;
    assert!(metrics.contains("opennvr_media_reachable 0"), "{metrics}");
    let plane = media_plane(&admin).await;
    assert!(plane.configured && !plane.reachable, "{plane:?}");
    assert!(plane.pending_changes > 0 && plane.last_error.contains("unreachable"), "{plane:?}");
    let started_before = plane.mediamtx_started.clone();
    // Back (as a fresh process): everything converges, the fourth camera included.
    emu.restart();
    emu.up().await.unwrap();
    eventually("all four paths after the outage", || paths.iter().all(|p| emu.path(p).is_some())).await;
    let said = readiness_saying(&s, &admin, "media: in sync").await;
    assert!(said.contains("media: in sync"), "{said}");
    let plane = media_plane(&admin).await;
    assert!(plane.reachable && plane.pending_changes == 0 && plane.last_error.is_empty(), "{plane:?}");
    assert_eq!(plane.mediamtx_version, "v1.20.1");
    assert_ne!(plane.mediamtx_started, started_before, "the restart is visible");
    assert!(plane.last_sync_time.is_some() && plane.config_writes >= 7, "{plane:?}");
    // Viewers cannot read it.
    let viewer = s.user(&admin, "vic", pb::Role::Viewer).await;
    let e = viewer.cameras().get_media_plane_status(pb::GetMediaPlaneStatusRequest {}).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}

async fn media_plane(c: &opennvr_sdk::Client) -> pb::GetMediaPlaneStatusResponse {
    c.cameras().get_media_plane_status(pb::GetMediaPlaneStatusRequest {}).await.unwrap().into_inner()
}

async fn status(c: &opennvr_sdk::Client, cam: &pb::Camera) -> pb::CameraStatus {
    c.cameras()
        .get_camera_status(pb::GetCameraStatusRequest { camera_id: cam.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
}

/// Polls the camera's status until `want` holds (up to 10 s), and returns it.
async fn status_until(
    c: &opennvr_sdk::Client,
    cam: &pb::Camera,
    want: impl Fn(&pb::CameraStatus) -> bool,
) -> pb::CameraStatus {
    let mut last = status(c, cam).await;
    for _ in 0..100 {
        if want(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = status(c, cam).await;
    }
    panic!("status never got there: {last:?}");
}

#[tokio::test]
async fn camera_status_follows_mediamtx() {
    let (s, emu) = with_mediamtx().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Gate").await;
    let path = path_of(&cam);
    let st = status_until(&admin, &cam, |st| st.sync_state == pb::MediaSyncState::InSync as i32).await;
    assert_eq!(st.state, pb::CameraState::Connecting as i32, "{st:?}");
    assert!(!st.available && !st.recording);
    emu.set_available(&path, true);
    let st = status_until(&admin, &cam, |st| st.state == pb::CameraState::Online as i32).await;
    assert!(st.available && st.recording);
    assert_eq!(st.tracks.first().map(|t| (t.codec.as_str(), t.width, t.height)), Some(("H264", 1280, 720)));
    assert!(st.inbound_bytes > 0);
    // The bitrate comes from MediaMTX's byte counters between polls (the emulated source sends 1 Mbit/s).
    let st = status_until(&admin, &cam, |st| st.inbound_bitrate_bps > 0).await;
    assert!((500_000..2_000_000).contains(&st.inbound_bitrate_bps), "{}", st.inbound_bitrate_bps);
    emu.set_available(&path, false);
    status_until(&admin, &cam, |st| st.state == pb::CameraState::Offline as i32).await;
    // A viewer sees the statuses of the cameras they may see, and only those.
    let other = create(&admin, "Hidden").await;
    let viewer = s.user(&admin, "vic", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &cam, &who, &["camera.read"], None).await.unwrap();
    let listed = viewer
        .cameras()
        .list_camera_statuses(pb::ListCameraStatusesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .statuses;
    assert_eq!(listed.iter().map(|st| st.camera_id.as_str()).collect::<Vec<_>>(), vec![cam.id.as_str()]);
    let asked = viewer
        .cameras()
        .list_camera_statuses(pb::ListCameraStatusesRequest { camera_ids: vec![cam.id.clone()], ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .statuses;
    assert_eq!(asked.iter().map(|st| st.camera_id.as_str()).collect::<Vec<_>>(), vec![cam.id.as_str()]);
    let e = viewer
        .cameras()
        .list_camera_statuses(pb::ListCameraStatusesRequest {
            camera_ids: vec![cam.id.clone(), other.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // MediaMTX down: the camera's state says its configuration cannot be applied, and why.
    emu.down();
    let st = status_until(&admin, &cam, |st| st.state == pb::CameraState::Error as i32).await;
    assert!(st.last_error.contains("unreachable"), "{}", st.last_error);
    assert!(!st.last_error.contains("Cam-Secret"));
    emu.restart();
    emu.up().await.unwrap();
    status_until(&admin, &cam, |st| st.state == pb::CameraState::Offline as i32).await;
}

#[tokio::test]
async fn live_view_tokens_are_short_scoped_and_verify_against_the_jwks() {
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.mediamtx_whep_url = Some("https://nvr.example:8889".into());
    options.mediamtx_hls_url = Some("https://nvr.example:8888/".into());
    options.mediamtx_rtsp_url = Some("rtsps://nvr.example:8322".into());
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let cam = create(&admin, "Lobby").await;
    let path = path_of(&cam);
    let viewer = s.user(&admin, "vera", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    let ask = |c: &opennvr_sdk::Client, ttl: Option<i64>| {
        let mut cams = c.cameras();
        let request = pb::CreateViewerTokenRequest {
            camera_id: cam.id.clone(),
            ttl: ttl.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
        };
        async move { cams.create_viewer_token(request).await.map(|r| r.into_inner()) }
    };
    // No grant: the camera does not exist for them. Read but not live: refused.
    assert_eq!(ask(&viewer, None).await.unwrap_err().code(), tonic::Code::NotFound);
    grant(&admin, &cam, &who, &["camera.read"], None).await.unwrap();
    assert_eq!(ask(&viewer, None).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    grant(&admin, &cam, &who, &["camera.live"], None).await.unwrap();
    let t = ask(&viewer, None).await.unwrap();
    assert_eq!(t.whep_url, format!("https://nvr.example:8889/{path}/whep"));
    assert_eq!(t.hls_url, format!("https://nvr.example:8888/{path}/index.m3u8"));
    assert_eq!(t.rtsp_url, format!("rtsps://nvr.example:8322/{path}"));
    // The token verifies against the server's JWKS (as MediaMTX checks it) and grants read on this
    // camera's path only, for five minutes.
    let jwks: jsonwebtoken::jwk::JwkSet =
        reqwest::get(format!("{}/.well-known/jwks.json", s.url())).await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(&t.token).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["mediamtx"]);
    validation.set_issuer(&["opennvr"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&t.token, &key, &validation).unwrap().claims;
    assert_eq!(claims["mediamtx_permissions"], json!([{"action": "read", "path": path}]));
    assert_eq!(claims["sub"], json!(who.id));
    let (iat, exp, nbf) =
        (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap(), claims["nbf"].as_i64().unwrap());
    assert_eq!(exp - iat, 300);
    assert!(nbf < iat, "nbf in the past absorbs clock skew");
    assert_eq!(t.expire_time.unwrap().seconds, exp);
    // Nonsense lifetimes are refused, naming the field.
    let e = ask(&viewer, Some(i64::MAX)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("ttl"), "{}", e.message());
    // Lifetimes are capped at an hour.
    let long = ask(&viewer, Some(7200)).await.unwrap();
    let long_claims = jsonwebtoken::decode::<serde_json::Value>(&long.token, &key, &validation).unwrap().claims;
    assert_eq!(long_claims["exp"].as_i64().unwrap() - long_claims["iat"].as_i64().unwrap(), 3600);
    // It is no key to the OpenNVR API.
    let thief = s.client().await;
    thief.set_tokens(Some(pb::Tokens { access_token: t.token.clone(), ..viewer.tokens().unwrap() }));
    let e = thief.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    // A disabled camera has nothing to watch.
    admin
        .cameras()
        .update_camera(pb::UpdateCameraRequest {
            camera: Some(pb::Camera { enabled: false, etag: String::new(), ..cam.clone() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["enabled".into()] }),
        })
        .await
        .unwrap();
    assert_eq!(ask(&viewer, None).await.unwrap_err().code(), tonic::Code::FailedPrecondition);
    // Every ticket is in the audit trail, with its camera.
    let issued = audit_events(&admin, "viewer_token.create").await;
    assert_eq!(issued.iter().filter(|e| e.code == "OK").count(), 2);
    assert!(issued.iter().all(|e| e.camera_id == cam.id));
}

/// The audit entries of `action`, newest first.
pub async fn audit_events(c: &opennvr_sdk::Client, action: &str) -> Vec<pb::AuditEvent> {
    let filter = pb::AuditEventFilter { action: action.into(), ..Default::default() };
    let request = pb::ListAuditEventsRequest { filter: Some(filter), ..Default::default() };
    c.audit().list_audit_events(request).await.unwrap().into_inner().events
}

/// A viewer token for `cam`, asked by `c`.
async fn viewer_token(c: &opennvr_sdk::Client, cam: &pb::Camera) -> String {
    let request = pb::CreateViewerTokenRequest { camera_id: cam.id.clone(), ttl: None };
    c.cameras().create_viewer_token(request).await.unwrap().into_inner().token
}

#[tokio::test]
async fn revoking_a_grant_or_disabling_a_user_ends_their_open_viewing_sessions() {
    let (s, emu) = with_mediamtx().await;
    let admin = s.admin().await;
    let (gate, yard) = (create(&admin, "Gate").await, create(&admin, "Yard").await);
    let path = path_of(&gate);
    eventually("both paths configured", || emu.path_names().len() == 2).await;
    emu.set_available(&path, true);
    emu.set_available(&path_of(&yard), true);
    let (vera, otto) = (s.user(&admin, "vera", pb::Role::Viewer).await, s.user(&admin, "otto", pb::Role::Viewer).await);
    let whoami = |c: &opennvr_sdk::Client| {
        let mut auth = c.auth();
        async move { auth.who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap() }
    };
    let (vera_user, otto_user) = (whoami(&vera).await, whoami(&otto).await);
    for (cam, who) in [(&gate, &vera_user), (&gate, &otto_user), (&yard, &vera_user)] {
        grant(&admin, cam, who, &["camera.read", "camera.live"], None).await.unwrap();
    }
    let (vera_gate, otto_gate, vera_yard) =
        (viewer_token(&vera, &gate).await, viewer_token(&otto, &gate).await, viewer_token(&vera, &yard).await);
    // MediaMTX admits a token on its own path only.
    assert!(emu.open_session(Protocol::WebRtc, &path, &vera_yard).await.is_err());
    emu.open_session(Protocol::WebRtc, &path, &vera_gate).await.unwrap();
    emu.open_session(Protocol::Rtsp, &path, &otto_gate).await.unwrap();
    emu.open_session(Protocol::Hls, &path_of(&yard), &vera_yard).await.unwrap();
    let open_for =
        |user: &pb::User, on: &str| emu.sessions().iter().filter(|x| x.user == user.id && x.path == on).count();
    // Sessions of viewers who may watch are never ended by the sweeps.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(emu.kicked(), vec![]);
    // Vera loses the gate: her session there ends within seconds; Otto's, and hers on the yard, stay.
    admin
        .cameras()
        .revoke_camera_access(pb::RevokeCameraAccessRequest {
            camera_id: gate.id.clone(),
            user_id: vera_user.id.clone(),
        })
        .await
        .unwrap();
    eventually("vera's gate session ended", || open_for(&vera_user, &path) == 0).await;
    assert_eq!(open_for(&otto_user, &path), 1);
    assert_eq!(open_for(&vera_user, &path_of(&yard)), 1);
    // Her token has not expired: reopening works at MediaMTX, and is ended again.
    emu.open_session(Protocol::Rtsp, &path, &vera_gate).await.unwrap();
    eventually("vera's reopened session ended", || open_for(&vera_user, &path) == 0).await;
    // A grant narrowed to read only ends live viewing too; disabling Otto ends his session as well.
    admin
        .users()
        .update_user(pb::UpdateUserRequest {
            user: Some(pb::User { disabled: true, etag: String::new(), ..otto_user.clone() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
        })
        .await
        .unwrap();
    eventually("otto's session ended", || open_for(&otto_user, &path) == 0).await;
    grant(&admin, &yard, &vera_user, &["camera.read"], None).await.unwrap();
    eventually("vera's yard session ended", || open_for(&vera_user, &path_of(&yard)) == 0).await;
    let kicked: Vec<(String, String)> = emu.kicked().into_iter().map(|k| (k.user, k.path)).collect();
    assert_eq!(
        kicked,
        vec![
            (vera_user.id.clone(), path.clone()),
            (vera_user.id.clone(), path.clone()),
            (otto_user.id.clone(), path.clone()),
            (vera_user.id.clone(), path_of(&yard)),
        ]
    );
    // Each end is in the audit trail, with the camera, the user and the reason.
    let ended = audit_events(&admin, "viewer_session.end").await;
    assert_eq!(ended.len(), 4);
    let otto_end = ended.iter().find(|e| e.details.get("user_id") == Some(&otto_user.id)).unwrap();
    assert_eq!(otto_end.camera_id, gate.id);
    assert_eq!(otto_end.details["reason"], "the user is disabled or no longer exists");
    assert_eq!(otto_end.details["protocol"], "rtspsessions");
}

/// The next event on `stream` (heartbeats skipped), within 10 s.
pub async fn next_event(stream: &mut tonic::Streaming<pb::WatchEventsResponse>) -> pb::Event {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("an event in time");
        match msg.unwrap().unwrap().kind {
            Some(pb::watch_events_response::Kind::Event(e)) => return e,
            Some(_) => continue,
            None => panic!("empty message"),
        }
    }
}

pub async fn watch(c: &opennvr_sdk::Client) -> tonic::Streaming<pb::WatchEventsResponse> {
    c.events().watch_events(pb::WatchEventsRequest::default()).await.unwrap().into_inner()
}

#[tokio::test]
async fn camera_events_reach_the_watchers_who_may_see_them() {
    let (s, emu) = with_mediamtx().await;
    let admin = s.admin().await;
    let a = create(&admin, "A").await;
    let viewer = s.user(&admin, "vik", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &a, &who, &["camera.read"], None).await.unwrap();
    let mut all = watch(&admin).await;
    let mut mine = watch(&viewer).await;
    let b = create(&admin, "B").await;
    update(&admin, &a, pb::Camera { description: "dock".into(), ..a.clone() }, &["description"]).await;
    let e = next_event(&mut all).await;
    assert_eq!((e.r#type, e.camera_id.as_str()), (pb::EventType::CameraCreated as i32, b.id.as_str()));
    let e = next_event(&mut all).await;
    assert_eq!((e.r#type, e.camera_id.as_str()), (pb::EventType::CameraUpdated as i32, a.id.as_str()));
    match e.payload {
        Some(pb::event::Payload::CameraConfig(c)) => {
            assert_eq!(c.changed_fields, vec!["description"]);
            assert_eq!(c.camera_name, "A");
        }
        other => panic!("{other:?}"),
    }
    // The viewer never hears of B: the first event they get is A's change.
    let e = next_event(&mut mine).await;
    assert_eq!((e.r#type, e.camera_id.as_str()), (pb::EventType::CameraUpdated as i32, a.id.as_str()));
    // Status changes come from MediaMTX.
    eventually("A's path", || emu.path(&path_of(&a)).is_some()).await;
    emu.set_available(&path_of(&a), true);
    let e = next_event(&mut mine).await;
    assert_eq!((e.r#type, e.camera_id.as_str()), (pb::EventType::CameraOnline as i32, a.id.as_str()));
    // A MediaMTX restart is a site-wide event.
    emu.restart();
    loop {
        let e = next_event(&mut all).await;
        if e.r#type == pb::EventType::MediaServerRestarted as i32 {
            assert!(e.camera_id.is_empty());
            break;
        }
    }
    // A deleted camera's former grantees hear of it, although their grant went with it.
    admin
        .cameras()
        .delete_camera(pb::DeleteCameraRequest { camera_id: a.id.clone(), ..Default::default() })
        .await
        .unwrap();
    loop {
        let e = next_event(&mut mine).await;
        if e.r#type == pb::EventType::CameraDeleted as i32 {
            assert_eq!(e.camera_id, a.id);
            break;
        }
    }
    // Watching a camera one may not see, or resuming from a token this server never issued, is refused.
    let e = viewer
        .events()
        .watch_events(pb::WatchEventsRequest { camera_ids: vec![b.id.clone()], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = admin
        .events()
        .watch_events(pb::WatchEventsRequest { resume_token: "old".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_slow_watcher_misses_nothing_and_never_holds_the_server_back() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let mut stream = watch(&admin).await;
    // Far more events than any buffer in between, while the watcher reads nothing: publishing never
    // waits for it, and it reads them all from the history afterwards, in order.
    crate::events::publish_media_server_restarts(&s, 3000);
    // The API still answers.
    admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    let mut next = 0;
    while next < 3000 {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.unwrap().unwrap().unwrap();
        if let Some(pb::watch_events_response::Kind::Event(e)) = msg.kind {
            let Some(pb::event::Payload::MediaServer(m)) = e.payload else { panic!("{e:?}") };
            assert_eq!(m.version, format!("v{next}"));
            next += 1;
        }
    }
}

#[tokio::test]
async fn mediamtx_hooks_need_the_secret_and_wake_the_status_watcher() {
    let secret_dir = crate::harness::temp_dir("hook");
    let secret_file = secret_dir.join("hook.secret");
    std::fs::write(&secret_file, "a-hook-secret-of-at-least-thirty-two-chars").unwrap();
    let emu = Emulator::start(AuthConfig::default()).await.unwrap();
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.mediamtx_api_url = Some(emu.url());
    options.hook_secret_file = Some(secret_file);
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let cam = create(&admin, "Hooked").await;
    let path = path_of(&cam);
    eventually("the path", || emu.path(&path).is_some()).await;
    let mut events = watch(&admin).await;
    let hook = |secret: &str, body: serde_json::Value| {
        let (url, secret) = (format!("{}/hooks/mediamtx", s.url()), secret.to_owned());
        async move {
            reqwest::Client::new().post(url).bearer_auth(secret).json(&body).send().await.unwrap().status().as_u16()
        }
    };
    let secret = "a-hook-secret-of-at-least-thirty-two-chars";
    assert_eq!(hook("wrong", json!({"event": "available", "path": path})).await, 401);
    assert_eq!(hook(secret, json!({"event": "exploded", "path": path})).await, 400);
    assert_eq!(hook(secret, json!({"event": "available", "path": "somebody-else"})).await, 404);
    assert_eq!(hook(secret, json!({"event": "available", "path": path, "extra": 1})).await, 400);
    emu.set_available(&path, true);
    assert_eq!(hook(secret, json!({"event": "available", "path": path})).await, 202);
    let e = next_event(&mut events).await;
    assert_eq!((e.r#type, e.camera_id.as_str()), (pb::EventType::CameraOnline as i32, cam.id.as_str()));
    // Without a configured secret the endpoint does not exist.
    let plain = TestServer::start().await;
    let status = reqwest::Client::new()
        .post(format!("{}/hooks/mediamtx", plain.url()))
        .bearer_auth(secret)
        .json(&json!({"event": "available", "path": path}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_camera_whose_secret_does_not_open_keeps_its_stream_and_says_why() {
    let (s, emu) = with_mediamtx().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Sealed").await;
    let path = path_of(&cam);
    eventually("the path", || emu.path(&path).is_some()).await;
    // The sealed password is damaged behind the server's back (a restore from the wrong backup).
    let mut su = s.db.superuser();
    let damage = format!("UPDATE cameras SET password_sealed = '\\x01' WHERE id = '{}'", cam.id);
    diesel::RunQueryDsl::execute(diesel::sql_query(damage), &mut su).unwrap();
    emu.clear_writes();
    // The next passes (every second here) cannot build its config: MediaMTX keeps what it has, and
    // the camera's status says why, without any secret.
    let st = status_until(&admin, &cam, |st| st.sync_state == pb::MediaSyncState::Failed as i32).await;
    assert!(st.last_error.contains("malformed") || st.last_error.contains("does not open"), "{}", st.last_error);
    assert!(!st.last_error.contains("Cam-Secret"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(emu.path(&path).is_some(), "the path stays");
    assert!(emu.writes().iter().all(|w| w.name != path), "{:?}", emu.writes());
}
