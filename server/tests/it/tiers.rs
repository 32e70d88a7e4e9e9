//! Event footage: RECORDING_MODE_EVENTS removes exactly the segments outside [event − pre-roll,
//! event + post-roll] once no later event could need them, never held ones; retention tiers keep
//! event footage longer and remove footage outside events first; storage figures per tier.
use crate::media::eventually;
use crate::recordings::Recorder;
use chrono::{DateTime, Duration, Utc};
use opennvr_sdk::pb;
use opennvr_server::clock::Clock;
use opennvr_server::domain::event::{EventKind, SiteEvent};
use opennvr_server::domain::motion::{Episode, FrameBox};

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn secs(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: s, nanos: 0 })
}

/// A detection event of `cam` at `at` (no detection inside: only its time counts here).
fn detection(cam: &pb::Camera, at: DateTime<Utc>) -> SiteEvent {
    let kind = EventKind::Detections {
        adapter_id: uuid::Uuid::new_v4(),
        binding_id: uuid::Uuid::new_v4(),
        frame_time: at,
        detections: Vec::new(),
    };
    SiteEvent::new(at, Some(cam.id.parse().unwrap()), kind)
}

/// A motion episode of `cam` from `from` to `to`.
fn motion(cam: &pb::Camera, from: DateTime<Utc>, to: DateTime<Utc>) -> SiteEvent {
    let ep = Episode { start: from, end: to, peak_area: 0.1, peak_time: from, peak_box: FrameBox::default() };
    SiteEvent::new(from, Some(cam.id.parse().unwrap()), EventKind::Motion(ep))
}

/// An IDS alert at `at` naming `cameras`, stored under the first (as alerts are).
fn ids_alert(cameras: &[&pb::Camera], at: DateTime<Utc>) -> SiteEvent {
    let line = crate::ids::alert_line(&at.format("%Y-%m-%dT%H:%M:%S%.6f+0000").to_string(), "10.0.0.23", 7);
    let opennvr_server::domain::ids::EveLine::Alert(alert) = opennvr_server::domain::ids::parse_line(&line) else {
        panic!("a test alert line")
    };
    let ids: Vec<uuid::Uuid> = cameras.iter().map(|c| c.id.parse().unwrap()).collect();
    let kind = EventKind::IdsAlert { id: uuid::Uuid::new_v4(), alert, cameras: ids.clone(), ingest_time: at };
    SiteEvent::new(at, ids.first().copied(), kind)
}

/// Publishes `events` and waits until the history holds them all.
async fn stored(r: &Recorder, admin: &opennvr_sdk::Client, cam: &pb::Camera, events: Vec<SiteEvent>) {
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    for e in events {
        r.s.events.publish(e);
    }
    let req = pb::ListEventsRequest { camera_ids: vec![cam.id.clone()], page_size: 1000, ..Default::default() };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = admin.events().list_events(req.clone()).await.unwrap().into_inner().events;
        if ids.iter().all(|id| listed.iter().any(|e| &e.id == id)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "events not stored within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn listed(c: &opennvr_sdk::Client, cam: &pb::Camera) -> Vec<DateTime<Utc>> {
    let req = pb::ListSegmentsRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(DateTime::from_timestamp(0, 0).unwrap())),
        end_time: Some(ts(Utc::now() + Duration::days(1))),
        page_size: 1000,
        ..Default::default()
    };
    let segs = c.recordings().list_segments(req).await.unwrap().into_inner().segments;
    segs.iter()
        .map(|s| {
            let t = s.start_time.as_ref().unwrap();
            DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
        })
        .collect()
}

async fn enforce(c: &opennvr_sdk::Client) -> pb::EnforceRetentionResponse {
    c.recordings().enforce_retention(pb::EnforceRetentionRequest {}).await.unwrap().into_inner()
}

async fn set_policy(
    c: &opennvr_sdk::Client,
    cam: &pb::Camera,
    policy: pb::RetentionPolicy,
    mask: &[&str],
) -> Result<pb::RetentionPolicy, tonic::Status> {
    let request = pb::UpdateRetentionPolicyRequest {
        policy: Some(pb::RetentionPolicy { camera_id: cam.id.clone(), ..policy }),
        update_mask: Some(prost_types::FieldMask { paths: mask.iter().map(|p| p.to_string()).collect() }),
    };
    c.recordings().update_retention_policy(request).await.map(|r| r.into_inner().policy.unwrap())
}

async fn camera_storage(c: &opennvr_sdk::Client, cam: &pb::Camera) -> pb::CameraStorage {
    let stats = c.recordings().get_storage_stats(pb::GetStorageStatsRequest::default()).await.unwrap().into_inner();
    stats.cameras.into_iter().find(|s| s.camera_id == cam.id).unwrap()
}

fn pick(starts: &[DateTime<Utc>], which: &[usize]) -> Vec<DateTime<Utc>> {
    which.iter().map(|i| starts[*i]).collect()
}

#[tokio::test]
async fn events_mode_removes_exactly_the_footage_outside_the_rolls_of_events_once_they_passed() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    // 20 one-minute segments, the last ending two minutes ago.
    let t0 = micros(r.s.clock.now() - Duration::minutes(22));
    let (gate, starts) = r.recorded(&admin, "Gate", t0, 20).await;
    let (roof, roof_starts) = r.recorded(&admin, "Roof", t0, 20).await;
    let update = pb::UpdateCameraRequest {
        camera: Some(pb::Camera {
            recording_mode: pb::RecordingMode::Events as i32,
            event_pre_roll: secs(30),
            event_post_roll: secs(90),
            etag: String::new(),
            ..gate.clone()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["recording_mode".into(), "event_pre_roll".into(), "event_post_roll".into()],
        }),
    };
    admin.cameras().update_camera(update).await.unwrap();
    let at = |m: i64, s: i64| t0 + Duration::minutes(m) + Duration::seconds(s);
    // A detection at 5:10 needs 4:40 to 6:40 (segments 4, 5, 6); an episode from 12:30 to 14:20
    // needs 12:00 to 15:50 (segments 12 to 15: the one ending at 12:00 does not reach in). The
    // camera going offline at 9:00 is no footage event; the roof's detection is not the gate's.
    let offline = SiteEvent::new(
        at(9, 0),
        Some(gate.id.parse().unwrap()),
        EventKind::CameraState {
            state: opennvr_server::domain::camera::CameraState::Offline,
            previous: opennvr_server::domain::camera::CameraState::Online,
            error: String::new(),
        },
    );
    stored(&r, &admin, &gate, vec![detection(&gate, at(5, 10)), motion(&gate, at(12, 30), at(14, 20)), offline]).await;
    // An IDS alert at 8:30 naming the roof and the gate is stored under the roof, and counts for
    // the gate too: 8:00 to 10:00 (segments 8 and 9).
    stored(&r, &admin, &roof, vec![detection(&roof, at(9, 30)), ids_alert(&[&roof, &gate], at(8, 30))]).await;
    // Segment 1 is evidence.
    let hold = pb::Hold {
        camera_ids: vec![gate.id.clone()],
        start_time: Some(ts(starts[1])),
        end_time: Some(ts(starts[2])),
        case_id: "CASE-9".into(),
        reason: "tailgating".into(),
        ..Default::default()
    };
    admin.recordings().create_hold(pb::CreateHoldRequest { hold: Some(hold) }).await.unwrap();
    let pass = enforce(&admin).await;
    // Segment 19 ended 2 minutes ago: it is judged only once both rolls (the longer, 90 s) and the
    // settling minute for events stored a little late have passed since its end, so it stays.
    assert_eq!(listed(&admin, &gate).await, pick(&starts, &[1, 4, 5, 6, 8, 9, 12, 13, 14, 15, 19]), "{pass:?}");
    assert_eq!(pass.segment_count, 9, "{pass:?}");
    // A continuous camera keeps everything.
    assert_eq!(listed(&admin, &roof).await, roof_starts);
    // Storage per tier: the nine segments of events, and the rest (the held one, the newest).
    let figures = camera_storage(&admin, &gate).await;
    assert_eq!((figures.event_bytes, figures.continuous_bytes), (9000, 2000));
    // A minute later the newest is judged: it overlaps no event and goes.
    r.s.clock.advance(Duration::minutes(1));
    enforce(&admin).await;
    assert_eq!(listed(&admin, &gate).await, pick(&starts, &[1, 4, 5, 6, 8, 9, 12, 13, 14, 15]));
    // The deleted files went through MediaMTX.
    let path = crate::media::path_of(&gate);
    let utc = chrono::FixedOffset::east_opt(0).unwrap();
    assert!(!std::path::Path::new(&r.file(&path, starts[0], utc)).exists());
    assert!(std::path::Path::new(&r.file(&path, starts[4], utc)).exists());
    eventually("nothing else deleted", || std::path::Path::new(&r.file(&path, starts[1], utc)).exists()).await;
}

#[tokio::test]
async fn events_mode_keeps_footage_while_a_motion_episode_is_under_way() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::minutes(12));
    let (gate, starts) = r.recorded(&admin, "Gate", t0, 10).await;
    let update = pb::UpdateCameraRequest {
        camera: Some(pb::Camera {
            recording_mode: pb::RecordingMode::Events as i32,
            etag: String::new(),
            ..gate.clone()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["recording_mode".into()] }),
    };
    admin.cameras().update_camera(update).await.unwrap();
    // An episode began at 4:30 and has not ended (its event is stored only at its end).
    use diesel::RunQueryDsl;
    let since = t0 + Duration::minutes(4) + Duration::seconds(30);
    diesel::sql_query(format!(
        "INSERT INTO motion_open (camera_id, since, seen) VALUES ('{}', '{}', '{}')",
        gate.id,
        since.to_rfc3339(),
        since.to_rfc3339()
    ))
    .execute(&mut r.s.db.superuser())
    .unwrap();
    enforce(&admin).await;
    // What ended more than the pre-roll (10 s by default) before the episode began goes; from
    // segment 4 on, everything stays.
    assert_eq!(listed(&admin, &gate).await, pick(&starts, &[4, 5, 6, 7, 8, 9]));
}

#[tokio::test]
async fn tiers_remove_footage_outside_events_first_and_keep_event_footage_longer() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::hours(3));
    let (yard, starts) = r.recorded(&admin, "Yard", t0, 10).await;
    let update = pb::UpdateCameraRequest {
        camera: Some(pb::Camera {
            event_pre_roll: secs(0),
            event_post_roll: secs(20),
            etag: String::new(),
            ..yard.clone()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["event_pre_roll".into(), "event_post_roll".into()] }),
    };
    admin.cameras().update_camera(update).await.unwrap();
    // Events in segments 0 and 7 only.
    let at = |m: i64, s: i64| t0 + Duration::minutes(m) + Duration::seconds(s);
    stored(&r, &admin, &yard, vec![detection(&yard, at(0, 10)), detection(&yard, at(7, 10))]).await;
    // Event footage kept two hours with no age limit for the rest: nothing goes (event footage is
    // kept at least as long as the rest).
    let only_events = pb::RetentionPolicy { event_max_age: secs(2 * 3600), ..Default::default() };
    set_policy(&admin, &yard, only_events, &["event_max_age"]).await.unwrap();
    assert_eq!(enforce(&admin).await.segment_count, 0);
    assert_eq!(listed(&admin, &yard).await, starts);
    // Over the size limit by three segments: the oldest three outside events go (1, 2, 3), not
    // the older event footage (0).
    set_policy(&admin, &yard, pb::RetentionPolicy { max_bytes: Some(7000), ..Default::default() }, &["max_bytes"])
        .await
        .unwrap();
    let pass = enforce(&admin).await;
    assert_eq!(pass.segment_count, 3, "{pass:?}");
    assert_eq!(listed(&admin, &yard).await, pick(&starts, &[0, 4, 5, 6, 7, 8, 9]));
    let figures = camera_storage(&admin, &yard).await;
    assert_eq!((figures.event_bytes, figures.continuous_bytes), (2000, 5000));
    // Footage outside events is kept an hour, event footage five: everything is three hours old,
    // so only the event footage stays.
    let both = pb::RetentionPolicy { max_age: secs(3600), event_max_age: secs(5 * 3600), ..Default::default() };
    let policy = set_policy(&admin, &yard, both, &["max_age", "event_max_age"]).await.unwrap();
    assert_eq!(policy.event_max_age, secs(5 * 3600));
    enforce(&admin).await;
    assert_eq!(listed(&admin, &yard).await, pick(&starts, &[0, 7]));
    // Event footage kept shorter than the rest is refused, naming the field; nothing changed.
    let short = pb::RetentionPolicy { event_max_age: secs(60), ..Default::default() };
    let e = set_policy(&admin, &yard, short, &["event_max_age"]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("policy.event_max_age"), "{e:?}");
    let got = admin
        .recordings()
        .get_retention_policy(pb::GetRetentionPolicyRequest { camera_id: yard.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.policy.unwrap().event_max_age, secs(5 * 3600));
    // Against the site default a camera inherits too: with footage kept 10 hours site-wide, a
    // camera without its own max_age cannot keep its event footage only 2.
    let lane = crate::cameras::create(&admin, "Lane").await;
    let site = pb::RetentionPolicy { max_age: secs(10 * 3600), ..Default::default() };
    let request = pb::UpdateRetentionPolicyRequest {
        policy: Some(site),
        update_mask: Some(prost_types::FieldMask { paths: vec!["max_age".into()] }),
    };
    admin.recordings().update_retention_policy(request).await.unwrap();
    let short = pb::RetentionPolicy { event_max_age: secs(2 * 3600), ..Default::default() };
    let e = set_policy(&admin, &lane, short, &["event_max_age"]).await.unwrap_err();
    assert!(e.message().contains("policy.event_max_age"), "{e:?}");
    // Kept two hours only, the three-hour-old event footage goes too.
    let two = pb::RetentionPolicy { event_max_age: secs(2 * 3600), ..Default::default() };
    set_policy(&admin, &yard, two, &["event_max_age"]).await.unwrap();
    enforce(&admin).await;
    assert!(listed(&admin, &yard).await.is_empty());
}

#[tokio::test]
async fn only_the_event_types_a_camera_names_mark_its_footage() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::minutes(22));
    let (pier, starts) = r.recorded(&admin, "Pier", t0, 10).await;
    let update = pb::UpdateCameraRequest {
        camera: Some(pb::Camera {
            recording_mode: pb::RecordingMode::Events as i32,
            event_pre_roll: secs(0),
            event_post_roll: secs(20),
            recording_event_types: vec![pb::EventType::IdsAlert as i32],
            etag: String::new(),
            ..pier.clone()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![
                "recording_mode".into(),
                "event_pre_roll".into(),
                "event_post_roll".into(),
                "recording_event_types".into(),
            ],
        }),
    };
    let updated = admin.cameras().update_camera(update).await.unwrap().into_inner().camera.unwrap();
    assert_eq!(updated.recording_event_types, vec![pb::EventType::IdsAlert as i32]);
    let at = |m: i64, s: i64| t0 + Duration::minutes(m) + Duration::seconds(s);
    // A detection in segment 2 and a motion episode in segment 3 do not count for this camera; an
    // IDS alert in segment 5 does.
    let events = vec![detection(&pier, at(2, 10)), motion(&pier, at(3, 10), at(3, 30)), ids_alert(&[&pier], at(5, 10))];
    stored(&r, &admin, &pier, events).await;
    enforce(&admin).await;
    assert_eq!(listed(&admin, &pier).await, pick(&starts, &[5]));
}
