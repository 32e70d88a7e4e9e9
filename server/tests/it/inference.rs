//! AI adapters through the API: registration (sealed token, where adapters may live), health and
//! capabilities, and fault isolation — a test adapter that fails, answers garbage, hangs, crawls or
//! drops connections trips only its own breaker and sheds only its own frames.
use crate::harness::TestServer;
use opennvr_sdk::pb;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::Code;

/// What the test adapter does with `/infer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One person, as the contract says.
    Ok,
    /// HTTP 500 with a non-transient error envelope.
    Fail,
    /// HTTP 200 with something that is not the contract's JSON.
    Garbage,
    /// Never answers.
    Hang,
    /// Answers after this many milliseconds.
    Slow(u64),
    /// HTTP 400 with the contract's envelope: this frame is bad (the adapter is fine).
    Reject,
}

/// An adapter implementing the contract, whose behaviour a test sets.
#[derive(Clone)]
pub struct TestAdapter {
    pub url: String,
    pub mode: Arc<Mutex<Mode>>,
    pub healthy: Arc<Mutex<bool>>,
    pub infers: Arc<AtomicUsize>,
    pub auth: Arc<Mutex<Vec<String>>>,
    /// The body of the last `/infer` call (the multipart form with the frame).
    pub last_body: Arc<Mutex<Vec<u8>>>,
    /// What `/capabilities` says of `max_in_flight`.
    pub max_in_flight: Arc<AtomicUsize>,
    /// `/infer` calls running now, and the most ever at once.
    pub in_flight: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
}

impl TestAdapter {
    pub async fn start() -> TestAdapter {
        use axum::routing::{get, post};
        let t = TestAdapter {
            url: String::new(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            healthy: Arc::new(Mutex::new(true)),
            infers: Arc::default(),
            auth: Arc::default(),
            last_body: Arc::default(),
            max_in_flight: Arc::new(AtomicUsize::new(4)),
            in_flight: Arc::default(),
            peak: Arc::default(),
        };
        let (health, infer_state, caps) = (t.clone(), t.clone(), t.clone());
        let app = axum::Router::new()
            .route(
                "/health",
                get(move || {
                    let ok = *health.healthy.lock().unwrap();
                    async move {
                        if ok {
                            (axum::http::StatusCode::OK, r#"{"status":"ok"}"#)
                        } else {
                            (axum::http::StatusCode::SERVICE_UNAVAILABLE, r#"{"error":{"code":"down","message":"model not loaded","transient":true}}"#)
                        }
                    }
                }),
            )
            .route(
                "/capabilities",
                get(move || {
                    let n = caps.max_in_flight.load(Ordering::SeqCst);
                    async move {
                        format!(
                            r#"{{"name":"test","model":"stub","version":"1.0","tasks":["person_detection"],"labels":["person"],"max_in_flight":{n}}}"#
                        )
                    }
                }),
            )
            .route(
                "/infer",
                post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let t = infer_state.clone();
                    async move {
                        t.infers.fetch_add(1, Ordering::SeqCst);
                        let now = t.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        t.peak.fetch_max(now, Ordering::SeqCst);
                        let _leave = Leave(t.in_flight.clone());
                        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        let correlated = headers.contains_key("x-correlation-id");
                        t.auth.lock().unwrap().push(format!("{auth}|{correlated}|{}", body.len()));
                        *t.last_body.lock().unwrap() = body.to_vec();
                        let mode = *t.mode.lock().unwrap();
                        match mode {
                            Mode::Ok => {}
                            Mode::Fail => {
                                return (
                                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                                    r#"{"error":{"code":"crash","message":"model crashed","transient":false}}"#.to_owned(),
                                );
                            }
                            Mode::Garbage => return (axum::http::StatusCode::OK, "<html>hello</html>".to_owned()),
                            Mode::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                            Mode::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                            Mode::Reject => {
                                return (
                                    axum::http::StatusCode::BAD_REQUEST,
                                    r#"{"error":{"code":"bad_image","message":"cannot decode the frame","transient":false}}"#.to_owned(),
                                );
                            }
                        }
                        (
                            axum::http::StatusCode::OK,
                            r#"{"detections":[{"label":"person","confidence":0.9,"box":{"x":0.1,"y":0.2,"width":0.3,"height":0.4}}],"timing":{"inference_ms":1.0}}"#.to_owned(),
                        )
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestAdapter { url, ..t }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

/// Counts a call out of flight when it ends, however it ends.
struct Leave(Arc<AtomicUsize>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A JPEG to send (adapters here do not decode it; the server checks the JPEG marker).
pub const JPEG: &[u8] =
    &[0xff, 0xd8, 0xff, 0xe0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff, 0xd9];

pub use crate::harness::register_adapter as register;

fn run(adapter: &pb::Adapter) -> pb::RunInferenceRequest {
    pb::RunInferenceRequest { adapter_id: adapter.id.clone(), image_jpeg: JPEG.to_vec(), ..Default::default() }
}

async fn status(admin: &opennvr_sdk::Client, a: &pb::Adapter) -> pb::AdapterStatus {
    let r = admin.inference().get_adapter_status(pb::GetAdapterStatusRequest { adapter_id: a.id.clone() }).await;
    r.unwrap().into_inner().status.unwrap()
}

/// Waits (up to 5 s) until the adapter's health is `want`.
/// Makes the server probe `a` at once (any change does).
async fn probe_now(admin: &opennvr_sdk::Client, a: &pb::Adapter) {
    admin
        .inference()
        .update_adapter(pb::UpdateAdapterRequest {
            adapter: Some(pb::Adapter { id: a.id.clone(), description: "probe me".into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
            token: String::new(),
        })
        .await
        .unwrap();
}

async fn health_becomes(admin: &opennvr_sdk::Client, a: &pb::Adapter, want: pb::AdapterHealth) -> pb::Adapter {
    for _ in 0..100 {
        let now = admin.inference().get_adapter(pb::GetAdapterRequest { adapter_id: a.id.clone() }).await.unwrap();
        let now = now.into_inner().adapter.unwrap();
        if now.health == want as i32 {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("adapter {} never became {want:?}", a.name);
}

#[tokio::test]
async fn adapters_register_with_a_sealed_token_report_health_and_capabilities_and_must_live_nearby() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let ta = TestAdapter::start().await;
    let a = register(&admin, "people", &ta.url, 2000, 2, 4).await;
    assert!(a.has_token);
    // The registry probes at once: healthy, with what the adapter says it does.
    let a = health_becomes(&admin, &a, pb::AdapterHealth::Healthy).await;
    assert_eq!(a.capabilities, vec!["person_detection"]);
    assert_eq!(a.supported_labels, vec!["person"]);
    // The token is sealed at rest and goes, with a correlation id, to the adapter.
    let mut su = s.db.superuser();
    assert_eq!(
        crate::harness::count(
            &mut su,
            "SELECT count(*) AS n FROM adapters a WHERE a::text LIKE '%adapter-token-7f3a%'"
        ),
        0
    );
    let res = admin.inference().run_inference(run(&a)).await.unwrap().into_inner();
    let found = &res.runs[0].detections;
    assert_eq!((found.len(), found[0].label.as_str()), (1, "person"));
    assert_eq!(found[0].bounding_box, Some(pb::BoundingBox { x: 0.1, y: 0.2, width: 0.3, height: 0.4 }));
    let seen = ta.auth.lock().unwrap().last().cloned().unwrap();
    assert!(seen.starts_with("Bearer adapter-token-7f3a|true|"), "{seen}");
    // Where adapters may live: not on the internet unless allowed; no credentials in the URL.
    for (url, code, words) in [
        ("http://8.8.8.8:8080", Code::FailedPrecondition, "OPENNVR_INFERENCE_ALLOW_REMOTE"),
        ("http://user:pw@127.0.0.1:9", Code::InvalidArgument, "credentials"),
        ("ftp://127.0.0.1", Code::InvalidArgument, "http"),
    ] {
        let e = admin
            .inference()
            .create_adapter(pb::CreateAdapterRequest {
                adapter: Some(pb::Adapter {
                    name: "remote".into(),
                    endpoint_url: url.into(),
                    enabled: true,
                    ..Default::default()
                }),
                token: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{url}: {e:?}");
        assert!(e.message().contains(words), "{url}: {}", e.message());
    }
    // A stored token never follows the adapter to another host.
    let moved = admin
        .inference()
        .update_adapter(pb::UpdateAdapterRequest {
            adapter: Some(pb::Adapter {
                id: a.id.clone(),
                endpoint_url: "http://localhost:9".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["endpoint_url".into()] }),
            token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Code::InvalidArgument);
    // The adapter going down shows at the next probe (a change makes one at once), with the reason.
    *ta.healthy.lock().unwrap() = false;
    probe_now(&admin, &a).await;
    let down = health_becomes(&admin, &a, pb::AdapterHealth::Unhealthy).await;
    assert!(down.last_error.contains("model not loaded"), "{}", down.last_error);
    assert!(!down.last_error.contains("adapter-token"), "no secret in errors");
    admin
        .inference()
        .delete_adapter(pb::DeleteAdapterRequest { adapter_id: a.id.clone(), ..Default::default() })
        .await
        .unwrap();
    let gone = admin.inference().get_adapter(pb::GetAdapterRequest { adapter_id: a.id }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

/// A server with an adapter that misbehaves as the test says (one worker, a queue of two, a 500 ms
/// timeout), healthy to begin with.
struct Flaky {
    s: TestServer,
    admin: opennvr_sdk::Client,
    adapter: TestAdapter,
    a: pb::Adapter,
}

impl Flaky {
    async fn start() -> Flaky {
        let s = TestServer::start().await;
        let admin = s.admin().await;
        let adapter = TestAdapter::start().await;
        let a = register(&admin, "flaky", &adapter.url, 500, 1, 2).await;
        health_becomes(&admin, &a, pb::AdapterHealth::Healthy).await;
        Flaky { s, admin, adapter, a }
    }

    /// Five failing calls: enough to open the circuit.
    async fn trip(&self, mode: Mode) -> Vec<tonic::Status> {
        self.adapter.set(mode);
        let mut errors = Vec::new();
        for _ in 0..5 {
            errors.push(self.admin.inference().run_inference(run(&self.a)).await.unwrap_err());
        }
        errors
    }

    /// Past the breaker's cool-down: the next call is a trial.
    fn cool_down(&self) {
        self.s.clock.advance(chrono::Duration::seconds(31));
    }
}

#[tokio::test]
async fn five_errors_open_the_circuit_and_an_open_circuit_spares_the_adapter() {
    let f = Flaky::start().await;
    for e in f.trip(Mode::Fail).await {
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    }
    let reached = f.adapter.infers.load(Ordering::SeqCst);
    let open = f.admin.inference().run_inference(run(&f.a)).await.unwrap_err();
    assert_eq!(opennvr_sdk::error_reason(&open).as_deref(), Some("ERROR_REASON_ADAPTER_CIRCUIT_OPEN"), "{open:?}");
    assert_eq!(f.adapter.infers.load(Ordering::SeqCst), reached, "an open circuit does not call the adapter");
    let st = status(&f.admin, &f.a).await;
    assert_eq!(st.circuit_state, pb::CircuitState::Open as i32);
    assert_eq!((st.failed_total, st.rejected_total), (5, 1));
    let adapter = f.admin.inference().get_adapter(pb::GetAdapterRequest { adapter_id: f.a.id.clone() }).await;
    assert_eq!(adapter.unwrap().into_inner().adapter.unwrap().health, pb::AdapterHealth::Unhealthy as i32);
}

#[tokio::test]
async fn a_successful_trial_after_the_cool_down_closes_the_circuit() {
    let f = Flaky::start().await;
    f.trip(Mode::Fail).await;
    f.adapter.set(Mode::Ok);
    f.cool_down();
    f.admin.inference().run_inference(run(&f.a)).await.unwrap();
    assert_eq!(status(&f.admin, &f.a).await.circuit_state, pb::CircuitState::Closed as i32);
}

#[tokio::test]
async fn garbage_answers_open_the_circuit_and_a_failed_trial_reopens_it() {
    let f = Flaky::start().await;
    for e in f.trip(Mode::Garbage).await {
        assert!(e.message().contains("not the contract"), "{e:?}");
    }
    assert_eq!(status(&f.admin, &f.a).await.circuit_state, pb::CircuitState::Open as i32);
    f.cool_down();
    f.admin.inference().run_inference(run(&f.a)).await.unwrap_err();
    assert_eq!(status(&f.admin, &f.a).await.circuit_state, pb::CircuitState::Open as i32, "a failed trial reopens it");
}

#[tokio::test]
async fn a_hung_adapter_call_ends_at_the_adapters_timeout() {
    let f = Flaky::start().await;
    f.adapter.set(Mode::Hang);
    let timed_out = f.admin.inference().run_inference(run(&f.a)).await.unwrap_err();
    assert_eq!(timed_out.code(), Code::DeadlineExceeded, "{timed_out:?}");
    assert_eq!(status(&f.admin, &f.a).await.timeouts_total, 1);
    let metrics = f.s.scrape("/metrics", &f.admin).await;
    let want =
        format!("opennvr_adapter_frames_total{{adapter=\"flaky\",adapter_id=\"{}\",outcome=\"timeout\"}} 1\n", f.a.id);
    assert!(metrics.contains(&want), "{want:?} not in {metrics}");
}

#[tokio::test]
async fn an_adapter_that_hangs_for_good_stalls_neither_the_api_nor_another_adapter() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let good = TestAdapter::start().await;
    let b = register(&admin, "steady", &good.url, 2000, 2, 0).await;
    // A minute's timeout: the stuck call outlives every other call below.
    let stuck_adapter = TestAdapter::start().await;
    stuck_adapter.set(Mode::Hang);
    let stuck = register(&admin, "stuck", &stuck_adapter.url, 60_000, 1, 0).await;
    health_becomes(&admin, &stuck, pb::AdapterHealth::Healthy).await;
    let hung = {
        let (admin, stuck) = (admin.clone(), stuck.clone());
        tokio::spawn(async move { admin.inference().run_inference(run(&stuck)).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stuck_adapter.infers.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the stuck adapter never got its frame");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..5 {
        let t = std::time::Instant::now();
        admin.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap();
        admin.inference().run_inference(run(&b)).await.unwrap();
        admin.inference().list_adapters(pb::ListAdaptersRequest::default()).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(3), "other calls kept answering ({:?})", t.elapsed());
    }
    assert!(!hung.is_finished(), "the stuck call is still waiting on its adapter");
    assert_eq!(status(&admin, &stuck).await.in_flight, 1);
    assert_eq!(status(&admin, &b).await.failed_total, 0, "the other adapter never suffered");
    hung.abort();
    // The steady adapter's figures for Prometheus.
    let metrics = s.scrape("/metrics", &admin).await;
    let series = |name: &str, extra: &str, value: &str| {
        format!("opennvr_adapter_{name}{{adapter=\"steady\",adapter_id=\"{}\"{extra}}} {value}\n", b.id)
    };
    for want in [
        series("frames_total", ",outcome=\"failed\"", "0"),
        series("frames_sent_total", "", "5"),
        series("frames_total", ",outcome=\"succeeded\"", "5"),
        series("up", "", "1"),
    ] {
        assert!(metrics.contains(&want), "{want:?} not in {metrics}");
    }
    assert!(metrics.contains(&format!(
        "opennvr_adapter_latency_seconds{{adapter=\"steady\",adapter_id=\"{}\",quantile=\"0.5\"}}",
        b.id
    )));
}

#[tokio::test]
async fn a_crawling_adapter_drops_its_oldest_waiting_frames_and_nothing_piles_up() {
    // One worker and a queue of two: frames beyond that push out the oldest waiting ones, which are
    // told so at once.
    let f = Flaky::start().await;
    f.adapter.set(Mode::Slow(400));
    let first = {
        let (admin, a) = (f.admin.clone(), f.a.clone());
        tokio::spawn(async move { admin.inference().run_inference(run(&a)).await })
    };
    while f.adapter.infers.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let (admin, a) = (f.admin.clone(), f.a.clone());
        waiting.push(tokio::spawn(async move { admin.inference().run_inference(run(&a)).await }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut outcomes = Vec::new();
    for w in waiting {
        outcomes.push(w.await.unwrap().map(|_| ()).map_err(|e| (e.code(), opennvr_sdk::error_reason(&e))));
    }
    first.await.unwrap().unwrap();
    let overloaded = (Code::ResourceExhausted, Some("ERROR_REASON_ADAPTER_OVERLOADED".to_owned()));
    assert_eq!(
        outcomes,
        vec![Err(overloaded.clone()), Err(overloaded), Ok(()), Ok(())],
        "the two oldest waiting were dropped"
    );
    let st = status(&f.admin, &f.a).await;
    assert_eq!((st.in_flight, st.queued), (0, 0));
    let metrics = f.s.scrape("/metrics", &f.admin).await;
    for (name, extra, value) in [("frames_total", ",outcome=\"dropped\"", "2"), ("in_flight", "", "0")] {
        let want = format!("opennvr_adapter_{name}{{adapter=\"flaky\",adapter_id=\"{}\"{extra}}} {value}\n", f.a.id);
        assert!(metrics.contains(&want), "{want:?} not in {metrics}");
    }
}

#[tokio::test]
async fn an_adapter_that_drops_every_connection_fails_like_the_others() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closer_url = format!("http://{}", closer.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            if let Ok((sock, _)) = closer.accept().await {
                drop(sock);
            }
        }
    });
    let c = register(&admin, "closer", &closer_url, 1000, 1, 0).await;
    // (It never answered a health check, so the task is named.)
    let e = admin
        .inference()
        .run_inference(pb::RunInferenceRequest { task: "person_detection".into(), ..run(&c) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert_eq!(status(&admin, &c).await.failed_total, 1);
}

#[tokio::test]
async fn an_adapter_gets_no_more_frames_at_once_than_it_takes_and_a_bad_frame_does_not_trip_its_breaker() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let t = TestAdapter::start().await;
    t.max_in_flight.store(1, Ordering::SeqCst);
    t.set(Mode::Slow(200));
    // Four workers configured, but the adapter says it takes one at a time: it gets one at a time.
    let a = register(&admin, "one at a time", &t.url, 5000, 4, 8).await;
    let got = health_becomes(&admin, &a, pb::AdapterHealth::Healthy).await;
    assert_eq!(got.max_in_flight, 1);
    assert_eq!((got.model.as_str(), got.model_version.as_str()), ("stub", "1.0"));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (admin, a) = (admin.clone(), a.clone());
        calls.spawn(async move { admin.inference().run_inference(run(&a)).await });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(t.peak.load(Ordering::SeqCst), 1, "never two frames at once");
    // Frames the adapter refuses as bad (400 with the contract's envelope) fail alone: the caller
    // is told so, and the adapter's circuit stays closed however many come.
    t.set(Mode::Reject);
    for _ in 0..7 {
        let e = admin.inference().run_inference(run(&a)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("cannot decode the frame"), "{e:?}");
    }
    let st = status(&admin, &a).await;
    assert_eq!(st.circuit_state, pb::CircuitState::Closed as i32);
    assert_eq!(st.failed_total, 7);
    t.set(Mode::Ok);
    admin.inference().run_inference(run(&a)).await.unwrap();
}

#[tokio::test]
async fn a_binding_made_before_its_adapter_answered_runs_the_task_the_adapter_names_later() {
    use opennvr_server::inference::router::{Frame, Route};
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let t = TestAdapter::start().await;
    *t.healthy.lock().unwrap() = false;
    let a = register(&admin, "late", &t.url, 5000, 1, 0).await;
    let camera = crate::cameras::create(&admin, "Gate").await;
    let binding = crate::routing::bind(&admin, &camera, &a, 1000, &[], 0.0).await.unwrap();
    assert_eq!(binding.task, "", "no task named: the adapter's first, whatever it says");
    // Not probed yet: an uploaded image has no task to run, and says so.
    let e = admin.inference().run_inference(run(&a)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("not said which tasks"), "{e:?}");
    // Now it answers; a frame of the bound camera goes out with the task it names.
    *t.healthy.lock().unwrap() = true;
    probe_now(&admin, &a).await;
    health_becomes(&admin, &a, pb::AdapterHealth::Healthy).await;
    let row = s
        .store
        .run(opennvr_server::store::inference::BindingRow::active)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.id.to_string() == binding.id)
        .unwrap();
    let before = t.infers.load(Ordering::SeqCst);
    s.frames.deliver(&Route::of(&row), Frame::new(JPEG.to_vec(), chrono::Utc::now()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.infers.load(Ordering::SeqCst) == before {
        assert!(std::time::Instant::now() < deadline, "the frame never reached the adapter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = String::from_utf8_lossy(&t.last_body.lock().unwrap()).into_owned();
    assert!(body.contains("name=\"task\"\r\n\r\nperson_detection\r\n"), "{body}");
    // And what it found is stored under that task.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = admin
            .inference()
            .list_detections(pb::ListDetectionsRequest { camera_ids: vec![camera.id.clone()], ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .detections;
        if let Some(d) = found.first() {
            assert_eq!((d.task.as_str(), d.label.as_str()), ("person_detection", "person"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no detection stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Moves adapter `a` to `url` without giving its token again.
async fn move_adapter(admin: &opennvr_sdk::Client, a: &pb::Adapter, url: &str) -> Result<pb::Adapter, tonic::Status> {
    let moved = admin
        .inference()
        .update_adapter(pb::UpdateAdapterRequest {
            adapter: Some(pb::Adapter { id: a.id.clone(), endpoint_url: url.into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["endpoint_url".into()] }),
            token: String::new(),
        })
        .await;
    moved.map(|r| r.into_inner().adapter.unwrap_or_default())
}

#[tokio::test]
async fn a_stored_token_stays_with_its_scheme_host_and_port() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let ta = TestAdapter::start().await;
    let a = register(&admin, "people", &ta.url, 2000, 2, 4).await;
    let port: u16 = ta.url.rsplit(':').next().unwrap().parse().unwrap();
    for elsewhere in [format!("http://127.0.0.1:{}", port + 1), format!("https://127.0.0.1:{port}")] {
        let e = move_adapter(&admin, &a, &elsewhere).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{elsewhere}: {e:?}");
        assert!(e.message().contains("token again"), "{elsewhere}: {}", e.message());
    }
    // Another path at the same origin keeps it.
    move_adapter(&admin, &a, &format!("{}/v2", ta.url)).await.unwrap();
}

#[tokio::test]
async fn adapter_urls_with_a_query_or_fragment_are_refused() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for url in ["http://127.0.0.1:9/?next=http://169.254.169.254/", "http://127.0.0.1:9/#x"] {
        let e = admin
            .inference()
            .create_adapter(pb::CreateAdapterRequest {
                adapter: Some(pb::Adapter { name: "q".into(), endpoint_url: url.into(), ..Default::default() }),
                token: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{url}: {e:?}");
        assert!(e.message().contains("adapter.endpoint_url") && e.message().contains("query"), "{}", e.message());
    }
}

#[tokio::test]
async fn an_adapter_that_answers_a_redirect_is_not_followed() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // The local service the redirect points at counts every connection it gets.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_port = target.local_addr().unwrap().port();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = target.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let location = format!("http://127.0.0.1:{target_port}/health");
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move { (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, location)], "") }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let a = register(&admin, "redirecting", &url, 2000, 2, 4).await;
    let down = health_becomes(&admin, &a, pb::AdapterHealth::Unhealthy).await;
    assert!(down.last_error.contains("302"), "{}", down.last_error);
    admin.inference().run_inference(run(&a)).await.unwrap_err();
    assert_eq!(reached.load(Ordering::SeqCst), 0, "the second port received nothing");
}

#[tokio::test]
async fn a_name_that_resolves_elsewhere_on_the_next_lookup_is_not_reached() {
    use opennvr_server::inference::{AdapterNetwork, Lookup, client::AdapterClient};
    let ta = TestAdapter::start().await;
    let port = ta.url.rsplit(':').next().unwrap().to_owned();
    let url = format!("http://adapter.rebind.test:{port}");
    // A name that always resolves to this host is reached through the checking client...
    let here: Lookup = Arc::new(|_| Box::pin(async { Ok(vec!["127.0.0.1".parse().unwrap()]) }));
    let network = AdapterNetwork::with_lookup(false, here);
    network.check_endpoint("endpoint_url", &url).await.unwrap();
    let client = AdapterClient::new(network.client().unwrap(), &url, None, Duration::from_secs(2));
    client.health().await.unwrap();
    // ...but one that resolves to this host when checked and to a public address at the next
    // lookup is not: the connection goes only to a checked address.
    let lookups = Arc::new(AtomicUsize::new(0));
    let seen = lookups.clone();
    let rebinding: Lookup = Arc::new(move |host| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            assert_eq!(host, "adapter.rebind.test");
            Ok(vec![if n == 0 { "127.0.0.1" } else { "93.184.215.14" }.parse().unwrap()])
        })
    });
    let network = AdapterNetwork::with_lookup(false, rebinding);
    network.check_endpoint("endpoint_url", &url).await.unwrap();
    let client = AdapterClient::new(network.client().unwrap(), &url, None, Duration::from_secs(2));
    let refused = client.health().await.unwrap_err().to_string();
    assert!(refused.contains("resolves to no address on this host or a private network"), "{refused}");
    assert_eq!(lookups.load(Ordering::SeqCst), 2, "checked once, looked up again to connect");
    // A name with any public address is refused when checked.
    let mixed: Lookup =
        Arc::new(|_| Box::pin(async { Ok(vec!["127.0.0.1".parse().unwrap(), "93.184.215.14".parse().unwrap()]) }));
    let e = AdapterNetwork::with_lookup(false, mixed).check_endpoint("endpoint_url", &url).await.unwrap_err();
    assert!(e.message().contains("OPENNVR_INFERENCE_ALLOW_REMOTE"), "{}", e.message());
}
