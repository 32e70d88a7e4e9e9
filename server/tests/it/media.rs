//! The media plane against the MediaMTX emulator: a camera change reaches MediaMTX as the right kind
//! of write (and only then), foreign paths are left alone, a MediaMTX restart or outage is survived
//! and converged from, and every call MediaMTX gets carries a token it verifies against our JWKS.
use crate::cameras::create;
use crate::harness::{TestDb, TestServer, test_options};
use mediamtx_emulator::{AuthConfig, Emulator};
use opennvr_sdk::pb;
use serde_json::json;
use std::time::Duration;

/// A server driving a fresh emulator that verifies its API tokens (issuer and audience included).
pub async fn with_mediamtx() -> (TestServer, Emulator) {
    let emu = Emulator::start(AuthConfig {
        // Nothing verifies until the server's JWKS is known, below.
        jwks_url: Some("http://127.0.0.1:9/none".into()),
        issuer: Some("opennvr".into()),
        audience: Some("mediamtx".into()),
    })
    .await
    .unwrap();
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.mediamtx_api_url = Some(emu.url());
    options.mediamtx_sync_secs = Some(1);
    let s = TestServer::start_with(db, options).await;
    emu.set_jwks_url(&format!("{}/.well-known/jwks.json", s.url()));
    (s, emu)
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

/// `/readyz` once it says `needle` (or after 10 s).
async fn readiness_saying(s: &TestServer, needle: &str) -> String {
    let mut said = String::new();
    for _ in 0..100 {
        said = reqwest::get(format!("{}/readyz", s.url())).await.unwrap().text().await.unwrap();
        if said.contains(needle) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    said
}

fn path_of(cam: &pb::Camera) -> String {
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

#[tokio::test]
async fn camera_changes_reach_mediamtx_as_the_right_write_and_nothing_else_is_touched() {
    let (s, emu) = with_mediamtx().await;
    let admin = s.admin().await;
    emu.add_foreign_path(
        "lobby-by-hand",
        serde_json::Map::from_iter([("source".to_owned(), json!("rtsp://10.0.0.9/x"))]),
    );
    let cam = create(&admin, "Dock").await;
    let path = path_of(&cam);
    eventually("the camera's path in MediaMTX", || emu.path(&path).is_some()).await;
    let conf = emu.path(&path).unwrap();
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

    // A recording-only change is a patch of exactly that key (no stream drop).
    emu.clear_writes();
    let cam =
        update(&admin, &cam, pb::Camera { recording_enabled: false, ..cam.clone() }, &["recording_enabled"]).await;
    eventually("the patch", || !writes_to(&emu, &path).is_empty()).await;
    assert_eq!(writes_to(&emu, &path), vec![("patch".to_owned(), vec!["record".to_owned()])]);
    emu.clear_writes();
    let cam = update(
        &admin,
        &cam,
        pb::Camera { segment_duration: Some(prost_types::Duration { seconds: 120, nanos: 0 }), ..cam.clone() },
        &["segment_duration"],
    )
    .await;
    eventually("the patch", || !writes_to(&emu, &path).is_empty()).await;
    assert_eq!(writes_to(&emu, &path), vec![("patch".to_owned(), vec!["recordSegmentDuration".to_owned()])]);
    // A transport or source change replaces the whole entry.
    emu.clear_writes();
    let cam =
        update(&admin, &cam, pb::Camera { transport: pb::RtspTransport::Tcp as i32, ..cam.clone() }, &["transport"])
            .await;
    eventually("the replace", || !writes_to(&emu, &path).is_empty()).await;
    assert_eq!(writes_to(&emu, &path).first().map(|w| w.0.as_str()), Some("replace"));
    assert_eq!(emu.path(&path).unwrap()["rtspTransport"], json!("tcp"));
    emu.clear_writes();
    admin
        .cameras()
        .set_camera_source(pb::SetCameraSourceRequest {
            camera_id: cam.id.clone(),
            source_url: "rtsps://10.20.30.41/main".into(),
            username: "ad min".into(),
            password: "p@ss:/word".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("the new source", || {
        emu.path(&path).is_some_and(|c| c["source"] == json!("rtsps://ad%20min:p%40ss%3A%2Fword@10.20.30.41/main"))
    })
    .await;
    assert_eq!(writes_to(&emu, &path).iter().map(|w| w.0.as_str()).collect::<Vec<_>>(), vec!["replace"]);
    // Converged: periodic passes write nothing.
    emu.clear_writes();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(emu.writes().is_empty(), "no-op writes: {:?}", emu.writes());
    // Disabling takes the camera out of MediaMTX; enabling brings it back; deleting removes it.
    update(&admin, &cam, pb::Camera { enabled: false, ..cam.clone() }, &["enabled"]).await;
    eventually("the path gone", || emu.path(&path).is_none()).await;
    update(&admin, &cam, pb::Camera { enabled: true, ..cam.clone() }, &["enabled"]).await;
    eventually("the path back", || emu.path(&path).is_some()).await;
    admin
        .cameras()
        .delete_camera(pb::DeleteCameraRequest { camera_id: cam.id.clone(), ..Default::default() })
        .await
        .unwrap();
    eventually("the path deleted", || emu.path(&path).is_none()).await;
    // The hand-made path was never written to, and is still there.
    assert!(emu.writes().iter().all(|w| w.name != "lobby-by-hand"));
    assert!(emu.path("lobby-by-hand").is_some());
    // Every call carried a token MediaMTX verified against the server's JWKS.
    assert!(emu.requests() > 0);
}

#[tokio::test]
async fn a_mediamtx_restart_or_outage_is_converged_from() {
    let (s, emu) = with_mediamtx().await;
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
    let said = readiness_saying(&s, "media: unreachable").await;
    assert!(said.starts_with("ready\n") && said.contains("media: unreachable"), "{said}");
    let metrics = reqwest::get(format!("{}/metrics", s.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("opennvr_media_reachable 0"), "{metrics}");
    // Back (as a fresh process): everything converges, the fourth camera included.
    emu.restart();
    emu.up().await.unwrap();
    eventually("all four paths after the outage", || paths.iter().all(|p| emu.path(p).is_some())).await;
    let said = readiness_saying(&s, "media: in sync").await;
    assert!(said.contains("media: in sync"), "{said}");
}
