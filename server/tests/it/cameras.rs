//! Cameras: the API a user relies on (create, read, list, change, re-source, delete), errors that name
//! their field, passwords sealed at rest, and per-camera grants that never let a user see or touch a
//! camera they were not given.
use crate::harness::{TestServer, count};
use opennvr_sdk::pb;
use opennvr_server::api::policy::Access;
use opennvr_server::domain::Role;
use tonic::Code;

pub const CAMERA_PASSWORD: &str = "Cam-Secret-7f3a9";

pub fn camera(name: &str) -> pb::Camera {
    pb::Camera {
        name: name.into(),
        source_url: "rtsp://10.20.30.40:554/stream1".into(),
        username: "viewer".into(),
        enabled: true,
        recording_enabled: true,
        labels: [("site".to_owned(), "dock".to_owned())].into_iter().collect(),
        ..Default::default()
    }
}

pub async fn create(c: &opennvr_sdk::Client, name: &str) -> pb::Camera {
    c.cameras()
        .create_camera(pb::CreateCameraRequest { camera: Some(camera(name)), password: CAMERA_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner()
        .camera
        .unwrap()
}

pub async fn grant(
    admin: &opennvr_sdk::Client,
    camera: &pb::Camera,
    user: &pb::User,
    permissions: &[&str],
    expire_time: Option<prost_types::Timestamp>,
) -> Result<pb::CameraGrant, tonic::Status> {
    admin
        .cameras()
        .grant_camera_access(pb::GrantCameraAccessRequest {
            camera_id: camera.id.clone(),
            user_id: user.id.clone(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            expire_time,
        })
        .await
        .map(|r| r.into_inner().grant.unwrap())
}

/// Changes `camera`'s description as `c`.
async fn describe(c: &opennvr_sdk::Client, camera: &pb::Camera) -> Result<pb::Camera, tonic::Status> {
    c.cameras()
        .update_camera(pb::UpdateCameraRequest {
            camera: Some(pb::Camera { description: "described".into(), etag: String::new(), ..camera.clone() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
        })
        .await
        .map(|r| r.into_inner().camera.unwrap())
}

async fn list(c: &opennvr_sdk::Client) -> Vec<String> {
    c.cameras()
        .list_cameras(pb::ListCamerasRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cameras
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// The names of the cameras `c` lists with `req`, in the order listed.
async fn names_listed(c: &opennvr_sdk::Client, req: pb::ListCamerasRequest) -> Vec<String> {
    let cameras = c.cameras().list_cameras(req).await.unwrap().into_inner().cameras;
    cameras.into_iter().map(|c| c.name).collect()
}

/// Creates the enabled cameras "Dock North", "Alley" and "gate" as `c`.
async fn create_three(c: &opennvr_sdk::Client) {
    for name in ["Dock North", "Alley", "gate"] {
        create(c, name).await;
    }
}

/// Creates `camera` as `c`, without a password.
async fn create_as_given(c: &opennvr_sdk::Client, camera: pb::Camera) -> pb::Camera {
    let req = pb::CreateCameraRequest { camera: Some(camera), password: String::new() };
    c.cameras().create_camera(req).await.unwrap().into_inner().camera.unwrap()
}

/// Updates the `paths` of `camera` as `c`, with the camera's etag.
async fn update(c: &opennvr_sdk::Client, camera: pb::Camera, paths: &[&str]) -> Result<pb::Camera, tonic::Status> {
    let paths = paths.iter().map(|p| p.to_string()).collect();
    let req = pb::UpdateCameraRequest { camera: Some(camera), update_mask: Some(prost_types::FieldMask { paths }) };
    c.cameras().update_camera(req).await.map(|r| r.into_inner().camera.unwrap())
}

/// Turns recording off and segments to 5 minutes through a mask, trying to rename on the way.
async fn record_less(c: &opennvr_sdk::Client, cam: &pb::Camera) -> pb::Camera {
    let changed = pb::Camera {
        recording_enabled: false,
        segment_duration: Some(prost_types::Duration { seconds: 300, nanos: 0 }),
        name: "SHOULD NOT CHANGE".into(),
        ..cam.clone()
    };
    update(c, changed, &["recording_enabled", "segment_duration"]).await.unwrap()
}

/// Tries to change the description of `cam` with the etag it had then (stale after any change).
async fn describe_with_etag_of(c: &opennvr_sdk::Client, cam: &pb::Camera) -> tonic::Status {
    update(c, pb::Camera { description: "x".into(), ..cam.clone() }, &["description"]).await.unwrap_err()
}

/// Deletes `cam` (keeping its recordings) as `c`, with `etag`.
async fn delete(c: &opennvr_sdk::Client, cam: &pb::Camera, etag: String) {
    let req = pb::DeleteCameraRequest { camera_id: cam.id.clone(), etag, delete_recordings: false };
    c.cameras().delete_camera(req).await.unwrap();
}

#[tokio::test]
async fn a_new_camera_has_its_defaults_and_reads_back_as_created() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Dock North").await;
    assert!(cam.has_password);
    assert_eq!(cam.path_name, format!("opennvr-{}", uuid::Uuid::parse_str(&cam.id).unwrap().simple()));
    assert_eq!(cam.source_url, "rtsp://10.20.30.40:554/stream1");
    assert_eq!(cam.segment_duration.as_ref().map(|d| d.seconds), Some(60));
    assert_eq!(cam.transport, pb::RtspTransport::Auto as i32);
    let got = admin.cameras().get_camera(pb::GetCameraRequest { camera_id: cam.id.clone() }).await.unwrap();
    assert_eq!(got.into_inner().camera.unwrap(), cam);
}

#[tokio::test]
async fn camera_names_are_unique_without_regard_to_case() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    create(&admin, "Dock North").await;
    let dup = admin
        .cameras()
        .create_camera(pb::CreateCameraRequest { camera: Some(camera("dock north")), password: String::new() })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn cameras_list_in_name_order_in_pages_without_gaps_or_repeats() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    create_three(&admin).await;
    assert_eq!(list(&admin).await, vec!["Alley", "Dock North", "gate"]);
    let first = admin
        .cameras()
        .list_cameras(pb::ListCamerasRequest { page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.cameras.len(), 2);
    let next = pb::ListCamerasRequest { page_size: 2, page_token: first.next_page_token, ..Default::default() };
    assert_eq!(names_listed(&admin, next).await, vec!["gate"]);
}

#[tokio::test]
async fn cameras_are_listed_by_label_and_by_whether_they_are_enabled() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    create_three(&admin).await;
    let office: std::collections::HashMap<String, String> = [("site".to_owned(), "office".to_owned())].into();
    create_as_given(&admin, pb::Camera { labels: office.clone(), ..camera("Lobby") }).await;
    create_as_given(&admin, pb::Camera { enabled: false, ..camera("Spare") }).await;
    let by_label = pb::ListCamerasRequest { labels: office, ..Default::default() };
    assert_eq!(names_listed(&admin, by_label).await, vec!["Lobby"]);
    let disabled = pb::ListCamerasRequest { enabled: Some(false), ..Default::default() };
    assert_eq!(names_listed(&admin, disabled).await, vec!["Spare"]);
    let enabled = admin
        .cameras()
        .list_cameras(pb::ListCamerasRequest { enabled: Some(true), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .cameras;
    assert!(enabled.iter().all(|c| c.enabled) && enabled.len() == 4, "{enabled:?}");
}

#[tokio::test]
async fn a_camera_update_changes_only_the_masked_fields_and_refuses_a_stale_etag() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Dock North").await;
    let updated = record_less(&admin, &cam).await;
    assert!(!updated.recording_enabled);
    assert_eq!(updated.name, "Dock North", "only masked fields change");
    assert_eq!(updated.segment_duration.as_ref().map(|d| d.seconds), Some(300));
    assert_ne!(updated.etag, cam.etag);
    assert_eq!(describe_with_etag_of(&admin, &cam).await.code(), Code::Aborted);
}

#[tokio::test]
async fn a_deleted_camera_leaves_the_api_frees_its_name_and_keeps_its_row_without_password() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Dock North").await;
    delete(&admin, &cam, cam.etag.clone()).await;
    let gone = admin.cameras().get_camera(pb::GetCameraRequest { camera_id: cam.id.clone() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(!list(&admin).await.contains(&"Dock North".to_owned()));
    create(&admin, "Dock North").await;
    let mut su = s.db.superuser();
    assert_eq!(
        count(
            &mut su,
            format!(
                "SELECT count(*) AS n FROM cameras WHERE id = '{}' AND deleted_at IS NOT NULL AND password_sealed IS NULL",
                cam.id
            )
        ),
        1,
        "the deleted camera's row stays, without its password"
    );
}

#[tokio::test]
async fn every_camera_change_and_failed_call_is_in_the_audit_trail_with_its_camera() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // The calls run in this order because the trail is compared in the order it recorded them.
    let cam = create(&admin, "Dock North").await;
    let updated = record_less(&admin, &cam).await;
    describe_with_etag_of(&admin, &cam).await;
    delete(&admin, &cam, updated.etag).await;
    admin.cameras().get_camera(pb::GetCameraRequest { camera_id: cam.id.clone() }).await.unwrap_err();
    let entries = admin
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            filter: Some(pb::AuditEventFilter { camera_id: cam.id.clone(), ..Default::default() }),
            oldest_first: true,
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<(&str, &str)> = entries.iter().map(|e| (e.action.as_str(), e.code.as_str())).collect();
    assert_eq!(
        actions,
        vec![
            ("camera.create", "OK"),
            ("camera.update", "OK"),
            ("camera.update", "ABORTED"),
            ("camera.delete", "OK"),
            // Reading it afterwards failed, and failed calls are recorded too, with their camera.
            ("camera.get", "NOT_FOUND"),
        ]
    );
    assert!(entries.iter().all(|e| !e.details.values().any(|v| v.contains(CAMERA_PASSWORD))));
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cases: Vec<(pb::Camera, &str)> = vec![
        (pb::Camera { source_url: "rtsp://admin:pw@10.0.0.9/x".into(), ..camera("a") }, "camera.source_url"),
        (pb::Camera { source_url: "http://10.0.0.9/x".into(), ..camera("b") }, "camera.source_url"),
        (pb::Camera { source_url: String::new(), ..camera("c") }, "camera.source_url"),
        (pb::Camera { name: "  ".into(), ..camera("d") }, "camera.name"),
        (
            pb::Camera { labels: [("Bad Key".to_owned(), "v".to_owned())].into_iter().collect(), ..camera("e") },
            "camera.labels",
        ),
        (pb::Camera { ip_addresses: vec!["10.0.0.300".into()], ..camera("f") }, "camera.ip_addresses"),
        (
            pb::Camera { segment_duration: Some(prost_types::Duration { seconds: 5, nanos: 0 }), ..camera("g") },
            "camera.segment_duration",
        ),
        (pb::Camera { transport: 42, ..camera("h") }, "camera.transport"),
    ];
    for (cam, field) in cases {
        let e = admin
            .cameras()
            .create_camera(pb::CreateCameraRequest { camera: Some(cam.clone()), password: String::new() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{cam:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let cam = create(&admin, "Valid").await;
    let e = admin
        .cameras()
        .update_camera(pb::UpdateCameraRequest {
            camera: Some(cam.clone()),
            update_mask: Some(prost_types::FieldMask { paths: vec!["source_url".into()] }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("update_mask"), "{}", e.message());
    let e = admin.cameras().get_camera(pb::GetCameraRequest { camera_id: "nope".into() }).await.unwrap_err();
    assert!(e.message().contains("camera_id"), "{}", e.message());
    // Nothing was stored by the refused calls.
    let mut su = s.db.superuser();
    assert_eq!(count(&mut su, "SELECT count(*) AS n FROM cameras"), 1);
}

#[tokio::test]
async fn camera_passwords_are_sealed_at_rest_and_stay_with_their_host() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Sealed").await;
    let mut su = s.db.superuser();
    // Not in the column, not anywhere in the row, not in the trail.
    for sql in [
        "SELECT count(*) AS n FROM cameras WHERE position(convert_to('Cam-Secret', 'UTF8') IN coalesce(password_sealed, ''::bytea)) > 0",
        "SELECT count(*) AS n FROM cameras c WHERE c::text LIKE '%Cam-Secret%'",
        "SELECT count(*) AS n FROM audit_events e WHERE e::text LIKE '%Cam-Secret%'",
    ] {
        assert_eq!(count(&mut su, sql), 0, "{sql}");
    }
    assert_eq!(count(&mut su, "SELECT count(*) AS n FROM cameras WHERE password_sealed IS NOT NULL"), 1);
    // The server can open it (for MediaMTX only).
    let row = s
        .store
        .run({
            let id = uuid::Uuid::parse_str(&cam.id).unwrap();
            move |c| opennvr_server::store::cameras::CameraRow::find(c, id)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.cameras.password(&row).unwrap().as_deref(), Some(CAMERA_PASSWORD));
    // A kept password never follows the source to another host.
    let resource = |url: &str, keep_password: bool| {
        let request = pb::SetCameraSourceRequest {
            camera_id: cam.id.clone(),
            source_url: url.into(),
            username: "viewer".into(),
            keep_password,
            ..Default::default()
        };
        let mut cameras = admin.cameras();
        async move { cameras.set_camera_source(request).await.map(|r| r.into_inner().camera.unwrap()) }
    };
    let moved = resource("rtsp://10.99.99.99:554/stream1", true).await.unwrap_err();
    assert_eq!(moved.code(), Code::InvalidArgument);
    assert!(moved.message().contains("keep_password"), "{}", moved.message());
    let same_host = resource("rtsp://10.20.30.40/stream2", true).await.unwrap();
    assert!(same_host.has_password, "default port 554 is the same endpoint");
    let cleared = resource("rtsp://10.99.99.99/stream1", false).await.unwrap();
    assert!(!cleared.has_password);
}

#[tokio::test]
async fn a_user_granted_camera_a_cannot_see_or_touch_camera_b() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let a = create(&admin, "A").await;
    let b = create(&admin, "B").await;
    let op = s.user(&admin, "olivia", pb::Role::Operator).await;
    let who = op.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    // Nothing granted: nothing visible.
    assert!(list(&op).await.is_empty());
    grant(&admin, &a, &who, &["camera.read"], None).await.unwrap();
    assert_eq!(list(&op).await, vec!["A"]);
    op.cameras().get_camera(pb::GetCameraRequest { camera_id: a.id.clone() }).await.unwrap();
    // B does not exist as far as the operator can tell, whatever they try.
    let on_b = op.cameras().get_camera(pb::GetCameraRequest { camera_id: b.id.clone() }).await.unwrap_err();
    assert_eq!(on_b.code(), Code::NotFound);
    assert_eq!(describe(&op, &b).await.unwrap_err().code(), Code::NotFound);
    let e = op
        .cameras()
        .delete_camera(pb::DeleteCameraRequest { camera_id: b.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = op
        .cameras()
        .set_camera_source(pb::SetCameraSourceRequest {
            camera_id: b.id.clone(),
            source_url: "rtsp://10.1.1.1/x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // On A, reading is granted but managing is not.
    assert_eq!(describe(&op, &a).await.unwrap_err().code(), Code::PermissionDenied);
    // A grant of camera.write (manage) on A lets them change A, still not B.
    grant(&admin, &a, &who, &["camera.write"], None).await.unwrap();
    describe(&op, &a).await.unwrap();
    assert_eq!(describe(&op, &b).await.unwrap_err().code(), Code::NotFound);
    // A camera the operator adds is theirs to see; B stays hidden; another operator sees neither.
    create(&op, "C").await;
    assert_eq!(list(&op).await, vec!["A", "C"]);
    let other = s.user(&admin, "oscar", pb::Role::Operator).await;
    assert!(list(&other).await.is_empty());
    // The grants listing shows what the user holds, never B.
    let grants = admin
        .cameras()
        .list_camera_grants(pb::ListCameraGrantsRequest { user_id: who.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert!(grants.iter().all(|g| g.camera_id != b.id));
    let a_grant = grants.iter().find(|g| g.camera_id == a.id).unwrap();
    assert_eq!(a_grant.permissions, vec!["camera.read", "camera.write"]);
    // Revoking hides A again; revoking twice is fine.
    for _ in 0..2 {
        admin
            .cameras()
            .revoke_camera_access(pb::RevokeCameraAccessRequest { camera_id: a.id.clone(), user_id: who.id.clone() })
            .await
            .unwrap();
    }
    assert_eq!(list(&op).await, vec!["C"]);
    // An expired grant hides the camera too.
    let soon = opennvr_server::clock::Clock::now(&s.clock).timestamp() + 60;
    grant(&admin, &b, &who, &["camera.live"], Some(prost_types::Timestamp { seconds: soon, nanos: 0 })).await.unwrap();
    assert_eq!(list(&op).await, vec!["B", "C"]);
    s.clock.advance(chrono::Duration::seconds(120));
    let fresh = s.client().await;
    s.login(&fresh, "olivia").await;
    assert_eq!(list(&fresh).await, vec!["C"]);
    // Nobody grants what is not grantable.
    let e = grant(&admin, &a, &who, &["user.write"], None).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("permissions"), "{}", e.message());
}

async fn probe(c: &opennvr_sdk::Client, req: pb::TestCameraConnectionRequest) -> pb::TestCameraConnectionResponse {
    c.cameras().test_camera_connection(req).await.unwrap().into_inner()
}

#[tokio::test]
async fn connection_tests_do_a_real_rtsp_handshake_inside_the_camera_networks() {
    let open = crate::rtsp::RtspCamera::start(None);
    let locked = crate::rtsp::RtspCamera::start(Some(("viewer", "right-password")));
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    // The test cameras listen on loopback, which only this configuration lets in.
    options.camera_networks = Some("127.0.0.0/8,10.0.0.0/8".into());
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let timeout = Some(prost_types::Duration { seconds: 15, nanos: 0 });
    let r =
        probe(&admin, pb::TestCameraConnectionRequest { source_url: open.url(), timeout, ..Default::default() }).await;
    assert_eq!(r.result, pb::ConnectionTestResult::Ok as i32, "{r:?}");
    assert!(r.reachable && r.first_frame_latency.is_some());
    assert_eq!(r.tracks.first().map(|t| (t.codec.as_str(), t.width, t.height)), Some(("H264", 1280, 720)), "{r:?}");
    // Credentials: right, wrong.
    let with = |password: &str| pb::TestCameraConnectionRequest {
        source_url: locked.url(),
        username: "viewer".into(),
        password: password.into(),
        timeout,
        ..Default::default()
    };
    let r = probe(&admin, with("right-password")).await;
    assert_eq!(r.result, pb::ConnectionTestResult::Ok as i32, "{r:?}");
    let r = probe(&admin, with("wrong-password")).await;
    assert_eq!(r.result, pb::ConnectionTestResult::AuthFailed as i32, "{r:?}");
    assert!(r.reachable);
    assert!(!r.error_message.contains("wrong-password"), "{}", r.error_message);
    // A closed port.
    let closed = format!("rtsp://127.0.0.1:{}/stream", crate::harness::free_port());
    let r = probe(&admin, pb::TestCameraConnectionRequest { source_url: closed, timeout, ..Default::default() }).await;
    assert_eq!(r.result, pb::ConnectionTestResult::Unreachable as i32, "{r:?}");
    assert!(!r.reachable);
    // Something that is not an RTSP server (the server's own HTTP port), and a source without video.
    let web = format!("rtsp://{}/stream", s.addr);
    let r = probe(&admin, pb::TestCameraConnectionRequest { source_url: web, timeout, ..Default::default() }).await;
    assert_eq!(r.result, pb::ConnectionTestResult::NotRtsp as i32, "{r:?}");
    assert!(r.reachable && r.error_message.contains("HTTP"), "{r:?}");
    let radio = crate::rtsp::RtspCamera::audio_only();
    let r =
        probe(&admin, pb::TestCameraConnectionRequest { source_url: radio.url(), timeout, ..Default::default() }).await;
    assert_eq!(r.result, pb::ConnectionTestResult::NoVideo as i32, "{r:?}");
    assert_eq!(r.tracks.first().map(|t| t.codec.as_str()), Some("PCMU"), "{r:?}");
    // A saved camera: its stored password is used, for its own host and port only.
    let saved = admin
        .cameras()
        .create_camera(pb::CreateCameraRequest {
            camera: Some(pb::Camera { source_url: locked.url(), ..camera("Locked") }),
            password: "right-password".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .camera
        .unwrap();
    let r =
        probe(&admin, pb::TestCameraConnectionRequest { camera_id: saved.id.clone(), timeout, ..Default::default() })
            .await;
    assert_eq!(r.result, pb::ConnectionTestResult::Ok as i32, "{r:?}");
    let elsewhere = pb::TestCameraConnectionRequest {
        camera_id: saved.id.clone(),
        source_url: open.url(),
        timeout,
        ..Default::default()
    };
    let r = probe(&admin, elsewhere).await;
    assert_eq!(r.result, pb::ConnectionTestResult::Ok as i32, "the open camera needs no password: {r:?}");
    // Outside the camera networks: refused before any connection, naming the field.
    let e = admin
        .cameras()
        .test_camera_connection(pb::TestCameraConnectionRequest {
            source_url: "rtsp://192.168.1.10/stream".into(),
            timeout,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("outside the camera networks"), "{}", e.message());
}

#[tokio::test]
async fn loopback_is_not_a_camera_network_by_default() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for url in ["rtsp://127.0.0.1:5432/x", "rtsp://localhost/x", "rtsp://[::1]/x"] {
        let e = admin
            .cameras()
            .test_camera_connection(pb::TestCameraConnectionRequest { source_url: url.into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{url}");
        assert!(e.message().contains("outside the camera networks"), "{url}: {}", e.message());
        let e = admin
            .cameras()
            .create_camera(pb::CreateCameraRequest {
                camera: Some(pb::Camera { source_url: url.into(), ..camera("Sneaky") }),
                password: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{url}");
        assert!(e.message().contains("camera.source_url"), "{url}: {}", e.message());
    }
}

fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: 1_700_000_000 + seconds, nanos: 0 }
}

/// A request of camera-scoped RPC `rpc` aimed at camera `b` (or, for a listing, at every camera), and
/// whether it lists. `None`: no fixture; an RPC that answers without one fails the walk.
fn aimed_at(
    rpc: &str,
    b: &pb::Camera,
    user: &pb::User,
    b_hold: &str,
    b_export: &str,
    b_alert: &str,
    b_binding: &pb::AdapterBinding,
) -> Option<(Vec<u8>, bool)> {
    use prost::Message;
    let id = b.id.clone();
    let (bytes, listing) = match rpc {
        "CameraService.GetCamera" => (pb::GetCameraRequest { camera_id: id }.encode_to_vec(), false),
        "CameraService.ListCameras" => (pb::ListCamerasRequest::default().encode_to_vec(), true),
        "CameraService.UpdateCamera" => (
            pb::UpdateCameraRequest {
                camera: Some(pb::Camera { description: "mine now".into(), etag: String::new(), ..b.clone() }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
            }
            .encode_to_vec(),
            false,
        ),
        "CameraService.SetCameraSource" => (
            pb::SetCameraSourceRequest { camera_id: id, source_url: "rtsp://10.9.9.9/x".into(), ..Default::default() }
                .encode_to_vec(),
            false,
        ),
        "CameraService.DeleteCamera" => {
            (pb::DeleteCameraRequest { camera_id: id, ..Default::default() }.encode_to_vec(), false)
        }
        "CameraService.GetCameraStatus" => (pb::GetCameraStatusRequest { camera_id: id }.encode_to_vec(), false),
        "CameraService.ListCameraStatuses" => (pb::ListCameraStatusesRequest::default().encode_to_vec(), true),
        "CameraService.CreateViewerToken" => {
            (pb::CreateViewerTokenRequest { camera_id: id, ttl: None }.encode_to_vec(), false)
        }
        "CameraService.GrantCameraAccess" => (
            pb::GrantCameraAccessRequest {
                camera_id: id,
                user_id: user.id.clone(),
                permissions: vec!["camera.read".into()],
                expire_time: None,
            }
            .encode_to_vec(),
            false,
        ),
        "CameraService.RevokeCameraAccess" => {
            (pb::RevokeCameraAccessRequest { camera_id: id, user_id: user.id.clone() }.encode_to_vec(), false)
        }
        "CameraService.ListCameraGrants" => (pb::ListCameraGrantsRequest::default().encode_to_vec(), true),
        "RecordingService.CreateHold" => {
            let hold = pb::Hold {
                camera_ids: vec![id],
                start_time: Some(ts(0)),
                case_id: "C-1".into(),
                reason: "walk".into(),
                ..Default::default()
            };
            (pb::CreateHoldRequest { hold: Some(hold) }.encode_to_vec(), false)
        }
        "RecordingService.GetHold" => (pb::GetHoldRequest { hold_id: b_hold.into() }.encode_to_vec(), false),
        "RecordingService.ReleaseHold" => {
            (pb::ReleaseHoldRequest { hold_id: b_hold.into(), reason: "walk".into() }.encode_to_vec(), false)
        }
        "RecordingService.ListHolds" => (pb::ListHoldsRequest::default().encode_to_vec(), true),
        "RecordingService.CreatePlaybackToken" => {
            let duration = Some(prost_types::Duration { seconds: 60, nanos: 0 });
            (
                pb::CreatePlaybackTokenRequest {
                    camera_id: id,
                    start_time: Some(ts(0)),
                    duration,
                    ..Default::default()
                }
                .encode_to_vec(),
                false,
            )
        }
        "RecordingService.ExportClip" => {
            let (start_time, end_time) = (Some(ts(0)), Some(ts(60)));
            let reason = "walk".to_owned();
            (
                pb::ExportClipRequest { camera_id: id, start_time, end_time, reason, ..Default::default() }
                    .encode_to_vec(),
                false,
            )
        }
        "RecordingService.GetExport" => (pb::GetExportRequest { export_id: b_export.into() }.encode_to_vec(), false),
        "IdsService.ListIdsAlerts" => (pb::ListIdsAlertsRequest::default().encode_to_vec(), true),
        "IdsService.GetIdsAlert" => (pb::GetIdsAlertRequest { ids_alert_id: b_alert.into() }.encode_to_vec(), false),
        "RecordingService.DownloadExport" => {
            (pb::DownloadExportRequest { export_id: b_export.into(), offset: 0 }.encode_to_vec(), false)
        }
        "RecordingService.DeleteExport" => {
            (pb::DeleteExportRequest { export_id: b_export.into() }.encode_to_vec(), false)
        }
        "RecordingService.ListExports" => (pb::ListExportsRequest::default().encode_to_vec(), true),
        "RecordingService.ListSegments" => {
            (pb::ListSegmentsRequest { camera_id: id, ..Default::default() }.encode_to_vec(), false)
        }
        "RecordingService.GetTimeline" => {
            let (start_time, end_time) = (Some(ts(0)), Some(ts(3600)));
            (
                pb::GetTimelineRequest { camera_id: id, start_time, end_time, ..Default::default() }.encode_to_vec(),
                false,
            )
        }
        "EventService.WatchEvents" => {
            (pb::WatchEventsRequest { camera_ids: vec![id], ..Default::default() }.encode_to_vec(), false)
        }
        "EventService.GetEventSnapshot" => (
            pb::GetEventSnapshotRequest { camera_id: id, event_id: uuid::Uuid::new_v4().to_string() }.encode_to_vec(),
            false,
        ),
        // The stored history: camera A's creation is listed, nothing of B.
        "EventService.ListEvents" => (pb::ListEventsRequest::default().encode_to_vec(), true),
        "InferenceService.CreateAdapterBinding" => (
            pb::CreateAdapterBindingRequest {
                binding: Some(pb::AdapterBinding {
                    camera_id: id,
                    adapter_id: b_binding.adapter_id.clone(),
                    enabled: false,
                    task: "other".into(),
                    ..Default::default()
                }),
            }
            .encode_to_vec(),
            false,
        ),
        "InferenceService.GetAdapterBinding" => {
            (pb::GetAdapterBindingRequest { binding_id: b_binding.id.clone() }.encode_to_vec(), false)
        }
        "InferenceService.ListAdapterBindings" => (pb::ListAdapterBindingsRequest::default().encode_to_vec(), true),
        "InferenceService.UpdateAdapterBinding" => (
            pb::UpdateAdapterBindingRequest {
                binding: Some(pb::AdapterBinding { enabled: true, etag: String::new(), ..b_binding.clone() }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["enabled".into()] }),
            }
            .encode_to_vec(),
            false,
        ),
        "InferenceService.DeleteAdapterBinding" => (
            pb::DeleteAdapterBindingRequest { binding_id: b_binding.id.clone(), etag: String::new() }.encode_to_vec(),
            false,
        ),
        "InferenceService.RunInference" => (
            pb::RunInferenceRequest { camera_id: id, adapter_id: b_binding.adapter_id.clone(), ..Default::default() }
                .encode_to_vec(),
            false,
        ),
        "InferenceService.ListDetections" => (pb::ListDetectionsRequest::default().encode_to_vec(), true),
        _ => return None,
    };
    Some((bytes, listing))
}

#[tokio::test]
async fn every_camera_scoped_rpc_keeps_camera_b_from_a_user_granted_camera_a() {
    // One table over every camera-scoped RPC of the descriptor on purpose: a new one without a
    // request aimed at camera B fails here.
    use prost::Message;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let a = create(&admin, "A").await;
    let b = create(&admin, "B").await;
    let op = s.user(&admin, "olga", pb::Role::Operator).await;
    let who = op.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    let everything = ["camera.read", "camera.live", "camera.write", "recording.read", "recording.export"];
    grant(&admin, &a, &who, &everything, None).await.unwrap();
    // The same request aimed at A works (where the role allows it), so refusals below are about B.
    let on_a = op.cameras().get_camera(pb::GetCameraRequest { camera_id: a.id.clone() }).await;
    assert!(on_a.is_ok());
    // Evidence holds on each camera: B's must stay out of reach, A's shows in listings.
    let mut b_hold = String::new();
    for cam in [&a, &b] {
        let hold = pb::Hold {
            camera_ids: vec![cam.id.clone()],
            start_time: Some(ts(0)),
            case_id: format!("C-{}", cam.name),
            reason: "walk".into(),
            ..Default::default()
        };
        let created = admin.recordings().create_hold(pb::CreateHoldRequest { hold: Some(hold) }).await.unwrap();
        b_hold = created.into_inner().hold.unwrap().id;
    }
    // A hold naming both cameras names B: it stays out of their listings too.
    let joint = pb::Hold {
        camera_ids: vec![a.id.clone(), b.id.clone()],
        start_time: Some(ts(0)),
        case_id: "C-AB".into(),
        reason: "walk".into(),
        ..Default::default()
    };
    admin.recordings().create_hold(pb::CreateHoldRequest { hold: Some(joint) }).await.unwrap();
    // A finished export of each camera (as an export leaves it; made here without footage).
    let mut b_export = String::new();
    for cam in [&a, &b] {
        let row = opennvr_server::store::exports::ExportRow {
            id: uuid::Uuid::new_v4(),
            camera_id: cam.id.parse().unwrap(),
            start_time: chrono::Utc::now() - chrono::Duration::hours(1),
            end_time: chrono::Utc::now(),
            format: opennvr_server::domain::recording::ExportFormat::Mp4,
            state: opennvr_server::domain::recording::ExportState::Succeeded,
            reason: "walk".into(),
            case_id: String::new(),
            creator_user_id: None,
            created_at: chrono::Utc::now(),
            finished_at: Some(chrono::Utc::now()),
            expire_at: Some(chrono::Utc::now() + chrono::Duration::days(1)),
            size_bytes: 10,
            sha256: None,
            error: String::new(),
            media_duration_us: 0,
            file_name: "walk.mp4".into(),
        };
        b_export = row.id.to_string();
        let insert = row.clone();
        s.store.run(move |c| insert.insert(c)).await.unwrap();
    }
    // An IDS alert about each camera (as the EVE reader stores them).
    let mut b_alert = String::new();
    for cam in [&a, &b] {
        let line = crate::ids::alert_line("2026-11-25T03:12:19.097374+0000", "10.0.0.23", 2027865);
        let opennvr_server::domain::ids::EveLine::Alert(alert) = opennvr_server::domain::ids::parse_line(&line) else {
            panic!("fixture is an alert")
        };
        let row = opennvr_server::store::ids::IdsAlertRow::of(
            uuid::Uuid::new_v4(),
            &alert,
            &[cam.id.parse().unwrap()],
            chrono::Utc::now(),
        );
        b_alert = row.id.to_string();
        s.store.run(move |c| opennvr_server::store::ids::IdsAlertRow::insert_all(c, &[row])).await.unwrap();
    }
    // A (disabled) binding of each camera to an adapter, and a detection in each.
    let adapter = crate::inference::register(&admin, "walk adapter", "http://127.0.0.1:9", 500, 1, 0).await;
    let mut b_binding = pb::AdapterBinding::default();
    for cam in [&a, &b] {
        b_binding = crate::routing::bind(&admin, cam, &adapter, 1000, &[], 0.0).await.unwrap();
        let row = opennvr_server::store::inference::DetectionRow {
            id: uuid::Uuid::new_v4(),
            camera_id: cam.id.parse().unwrap(),
            adapter_id: adapter.id.parse().unwrap(),
            binding_id: Some(b_binding.id.parse().unwrap()),
            task: String::new(),
            frame_time: chrono::Utc::now(),
            label: "person".into(),
            confidence: 0.9,
            box_x: 0.1,
            box_y: 0.1,
            box_width: 0.2,
            box_height: 0.2,
            attributes: serde_json::json!({}),
            track_id: String::new(),
            created_at: chrono::Utc::now(),
        };
        s.store.run(move |c| opennvr_server::store::inference::DetectionRow::insert_all(c, &[row])).await.unwrap();
    }
    let set = prost_types::FileDescriptorSet::decode(opennvr_proto::FILE_DESCRIPTOR_SET).unwrap();
    let table =
        opennvr_server::api::policy::PolicyTable::from_descriptor(opennvr_proto::FILE_DESCRIPTOR_SET, "opennvr.v1")
            .unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for f in set.file.iter().filter(|f| f.package() == "opennvr.v1") {
        for svc in &f.service {
            for m in &svc.method {
                let path = format!("/opennvr.v1.{}/{}", svc.name(), m.name());
                let Some(policy) = table.get(&path).filter(|p| p.camera_scoped) else { continue };
                let rpc = format!("{}.{}", svc.name(), m.name());
                let (body, listing) =
                    aimed_at(&rpc, &b, &who, &b_hold, &b_export, &b_alert, &b_binding).unwrap_or_default();
                let answer = crate::harness::raw_call(&op, &path, body, m.server_streaming()).await;
                // The operator role itself lacks the permission: refused whatever the camera, which
                // says nothing about B (the permission matrix test covers these).
                let role_lacks = matches!(policy.access, Access::Permission(p) if !Role::Operator.allows(p));
                match (&answer, listing) {
                    (Err(st), _) if role_lacks && st.code() == Code::PermissionDenied => continue,
                    // Not built yet: nothing is reached. Once it answers otherwise it needs a fixture.
                    (Err(st), _) if st.code() == Code::Unimplemented => continue,
                    _ if aimed_at(&rpc, &b, &who, &b_hold, &b_export, &b_alert, &b_binding).is_none() => {
                        problems.push(format!("{rpc}: answers ({answer:?}) but has no fixture in aimed_at()"))
                    }
                    // Aimed at B: B does not exist for them (not even "exists, but you may not").
                    (Err(st), false) if st.code() == Code::NotFound => {}
                    // An alert linked to B is still theirs to read (linking never hides an alert),
                    // but it does not name B.
                    (Ok(messages), false) if rpc == "IdsService.GetIdsAlert" => {
                        if messages.concat().windows(b.id.len()).any(|w| w == b.id.as_bytes()) {
                            problems.push(format!("{rpc}: the alert names camera B"));
                        }
                    }
                    (Ok(messages), true) => {
                        let bytes: Vec<u8> = messages.concat();
                        if bytes.windows(b.id.len()).any(|w| w == b.id.as_bytes()) {
                            problems.push(format!(
                                "{rpc}: the listing leaks camera B: {:?}",
                                String::from_utf8_lossy(&bytes)
                            ));
                        }
                        if !bytes.windows(a.id.len()).any(|w| w == a.id.as_bytes()) {
                            problems.push(format!("{rpc}: the listing does not even show camera A"));
                        }
                    }
                    other => problems.push(format!("{rpc}: aimed at B, answered {other:?}")),
                }
                checked += 1;
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 9, "checked {checked} camera-scoped RPCs against B");
    // Testing the connection of a saved camera uses its stored password: B's is out of reach too.
    let e = op
        .cameras()
        .test_camera_connection(pb::TestCameraConnectionRequest {
            camera_id: b.id.clone(),
            source_url: b.source_url.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    // And B is untouched.
    let still = admin.cameras().get_camera(pb::GetCameraRequest { camera_id: b.id.clone() }).await.unwrap();
    assert_eq!(still.into_inner().camera.unwrap(), b);
}

#[tokio::test]
async fn a_stored_value_outside_its_set_is_an_error_not_a_default() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Dock North").await;
    let mut su = s.db.superuser();
    use diesel::RunQueryDsl;
    // Only a hand edit past the CHECK constraint can store such a value.
    diesel::sql_query("ALTER TABLE cameras DROP CONSTRAINT cameras_transport_check").execute(&mut su).unwrap();
    diesel::sql_query(format!("UPDATE cameras SET transport = 'carrier-pigeon' WHERE id = '{}'", cam.id))
        .execute(&mut su)
        .unwrap();
    let read = admin.cameras().get_camera(pb::GetCameraRequest { camera_id: cam.id.clone() }).await.unwrap_err();
    assert_eq!(read.code(), Code::Internal, "{read:?}");
    assert!(!read.message().contains("carrier-pigeon"), "the stored value stays in the server's log");
    let listed = admin.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap_err();
    assert_eq!(listed.code(), Code::Internal, "a listing does not show the camera as another transport");
}

#[tokio::test]
async fn camera_addresses_must_lie_in_the_camera_networks_and_are_on_record() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let outside = pb::Camera { ip_addresses: vec!["10.0.0.7".into(), "8.8.8.8".into()], ..camera("Gate") };
    let e = admin
        .cameras()
        .create_camera(pb::CreateCameraRequest { camera: Some(outside), password: String::new() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("camera.ip_addresses") && e.message().contains("8.8.8.8"), "{}", e.message());
    let inside = pb::Camera { ip_addresses: vec!["10.0.0.7".into()], ..camera("Gate") };
    let cam = admin
        .cameras()
        .create_camera(pb::CreateCameraRequest { camera: Some(inside), password: String::new() })
        .await
        .unwrap()
        .into_inner()
        .camera
        .unwrap();
    // The cloud metadata address is not a camera's, nor may it be claimed by an update.
    let e = admin
        .cameras()
        .update_camera(pb::UpdateCameraRequest {
            camera: Some(pb::Camera { ip_addresses: vec!["169.254.169.254".into()], ..cam.clone() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["ip_addresses".into()] }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    admin
        .cameras()
        .update_camera(pb::UpdateCameraRequest {
            camera: Some(pb::Camera { ip_addresses: vec!["192.168.4.20".into()], ..cam.clone() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["ip_addresses".into()] }),
        })
        .await
        .unwrap();
    // Entries are linked into the chain in the background: wait for them (bounded).
    let mut conn = s.db.superuser();
    let mut on_record = |action: &str, addresses: &str| {
        count(
            &mut conn,
            format!(
                "SELECT count(*) AS n FROM audit_events WHERE action = '{action}' AND result = 'success' \
                 AND details::jsonb->>'ip_addresses' = '{addresses}'"
            ),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (on_record("camera.create", "10.0.0.7"), on_record("camera.update", "192.168.4.20")) != (1, 1) {
        assert!(std::time::Instant::now() < deadline, "the addresses set are not in the audit trail");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
