//! Bounded work and access per caller: repeated id (or type, or label) fields refuse more than 200
//! items and any item twice, naming the field; slow, silent and surplus connections are closed;
//! long streams end within 2 s of their caller's access ending.
use crate::cameras::create;
use crate::harness::{ADMIN_PASSWORD, TestServer};
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
async fn a_client_that_stops_inside_the_http2_preface_is_closed_within_30_seconds() {
    let s = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    // The first bytes of the HTTP/2 preface, then nothing: the protocol is never known.
    let after = closed_after(stream, b"PRI * HT", 40).await;
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

/// Audit rows written by anonymous callers, linked or not yet.
fn anonymous_rows(s: &TestServer) -> Vec<(String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        code: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        count: String,
    }
    use diesel::RunQueryDsl;
    let mut su = s.db.superuser();
    diesel::sql_query(
        "SELECT code, coalesce(details::jsonb->>'count', '') AS count FROM audit_events WHERE actor_type = 'anonymous' ORDER BY sequence",
    )
    .load::<Row>(&mut su)
    .unwrap()
    .into_iter()
    .map(|r| (r.code, r.count))
    .collect()
}

#[tokio::test]
async fn two_thousand_anonymous_refused_calls_add_a_handful_of_audit_rows() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let anyone = s.client().await;
    let mut codes = std::collections::HashMap::new();
    let (started, mut limited) = (std::time::Instant::now(), None);
    for _ in 0..2000 {
        let e = anyone.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
        *codes.entry(e.code()).or_insert(0) += 1;
        if e.code() == Code::ResourceExhausted {
            limited = Some(e);
        }
    }
    // Calls without a credential are limited per address before anything else is done for them:
    // ten seconds' worth at once (200), then 20 a second.
    within_the_anonymous_budget(&codes, started.elapsed());
    let limited = limited.expect("some calls were limited");
    assert!(tonic_types::StatusExt::get_error_details(&limited).retry_info().is_some(), "it says when to retry");
    // A signed-in caller at the same address is not.
    admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    s.audit.link_pending().await.unwrap();
    let rows = anonymous_rows(&s);
    assert_eq!(rows, vec![("UNAUTHENTICATED".to_owned(), String::new())], "the first refusal, as it happened");
    // Once the minute is over, the rest is one entry with its count.
    s.clock.advance(chrono::Duration::seconds(61));
    s.audit.flush_refusals(false).await.unwrap();
    s.audit.link_pending().await.unwrap();
    let rows = anonymous_rows(&s);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].1, "1999", "{rows:?}");
    // The first refusal is recorded under an action that reads as a word (the summary has its own).
    let named = crate::harness::count(
        &mut s.db.superuser(),
        "SELECT count(*) AS n FROM audit_events WHERE actor_type = 'anonymous' AND action = 'session.whoami'",
    );
    assert_eq!(named, 1);
}

/// Asserts that no more calls of `codes` got past the anonymous budget (they were answered
/// otherwise than RESOURCE_EXHAUSTED) than its burst and its refill over `elapsed` allow.
fn within_the_anonymous_budget(codes: &std::collections::HashMap<Code, usize>, elapsed: std::time::Duration) {
    let passed: usize = codes.iter().filter(|(c, _)| **c != Code::ResourceExhausted).map(|(_, n)| n).sum();
    let allowed = 200 + (20.0 * elapsed.as_secs_f64()).ceil() as usize + 2;
    assert!(codes.contains_key(&Code::ResourceExhausted), "{codes:?}");
    assert!(passed <= allowed, "{passed} calls got past a budget of {allowed} in {elapsed:?}: {codes:?}");
}

/// Logs in as `username` from `address` (through the trusted proxy).
async fn login_from(c: &opennvr_sdk::Client, address: &str, username: &str, password: &str) -> tonic::Status {
    let mut req = tonic::Request::new(pb::LoginRequest { username: username.into(), password: password.into() });
    req.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
    match c.auth().login(req).await {
        Ok(_) => tonic::Status::ok(""),
        Err(e) => e,
    }
}

async fn behind_proxy() -> TestServer {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.trusted_proxies = Some(vec!["127.0.0.1".parse().unwrap()]);
    TestServer::start_with(db, options).await
}

#[tokio::test]
async fn ever_new_usernames_from_one_address_spend_its_budget_of_password_checks() {
    let s = behind_proxy().await;
    let _admin = s.admin().await;
    let c = s.client().await;
    for i in 0..30 {
        let e = login_from(&c, "203.0.113.77", &format!("nobody-{i}"), "wrong-password-xyz").await;
        assert_eq!(e.code(), Code::Unauthenticated, "attempt {i}: {e:?}");
    }
    let spent = login_from(&c, "203.0.113.77", "nobody-new", "wrong-password-xyz").await;
    assert_eq!(spent.code(), Code::ResourceExhausted, "{spent:?}");
    assert!(spent.message().contains("from this address"), "{}", spent.message());
    // Even the right password is not checked from there now; elsewhere it is.
    assert_eq!(login_from(&c, "203.0.113.77", "admin", ADMIN_PASSWORD).await.code(), Code::ResourceExhausted);
    assert_eq!(login_from(&c, "198.51.100.7", "admin", ADMIN_PASSWORD).await.code(), Code::Ok);
}

#[tokio::test]
async fn one_account_guessed_from_many_addresses_is_limited_across_them() {
    let s = behind_proxy().await;
    let _admin = s.admin().await;
    let c = s.client().await;
    // Each address stays within the free failures of the per-address lockout.
    for i in 0..20 {
        let e = login_from(&c, &format!("203.0.113.{}", 100 + i), "admin", "wrong-password-xyz").await;
        assert_eq!(e.code(), Code::Unauthenticated, "attempt {i}: {e:?}");
    }
    let limited = login_from(&c, "203.0.113.200", "admin", "wrong-password-xyz").await;
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(limited.message().contains("for this account"), "{}", limited.message());
    // Another account is not limited by it.
    assert_eq!(
        login_from(&c, "203.0.113.200", "someone-else", "wrong-password-xyz").await.code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn guesses_at_one_account_made_at_once_cannot_overdraw_its_budget() {
    let s = behind_proxy().await;
    let _admin = s.admin().await;
    let c = s.client().await;
    let started = std::time::Instant::now();
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..60 {
        let c = c.clone();
        guesses.spawn(async move {
            login_from(&c, &format!("203.0.113.{}", 10 + i), "admin", "wrong-password-xyz").await.code()
        });
    }
    let codes = guesses.join_all().await;
    let hashed = codes.iter().filter(|c| **c == Code::Unauthenticated).count();
    assert_eq!(hashed + codes.iter().filter(|c| **c == Code::ResourceExhausted).count(), 60, "{codes:?}");
    // 20 failed checks a minute per account, all at once at most: checked are the burst plus what
    // refilled while they ran, however many arrived together.
    let refilled = (started.elapsed().as_secs_f64() / 3.0).ceil() as usize;
    assert!(hashed <= 20 + refilled, "{hashed} guesses checked in {:?}", started.elapsed());
}

#[tokio::test]
async fn one_caller_holds_at_most_32_streams_and_a_closed_one_frees_its_slot() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let viewer = s.user(&admin, "vera", pb::Role::Viewer).await;
    let mut open = Vec::new();
    for _ in 0..32 {
        open.push(watch(&viewer).await);
    }
    let e = viewer.events().watch_events(pb::WatchEventsRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("32 streams"), "{}", e.message());
    // Another caller is not limited by it, and a short call of the same caller still works.
    let _other = watch(&admin).await;
    viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    // A stream the caller closes gives its slot back.
    open.pop();
    let mut again = None;
    for _ in 0..40 {
        match viewer.events().watch_events(pb::WatchEventsRequest::default()).await {
            Ok(stream) => {
                again = Some(stream);
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the closed stream's slot was freed");
}

#[tokio::test]
async fn made_up_bearers_long_usernames_and_other_methods_are_limited_and_counted_alike() {
    let s = TestServer::start().await;
    let _admin = s.admin().await;
    let anyone = s.client().await;
    let forged = || {
        let mut r = tonic::Request::new(pb::WhoAmIRequest {});
        r.metadata_mut().insert("authorization", "Bearer not-a-token".parse().unwrap());
        r
    };
    let mut codes = std::collections::HashMap::new();
    let started = std::time::Instant::now();
    for i in 0..450 {
        let e = match i % 3 {
            0 => anyone.auth().who_am_i(forged()).await.unwrap_err(),
            1 => {
                let mut r = tonic::Request::new(pb::ListRolesRequest::default());
                r.metadata_mut().insert("authorization", "Bearer not-a-token".parse().unwrap());
                anyone.users().list_roles(r).await.unwrap_err()
            }
            _ => {
                let login = pb::LoginRequest { username: "x".repeat(65), password: "wrong-password-xyz".into() };
                anyone.auth().login(login).await.unwrap_err()
            }
        };
        *codes.entry(e.code()).or_insert(0) += 1;
    }
    // A made-up bearer spends the address's budget like no bearer at all.
    within_the_anonymous_budget(&codes, started.elapsed());
    // Whatever the method, one address's refusals in a minute are one entry, then one count.
    s.audit.link_pending().await.unwrap();
    assert_eq!(anonymous_rows(&s).len(), 1, "{:?}", anonymous_rows(&s));
    s.clock.advance(chrono::Duration::seconds(61));
    s.audit.flush_refusals(false).await.unwrap();
    s.audit.link_pending().await.unwrap();
    let rows = anonymous_rows(&s);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].1, "449");
}
