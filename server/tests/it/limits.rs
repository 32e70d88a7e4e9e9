//! Bounded work and access per caller: repeated id (or type, or label) fields refuse more than 200
//! items and any item twice, naming the field; slow, silent and surplus connections are closed;
//! long streams end within 2 s of their caller's access ending.
use crate::cameras::create;
use crate::harness::TestServer;
use opennvr_sdk::pb;
use tonic::Code;

/// The field a refused call names.
fn refused_field(e: &tonic::Status) -> String {
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let details = tonic_types::StatusExt::get_error_details(e);
    details.bad_request().expect("a field violation").field_violations[0].field.clone()
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect()
}

#[tokio::test]
async fn repeated_id_fields_refuse_duplicates_and_more_than_200_items() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    s.step_up(&admin, "admin").await;
    let cam = create(&admin, "Dock").await;
    let twice = vec![cam.id.clone(), cam.id.clone()];
    let start = Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 });

    let timeline = |camera_ids: Vec<String>, event_types: Vec<i32>| {
        let admin = admin.clone();
        async move {
            admin
                .recordings()
                .get_timeline(pb::GetTimelineRequest {
                    camera_ids,
                    event_types,
                    start_time: start,
                    end_time: Some(prost_types::Timestamp { seconds: 1_700_003_600, nanos: 0 }),
                    ..Default::default()
                })
                .await
                .unwrap_err()
        }
    };
    assert_eq!(refused_field(&timeline(twice.clone(), vec![]).await), "camera_ids");
    assert_eq!(refused_field(&timeline(ids(201), vec![]).await), "camera_ids");
    let detection = pb::EventType::Detection as i32;
    assert_eq!(refused_field(&timeline(vec![cam.id.clone()], vec![detection, detection]).await), "event_types");

    let statuses = |camera_ids: Vec<String>| {
        let admin = admin.clone();
        async move {
            admin
                .cameras()
                .list_camera_statuses(pb::ListCameraStatusesRequest { camera_ids, ..Default::default() })
                .await
                .unwrap_err()
        }
    };
    assert_eq!(refused_field(&statuses(twice.clone()).await), "camera_ids");
    assert_eq!(refused_field(&statuses(ids(201)).await), "camera_ids");

    let detections = |camera_ids: Vec<String>, labels: Vec<String>| {
        let admin = admin.clone();
        async move {
            admin
                .inference()
                .list_detections(pb::ListDetectionsRequest { camera_ids, labels, ..Default::default() })
                .await
                .unwrap_err()
        }
    };
    assert_eq!(refused_field(&detections(twice.clone(), vec![]).await), "camera_ids");
    assert_eq!(refused_field(&detections(ids(201), vec![]).await), "camera_ids");
    assert_eq!(refused_field(&detections(vec![], vec!["person".into(), " person ".into()]).await), "labels");

    let watch = |camera_ids: Vec<String>, types: Vec<i32>| {
        let admin = admin.clone();
        async move {
            match admin.events().watch_events(pb::WatchEventsRequest { camera_ids, types, ..Default::default() }).await
            {
                Err(e) => e,
                Ok(_) => panic!("the watch was accepted"),
            }
        }
    };
    assert_eq!(refused_field(&watch(twice.clone(), vec![]).await), "camera_ids");
    assert_eq!(refused_field(&watch(ids(201), vec![]).await), "camera_ids");
    assert_eq!(refused_field(&watch(vec![], vec![detection, detection]).await), "types");

    let hold = |camera_ids: Vec<String>| {
        let admin = admin.clone();
        async move {
            admin
                .recordings()
                .create_hold(pb::CreateHoldRequest {
                    hold: Some(pb::Hold {
                        camera_ids,
                        start_time: start,
                        case_id: "CASE-1".into(),
                        reason: "limits".into(),
                        ..Default::default()
                    }),
                })
                .await
                .unwrap_err()
        }
    };
    assert_eq!(refused_field(&hold(twice.clone()).await), "hold.camera_ids");
    assert_eq!(refused_field(&hold(ids(201)).await), "hold.camera_ids");

    let key = admin
        .api_keys()
        .create_api_key(pb::CreateApiKeyRequest {
            api_key: Some(pb::ApiKey {
                name: "twice".into(),
                role: pb::Role::Viewer as i32,
                camera_ids: twice.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused_field(&key), "api_key.camera_ids");

    // The limit itself is allowed: 200 distinct ids are judged on their merits (unknown cameras).
    let at_limit = timeline(ids(200), vec![]).await;
    assert_eq!(at_limit.code(), Code::NotFound, "{at_limit:?}");
}

/// Seconds until the server closes `stream` (reads return 0 or fail), feeding it `trickle` bytes
/// one every two seconds meanwhile; at most `limit` seconds.
async fn closed_after(mut stream: tokio::net::TcpStream, trickle: &[u8], limit: u64) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let mut fed = trickle.iter();
    while started.elapsed().as_secs() < limit {
        if let Some(b) = fed.next()
            && stream.write_all(&[*b]).await.is_err()
        {
            return Some(started.elapsed().as_secs_f64());
        }
        match tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed().as_secs_f64()),
            Ok(Ok(_)) => panic!("the server answered a request it never received whole"),
            Err(_) => {}
        }
    }
    None
}

#[tokio::test]
async fn a_slow_loris_client_is_disconnected_within_30_seconds() {
    let s = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    // Headers that never end, a byte every two seconds.
    let trickle = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let after = closed_after(stream, trickle, 40).await;
    assert!(after.is_some_and(|secs| secs <= 30.0), "still open: {after:?}");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_within_30_seconds() {
    let s = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let after = closed_after(stream, b"", 40).await;
    assert!(after.is_some_and(|secs| secs <= 30.0), "still open: {after:?}");
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_and_the_cap_frees_as_they_end() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.max_connections = Some(2);
    let s = TestServer::start_with(db, options).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let open = || async {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        c.write_all(request).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf)).await.unwrap().unwrap_or(0);
        (c, String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let (first, answer) = open().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_second, answer) = open().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_third, answer) = open().await;
    assert_eq!(answer, "", "a third connection is closed unanswered");
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_again, answer) = open().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "a slot freed: {answer}");
}

#[tokio::test]
async fn the_health_check_is_open_and_the_watch_stream_is_not_offered() {
    let s = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(s.url()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
    assert!(check.is_ok(), "{check:?}");
    let watch = health.watch(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
    let Err(refused) = watch else { panic!("the watch was accepted") };
    assert_eq!(refused.code(), Code::Unimplemented);
    assert!(refused.message().contains("poll Health/Check"), "{refused:?}");
}

/// How long after `since` the stream ended, and with what status; `None` if it did not end within
/// `limit` seconds of `since`.
async fn ended<T>(
    mut stream: tonic::Streaming<T>,
    since: std::time::Instant,
    limit: f64,
) -> Option<(f64, tonic::Status)> {
    let deadline = since + std::time::Duration::from_secs_f64(limit);
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.message()).await {
            Err(_) => return None,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => return Some((since.elapsed().as_secs_f64(), status)),
        }
    }
}

async fn watch(c: &opennvr_sdk::Client) -> tonic::Streaming<pb::WatchEventsResponse> {
    c.events().watch_events(pb::WatchEventsRequest::default()).await.unwrap().into_inner()
}

#[tokio::test]
async fn a_watch_ends_within_2_seconds_of_its_user_being_disabled() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let viewer = s.user(&admin, "vera", pb::Role::Viewer).await;
    let me = viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    let stream = watch(&viewer).await;
    let since = std::time::Instant::now();
    let update = pb::UpdateUserRequest {
        user: Some(pb::User { id: me.id.clone(), disabled: true, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
    };
    admin.users().update_user(update).await.unwrap();
    let (secs, status) = ended(stream, since, 2.0).await.expect("the watch ended within 2 s");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?} after {secs:.2} s");
}

#[tokio::test]
async fn an_audit_watch_ends_within_2_seconds_of_its_session_being_revoked() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let stream = admin.audit().watch_audit_events(pb::WatchAuditEventsRequest::default()).await.unwrap().into_inner();
    let other = s.client().await;
    s.login(&other, "admin").await;
    let sessions = other.auth().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner().sessions;
    let watched = sessions.iter().find(|x| !x.current).expect("the watching session");
    let since = std::time::Instant::now();
    other.auth().revoke_session(pb::RevokeSessionRequest { session_id: watched.id.clone() }).await.unwrap();
    let (secs, status) = ended(stream, since, 2.0).await.expect("the watch ended within 2 s");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?} after {secs:.2} s");
}

#[tokio::test]
async fn a_watch_ends_within_2_seconds_of_its_api_key_being_revoked() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    s.step_up(&admin, "admin").await;
    let spec = pb::ApiKey { name: "wall".into(), role: pb::Role::Viewer as i32, ..Default::default() };
    let made =
        admin.api_keys().create_api_key(pb::CreateApiKeyRequest { api_key: Some(spec) }).await.unwrap().into_inner();
    let wall = s.client().await;
    wall.set_api_key(&made.secret);
    let stream = watch(&wall).await;
    let since = std::time::Instant::now();
    let id = made.api_key.unwrap().id;
    admin.api_keys().revoke_api_key(pb::RevokeApiKeyRequest { api_key_id: id }).await.unwrap();
    let (secs, status) = ended(stream, since, 2.0).await.expect("the watch ended within 2 s");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?} after {secs:.2} s");
}

#[tokio::test]
async fn a_watch_ends_within_2_seconds_of_its_access_token_expiring() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let stream = watch(&admin).await;
    let since = std::time::Instant::now();
    s.clock.advance(chrono::Duration::minutes(11));
    let (secs, status) = ended(stream, since, 2.0).await.expect("the watch ended within 2 s");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?} after {secs:.2} s");
}

#[tokio::test]
async fn work_past_the_statement_timeout_answers_deadline_exceeded_saying_to_ask_for_less() {
    use diesel::RunQueryDsl;
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.db_statement_timeout_secs = Some(1);
    let s = TestServer::start_with(db, options).await;
    let e = s.store.run(|c| diesel::sql_query("SELECT pg_sleep(3)").execute(c).map_err(Into::into)).await.unwrap_err();
    assert_eq!(e.kind(), opennvr_server::error::ErrorKind::DeadlineExceeded, "{e}");
    assert!(e.to_string().contains("ask for less"), "{e}");
}
