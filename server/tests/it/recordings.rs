//! The recording index: MediaMTX's segment hooks (accepted, idempotent, refused when wrong), what
//! the hooks missed recovered from MediaMTX's own listing, segment listings and timelines exact on
//! hand-built fixtures, and recordings kept from those who may only watch live.
use crate::cameras::{create, grant};
use crate::harness::{TestDb, TestServer, temp_dir, test_options};
use crate::media::{eventually, path_of, strict_emulator};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use mediamtx_emulator::Emulator;
use opennvr_sdk::pb;
use opennvr_server::clock::Clock;
use serde_json::json;
use std::path::PathBuf;

pub const HOOK_SECRET: &str = "a-hook-secret-of-at-least-thirty-two-chars";

/// A server with MediaMTX (the emulator), hooks on, recording into a fresh directory it can see,
/// reconciling the index every second.
pub struct Recorder {
    pub s: TestServer,
    pub emu: Emulator,
    /// The recordings volume (as MediaMTX and the server both see it here).
    pub dir: PathBuf,
}

impl Recorder {
    pub async fn start() -> Recorder {
        Recorder::start_with(|_| {}).await
    }

    /// [`Recorder::start`] with options changed by `adjust`. The new site's free-space floor is
    /// removed, so that what the tests delete does not depend on the free space of the machine.
    pub async fn start_with(adjust: impl FnOnce(&mut opennvr_server::config::Options)) -> Recorder {
        let r = Recorder::start_with_default_floor(adjust).await;
        use diesel::RunQueryDsl;
        diesel::sql_query("UPDATE site_retention SET min_free_bytes = NULL, min_free_percent = NULL")
            .execute(&mut r.s.db.superuser())
            .unwrap();
        r
    }

    /// [`Recorder::start_with`], keeping the free-space floor a new site starts with.
    pub async fn start_with_default_floor(adjust: impl FnOnce(&mut opennvr_server::config::Options)) -> Recorder {
        let dir = temp_dir("recordings");
        let secret_file = temp_dir("hook").join("hook.secret");
        std::fs::write(&secret_file, HOOK_SECRET).unwrap();
        let emu = strict_emulator().await;
        let db = TestDb::new();
        let mut options = test_options(&db);
        options.mediamtx_api_url = Some(emu.url());
        options.mediamtx_sync_secs = Some(1);
        options.hook_secret_file = Some(secret_file);
        options.mediamtx_record_path = Some(format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f%z", dir.display()));
        options.recordings_dir = Some(dir.clone());
        options.recording_reconcile_secs = Some(1);
        // The emulator serves MediaMTX's playback server too.
        options.mediamtx_playback_url = Some(emu.url());
        options.mediamtx_public_playback_url = Some(emu.url());
        adjust(&mut options);
        let s = TestServer::start_with(db, options).await;
        emu.set_jwks_url(&format!("{}/.well-known/jwks.json", s.url()));
        Recorder { s, emu, dir }
    }

    /// Sends a hook call as MediaMTX's hook client does; returns the HTTP status and body.
    pub async fn hook(&self, secret: &str, body: serde_json::Value) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(format!("{}/hooks/mediamtx", self.s.url()))
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The file MediaMTX would write for a segment of `path` starting at `start`, in the zone `zone`.
    pub fn file(&self, path: &str, start: DateTime<Utc>, zone: FixedOffset) -> String {
        let local = start.with_timezone(&zone);
        format!("{}/{path}/{}.mp4", self.dir.display(), local.format("%Y-%m-%d_%H-%M-%S-%6f%z"))
    }

    /// Hooks for a segment of `path`: opened, and closed after `secs` if given.
    pub async fn segment(&self, path: &str, start: DateTime<Utc>, secs: Option<f64>) -> (u16, String) {
        let file = self.file(path, start, FixedOffset::east_opt(0).unwrap());
        match secs {
            None => {
                self.hook(HOOK_SECRET, json!({"event": "segment-create", "path": path, "segment_path": file})).await
            }
            Some(d) => {
                let body = json!({"event": "segment-complete", "path": path, "segment_path": file, "segment_duration": format!("{d}")});
                self.hook(HOOK_SECRET, body).await
            }
        }
    }
}

/// `t` to the microsecond (segment names carry microseconds).
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn time_of(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().unwrap();
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

pub async fn segments(
    c: &opennvr_sdk::Client,
    cam: &pb::Camera,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<pb::Segment> {
    let request = pb::ListSegmentsRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(from)),
        end_time: Some(ts(to)),
        page_size: 1000,
        ..Default::default()
    };
    c.recordings().list_segments(request).await.unwrap().into_inner().segments
}

async fn timeline(
    c: &opennvr_sdk::Client,
    cam: &pb::Camera,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let request = pb::GetTimelineRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(from)),
        end_time: Some(ts(to)),
        bucket: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
        ..Default::default()
    };
    let runs = c.recordings().get_timeline(request).await.unwrap().into_inner().runs;
    runs.iter().map(|r| (time_of(&r.start_time), time_of(&r.end_time))).collect()
}

fn duration_secs(s: &pb::Segment) -> f64 {
    let d = s.duration.as_ref().unwrap();
    d.seconds as f64 + f64::from(d.nanos) / 1e9
}

#[tokio::test]
async fn segment_hooks_are_recorded_once_and_bad_ones_refused_with_a_reason() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let cam = create(&admin, "Dock").await;
    let path = path_of(&cam);
    let start = micros(r.s.clock.now() - Duration::minutes(5));
    // Opened: listed at once, in progress.
    assert_eq!(r.segment(&path, start, None).await.0, 202);
    let listed = segments(&admin, &cam, start - Duration::hours(1), start + Duration::hours(1)).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].in_progress);
    assert_eq!(time_of(&listed[0].start_time), start);
    // Closed: complete, with its duration; the same hooks again change nothing.
    assert_eq!(r.segment(&path, start, Some(60.02)).await.0, 202);
    assert_eq!(r.segment(&path, start, Some(60.02)).await.0, 202);
    assert_eq!(r.segment(&path, start, None).await.0, 202);
    let listed = segments(&admin, &cam, start - Duration::hours(1), start + Duration::hours(1)).await;
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].in_progress);
    assert!((duration_secs(&listed[0]) - 60.02).abs() < 1e-6, "{:?}", listed[0].duration);
    // A segment whose opening was lost arrives complete. Its start comes from the name whatever the
    // zone MediaMTX runs in: the same instant named in UTC+05:30.
    let later = start + Duration::seconds(61);
    let file = r.file(&path, later, FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
    let body = json!({"event": "segment-complete", "path": path, "segment_path": file, "segment_duration": "30"});
    assert_eq!(r.hook(HOOK_SECRET, body).await.0, 202);
    let listed = segments(&admin, &cam, start - Duration::hours(1), start + Duration::hours(1)).await;
    assert_eq!(listed.iter().map(|s| time_of(&s.start_time)).collect::<Vec<_>>(), vec![start, later]);
    // Refusals: each a 4xx with a reason, and nothing recorded.
    let good = r.file(&path, start + Duration::minutes(3), FixedOffset::east_opt(0).unwrap());
    let other_camera = format!("opennvr-{}", uuid::Uuid::new_v4().simple());
    let cases = [
        (HOOK_SECRET, json!({"event": "segment-create", "path": path}), 400, "segment_path"),
        (
            HOOK_SECRET,
            json!({"event": "segment-complete", "path": path, "segment_path": good}),
            400,
            "segment_duration",
        ),
        (
            HOOK_SECRET,
            json!({"event": "segment-complete", "path": path, "segment_path": good, "segment_duration": "soon"}),
            400,
            "soon",
        ),
        (
            HOOK_SECRET,
            json!({"event": "segment-complete", "path": path, "segment_path": good, "segment_duration": "-3"}),
            400,
            "-3",
        ),
        (
            HOOK_SECRET,
            json!({"event": "segment-create", "path": path, "segment_path": "/etc/passwd"}),
            400,
            "not a segment",
        ),
        (
            HOOK_SECRET,
            json!({"event": "segment-create", "path": path, "segment_path": good.replace(".mp4", ".ts")}),
            400,
            "not a segment",
        ),
        (
            HOOK_SECRET,
            json!({"event": "segment-create", "path": other_camera, "segment_path": good}),
            404,
            "not one of OpenNVR's cameras",
        ),
        (
            HOOK_SECRET,
            json!({"event": "segment-create", "path": "somebody-else", "segment_path": good}),
            404,
            "not one of OpenNVR's cameras",
        ),
        (
            HOOK_SECRET,
            json!({"event": "segment-create", "path": path, "segment_path": good, "extra": 1}),
            400,
            "unknown field",
        ),
        (HOOK_SECRET, json!({"event": "segment-exploded", "path": path}), 400, "unknown hook event"),
        ("not-the-secret", json!({"event": "segment-create", "path": path, "segment_path": good}), 401, "secret"),
    ];
    for (secret, body, status, reason) in cases {
        let (got, text) = r.hook(secret, body.clone()).await;
        assert_eq!(got, status, "{body}: {text}");
        assert!(text.contains(reason), "{body}: {text}");
    }
    let listed = segments(&admin, &cam, start - Duration::hours(1), start + Duration::hours(1)).await;
    assert_eq!(listed.len(), 2, "nothing refused was recorded");
    // The camera list shows the latest footage.
    let all = admin.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap().into_inner().cameras;
    let shown = all.iter().find(|c| c.id == cam.id).unwrap();
    assert_eq!(time_of(&shown.latest_footage_start_time), later);
    assert_eq!(time_of(&shown.latest_footage_end_time), later + Duration::seconds(30));
}

#[tokio::test]
async fn timelines_join_segments_within_the_tolerance_and_reach_the_present() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let cam = create(&admin, "Yard").await;
    let path = path_of(&cam);
    let now = r.s.clock.now();
    let t0 = micros(now - Duration::hours(1));
    let at = |secs: f64| t0 + Duration::microseconds((secs * 1e6) as i64);
    // 0–60, 60.5–120 (0.5 s gap: joined), 130–190 (10 s gap: new run), 185–200 (overlap: joined),
    // 300–360 (a run of its own), and one opened 20 s ago, still being written.
    // 186–191 lies inside the run and changes nothing.
    for (start, secs) in [(0.0, 60.0), (60.5, 59.5), (130.0, 60.0), (185.0, 15.0), (186.0, 5.0), (300.0, 60.0)] {
        assert_eq!(r.segment(&path, at(start), Some(secs)).await.0, 202);
    }
    let open = micros(now - Duration::seconds(20));
    assert_eq!(r.segment(&path, open, None).await.0, 202);
    let runs = timeline(&admin, &cam, t0 - Duration::hours(1), now + Duration::hours(1)).await;
    assert_eq!(runs, vec![(at(0.0), at(120.0)), (at(130.0), at(200.0)), (at(300.0), at(360.0)), (open, micros(now))]);
    // Clipped to the range, a run straddling its start included.
    let runs = timeline(&admin, &cam, at(30.0), at(150.0)).await;
    assert_eq!(runs, vec![(at(30.0), at(120.0)), (at(130.0), at(150.0))]);
    // A range inside a gap shows nothing.
    assert!(timeline(&admin, &cam, at(121.0), at(129.0)).await.is_empty());
    // A coarse bucket (display resolution) joins the 10 s gap too; several cameras in one call.
    let other = create(&admin, "Quay").await;
    assert_eq!(r.segment(&path_of(&other), at(0.0), Some(30.0)).await.0, 202);
    let both = admin
        .recordings()
        .get_timeline(pb::GetTimelineRequest {
            camera_ids: vec![cam.id.clone(), other.id.clone()],
            start_time: Some(ts(at(0.0))),
            end_time: Some(ts(at(400.0))),
            bucket: Some(prost_types::Duration { seconds: 15, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .camera_timelines;
    let runs_of = |t: &pb::CameraTimeline| {
        t.runs.iter().map(|r| (time_of(&r.start_time), time_of(&r.end_time))).collect::<Vec<_>>()
    };
    assert_eq!(both.iter().map(|t| t.camera_id.clone()).collect::<Vec<_>>(), vec![cam.id.clone(), other.id.clone()]);
    assert_eq!(runs_of(&both[0]), vec![(at(0.0), at(200.0)), (at(300.0), at(360.0))]);
    assert_eq!(runs_of(&both[1]), vec![(at(0.0), at(30.0))]);
    // Overlays: a type asked twice is refused naming the field; a viewer (who may play back but
    // not read inference) may not overlay detections.
    let overlay = |types: Vec<i32>| pb::GetTimelineRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(at(0.0))),
        end_time: Some(ts(at(400.0))),
        event_types: types,
        ..Default::default()
    };
    let twice = vec![pb::EventType::CameraUpdated as i32, pb::EventType::CameraUpdated as i32];
    let e = admin.recordings().get_timeline(overlay(twice)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("event_types"), "{}", e.message());
    let viewer = r.s.user(&admin, "vito", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &cam, &who, &["camera.read", "recording.read"], None).await.unwrap();
    let e = viewer.recordings().get_timeline(overlay(vec![pb::EventType::Detection as i32])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("inference.read"), "{}", e.message());
    viewer.recordings().get_timeline(overlay(vec![pb::EventType::CameraUpdated as i32])).await.unwrap();
    // The listing of the same range holds the straddling segment first.
    let listed = segments(&admin, &cam, at(30.0), at(150.0)).await;
    let starts: Vec<_> = listed.iter().map(|s| time_of(&s.start_time)).collect();
    assert_eq!(starts, vec![at(0.0), at(60.5), at(130.0)]);
    // Pages: two at a time, the same segments in order, then no token.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .recordings()
            .list_segments(pb::ListSegmentsRequest {
                camera_id: cam.id.clone(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.segments.iter().map(|s| time_of(&s.start_time)));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, vec![at(0.0), at(60.5), at(130.0), at(185.0), at(186.0), at(300.0), open]);
    // Bad ranges are refused naming the field.
    let e = admin
        .recordings()
        .get_timeline(pb::GetTimelineRequest {
            camera_id: cam.id.clone(),
            start_time: Some(ts(now)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.message().contains("end_time")), (tonic::Code::InvalidArgument, true), "{e:?}");
    let e = admin
        .recordings()
        .list_segments(pb::ListSegmentsRequest {
            camera_id: cam.id.clone(),
            start_time: Some(ts(now)),
            end_time: Some(ts(t0)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.message().contains("end_time")), (tonic::Code::InvalidArgument, true), "{e:?}");
}

#[tokio::test]
async fn a_live_only_viewer_cannot_list_or_see_the_timeline_of_recordings() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let cam = create(&admin, "Till").await;
    let start = micros(r.s.clock.now() - Duration::minutes(10));
    assert_eq!(r.segment(&path_of(&cam), start, Some(60.0)).await.0, 202);
    let viewer = r.s.user(&admin, "lena", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &cam, &who, &["camera.read", "camera.live"], None).await.unwrap();
    let range = (Some(ts(start - Duration::hours(1))), Some(ts(start + Duration::hours(1))));
    let list = pb::ListSegmentsRequest {
        camera_id: cam.id.clone(),
        start_time: range.0,
        end_time: range.1,
        ..Default::default()
    };
    let e = viewer.recordings().list_segments(list.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let tl = pb::GetTimelineRequest {
        camera_id: cam.id.clone(),
        start_time: range.0,
        end_time: range.1,
        ..Default::default()
    };
    let e = viewer.recordings().get_timeline(tl.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // With playback granted, the same calls answer.
    grant(&admin, &cam, &who, &["camera.read", "camera.live", "recording.read"], None).await.unwrap();
    assert_eq!(viewer.recordings().list_segments(list).await.unwrap().into_inner().segments.len(), 1);
    assert_eq!(viewer.recordings().get_timeline(tl).await.unwrap().into_inner().runs.len(), 1);
}

#[tokio::test]
async fn a_grant_revoked_takes_effect_within_a_second_for_callers_already_checked() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let cam = create(&admin, "Gate").await;
    let start = micros(r.s.clock.now() - Duration::minutes(10));
    assert_eq!(r.segment(&path_of(&cam), start, Some(60.0)).await.0, 202);
    let viewer = r.s.user(&admin, "vera", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    let list = pb::ListSegmentsRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(start - Duration::hours(1))),
        end_time: Some(ts(start + Duration::hours(1))),
        ..Default::default()
    };
    let listed = |c: opennvr_sdk::Client, req: pb::ListSegmentsRequest| async move {
        c.recordings().list_segments(req).await.map(|r| r.into_inner().segments.len())
    };
    let read = ["camera.read", "recording.read"];

    // Revoked through this server: refused on the very next call.
    grant(&admin, &cam, &who, &read, None).await.unwrap();
    assert_eq!(listed(viewer.clone(), list.clone()).await.unwrap(), 1);
    admin
        .cameras()
        .revoke_camera_access(pb::RevokeCameraAccessRequest { camera_id: cam.id.clone(), user_id: who.id.clone() })
        .await
        .unwrap();
    assert_eq!(listed(viewer.clone(), list.clone()).await.unwrap_err().code(), tonic::Code::NotFound);

    // Revoked by another server process on the same database (here, straight in SQL): refused
    // within a second of the change.
    grant(&admin, &cam, &who, &read, None).await.unwrap();
    assert_eq!(listed(viewer.clone(), list.clone()).await.unwrap(), 1);
    let mut db = r.s.db.superuser();
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!("DELETE FROM camera_grants WHERE user_id = '{}'", who.id)),
        &mut db,
    )
    .unwrap();
    let revoked = std::time::Instant::now();
    let refused = loop {
        match listed(viewer.clone(), list.clone()).await {
            Ok(_) if revoked.elapsed() < std::time::Duration::from_secs(5) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Ok(_) => panic!("the revoked grant still admits the caller after 5 s"),
            Err(e) => break (e, revoked.elapsed()),
        }
    };
    assert_eq!(refused.0.code(), tonic::Code::NotFound, "{:?}", refused.0);
    // One second of memory, and the call that noticed.
    assert!(refused.1 < std::time::Duration::from_millis(1500), "refused only after {:?}", refused.1);
}

#[tokio::test]
async fn what_the_hooks_missed_is_recovered_from_mediamtx() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let cam = create(&admin, "Gate").await;
    let path = path_of(&cam);
    eventually("the path configured", || r.emu.path(&path).is_some()).await;
    // MediaMTX runs in UTC-03:00 and writes four segments; only the first one's hooks arrive.
    let zone = FixedOffset::west_opt(3 * 3600).unwrap();
    r.emu.set_time_zone(zone);
    let t0 = DateTime::from_timestamp((Utc::now() - Duration::minutes(10)).timestamp(), 0).unwrap();
    std::fs::create_dir_all(r.dir.join(&path)).unwrap();
    let starts: Vec<DateTime<Utc>> = (0..4).map(|i| t0 + Duration::seconds(60 * i)).collect();
    for (i, start) in starts.iter().enumerate() {
        let file = r.file(&path, *start, zone);
        std::fs::write(&file, vec![0u8; 1000 * (i + 1)]).unwrap();
        // Written for 55 s (MediaMTX starts the next segment a little later; the last one is still
        // being written: now).
        let end = if i < 3 { *start + Duration::seconds(55) } else { Utc::now() };
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(end.into()).unwrap();
    }
    let first = r.file(&path, starts[0], zone);
    let body = json!({"event": "segment-complete", "path": path, "segment_path": first, "segment_duration": "60"});
    assert_eq!(r.hook(HOOK_SECRET, body).await.0, 202);
    // The second one's opening arrived, its closing did not: left open until the pass closes it.
    let second = r.file(&path, starts[1], zone);
    assert_eq!(
        r.hook(HOOK_SECRET, json!({"event": "segment-create", "path": path, "segment_path": second})).await.0,
        202
    );
    // A row whose file is gone (deleted behind OpenNVR's back) and an old one below MediaMTX's oldest.
    assert_eq!(r.segment(&path, t0 - Duration::hours(2), Some(60.0)).await.0, 202);
    let range = (t0 - Duration::hours(3), Utc::now() + Duration::hours(1));
    let recovered = || async {
        let listed = segments(&admin, &cam, range.0, range.1).await;
        listed
            .iter()
            .map(|s| (time_of(&s.start_time), s.in_progress, s.size_bytes, duration_secs(s).round() as i64))
            .collect::<Vec<_>>()
    };
    let mut got = Vec::new();
    for _ in 0..100 {
        got = recovered().await;
        if got.len() == 4 && got[0].0 == starts[0] && !got[1].1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        got,
        vec![
            (starts[0], false, 1000, 60),
            // Closed by the pass, its duration from the file's last write.
            (starts[1], false, 2000, 55),
            // Missed altogether: added, duration from the file (not the next start).
            (starts[2], false, 3000, 55),
            // The newest is still being written.
            (starts[3], true, 4000, 0),
        ]
    );
}

impl Recorder {
    /// A camera with `n` complete one-minute segments of 1,000 bytes each, from `t0` on, written to
    /// disk and announced by their hooks. Returns the camera and the segment starts.
    pub async fn recorded(
        &self,
        admin: &opennvr_sdk::Client,
        name: &str,
        t0: DateTime<Utc>,
        n: i64,
    ) -> (pb::Camera, Vec<DateTime<Utc>>) {
        let cam = create(admin, name).await;
        let path = path_of(&cam);
        eventually("the path configured", || self.emu.path(&path).is_some()).await;
        std::fs::create_dir_all(self.dir.join(&path)).unwrap();
        let utc = FixedOffset::east_opt(0).unwrap();
        let starts: Vec<DateTime<Utc>> = (0..n).map(|i| t0 + Duration::seconds(60 * i)).collect();
        for start in &starts {
            std::fs::write(self.file(&path, *start, utc), vec![7u8; 1000]).unwrap();
            assert_eq!(self.segment(&path, *start, Some(60.0)).await.0, 202);
        }
        (cam, starts)
    }
}

async fn listed_starts(c: &opennvr_sdk::Client, cam: &pb::Camera) -> Vec<DateTime<Utc>> {
    let far = (DateTime::from_timestamp(0, 0).unwrap(), Utc::now() + Duration::days(1));
    segments(c, cam, far.0, far.1).await.iter().map(|s| time_of(&s.start_time)).collect()
}

async fn set_policy(
    c: &opennvr_sdk::Client,
    camera_id: &str,
    policy: pb::RetentionPolicy,
    mask: &[&str],
) -> Result<pb::RetentionPolicy, tonic::Status> {
    let request = pb::UpdateRetentionPolicyRequest {
        policy: Some(pb::RetentionPolicy { camera_id: camera_id.into(), ..policy }),
        update_mask: Some(prost_types::FieldMask { paths: mask.iter().map(|p| p.to_string()).collect() }),
    };
    c.recordings().update_retention_policy(request).await.map(|r| r.into_inner().policy.unwrap())
}

async fn enforce(c: &opennvr_sdk::Client) -> pb::EnforceRetentionResponse {
    c.recordings().enforce_retention(pb::EnforceRetentionRequest {}).await.unwrap().into_inner()
}

async fn hold(
    c: &opennvr_sdk::Client,
    cams: &[&pb::Camera],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<pb::Hold, tonic::Status> {
    let hold = pb::Hold {
        camera_ids: cams.iter().map(|c| c.id.clone()).collect(),
        start_time: Some(ts(from)),
        end_time: Some(ts(to)),
        case_id: "CASE-7".into(),
        reason: "break-in at the dock".into(),
        ..Default::default()
    };
    c.recordings().create_hold(pb::CreateHoldRequest { hold: Some(hold) }).await.map(|r| r.into_inner().hold.unwrap())
}

#[tokio::test]
async fn retention_removes_exactly_the_oldest_unheld_segments_for_age_size_and_free_space() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::hours(3));
    let (cam, starts) = r.recorded(&admin, "Dock", t0, 10).await;
    let (other, other_starts) = r.recorded(&admin, "Roof", t0, 2).await;
    // Segments 3 and 4 are evidence.
    let evidence = hold(&admin, &[&cam], starts[3], starts[5]).await.unwrap();
    assert_eq!(evidence.camera_ids, vec![cam.id.clone()]);
    // Age: everything that ended 6 minutes after t0 or earlier, on this camera only.
    let age = (r.s.clock.now() - (t0 + Duration::minutes(6))).num_seconds();
    let max_age = prost_types::Duration { seconds: age, nanos: 0 };
    set_policy(&admin, &cam.id, pb::RetentionPolicy { max_age: Some(max_age), ..Default::default() }, &["max_age"])
        .await
        .unwrap();
    let pass = enforce(&admin).await;
    assert_eq!((pass.segment_count, pass.size_bytes), (4, 4000), "{pass:?}");
    let kept = [3, 4, 6, 7, 8, 9].map(|i| starts[i]).to_vec();
    assert_eq!(listed_starts(&admin, &cam).await, kept);
    assert_eq!(listed_starts(&admin, &other).await, other_starts, "other cameras follow their own (no) limits");
    // The files went through MediaMTX.
    let path = path_of(&cam);
    for i in [0, 1, 2, 5] {
        assert!(!std::path::Path::new(&r.file(&path, starts[i], FixedOffset::east_opt(0).unwrap())).exists());
    }
    assert!(std::path::Path::new(&r.file(&path, starts[3], FixedOffset::east_opt(0).unwrap())).exists());
    // Size: at most 3,000 bytes: the three oldest unheld go (6, 7, 8), the held ones stay.
    set_policy(&admin, &cam.id, pb::RetentionPolicy { max_bytes: Some(3000), ..Default::default() }, &["max_bytes"])
        .await
        .unwrap();
    let pass = enforce(&admin).await;
    assert_eq!(pass.segment_count, 3, "{pass:?}");
    assert_eq!(listed_starts(&admin, &cam).await, vec![starts[3], starts[4], starts[9]]);
    // Free space: a floor no disk meets takes every unheld segment of every camera, oldest first,
    // and says the rest is held.
    set_policy(
        &admin,
        "",
        pb::RetentionPolicy { min_free_bytes: Some(i64::MAX / 2), ..Default::default() },
        &["min_free_bytes"],
    )
    .await
    .unwrap();
    let pass = enforce(&admin).await;
    assert_eq!(pass.segment_count, 3, "{pass:?}");
    assert!(pass.unmet.iter().any(|u| u.contains("held")), "{pass:?}");
    assert_eq!(listed_starts(&admin, &cam).await, vec![starts[3], starts[4]]);
    assert!(listed_starts(&admin, &other).await.is_empty());
    // Each pass that removed something left one audit entry saying what.
    let passes = crate::media::audit_events(&admin, "retention.enforce").await;
    assert_eq!(passes.len(), 3);
    assert_eq!(passes[0].details["segments"], "3");
    assert_eq!(passes[2].details["segments"], "4");
    assert_eq!(passes[2].details["per_camera"], format!("{}:4", cam.id));
    // Deleting by hand refuses a range with held footage and deletes nothing; the camera cannot go
    // while its hold is active. Released, both work.
    let delete = pb::DeleteRecordingsRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(t0)),
        end_time: Some(ts(t0 + Duration::hours(1))),
        reason: "cleanup".into(),
        validate_only: false,
    };
    let e = admin.recordings().delete_recordings(delete.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert_eq!(listed_starts(&admin, &cam).await.len(), 2);
    let e = admin
        .cameras()
        .delete_camera(pb::DeleteCameraRequest { camera_id: cam.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("hold"), "{e:?}");
    let release = pb::ReleaseHoldRequest { hold_id: evidence.id.clone(), reason: "case closed".into() };
    let released = admin.recordings().release_hold(release.clone()).await.unwrap().into_inner().hold.unwrap();
    assert!(released.release_time.is_some());
    assert_eq!(admin.recordings().release_hold(release).await.unwrap_err().code(), tonic::Code::FailedPrecondition);
    let gone = admin.recordings().delete_recordings(delete).await.unwrap().into_inner();
    assert_eq!((gone.segment_count, gone.size_bytes), (2, 2000));
    assert!(listed_starts(&admin, &cam).await.is_empty());
    admin
        .cameras()
        .delete_camera(pb::DeleteCameraRequest { camera_id: cam.id.clone(), ..Default::default() })
        .await
        .unwrap();
    // Holds are audited both ways (the refused second release too, as a failure).
    assert_eq!(crate::media::audit_events(&admin, "hold.create").await.len(), 1);
    let releases = crate::media::audit_events(&admin, "hold.release").await;
    let codes: Vec<&str> = releases.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, vec!["FAILED_PRECONDITION", "OK"]);
    assert_eq!(releases[1].details["reason"], "case closed");
}

#[tokio::test]
async fn a_hold_created_while_a_pass_runs_keeps_everything_it_covers() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::hours(3));
    let (cam, starts) = r.recorded(&admin, "Vault", t0, 60).await;
    // Every deletion takes 40 ms: the pass over all 60 segments takes seconds.
    r.emu.set_delete_delay(std::time::Duration::from_millis(40));
    let max_age = prost_types::Duration { seconds: 60, nanos: 0 };
    set_policy(&admin, &cam.id, pb::RetentionPolicy { max_age: Some(max_age), ..Default::default() }, &["max_age"])
        .await
        .unwrap();
    let pass = {
        let admin = admin.clone();
        tokio::spawn(async move { enforce(&admin).await })
    };
    eventually("the pass is deleting", || r.emu.deleted_segments().len() >= 3).await;
    // The newest half becomes evidence while the pass runs.
    let held = hold(&admin, &[&cam], starts[30], t0 + Duration::hours(2)).await.unwrap();
    let covered_when_held: Vec<DateTime<Utc>> =
        listed_starts(&admin, &cam).await.into_iter().filter(|s| *s >= starts[30]).collect();
    assert!(!covered_when_held.is_empty(), "the hold came before the pass reached its range");
    let report = pass.await.unwrap();
    let left = listed_starts(&admin, &cam).await;
    assert_eq!(left, covered_when_held, "everything the hold covered when it was placed is kept, nothing else");
    assert!(report.segment_count as usize + left.len() == 60, "{report:?}");
    for s in &left {
        assert!(std::path::Path::new(&r.file(&path_of(&cam), *s, FixedOffset::east_opt(0).unwrap())).exists());
    }
    assert!(held.end_time.is_some());
}

#[tokio::test]
async fn size_limits_need_the_recordings_volume_visible() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let e =
        set_policy(&admin, "", pb::RetentionPolicy { max_bytes: Some(1 << 30), ..Default::default() }, &["max_bytes"])
            .await
            .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("OPENNVR_RECORDINGS_DIR"), "{e:?}");
    // An age limit needs nothing more; its etag guards concurrent changes.
    let day = prost_types::Duration { seconds: 86_400, nanos: 0 };
    let p = set_policy(&admin, "", pb::RetentionPolicy { max_age: Some(day), ..Default::default() }, &["max_age"])
        .await
        .unwrap();
    let stale = pb::RetentionPolicy { etag: "1".into(), max_age: Some(day), ..Default::default() };
    assert_ne!(p.etag, "1");
    assert_eq!(set_policy(&admin, "", stale, &["max_age"]).await.unwrap_err().code(), tonic::Code::Aborted);
    let e = set_policy(&admin, "", pb::RetentionPolicy::default(), &["colour"]).await.unwrap_err();
    assert_eq!((e.code(), e.message().contains("update_mask")), (tonic::Code::InvalidArgument, true));
    // Policies page: the site default first, then the camera overrides.
    for name in ["East", "West"] {
        let cam = create(&admin, name).await;
        set_policy(&admin, &cam.id, pb::RetentionPolicy { max_age: Some(day), ..Default::default() }, &["max_age"])
            .await
            .unwrap();
    }
    let list = |token: String| {
        let mut r = admin.recordings();
        async move {
            r.list_retention_policies(pb::ListRetentionPoliciesRequest { page_size: 2, page_token: token })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = list(String::new()).await;
    assert_eq!(first.policies.len(), 2);
    assert!(first.policies[0].camera_id.is_empty() && !first.policies[1].camera_id.is_empty());
    let second = list(first.next_page_token.clone()).await;
    assert_eq!(second.policies.len(), 1);
    assert_ne!(second.policies[0].camera_id, first.policies[1].camera_id);
    assert!(second.next_page_token.is_empty());
}

/// Records a real camera with ffmpeg for `secs` seconds into `path`'s directory in two-second fMP4
/// segments, named as MediaMTX names them (start to the microsecond, MediaMTX's zone here UTC+05:30),
/// firing the hooks MediaMTX fires for each. ffmpeg cannot name files to the microsecond, so it
/// writes numbered files aside; each is moved to its MediaMTX name when ffmpeg closes it, its start
/// taken from ffmpeg's segment list (relative to the stream's first file). Returns how many segments
/// were completed.
pub async fn record_real(r: &Recorder, path: &str, camera_url: &str, secs: u32) -> usize {
    let dir = r.dir.join(path);
    std::fs::create_dir_all(&dir).unwrap();
    let staging = temp_dir("ffmpeg-segments");
    let list = staging.join("list.csv");
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", camera_url])
        .args(["-t", &secs.to_string(), "-c", "copy", "-f", "segment", "-segment_time", "2"])
        .args([
            "-segment_format",
            "mp4",
            "-segment_format_options",
            "movflags=+frag_keyframe+empty_moov+default_base_moof",
        ])
        .args(["-segment_list_type", "csv", "-segment_list"])
        .arg(&list)
        .arg(staging.join("seg%05d.mp4"))
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg (see .ci/run)");
    let zone = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
    let mut stream_start: Option<DateTime<Utc>> = None;
    let mut closed = 0usize;
    loop {
        let done = ffmpeg.try_wait().unwrap();
        if stream_start.is_none() && staging.join("seg00000.mp4").exists() {
            stream_start = Some(micros(Utc::now()));
        }
        let lines: Vec<String> =
            std::fs::read_to_string(&list).unwrap_or_default().lines().map(str::to_owned).collect();
        for line in lines.iter().skip(closed) {
            let mut parts = line.split(',');
            let (name, start, end) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let (start, end): (f64, f64) = (start.parse().unwrap(), end.parse().unwrap());
            let at = stream_start.unwrap() + Duration::microseconds((start * 1e6) as i64);
            let file = r.file(path, at, zone);
            std::fs::rename(staging.join(name), &file).unwrap();
            let (status, text) =
                r.hook(HOOK_SECRET, json!({"event": "segment-create", "path": path, "segment_path": file})).await;
            assert_eq!(status, 202, "{text}");
            let body = json!({"event": "segment-complete", "path": path, "segment_path": file, "segment_duration": format!("{:.3}", end - start)});
            let (status, text) = r.hook(HOOK_SECRET, body).await;
            assert_eq!(status, 202, "{text}");
            closed += 1;
        }
        if let Some(status) = done {
            assert!(status.success(), "ffmpeg failed: {status}");
            return closed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_real_recording_exports_to_an_mp4_ffprobe_reads_with_its_reason_audited() {
    // One scenario on purpose: the export, its download, its audit entry, playback and who may do
    // neither all use the same eleven seconds of real recorded video, which take that long to make.
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let camera = crate::rtsp::RtspCamera::start(None);
    let cam = create(&admin, "Lobby").await;
    let path = path_of(&cam);
    eventually("the path configured", || r.emu.path(&path).is_some()).await;
    let completed = record_real(&r, &path, &camera.url(), 11).await;
    assert!(completed >= 4, "{completed} segments");
    let far = (DateTime::from_timestamp(0, 0).unwrap(), Utc::now() + Duration::days(1));
    let listed = segments(&admin, &cam, far.0, far.1).await;
    assert_eq!(listed.iter().filter(|s| !s.in_progress).count(), completed, "{listed:?}");
    let first = time_of(&listed[0].start_time);
    let (from, to) = (first + Duration::milliseconds(500), first + Duration::milliseconds(4500));
    // The export streams progress, the file's bytes, then the finished export.
    let request = pb::ExportClipRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(from)),
        end_time: Some(ts(to)),
        format: pb::MediaFormat::Mp4 as i32,
        reason: "incident 42: forced door".into(),
        case_id: "CASE-42".into(),
        stream_data: true,
    };
    let mut stream = admin.recordings().export_clip(request.clone()).await.unwrap().into_inner();
    let (mut bytes, mut export, mut progressed) = (Vec::new(), None, false);
    while let Some(msg) = stream.message().await.unwrap() {
        match msg.kind.unwrap() {
            pb::export_clip_response::Kind::Progress(_) => progressed = true,
            pb::export_clip_response::Kind::Chunk(c) => {
                assert_eq!(c.offset as usize, bytes.len());
                bytes.extend(c.data);
            }
            pb::export_clip_response::Kind::Export(e) => export = Some(e),
        }
    }
    let export = export.expect("the finished export comes last");
    assert!(progressed);
    assert_eq!(export.state, pb::ExportState::Succeeded as i32);
    assert_eq!(export.size_bytes as usize, bytes.len());
    use sha2::Digest;
    assert_eq!(export.sha256, sha2::Sha256::digest(&bytes).to_vec());
    let clip = temp_dir("clip").join("clip.mp4");
    std::fs::write(&clip, &bytes).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "default=nw=1"])
        .arg(&clip)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(probe.status.success() && said.contains("codec_name=h264"), "{said}");
    let seconds: f64 = said.lines().find_map(|l| l.strip_prefix("duration=")).unwrap().parse().unwrap();
    assert!((seconds - 4.0).abs() <= 1.2, "a 4 s clip lasts {seconds} s (cuts fall on key frames, 1 s apart)");
    // Resumable download of the kept file.
    let mut again = Vec::new();
    let mut download = admin
        .recordings()
        .download_export(pb::DownloadExportRequest { export_id: export.id.clone(), offset: 1000 })
        .await
        .unwrap()
        .into_inner();
    while let Some(msg) = download.message().await.unwrap() {
        again.extend(msg.chunk.unwrap().data);
    }
    assert_eq!(again, bytes[1000..]);
    // The reason is in the audit trail, with the camera.
    let entries = crate::media::audit_events(&admin, "clip.export").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].details["reason"], "incident 42: forced door");
    assert_eq!(entries[0].camera_id, cam.id);
    // Playback: a token for MediaMTX's playback server, scoped to this camera.
    let ticket = admin
        .recordings()
        .create_playback_token(pb::CreatePlaybackTokenRequest {
            camera_id: cam.id.clone(),
            start_time: Some(ts(from)),
            duration: Some(prost_types::Duration { seconds: 3, nanos: 0 }),
            format: pb::MediaFormat::Fmp4 as i32,
            ttl: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ticket.url.starts_with(&format!("{}/get?path={path}&start=", r.emu.url())), "{}", ticket.url);
    let played = reqwest::Client::new().get(&ticket.url).bearer_auth(&ticket.token).send().await.unwrap();
    assert_eq!(played.status().as_u16(), 200);
    assert!(!played.bytes().await.unwrap().is_empty());
    let stranger = reqwest::Client::new().get(&ticket.url).send().await.unwrap();
    assert_eq!(stranger.status().as_u16(), 401);
    // Someone who may only watch live gets neither.
    let viewer = r.s.user(&admin, "lena", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &cam, &who, &["camera.read", "camera.live"], None).await.unwrap();
    let e = viewer.recordings().export_clip(request).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = viewer
        .recordings()
        .create_playback_token(pb::CreatePlaybackTokenRequest {
            camera_id: cam.id.clone(),
            start_time: Some(ts(from)),
            duration: Some(prost_types::Duration { seconds: 3, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}

/// The next recording event on `stream` (other events skipped).
async fn next_recording_event(stream: &mut tonic::Streaming<pb::WatchEventsResponse>) -> pb::Event {
    loop {
        let e = crate::media::next_event(stream).await;
        if e.r#type == pb::EventType::RecordingStarted as i32 || e.r#type == pb::EventType::RecordingStopped as i32 {
            return e;
        }
    }
}

#[tokio::test]
async fn a_camera_that_stops_producing_footage_is_reported_and_its_recovery_too() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    // Ten-second segments: the server's clock (which signs MediaMTX's tokens) moves only a little.
    let ten = Some(prost_types::Duration { seconds: 10, nanos: 0 });
    let request = pb::CreateCameraRequest {
        camera: Some(pb::Camera { segment_duration: ten, ..crate::cameras::camera("Pier") }),
        password: String::new(),
    };
    let cam = admin.cameras().create_camera(request).await.unwrap().into_inner().camera.unwrap();
    let path = path_of(&cam);
    eventually("the path configured", || r.emu.path(&path).is_some()).await;
    r.emu.set_available(&path, true);
    let viewer = r.s.user(&admin, "liv", pb::Role::Viewer).await;
    let who = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &cam, &who, &["camera.read", "camera.live"], None).await.unwrap();
    let mut events = crate::media::watch(&admin).await;
    let mut viewer_events = crate::media::watch(&viewer).await;
    assert_eq!(r.segment(&path, micros(r.s.clock.now()), None).await.0, 202);
    // Footage flowing: a few rounds of the watchdog say nothing.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    // On the server's clock, 30 s pass without a new segment.
    r.s.clock.advance(Duration::seconds(30));
    let stopped = next_recording_event(&mut events).await;
    assert_eq!((stopped.r#type, stopped.camera_id.as_str()), (pb::EventType::RecordingStopped as i32, cam.id.as_str()));
    let Some(pb::event::Payload::RecordingState(state)) = &stopped.payload else { panic!("{stopped:?}") };
    assert!(state.reason.contains("no segment was opened for 30 s"), "{state:?}");
    // A new segment: recording again, reported once.
    assert_eq!(r.segment(&path, micros(r.s.clock.now()), None).await.0, 202);
    let started = next_recording_event(&mut events).await;
    assert_eq!(started.r#type, pb::EventType::RecordingStarted as i32);
    // The camera goes away in MediaMTX: reported with that reason.
    r.emu.set_available(&path, false);
    let stopped = next_recording_event(&mut events).await;
    let Some(pb::event::Payload::RecordingState(state)) = &stopped.payload else { panic!("{stopped:?}") };
    assert!(state.reason.contains("unavailable"), "{state:?}");
    // Someone who may not play the camera back hears nothing of its recording.
    let heard = tokio::time::timeout(std::time::Duration::from_secs(1), next_recording_event(&mut viewer_events)).await;
    assert!(heard.is_err(), "{heard:?}");
}

#[tokio::test]
async fn footage_of_a_deleted_camera_stays_reachable_until_retention_removes_it() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::hours(3));
    let (cam, starts) = r.recorded(&admin, "Shed", t0, 3).await;
    let path = path_of(&cam);
    admin
        .cameras()
        .delete_camera(pb::DeleteCameraRequest {
            camera_id: cam.id.clone(),
            etag: String::new(),
            delete_recordings: true,
        })
        .await
        .unwrap();
    // MediaMTX keeps a path without a source for the footage, so that it can still delete it.
    eventually("the path kept without a source", || {
        r.emu
            .path(&path)
            .is_some_and(|c| c.get("source") == Some(&json!("publisher")) && c.get("record") == Some(&json!(false)))
    })
    .await;
    assert_eq!(enforce(&admin).await.segment_count, 3);
    let utc = FixedOffset::east_opt(0).unwrap();
    for s in &starts {
        assert!(!std::path::Path::new(&r.file(&path, *s, utc)).exists(), "the file went through MediaMTX");
    }
    eventually("the path gone with the footage", || r.emu.path(&path).is_none()).await;
}

#[tokio::test]
async fn retention_reads_past_a_long_held_stretch_to_the_footage_it_may_delete() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::days(1));
    // More held segments at the start than one batch of the pass reads.
    let (cam, starts) = r.recorded(&admin, "Archive", t0, 520).await;
    hold(&admin, &[&cam], starts[0], starts[510]).await.unwrap();
    let age = (r.s.clock.now() - starts[518]).num_seconds();
    let max_age = prost_types::Duration { seconds: age, nanos: 0 };
    set_policy(&admin, &cam.id, pb::RetentionPolicy { max_age: Some(max_age), ..Default::default() }, &["max_age"])
        .await
        .unwrap();
    let pass = enforce(&admin).await;
    // 510..=517 ended before the cutoff and are not held; 518 and 519 are younger.
    assert_eq!(pass.segment_count, 8, "{pass:?}");
    let left = listed_starts(&admin, &cam).await;
    assert_eq!(left.len(), 512);
    assert_eq!(&left[..510], &starts[..510]);
    assert_eq!(&left[510..], &starts[518..]);
}

#[tokio::test]
async fn storage_stats_count_held_bytes_once_however_many_holds_cover_them() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(r.s.clock.now() - Duration::minutes(30));
    let (cam, starts) = r.recorded(&admin, "Dock", t0, 10).await;
    let (_quiet, _) = r.recorded(&admin, "Roof", t0 - Duration::hours(5), 2).await;
    // Two holds over segments 2..6 and 4..8: segments 2..7 are held, once each (6 × 1,000 bytes).
    hold(&admin, &[&cam], starts[2], starts[6]).await.unwrap();
    hold(&admin, &[&cam], starts[4] + Duration::seconds(30), starts[8]).await.unwrap();
    // A released hold holds nothing.
    let released = hold(&admin, &[&cam], starts[9], starts[9] + Duration::seconds(10)).await.unwrap();
    r.s.step_up(&admin, "admin").await;
    admin
        .recordings()
        .release_hold(pb::ReleaseHoldRequest { hold_id: released.id.clone(), reason: "closed".into() })
        .await
        .unwrap();
    let stats = admin.recordings().get_storage_stats(pb::GetStorageStatsRequest::default()).await.unwrap().into_inner();
    let of = |id: &str| stats.cameras.iter().find(|c| c.camera_id == id).unwrap().clone();
    let dock = of(&cam.id);
    assert_eq!((dock.recorded_bytes, dock.segment_count, dock.held_bytes), (10_000, 10, 6_000), "{dock:?}");
    // Written in the last hour: the dock's ten segments; the roof recorded five hours ago.
    assert_eq!(dock.write_bytes_per_second, 10_000 / 3600);
    assert_eq!(stats.held_bytes, 6_000);
}

/// An export request of `[from, to)` of `cam`.
fn export_of(cam: &pb::Camera, from: DateTime<Utc>, to: DateTime<Utc>) -> pb::ExportClipRequest {
    pb::ExportClipRequest {
        camera_id: cam.id.clone(),
        start_time: Some(ts(from)),
        end_time: Some(ts(to)),
        format: pb::MediaFormat::Mp4 as i32,
        reason: "limits".into(),
        case_id: String::new(),
        stream_data: false,
    }
}

/// Files in the server's exports directory.
fn export_files(r: &Recorder) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(r.s.data_dir.join("exports"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn exports_running_at_once_are_capped_per_user_and_site_wide() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(Utc::now() - Duration::hours(1));
    let (cam, _) = r.recorded(&admin, "Dock", t0, 3).await;
    let mut others = Vec::new();
    for name in ["olga", "omar"] {
        let op = r.s.user(&admin, name, pb::Role::Operator).await;
        let who = op.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
        grant(&admin, &cam, &who, &["camera.read", "recording.read", "recording.export"], None).await.unwrap();
        others.push(op);
    }
    // The playback server takes its time: the exports stay running meanwhile.
    r.emu.set_playback_delay(std::time::Duration::from_secs(6));
    let request = export_of(&cam, t0, t0 + Duration::seconds(30));
    let mut running = Vec::new();
    for _ in 0..2 {
        running.push(admin.recordings().export_clip(request.clone()).await.unwrap().into_inner());
    }
    let e = admin.recordings().export_clip(request.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("at most 2 exports per user"), "{}", e.message());
    // Other users fill the site's four places; the fifth export anyone asks for waits its turn.
    running.push(others[0].recordings().export_clip(request.clone()).await.unwrap().into_inner());
    running.push(others[0].recordings().export_clip(request.clone()).await.unwrap().into_inner());
    let e = others[1].recordings().export_clip(request.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("at most 4 exports run at once"), "{}", e.message());
    // Once they end (here: the fake segments cannot be cut), the places are free again.
    for mut stream in running {
        while let Ok(Some(_)) = stream.message().await {}
    }
    r.emu.set_playback_delay(std::time::Duration::ZERO);
    others[1].recordings().export_clip(request).await.unwrap();
}

#[tokio::test]
async fn an_export_past_its_byte_cap_or_the_free_space_floor_fails_and_leaves_no_file() {
    let r = Recorder::start_with(|o| o.export_max_bytes = Some(2000)).await;
    let admin = r.s.admin().await;
    let camera = crate::rtsp::RtspCamera::start(None);
    let cam = create(&admin, "Gate").await;
    let path = path_of(&cam);
    eventually("the path configured", || r.emu.path(&path).is_some()).await;
    let completed = record_real(&r, &path, &camera.url(), 4).await;
    assert!(completed >= 2, "{completed} segments");
    let far = (DateTime::from_timestamp(0, 0).unwrap(), Utc::now() + Duration::days(1));
    let listed = segments(&admin, &cam, far.0, far.1).await;
    let first = time_of(&listed[0].start_time);
    let request = export_of(&cam, first, first + Duration::seconds(2));
    // Any real clip is larger than 2,000 bytes: the export fails saying why, and keeps no file.
    let mut stream = admin.recordings().export_clip(request.clone()).await.unwrap().into_inner();
    let failed = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the export did not fail"),
            Err(e) => break e,
        }
    };
    assert!(failed.message().contains("OPENNVR_EXPORT_MAX_BYTES"), "{failed:?}");
    assert!(export_files(&r).is_empty(), "{:?}", export_files(&r));
    let listed = admin.recordings().list_exports(pb::ListExportsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.exports[0].state, pb::ExportState::Failed as i32);
    // A site floor above the free space refuses the export before anything is written.
    let floor = pb::RetentionPolicy { min_free_bytes: Some(i64::MAX / 2), ..Default::default() };
    set_policy(&admin, "", floor, &["min_free_bytes"]).await.unwrap();
    let e = admin.recordings().export_clip(request).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("below its floor"), "{}", e.message());
    assert!(export_files(&r).is_empty());
    let listed = admin.recordings().list_exports(pb::ListExportsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.exports.len(), 1, "the refused export left no record");
}

#[tokio::test]
async fn a_user_sees_exports_retention_and_storage_only_of_the_cameras_they_may() {
    let r = Recorder::start().await;
    let admin = r.s.admin().await;
    let t0 = micros(Utc::now() - Duration::hours(2));
    let mut cams = Vec::new();
    for name in ["Alpha", "Bravo", "Charlie"] {
        let (cam, _) = r.recorded(&admin, name, t0, 2).await;
        let age = prost_types::Duration { seconds: 86_400, nanos: 0 };
        set_policy(&admin, &cam.id, pb::RetentionPolicy { max_age: Some(age), ..Default::default() }, &["max_age"])
            .await
            .unwrap();
        let mut su = r.s.db.superuser();
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "INSERT INTO exports (id, camera_id, start_time, end_time, format, state, reason, case_id, created_at, size_bytes, error, media_duration_us, file_name)
             VALUES (gen_random_uuid(), '{}', now() - interval '1 hour', now(), 'mp4', 'succeeded', 'evidence of {name}', '', now(), 10, '', 1, 'x.mp4')",
            cam.id
        ))
        .execute(&mut su)
        .unwrap();
        cams.push(cam);
    }
    let olga = r.s.user(&admin, "olga", pb::Role::Operator).await;
    let who = olga.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &cams[0], &who, &["camera.read", "recording.read", "recording.export"], None).await.unwrap();
    grant(&admin, &cams[1], &who, &["camera.read", "recording.read"], None).await.unwrap();
    // Exports: of the cameras she may export only (watching a camera does not show who exported it).
    let exports = olga.recordings().list_exports(pb::ListExportsRequest::default()).await.unwrap().into_inner();
    let of: Vec<&str> = exports.exports.iter().map(|e| e.camera_id.as_str()).collect();
    assert_eq!(of, vec![cams[0].id.as_str()]);
    // Retention: the site default and the overrides of the cameras she may see.
    let policies = olga.recordings().list_retention_policies(pb::ListRetentionPoliciesRequest::default()).await;
    let of: Vec<String> = policies.unwrap().into_inner().policies.into_iter().map(|p| p.camera_id).collect();
    let mut want = vec![String::new(), cams[0].id.clone(), cams[1].id.clone()];
    want[1..].sort();
    assert_eq!(of, want);
    let hidden = pb::GetRetentionPolicyRequest { camera_id: cams[2].id.clone() };
    assert_eq!(olga.recordings().get_retention_policy(hidden).await.unwrap_err().code(), tonic::Code::NotFound);
    // Storage: the figures of those cameras only; the administrator sees all three.
    let stats = olga.recordings().get_storage_stats(pb::GetStorageStatsRequest {}).await.unwrap().into_inner();
    let mut of: Vec<String> = stats.cameras.into_iter().map(|c| c.camera_id).collect();
    of.sort();
    assert_eq!(of, want[1..].to_vec());
    let stats = admin.recordings().get_storage_stats(pb::GetStorageStatsRequest {}).await.unwrap().into_inner();
    assert_eq!(stats.cameras.len(), 3);
}

#[tokio::test]
async fn a_new_site_keeps_a_free_space_floor_of_five_percent_or_ten_gib() {
    let r = Recorder::start_with_default_floor(|_| {}).await;
    let admin = r.s.admin().await;
    let site = admin
        .recordings()
        .get_retention_policy(pb::GetRetentionPolicyRequest::default())
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(site.min_free_bytes, Some(10 << 30));
    assert_eq!(site.min_free_percent, Some(5));
    // The floor in force is the larger of the two on the volume the server sees.
    let stats = admin.recordings().get_storage_stats(pb::GetStorageStatsRequest::default()).await.unwrap().into_inner();
    let volume = &stats.volumes[0];
    assert_eq!(volume.floor_bytes, (10i64 << 30).max(volume.total_bytes / 100 * 5));
    assert_eq!(volume.low, volume.free_bytes < volume.floor_bytes);
    // A share out of range names its field; a camera cannot have one.
    let share = |p| pb::RetentionPolicy { min_free_percent: Some(p), ..Default::default() };
    let e = set_policy(&admin, "", share(95), &["min_free_percent"]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("policy.min_free_percent"), "{}", e.message());
    let (cam, _) = r.recorded(&admin, "Floor", micros(Utc::now() - Duration::hours(1)), 1).await;
    let e = set_policy(&admin, &cam.id, share(10), &["min_free_percent"]).await.unwrap_err();
    assert!(e.message().contains("site default only"), "{}", e.message());
    // Set to 90 % of a volume that has less free, the floor makes the volume low.
    let set = set_policy(&admin, "", share(90), &["min_free_percent"]).await.unwrap();
    assert_eq!(set.min_free_percent, Some(90));
    let stats = admin.recordings().get_storage_stats(pb::GetStorageStatsRequest::default()).await.unwrap().into_inner();
    let volume = &stats.volumes[0];
    assert_eq!(volume.floor_bytes, volume.total_bytes / 100 * 90);
    if volume.free_bytes < volume.floor_bytes {
        assert!(volume.low, "{volume:?}");
        // A pass then deletes the oldest footage to make room, saying what it could not free.
        let pass = enforce(&admin).await;
        assert!(pass.segment_count >= 1, "{pass:?}");
        assert!(pass.unmet.iter().any(|u| u.contains("below the floor")), "{pass:?}");
    }
}
