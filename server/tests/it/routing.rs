//! Frame routing end to end: bindings tie a real RTSP camera (Debian's GStreamer RTSP server standing
//! for MediaMTX's restream) to a test adapter through a real `ffmpeg`; detections are stored,
//! listed and streamed only to who may see their camera; a hung adapter sheds only its own frames;
//! unbinding, shutdown and a killed server leave no `ffmpeg` behind.
use crate::harness::{TestDb, TestServer, free_port, test_options};
use crate::inference::{Mode, TestAdapter, register};
use crate::rtsp::RtspCamera;
use opennvr_sdk::pb;
use std::time::Duration;

/// A server whose frame sources read restreams at `rtsp://127.0.0.1:{port}`.
async fn server_reading_port() -> (TestServer, u16) {
    let db = TestDb::new();
    let port = free_port();
    let mut o = test_options(&db);
    o.mediamtx_internal_rtsp_url = Some(format!("rtsp://127.0.0.1:{port}"));
    (TestServer::start_with(db, o).await, port)
}

/// The MediaMTX path of a camera.
fn path_of(camera: &pb::Camera) -> String {
    opennvr_server::domain::camera::path_name(camera.id.parse().unwrap())
}

/// The restream of `camera`, served at `port`.
fn restream(port: u16, camera: &pb::Camera) -> RtspCamera {
    RtspCamera::restream(port, &format!("/{}", path_of(camera)))
}

/// Pids of live `ffmpeg` processes whose command line names `path`.
fn ffmpeg_reading(path: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.first().is_some_and(|a| a.ends_with("ffmpeg")) && args.iter().any(|a| a.contains(path)) {
            out.push(pid);
        }
    }
    out
}

/// The state letter of process `pid` (`R`, `S`, `Z`, ...), `None` once it is gone (reaped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits up to `secs` for `check`, polling.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {secs} s");
}

pub use crate::harness::bind_adapter as bind;

async fn detections(c: &opennvr_sdk::Client, req: pb::ListDetectionsRequest) -> Vec<pb::Detection> {
    c.inference().list_detections(req).await.unwrap().into_inner().detections
}

async fn adapter_status(c: &opennvr_sdk::Client, a: &pb::Adapter) -> pb::AdapterStatus {
    let r = c.inference().get_adapter_status(pb::GetAdapterStatusRequest { adapter_id: a.id.clone() }).await;
    r.unwrap().into_inner().status.unwrap()
}

/// The next event of a watch stream (heartbeats skipped), within 5 s.
async fn next_event(w: &mut tonic::Streaming<pb::WatchEventsResponse>) -> pb::Event {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), w.message()).await.unwrap().unwrap().unwrap();
        if let Some(pb::watch_events_response::Kind::Event(e)) = msg.kind {
            return e;
        }
    }
}

/// Whether `body` (a multipart form) holds a baseline JPEG of `width` x `height`.
fn holds_jpeg_of(body: &[u8], width: u16, height: u16) -> bool {
    let h = height.to_be_bytes();
    let w = width.to_be_bytes();
    let sof = [0xff, 0xc0, 0x00, 0x11, 0x08, h[0], h[1], w[0], w[1]];
    body.windows(2).any(|x| x == [0xff, 0xd8]) && body.windows(sof.len()).any(|x| x == sof)
}

#[tokio::test]
async fn frames_of_a_real_camera_become_stored_streamed_detections_and_a_hung_adapter_sheds_only_its_own() {
    // One scenario on purpose: a real camera, its restream and a supervised ffmpeg take seconds to
    // start, and the hung adapter must run beside the healthy one on the same frames.
    let (s, port) = server_reading_port().await;
    let admin = s.admin().await;
    let cam = crate::cameras::create(&admin, "yard").await;
    let _restream = restream(port, &cam);
    let people = TestAdapter::start().await;
    let stuck = TestAdapter::start().await;
    stuck.set(Mode::Hang);
    let a = register(&admin, "people", &people.url, 2000, 2, 2).await;
    let h = register(&admin, "stuck", &stuck.url, 60_000, 1, 1).await;
    let mut watch = admin
        .events()
        .watch_events(pb::WatchEventsRequest {
            camera_ids: vec![cam.id.clone()],
            types: vec![pb::EventType::Detection as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let b = bind(&admin, &cam, &a, 200, &["person"], 0.5).await.unwrap();
    let hb = bind(&admin, &cam, &h, 200, &[], 0.0).await.unwrap();
    assert_eq!(b.frame_interval, Some(prost_types::Duration { seconds: 0, nanos: 200_000_000 }));
    // A detection event arrives for the camera, from the binding.
    // (One deadline for the whole wait: heartbeats keep arriving while nothing else does.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let event = loop {
        let msg = tokio::time::timeout_at(deadline, watch.message()).await.expect("a detection event within 60 s");
        if let Some(pb::watch_events_response::Kind::Event(e)) = msg.unwrap().and_then(|m| m.kind) {
            break e;
        }
    };
    assert_eq!(event.camera_id, cam.id);
    let Some(pb::event::Payload::Detections(batch)) = event.payload else { panic!("not a detection batch") };
    assert_eq!((batch.adapter_id.as_str(), batch.binding_id.as_str()), (a.id.as_str(), b.id.as_str()));
    let d = &batch.detections[0];
    assert_eq!((d.label.as_str(), d.camera_id.as_str()), ("person", cam.id.as_str()));
    assert_eq!(d.bounding_box, Some(pb::BoundingBox { x: 0.1, y: 0.2, width: 0.3, height: 0.4 }));
    // The adapter got real decoded frames of the camera (1280x720 JPEG), with its token.
    assert!(holds_jpeg_of(&people.last_body.lock().unwrap(), 1280, 720), "the adapter got no 1280x720 JPEG");
    assert!(people.auth.lock().unwrap().last().unwrap().starts_with("Bearer adapter-token-7f3a|true|"));
    // Stored and listed, with filters.
    let stored =
        detections(&admin, pb::ListDetectionsRequest { camera_ids: vec![cam.id.clone()], ..Default::default() }).await;
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|d| d.binding_id == b.id && d.adapter_id == a.id && !d.id.is_empty()));
    let cars = detections(&admin, pb::ListDetectionsRequest { labels: vec!["car".into()], ..Default::default() }).await;
    assert!(cars.is_empty());
    let sure = detections(&admin, pb::ListDetectionsRequest { min_confidence: 0.95, ..Default::default() }).await;
    assert!(sure.is_empty(), "the adapter says 0.9");
    // Paging walks every stored detection once, newest first (once a second frame's is stored: the
    // first event may come before it).
    eventually(20, "a second detection stored", || async {
        detections(&admin, pb::ListDetectionsRequest { camera_ids: vec![cam.id.clone()], ..Default::default() })
            .await
            .len()
            >= 2
    })
    .await;
    let first = admin
        .inference()
        .list_detections(pb::ListDetectionsRequest { page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.detections.len(), 1);
    let second = admin
        .inference()
        .list_detections(pb::ListDetectionsRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.detections[0].id, first.detections[0].id);
    let at = |d: &pb::Detection| d.frame_time.map(|t| (t.seconds, t.nanos)).unwrap();
    assert!(at(&second.detections[0]) <= at(&first.detections[0]));
    // Meanwhile the hung adapter holds one frame forever, queues one, and drops the rest (counted);
    // the API answers promptly.
    eventually(20, "the hung adapter's bulkhead sheds frames", || async {
        let st = adapter_status(&admin, &h).await;
        st.rejected_total > 5 && st.in_flight == 1 && st.queued <= 1
    })
    .await;
    let t0 = std::time::Instant::now();
    admin.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "the API waited on a hung adapter");
    assert!(adapter_status(&admin, &a).await.succeeded_total > 0);
    // A region away from the box centre (0.25, 0.4) keeps nothing from then on.
    let narrowed = admin
        .inference()
        .update_adapter_binding(pb::UpdateAdapterBindingRequest {
            binding: Some(pb::AdapterBinding {
                id: b.id.clone(),
                regions: vec![pb::Polygon {
                    points: [(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)]
                        .iter()
                        .map(|(x, y)| pb::NormalizedPoint { x: *x, y: *y })
                        .collect(),
                }],
                etag: b.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["regions".into()] }),
        })
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(narrowed.regions.len(), 1);
    assert_ne!(narrowed.etag, b.etag);
    // Let the old source stop, then count: frames keep reaching the adapter, no detection is kept.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = detections(&admin, pb::ListDetectionsRequest { page_size: 1000, ..Default::default() }).await.len();
    let infers = people.infers.load(std::sync::atomic::Ordering::SeqCst);
    eventually(30, "frames reach the adapter after the update", || async {
        people.infers.load(std::sync::atomic::Ordering::SeqCst) > infers + 3
    })
    .await;
    let after = detections(&admin, pb::ListDetectionsRequest { page_size: 1000, ..Default::default() }).await.len();
    assert_eq!(after, before, "a detection outside the region was kept");
    // Unbinding stops the camera's ffmpeg for that adapter, and it is reaped.
    let path = path_of(&cam);
    let running = ffmpeg_reading(&path);
    assert_eq!(running.len(), 2, "one ffmpeg per binding");
    admin
        .inference()
        .delete_adapter_binding(pb::DeleteAdapterBindingRequest { binding_id: hb.id.clone(), etag: hb.etag.clone() })
        .await
        .unwrap();
    eventually(10, "one ffmpeg left after unbinding", || async { ffmpeg_reading(&path).len() == 1 }).await;
    let gone: Vec<u32> = running.iter().copied().filter(|p| !ffmpeg_reading(&path).contains(p)).collect();
    eventually(10, "the unbound ffmpeg is reaped", || async { gone.iter().all(|p| process_state(*p).is_none()) }).await;
    // Shutdown stops and reaps the rest before it returns.
    let last = ffmpeg_reading(&path);
    s.shutdown().await;
    for pid in last {
        assert_eq!(process_state(pid), None, "ffmpeg {pid} outlived the server's shutdown");
    }
}

#[tokio::test]
async fn a_user_granted_camera_a_gets_no_detection_event_of_camera_b() {
    use opennvr_server::domain::event::{EventKind, SiteEvent};
    use opennvr_server::domain::inference::{Detection, Finding};
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let a = crate::cameras::create(&admin, "A").await;
    let b = crate::cameras::create(&admin, "B").await;
    let op = s.user(&admin, "olga", pb::Role::Operator).await;
    let viewer = s.user(&admin, "vic", pb::Role::Viewer).await;
    for (c, name) in [(&op, "olga"), (&viewer, "vic")] {
        let who = c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
        crate::cameras::grant(&admin, &a, &who, &["camera.read"], None).await.unwrap();
        assert_eq!(who.username, name);
    }
    let watch = |c: opennvr_sdk::Client, types: Vec<i32>| async move {
        let req = pb::WatchEventsRequest { types, ..Default::default() };
        c.events().watch_events(req).await.unwrap().into_inner()
    };
    let mut hers = watch(op.clone(), vec![pb::EventType::Detection as i32]).await;
    let mut his = watch(viewer.clone(), Vec::new()).await;
    // Naming B in a watch: B does not exist for her.
    let e = op
        .events()
        .watch_events(pb::WatchEventsRequest { camera_ids: vec![b.id.clone()], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let adapter = uuid::Uuid::new_v4();
    let found = |cam: &pb::Camera, label: &str| {
        let camera: uuid::Uuid = cam.id.parse().unwrap();
        SiteEvent::new(
            chrono::Utc::now(),
            Some(camera),
            EventKind::Detections {
                adapter_id: adapter,
                binding_id: uuid::Uuid::new_v4(),
                frame_time: chrono::Utc::now(),
                detections: vec![Detection {
                    id: Some(uuid::Uuid::new_v4()),
                    camera_id: Some(camera),
                    adapter_id: adapter,
                    binding_id: None,
                    task: String::new(),
                    frame_time: Some(chrono::Utc::now()),
                    found: Finding {
                        label: label.into(),
                        confidence: 0.9,
                        x: 0.1,
                        y: 0.1,
                        width: 0.2,
                        height: 0.2,
                        attributes: Default::default(),
                        track_id: String::new(),
                    },
                }],
            },
        )
    };
    s.events.publish(found(&b, "of B"));
    s.events.publish(found(&a, "of A"));
    // Her first detection event is A's: B's was never sent to her.
    let e = next_event(&mut hers).await;
    assert_eq!(e.camera_id, a.id);
    let Some(pb::event::Payload::Detections(batch)) = e.payload else { panic!("a detection batch") };
    assert_eq!(batch.detections[0].label, "of A");
    // A viewer (no inference.read) sees neither, though granted A: the first event he gets is the
    // camera change published after them.
    s.events.publish(SiteEvent::new(
        chrono::Utc::now(),
        Some(a.id.parse().unwrap()),
        EventKind::CameraConfig {
            change: opennvr_server::domain::event::ConfigChange::Updated,
            name: "A".into(),
            changed_fields: vec!["description".into()],
            actor_user_id: String::new(),
        },
    ));
    let e = next_event(&mut his).await;
    assert_eq!(e.r#type, pb::EventType::CameraUpdated as i32, "{e:?}");
}

/// A server with a camera and a probed adapter (its tasks known), ready to be bound.
struct Bindable {
    s: TestServer,
    admin: opennvr_sdk::Client,
    cam: pb::Camera,
    adapter: pb::Adapter,
    _test_adapter: TestAdapter,
}

impl Bindable {
    async fn start() -> Bindable {
        let s = TestServer::start().await;
        let admin = s.admin().await;
        let cam = crate::cameras::create(&admin, "gate").await;
        let test_adapter = TestAdapter::start().await;
        let adapter = register(&admin, "people", &test_adapter.url, 2000, 1, 0).await;
        for _ in 0..100 {
            let req = pb::GetAdapterRequest { adapter_id: adapter.id.clone() };
            let now = admin.inference().get_adapter(req).await.unwrap();
            if !now.into_inner().adapter.unwrap().capabilities.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Bindable { s, admin, cam, adapter, _test_adapter: test_adapter }
    }

    /// A valid, disabled binding of the camera to the adapter.
    fn good(&self) -> pb::AdapterBinding {
        pb::AdapterBinding {
            camera_id: self.cam.id.clone(),
            adapter_id: self.adapter.id.clone(),
            enabled: false,
            ..Default::default()
        }
    }

    async fn create(&self, b: pb::AdapterBinding) -> Result<pb::AdapterBinding, tonic::Status> {
        let req = pb::CreateAdapterBindingRequest { binding: Some(b) };
        Ok(self.admin.inference().create_adapter_binding(req).await?.into_inner().binding.unwrap())
    }

    async fn update(&self, b: pb::AdapterBinding, paths: &[&str]) -> Result<pb::AdapterBinding, tonic::Status> {
        let paths = paths.iter().map(|p| p.to_string()).collect();
        let req =
            pb::UpdateAdapterBindingRequest { binding: Some(b), update_mask: Some(prost_types::FieldMask { paths }) };
        Ok(self.admin.inference().update_adapter_binding(req).await?.into_inner().binding.unwrap())
    }
}

/// A `prost_types::Duration` of `ms` milliseconds.
fn millis(ms: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 })
}

#[tokio::test]
async fn a_binding_with_a_bad_field_is_refused_naming_the_field() {
    let b = Bindable::start().await;
    let good = b.good();
    let square = |x: f32| pb::Polygon {
        points: [(0.0, 0.0), (x, 0.0), (x, x)].iter().map(|(x, y)| pb::NormalizedPoint { x: *x, y: *y }).collect(),
    };
    for (bad, field) in [
        (pb::AdapterBinding { camera_id: "x".into(), ..good.clone() }, "binding.camera_id"),
        (pb::AdapterBinding { adapter_id: String::new(), ..good.clone() }, "binding.adapter_id"),
        (pb::AdapterBinding { frame_interval: millis(100), ..good.clone() }, "binding.frame_interval"),
        (pb::AdapterBinding { frame_interval: millis(3_600_001), ..good.clone() }, "binding.frame_interval"),
        (pb::AdapterBinding { regions: vec![square(1.5)], ..good.clone() }, "binding.regions"),
        (
            pb::AdapterBinding {
                regions: vec![pb::Polygon { points: square(0.5).points[..2].to_vec() }],
                ..good.clone()
            },
            "binding.regions",
        ),
        (pb::AdapterBinding { min_confidence: 1.5, ..good.clone() }, "binding.min_confidence"),
        (pb::AdapterBinding { labels: vec![" ".into()], ..good.clone() }, "binding.labels"),
        (pb::AdapterBinding { task: "plates".into(), ..good.clone() }, "binding.task"),
    ] {
        let e = b.create(bad).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
}

#[tokio::test]
async fn a_binding_to_an_unknown_camera_or_adapter_is_not_found() {
    let b = Bindable::start().await;
    for bad in [
        pb::AdapterBinding { camera_id: uuid::Uuid::new_v4().to_string(), ..b.good() },
        pb::AdapterBinding { adapter_id: uuid::Uuid::new_v4().to_string(), ..b.good() },
    ] {
        assert_eq!(b.create(bad).await.unwrap_err().code(), tonic::Code::NotFound);
    }
}

#[tokio::test]
async fn a_new_binding_gets_defaults_and_is_the_only_one_of_its_camera_and_adapter() {
    let b = Bindable::start().await;
    let made =
        b.create(pb::AdapterBinding { labels: vec!["person".into(), "Person".into()], ..b.good() }).await.unwrap();
    // Defaults and normalisation: 1 s, the labels once, the task left to the adapter.
    assert_eq!(made.frame_interval, millis(1000));
    assert_eq!(made.labels, vec!["person"]);
    assert_eq!(b.create(b.good()).await.unwrap_err().code(), tonic::Code::AlreadyExists);
    let listed = b
        .admin
        .inference()
        .list_adapter_bindings(pb::ListAdapterBindingsRequest { camera_id: b.cam.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.bindings, vec![made]);
}

#[tokio::test]
async fn a_binding_update_changes_only_the_masked_fields_and_nothing_on_failure() {
    let b = Bindable::start().await;
    let made = b.create(pb::AdapterBinding { labels: vec!["person".into()], ..b.good() }).await.unwrap();
    let e = b.update(pb::AdapterBinding { camera_id: b.cam.id.clone(), ..made.clone() }, &["camera_id"]).await;
    assert_eq!(e.unwrap_err().code(), tonic::Code::InvalidArgument);
    let e = b.update(pb::AdapterBinding { min_confidence: 2.0, ..made.clone() }, &["min_confidence"]).await;
    assert!(e.unwrap_err().message().contains("binding.min_confidence"));
    let changed = b
        .update(
            pb::AdapterBinding { min_confidence: 0.7, task: "person_detection".into(), ..made.clone() },
            &["min_confidence", "task"],
        )
        .await
        .unwrap();
    assert_eq!((changed.min_confidence, changed.task.as_str()), (0.7, "person_detection"));
    assert_eq!(changed.labels, made.labels, "a field outside the mask is kept");
    let stale = b.update(pb::AdapterBinding { enabled: true, ..made.clone() }, &["enabled"]).await.unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted);
    let got = b
        .admin
        .inference()
        .get_adapter_binding(pb::GetAdapterBindingRequest { binding_id: made.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(got, changed);
}

#[tokio::test]
async fn a_bound_adapter_stays_and_a_binding_goes_only_with_its_current_etag() {
    let b = Bindable::start().await;
    let made = b.create(b.good()).await.unwrap();
    let changed = b.update(pb::AdapterBinding { enabled: true, ..made.clone() }, &["enabled"]).await.unwrap();
    let mut inference = b.admin.inference();
    let e = inference
        .delete_adapter(pb::DeleteAdapterRequest { adapter_id: b.adapter.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let stale = pb::DeleteAdapterBindingRequest { binding_id: made.id.clone(), etag: made.etag.clone() };
    assert_eq!(inference.delete_adapter_binding(stale).await.unwrap_err().code(), tonic::Code::Aborted);
    let current = pb::DeleteAdapterBindingRequest { binding_id: made.id.clone(), etag: changed.etag };
    inference.delete_adapter_binding(current).await.unwrap();
    let e = inference.get_adapter_binding(pb::GetAdapterBindingRequest { binding_id: made.id }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn detections_older_than_the_retention_go_and_the_others_stay() {
    let b = Bindable::start().await;
    let now = chrono::Utc::now();
    for age in [40, 31, 1] {
        let row = opennvr_server::store::inference::DetectionRow {
            id: uuid::Uuid::new_v4(),
            camera_id: b.cam.id.parse().unwrap(),
            adapter_id: b.adapter.id.parse().unwrap(),
            binding_id: None,
            task: String::new(),
            frame_time: now - chrono::Duration::days(age),
            label: format!("{age} days old"),
            confidence: 0.9,
            box_x: 0.1,
            box_y: 0.1,
            box_width: 0.2,
            box_height: 0.2,
            attributes: serde_json::json!({}),
            track_id: String::new(),
            created_at: now,
        };
        b.s.store.run(move |c| opennvr_server::store::inference::DetectionRow::insert_all(c, &[row])).await.unwrap();
    }
    let gone = opennvr_server::app::bindings::expire_detections(&b.s.store, now - chrono::Duration::days(30)).await;
    assert_eq!(gone.unwrap(), 2);
    let left = detections(&b.admin, pb::ListDetectionsRequest::default()).await;
    assert_eq!(left.iter().map(|d| d.label.as_str()).collect::<Vec<_>>(), vec!["1 days old"]);
}

#[tokio::test]
async fn a_bad_detection_filter_is_refused_naming_the_field() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for (req, field) in [
        (pb::ListDetectionsRequest { camera_ids: vec!["nope".into()], ..Default::default() }, "camera_ids"),
        (pb::ListDetectionsRequest { min_confidence: -0.1, ..Default::default() }, "min_confidence"),
        (
            pb::ListDetectionsRequest {
                start_time: Some(prost_types::Timestamp { seconds: 200, nanos: 0 }),
                end_time: Some(prost_types::Timestamp { seconds: 100, nanos: 0 }),
                ..Default::default()
            },
            "end_time",
        ),
    ] {
        let e = admin.inference().list_detections(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains(field), "{}", e.message());
    }
}

#[tokio::test]
async fn inference_on_demand_runs_a_cameras_live_frame() {
    let (s, port) = server_reading_port().await;
    let admin = s.admin().await;
    let cam = crate::cameras::create(&admin, "porch").await;
    let ta = TestAdapter::start().await;
    let a = register(&admin, "people", &ta.url, 5000, 1, 0).await;
    // Nothing bound and none named.
    let e = admin
        .inference()
        .run_inference(pb::RunInferenceRequest { camera_id: cam.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    // The camera's restream is not up: no frame, said so.
    let ask = pb::RunInferenceRequest { camera_id: cam.id.clone(), adapter_id: a.id.clone(), ..Default::default() };
    let e = admin.inference().run_inference(ask.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(!e.message().contains("eyJ"), "a token leaked into the error: {}", e.message());
    // Once it is, one frame is grabbed and analysed (not stored), and no ffmpeg stays behind.
    let _restream = restream(port, &cam);
    let res = admin.inference().run_inference(ask).await.unwrap().into_inner();
    assert!(res.frame_time.is_some());
    assert_eq!(res.runs.len(), 1);
    assert_eq!(res.runs[0].detections[0].label, "person");
    assert!(res.runs[0].detections[0].id.is_empty(), "on-demand results are not stored");
    assert!(holds_jpeg_of(&ta.last_body.lock().unwrap(), 1280, 720));
    assert!(detections(&admin, pb::ListDetectionsRequest::default()).await.is_empty());
    assert!(ffmpeg_reading(&path_of(&cam)).is_empty());
}

#[tokio::test]
async fn a_killed_server_leaves_no_ffmpeg_behind() {
    let (s, port) = server_reading_port().await;
    let admin = s.admin().await;
    let cam = crate::cameras::create(&admin, "shed").await;
    let _restream = restream(port, &cam);
    let ta = TestAdapter::start().await;
    let a = register(&admin, "people", &ta.url, 2000, 1, 0).await;
    // One frame a minute: ffmpeg writes (and would notice a dead reader by SIGPIPE) only then, so
    // only the parent-death signal can end it within seconds.
    bind(&admin, &cam, &a, 60_000, &[], 0.0).await.unwrap();
    let path = path_of(&cam);
    eventually(30, "the binding's ffmpeg runs", || async { ffmpeg_reading(&path).len() == 1 }).await;
    let (runtime_url, owner_url, options) = (s.db.runtime_url(), s.db.owner_url(), s.options.clone());
    s.shutdown().await;
    assert!(ffmpeg_reading(&path).is_empty(), "shutdown left an ffmpeg");
    // The real server binary on the same database, then SIGKILL: no chance to clean up.
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_opennvr-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENNVR_LISTEN", "127.0.0.1:0")
        .env("OPENNVR_DATA_DIR", options.data_dir.unwrap())
        .env("OPENNVR_MASTER_KEY_FILE", options.master_key_file.unwrap())
        .env("DATABASE_URL", runtime_url)
        .env("OPENNVR_DATABASE_OWNER_URL", owner_url)
        .env("OPENNVR_MEDIAMTX_INTERNAL_RTSP_URL", format!("rtsp://127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server_pid = server.id();
    let mut child = 0;
    eventually(60, "the server binary starts the binding's ffmpeg", || {
        let found = ffmpeg_reading(&path);
        let parent = |pid: u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
        };
        child = found.into_iter().find(|p| parent(*p) == Some(server_pid)).unwrap_or(0);
        async move { child != 0 }
    })
    .await;
    server.kill().unwrap();
    server.wait().unwrap();
    // The parent-death signal kills ffmpeg at once; its new parent reaps it.
    eventually(5, "ffmpeg dies with the server", || async { !matches!(process_state(child), Some(st) if st != 'Z') })
        .await;
}
