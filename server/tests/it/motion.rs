//! Built-in motion detection on real video: GStreamer test cameras whose scene changes at known times
//! (a still black frame, then a moving ball, then still again) read by the server's supervised
//! `ffmpeg`; one MOTION event per episode at those times and none on a still camera; a motion-gated
//! binding's adapter gets frames only during the episode; snapshots of episodes and detection tracks
//! are served only to who may see the camera's footage (and its detections).
use crate::harness::{TestDb, TestServer, free_port, test_options};
use crate::inference::{TestAdapter, register};
use crate::rtsp::RtspCamera;
use chrono::{DateTime, Utc};
use opennvr_sdk::pb;
use opennvr_server::clock::{Clock, ManualClock};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Moves `clock` with real time from now on (frames are stamped with the server's clock).
fn follow_real_time(clock: &ManualClock) -> tokio::task::JoinHandle<()> {
    let clock = clock.clone();
    tokio::spawn(async move {
        let (c0, r0) = (clock.now(), std::time::Instant::now());
        loop {
            let target = c0 + chrono::Duration::from_std(r0.elapsed()).unwrap();
            let now = clock.now();
            if target > now {
                clock.advance(target - now);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

fn ms(ms: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 })
}

/// Motion settings for the test pattern: two frames a second, a small ball counts.
fn motion() -> pb::MotionSettings {
    pb::MotionSettings {
        frame_interval: ms(500),
        min_area: 0.002,
        start_frames: 2,
        end_quiet: ms(2000),
        ..Default::default()
    }
}

async fn create_with_motion(c: &opennvr_sdk::Client, name: &str) -> pb::Camera {
    let camera = pb::Camera { motion: Some(motion()), ..crate::cameras::camera(name) };
    let req = pb::CreateCameraRequest { camera: Some(camera), password: crate::cameras::CAMERA_PASSWORD.into() };
    c.cameras().create_camera(req).await.unwrap().into_inner().camera.unwrap()
}

fn time_of(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().unwrap();
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

async fn events_of(c: &opennvr_sdk::Client, cam: &pb::Camera, ty: pb::EventType) -> Vec<pb::Event> {
    let req = pb::ListEventsRequest {
        camera_ids: vec![cam.id.clone()],
        types: vec![ty as i32],
        page_size: 1000,
        ..Default::default()
    };
    c.events().list_events(req).await.unwrap().into_inner().events
}

fn snapshot_of(cam: &pb::Camera, e: &pb::Event) -> pb::GetEventSnapshotRequest {
    pb::GetEventSnapshotRequest { camera_id: cam.id.clone(), event_id: e.id.clone() }
}

#[tokio::test]
async fn motion_episodes_come_at_the_scene_changes_gate_an_adapter_and_keep_a_snapshot() {
    // One scenario on purpose: real cameras, restreams and supervised ffmpegs take seconds to start.
    let db = TestDb::new();
    let port = free_port();
    let mut o = test_options(&db);
    o.mediamtx_internal_rtsp_url = Some(format!("rtsp://127.0.0.1:{port}"));
    let s = TestServer::start_with(db, o).await;
    let _clock = follow_real_time(&s.clock);
    let admin = s.admin().await;
    let dock = create_with_motion(&admin, "dock").await;
    let hall = create_with_motion(&admin, "hall").await;
    assert_eq!(dock.motion.as_ref().map(|m| m.min_area), Some(0.002));
    // An adapter bound to the dock, gated by motion.
    let people = TestAdapter::start().await;
    let a = register(&admin, "people", &people.url, 2000, 2, 2).await;
    let binding = pb::AdapterBinding {
        camera_id: dock.id.clone(),
        adapter_id: a.id.clone(),
        frame_interval: ms(250),
        enabled: true,
        motion_gated: true,
        ..Default::default()
    };
    let b = admin
        .inference()
        .create_adapter_binding(pb::CreateAdapterBindingRequest { binding: Some(binding) })
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert!(b.motion_gated);
    let mut watch = admin
        .events()
        .watch_events(pb::WatchEventsRequest { types: vec![pb::EventType::Motion as i32], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    // The scenes: the dock is still, a ball moves from 10 s to 20 s, then still again; the hall
    // stays still.
    let path = |c: &pb::Camera| format!("/{}", opennvr_server::domain::camera::path_name(c.id.parse().unwrap()));
    let moving: &[(&str, f64)] = &[("black", 0.0), ("ball", 10.0), ("black", 20.0)];
    let still: &[(&str, f64)] = &[("black", 0.0)];
    let scene_start = s.clock_now();
    let _cameras = RtspCamera::scenes(port, &[(&path(&dock), moving), (&path(&hall), still)]);
    let at = |secs: f64| scene_start + chrono::Duration::milliseconds((secs * 1000.0) as i64);
    // Still until the ball: the gated adapter got nothing.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(people.infers.load(Ordering::SeqCst), 0, "frames went to a gated adapter on a still scene");
    // While the ball moves the episode is noted as under way (retention keeps its footage), and
    // the note goes when its event is stored.
    let open = |camera: &str| {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let q = format!("SELECT count(*) AS n FROM motion_open WHERE camera_id = '{camera}'");
        diesel::sql_query(q).get_result::<N>(&mut s.db.superuser()).unwrap().n
    };
    // Polled: the note stands from the episode's start to its event, seconds that a busy machine
    // may shift in wall-clock time (the episode's own times come from the frames).
    let noted = async {
        while open(&dock.id) != 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(25), noted).await.expect("no episode noted as under way");
    // The episode is announced when it ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let event = loop {
        let msg = tokio::time::timeout_at(deadline, watch.message()).await.expect("a motion event within 40 s");
        if let Some(pb::watch_events_response::Kind::Event(e)) = msg.unwrap().and_then(|m| m.kind) {
            break e;
        }
    };
    assert_eq!(event.camera_id, dock.id);
    let Some(pb::event::Payload::Motion(ep)) = event.payload.clone() else { panic!("not a motion episode") };
    let (start, end) = (time_of(&ep.start_time), time_of(&ep.end_time));
    // It began with the ball (one frame interval, the start count and the stream's delay late at
    // most) and ended when the ball left (its last moving frame is the switch back).
    assert!(start >= at(9.5) && start <= at(13.0), "start {start} against the ball at {}", at(10.0));
    assert!(end >= at(19.5) && end <= at(23.0), "end {end} against the ball gone at {}", at(20.0));
    assert_eq!(time_of(&event.time), start);
    assert_eq!(open(&dock.id), 0, "the episode is still noted as under way after its event");
    assert!(ep.peak_area >= 0.002 && ep.peak_area <= 1.0, "{ep:?}");
    let peak = time_of(&ep.peak_time);
    assert!(peak >= start && peak <= end);
    // The adapter got frames during the episode only, and stops getting them after it.
    let during = people.infers.load(Ordering::SeqCst);
    assert!(during > 0, "the gated adapter got no frame during motion");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = people.infers.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(people.infers.load(Ordering::SeqCst), after, "frames still sent with no motion");
    let detections = admin
        .inference()
        .list_detections(pb::ListDetectionsRequest {
            camera_ids: vec![dock.id.clone()],
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .detections;
    assert!(!detections.is_empty());
    for d in &detections {
        let t = time_of(&d.frame_time);
        // Frames are sent from the episode's start (the frame that confirmed it) until it ends (the
        // quiet time after the last moving frame).
        assert!(t >= start && t <= end + chrono::Duration::seconds(3), "a detection at {t} outside {start}..{end}");
    }
    // The metrics count the work: frames analysed, the episode, and frames held back by the gate
    // (the still seconds before the ball).
    let metrics = s.scrape("/metrics", &admin).await;
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // Both detectors ran (the still hall's "no motion" is not for want of frames).
    for cam in [&dock, &hall] {
        let frames = value(&format!("opennvr_motion_frames_total{{camera_id=\"{}\"}}", cam.id));
        assert!(frames >= 20.0, "{} analysed {frames} frames", cam.name);
    }
    assert_eq!(value("opennvr_motion_episodes_total"), 1.0);
    assert!(value("opennvr_adapter_frames_gated_total") > 0.0);
    assert!(value("opennvr_motion_analysis_seconds_total") > 0.0);
    // Exactly one episode on the dock, none on the still hall.
    assert_eq!(events_of(&admin, &dock, pb::EventType::Motion).await.len(), 1);
    assert!(events_of(&admin, &hall, pb::EventType::Motion).await.is_empty(), "motion on a still camera");
    // The episode's snapshot: listed as there, the peak frame with its box.
    let listed = events_of(&admin, &dock, pb::EventType::Motion).await;
    assert!(listed[0].has_snapshot);
    let shot = admin.events().get_event_snapshot(snapshot_of(&dock, &event)).await.unwrap().into_inner();
    assert_eq!(&shot.jpeg[..2], &[0xff, 0xd8]);
    assert_eq!((shot.label.as_str(), shot.score), ("motion", ep.peak_area));
    assert_eq!(time_of(&shot.time), peak);
    let bx = shot.r#box.unwrap();
    assert!(bx.width > 0.0 && bx.height > 0.0 && bx.x + bx.width <= 1.0 + 1e-6 && bx.y + bx.height <= 1.0 + 1e-6);
    // The detection track's snapshot comes once the track ended (no sighting for 10 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let with_shot = loop {
        let found = events_of(&admin, &dock, pb::EventType::Detection).await;
        if let Some(e) = found.into_iter().find(|e| e.has_snapshot) {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "no detection snapshot within 30 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let shot = admin.events().get_event_snapshot(snapshot_of(&dock, &with_shot)).await.unwrap().into_inner();
    assert_eq!((shot.label.as_str(), shot.score), ("person", 0.9));
    assert_eq!(shot.r#box, Some(pb::BoundingBox { x: 0.1, y: 0.2, width: 0.3, height: 0.4 }));
    assert_eq!(&shot.jpeg[..2], &[0xff, 0xd8]);
    // Snapshots are footage: a viewer with recording.read on the dock sees the episode's, not the
    // detection's (no inference.read); one with camera.read only sees neither; the event is not
    // the hall's.
    let vic = s.user(&admin, "vic", pb::Role::Viewer).await;
    let val = s.user(&admin, "val", pb::Role::Viewer).await;
    for (c, perms) in [(&vic, &["camera.read", "recording.read"][..]), (&val, &["camera.read"][..])] {
        let who = c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
        crate::cameras::grant(&admin, &dock, &who, perms, None).await.unwrap();
    }
    assert!(vic.events().get_event_snapshot(snapshot_of(&dock, &event)).await.is_ok());
    let e = vic.events().get_event_snapshot(snapshot_of(&dock, &with_shot)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let e = val.events().get_event_snapshot(snapshot_of(&dock, &event)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = admin.events().get_event_snapshot(snapshot_of(&hall, &event)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    // nvrctl lists the episode and writes its snapshot, with the box beside it.
    let dir = crate::harness::temp_dir("snapshots");
    let dir_arg = dir.display().to_string();
    let args = ["events", "list", "--camera", "dock", "--type", "motion", "--snapshots", &dir_arg];
    let ids = crate::listings::nvrctl(&s, &admin, &args, "type").await;
    assert_eq!(ids, vec!["motion"]);
    let jpeg = std::fs::read(dir.join(format!("{}.jpg", event.id))).unwrap();
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{}.json", event.id))).unwrap()).unwrap();
    assert_eq!(meta["label"], "motion");
    assert!(meta["box"]["width"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn bad_motion_settings_are_refused_naming_the_field_and_nothing_is_created() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for (bad, field) in [
        (pb::MotionSettings { min_area: 2.0, ..motion() }, "camera.motion.min_area"),
        (pb::MotionSettings { frame_interval: ms(20), ..motion() }, "camera.motion.frame_interval"),
        (pb::MotionSettings { pixel_threshold: 300, ..motion() }, "camera.motion.pixel_threshold"),
    ] {
        let camera = pb::Camera { motion: Some(bad), ..crate::cameras::camera("gate") };
        let req = pb::CreateCameraRequest { camera: Some(camera), password: crate::cameras::CAMERA_PASSWORD.into() };
        let e = admin.cameras().create_camera(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(field), "{field}: {e:?}");
    }
    let camera = pb::Camera {
        recording_event_types: vec![pb::EventType::CameraOffline as i32],
        ..crate::cameras::camera("gate")
    };
    let req = pb::CreateCameraRequest { camera: Some(camera), password: crate::cameras::CAMERA_PASSWORD.into() };
    let e = admin.cameras().create_camera(req).await.unwrap_err();
    assert!(e.message().contains("camera.recording_event_types"), "{e:?}");
    let listed = admin.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap().into_inner();
    assert!(listed.cameras.is_empty());
}
