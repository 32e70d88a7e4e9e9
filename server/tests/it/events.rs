//! The stored event history: resuming a watch with nothing lost and nothing repeated (after a
//! dropped stream and after a restart), listing stored events, and who sees which.
use crate::cameras::{create, grant};
use crate::harness::{TestDb, TestServer};
use opennvr_sdk::pb;
use std::time::Duration;

/// Publishes `n` site-wide events on `s`'s bus, as the media plane does: MediaMTX restarts with
/// versions v0, v1, ...
pub fn publish_media_server_restarts(s: &TestServer, n: usize) {
    for i in 0..n {
        s.events.publish(opennvr_server::domain::event::SiteEvent::new(
            chrono::Utc::now(),
            None,
            opennvr_server::domain::event::EventKind::MediaServer {
                restarted: true,
                version: format!("v{i}"),
                started: String::new(),
                error: String::new(),
            },
        ));
    }
}

/// A watch of camera creations, from `resume_token` (empty: from now).
async fn watch_created(c: &opennvr_sdk::Client, resume_token: &str) -> tonic::Streaming<pb::WatchEventsResponse> {
    c.events()
        .watch_events(pb::WatchEventsRequest {
            types: vec![pb::EventType::CameraCreated as i32],
            resume_token: resume_token.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The next `n` events of `stream` (heartbeats skipped): each camera's name and the resume token
/// just after it.
async fn next_created(stream: &mut tonic::Streaming<pb::WatchEventsResponse>, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .expect("the stream goes on");
        if let Some(pb::watch_events_response::Kind::Event(e)) = msg.kind {
            let Some(pb::event::Payload::CameraConfig(change)) = e.payload else { panic!("{e:?}") };
            out.push((change.camera_name, msg.resume_token));
        }
    }
    out
}

fn names(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// Nothing more arrives on `stream` for a while (heartbeats aside).
async fn nothing_more(stream: &mut tonic::Streaming<pb::WatchEventsResponse>) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(msg) = tokio::time::timeout_at(deadline, stream.message()).await {
        let msg = msg.unwrap().unwrap();
        assert!(!matches!(msg.kind, Some(pb::watch_events_response::Kind::Event(_))), "repeated: {msg:?}");
    }
}

#[tokio::test]
async fn a_watch_resumed_after_a_dropped_stream_loses_and_repeats_nothing() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let mut stream = watch_created(&admin, "").await;
    create(&admin, "Alpha").await;
    create(&admin, "Bravo").await;
    let seen = next_created(&mut stream, 2).await;
    assert_eq!(names(&seen), ["Alpha", "Bravo"]);
    drop(stream);
    // Committed while nobody watched.
    create(&admin, "Charlie").await;
    create(&admin, "Delta").await;
    let mut resumed = watch_created(&admin, &seen[1].1).await;
    create(&admin, "Echo").await;
    assert_eq!(names(&next_created(&mut resumed, 3).await), ["Charlie", "Delta", "Echo"]);
    nothing_more(&mut resumed).await;
    // From the first token, everything after Alpha, once.
    let mut again = watch_created(&admin, &seen[0].1).await;
    assert_eq!(names(&next_created(&mut again, 4).await), ["Bravo", "Charlie", "Delta", "Echo"]);
    nothing_more(&mut again).await;
}

/// Waits until the stored events of `kind` satisfy `done`.
async fn listed_until(c: &opennvr_sdk::Client, kind: pb::EventType, done: impl Fn(&[pb::Event]) -> bool) {
    for _ in 0..200 {
        let request = pb::ListEventsRequest { types: vec![kind as i32], ..Default::default() };
        if done(&c.events().list_events(request).await.unwrap().into_inner().events) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the history never held the {kind:?} events awaited");
}

/// Waits until `name`'s creation is in the stored history.
async fn stored(c: &opennvr_sdk::Client, name: &str) {
    listed_until(c, pb::EventType::CameraCreated, |events| {
        events.iter().any(|e| matches!(&e.payload, Some(pb::event::Payload::CameraConfig(c)) if c.camera_name == name))
    })
    .await
}

/// Waits until `n` camera updates are in the stored history.
async fn stored_updates(c: &opennvr_sdk::Client, n: usize) {
    listed_until(c, pb::EventType::CameraUpdated, |events| events.len() >= n).await
}

#[tokio::test]
async fn a_watch_resumes_across_a_server_restart_with_events_committed_in_between() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let mut stream = watch_created(&admin, "").await;
    create(&admin, "Before").await;
    let token = next_created(&mut stream, 1).await.remove(0).1;
    drop(stream);
    create(&admin, "Unread").await;
    stored(&admin, "Unread").await;
    let tokens = admin.tokens().unwrap();
    let (db, mut options) = (TestDb { name: s.db.name.clone() }, s.options.clone());
    s.shutdown().await;
    options.data_dir = Some(crate::harness::temp_dir("events-restart"));
    let again = TestServer::start_with(db, options).await;
    // The same session, on the restarted server.
    let admin = again.client().await;
    admin.set_tokens(Some(tokens));
    create(&admin, "After").await;
    let mut resumed = watch_created(&admin, &token).await;
    assert_eq!(names(&next_created(&mut resumed, 2).await), ["Unread", "After"]);
    nothing_more(&mut resumed).await;
}

#[tokio::test]
async fn resume_tokens_that_are_not_the_servers_are_refused() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for (token, code) in [
        ("old", tonic::Code::InvalidArgument),
        ("ev1.-4", tonic::Code::InvalidArgument),
        ("ev1.999999", tonic::Code::InvalidArgument),
    ] {
        let e = admin
            .events()
            .watch_events(pb::WatchEventsRequest { resume_token: token.into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{token}: {e:?}");
        assert!(e.message().contains("resume_token"), "{token}: {}", e.message());
    }
}

#[tokio::test]
async fn listed_events_are_only_those_of_cameras_the_caller_may_see_newest_first_in_pages() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let mine = create(&admin, "Mine").await;
    create(&admin, "Theirs").await;
    let op = s.user(&admin, "otto", pb::Role::Operator).await;
    let who = op.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    grant(&admin, &mine, &who, &["camera.read"], None).await.unwrap();
    for i in 0..5 {
        let update = pb::UpdateCameraRequest {
            camera: Some(pb::Camera { id: mine.id.clone(), description: format!("take {i}"), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
        };
        admin.cameras().update_camera(update).await.unwrap();
    }
    stored_updates(&admin, 5).await;
    let list = |page_token: String, camera_ids: Vec<String>| pb::ListEventsRequest {
        page_size: 2,
        page_token,
        camera_ids,
        types: vec![pb::EventType::CameraCreated as i32, pb::EventType::CameraUpdated as i32],
        ..Default::default()
    };
    // The admin sees both cameras' creations and the five updates.
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin.events().list_events(list(token, vec![])).await.unwrap().into_inner();
        assert!(page.events.len() <= 2);
        all.extend(page.events);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    // All at one (test clock) time: newest first is then the order they were committed in,
    // reversed — the five updates, then the two creations — each once across the pages.
    let kinds: Vec<i32> = all.iter().map(|e| e.r#type).collect();
    let (created, updated) = (pb::EventType::CameraCreated as i32, pb::EventType::CameraUpdated as i32);
    assert_eq!(kinds, [updated, updated, updated, updated, updated, created, created], "{all:?}");
    let ids: std::collections::HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), all.len());
    let descriptions: Vec<&str> = all
        .iter()
        .filter_map(|e| match &e.payload {
            Some(pb::event::Payload::CameraConfig(c)) if e.r#type == updated => Some(c.camera_name.as_str()),
            _ => None,
        })
        .collect();
    assert!(descriptions.iter().all(|n| *n == "Mine"), "{descriptions:?}");
    // The operator sees only the camera granted to them.
    let theirs = op.events().list_events(list(String::new(), vec![])).await.unwrap().into_inner();
    let mut seen = theirs.events;
    let mut token = theirs.next_page_token;
    while !token.is_empty() {
        let page = op.events().list_events(list(token, vec![])).await.unwrap().into_inner();
        seen.extend(page.events);
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.iter().all(|e| e.camera_id == mine.id));
    // Asking for a camera they may not see is NOT_FOUND, as everywhere.
    let hidden = all.iter().find(|e| e.camera_id != mine.id).unwrap().camera_id.clone();
    let e = op.events().list_events(list(String::new(), vec![hidden])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn the_first_page_gives_the_point_a_watch_misses_nothing_after() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    create(&admin, "Listed").await;
    stored(&admin, "Listed").await;
    let first = admin.events().list_events(pb::ListEventsRequest::default()).await.unwrap().into_inner();
    assert!(!first.watch_resume_token.is_empty());
    create(&admin, "Later").await;
    let mut stream = watch_created(&admin, &first.watch_resume_token).await;
    assert_eq!(names(&next_created(&mut stream, 1).await), ["Later"]);
    nothing_more(&mut stream).await;
}

#[tokio::test]
async fn a_resume_point_older_than_the_kept_history_is_out_of_range() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let start = admin.events().list_events(pb::ListEventsRequest::default()).await.unwrap().into_inner();
    let mut stream = watch_created(&admin, "").await;
    create(&admin, "Old").await;
    let after_old = next_created(&mut stream, 1).await.remove(0).1;
    drop(stream);
    s.clock.advance(chrono::Duration::days(2));
    s.login(&admin, "admin").await;
    create(&admin, "New").await;
    stored(&admin, "New").await;
    let events = opennvr_server::app::events::EventsApp {
        store: s.store.clone(),
        clock: std::sync::Arc::new(s.clock.clone()),
        log: opennvr_server::app::events::EventLog::new(s.store.clone(), &s.events),
        retention: chrono::Duration::days(1),
    };
    assert!(events.enforce_retention().await.unwrap() >= 1);
    // What followed the listing's point is partly gone: resuming there would skip it.
    let e = admin
        .events()
        .watch_events(pb::WatchEventsRequest { resume_token: start.watch_resume_token, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("older than the kept event history"), "{}", e.message());
    // Right after the removed events, nothing is missing: the watch resumes.
    let mut resumed = watch_created(&admin, &after_old).await;
    assert_eq!(names(&next_created(&mut resumed, 1).await), ["New"]);
    // The kept history holds the new camera's creation, not the old one's.
    let listed = admin
        .events()
        .list_events(pb::ListEventsRequest { types: vec![pb::EventType::CameraCreated as i32], ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .events;
    let kept: Vec<String> = listed
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(pb::event::Payload::CameraConfig(c)) => Some(c.camera_name),
            _ => None,
        })
        .collect();
    assert_eq!(kept, ["New"]);
}

#[tokio::test]
async fn timeline_overlays_count_each_type_per_bucket() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let t0 = s.clock_now();
    let cam = create(&admin, "Dock").await;
    let update = |description: &str| pb::UpdateCameraRequest {
        camera: Some(pb::Camera { id: cam.id.clone(), description: description.into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
    };
    for i in 0..3 {
        admin.cameras().update_camera(update(&format!("early {i}"))).await.unwrap();
    }
    s.clock.advance(chrono::Duration::minutes(10));
    s.login(&admin, "admin").await;
    for i in 0..2 {
        admin.cameras().update_camera(update(&format!("late {i}"))).await.unwrap();
    }
    stored_updates(&admin, 5).await;
    let at = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    let from = t0 - chrono::Duration::minutes(5);
    let timeline = admin
        .recordings()
        .get_timeline(pb::GetTimelineRequest {
            camera_id: cam.id.clone(),
            start_time: Some(at(from)),
            end_time: Some(at(t0 + chrono::Duration::minutes(15))),
            bucket: Some(prost_types::Duration { seconds: 300, nanos: 0 }),
            event_types: vec![pb::EventType::CameraCreated as i32, pb::EventType::CameraUpdated as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let marks: Vec<(i64, i32, i32)> = timeline
        .marks
        .iter()
        .map(|m| ((m.bucket_start_time.unwrap().seconds - from.timestamp()) / 300, m.r#type, m.count))
        .collect();
    // t0 falls in the second bucket (from starts 5 min before it), t0 + 10 min in the fourth.
    let (created, updated) = (pb::EventType::CameraCreated as i32, pb::EventType::CameraUpdated as i32);
    assert_eq!(marks, [(1, created, 1), (1, updated, 3), (3, updated, 2)], "{:?}", timeline.marks);
    assert!(timeline.marks.iter().all(|m| !m.first_event_id.is_empty()));
}

/// Events of `camera` of stored type `topic`, linked or still in the inbox.
fn stored_now(s: &TestServer, camera: &str, topic: &str) -> i64 {
    let mut db = s.db.superuser();
    crate::harness::count(
        &mut db,
        format!(
            "SELECT (SELECT count(*) FROM events WHERE camera_id = '{camera}' AND type = '{topic}') \
                  + (SELECT count(*) FROM event_inbox WHERE camera_id = '{camera}' AND type = '{topic}') AS n"
        ),
    )
}

#[tokio::test]
async fn a_camera_change_commits_with_its_event_and_a_refused_one_leaves_none() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cam = create(&admin, "Gate").await;
    // The moment the call returns, its event is stored (linked, or in the inbox with the change).
    assert_eq!(stored_now(&s, &cam.id, "camera.created"), 1);
    let stale = pb::UpdateCameraRequest {
        camera: Some(pb::Camera {
            id: cam.id.clone(),
            description: "x".into(),
            etag: "\"41\"".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
    };
    let e = admin.cameras().update_camera(stale).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Aborted, "{e:?}");
    assert_eq!(stored_now(&s, &cam.id, "camera.updated"), 0);
    admin
        .cameras()
        .delete_camera(pb::DeleteCameraRequest { camera_id: cam.id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(stored_now(&s, &cam.id, "camera.deleted"), 1);
}

#[tokio::test]
async fn a_listing_holds_the_history_as_its_first_page_found_it() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for name in ["One", "Two", "Three"] {
        create(&admin, name).await;
    }
    stored(&admin, "Three").await;
    let list = |page_token: String| pb::ListEventsRequest {
        page_size: 1,
        page_token,
        types: vec![pb::EventType::CameraCreated as i32],
        oldest_first: true,
        ..Default::default()
    };
    let first = admin.events().list_events(list(String::new())).await.unwrap().into_inner();
    // Created after the first page: left to the watch from its point, not listed too.
    create(&admin, "Later").await;
    stored(&admin, "Later").await;
    let mut listed: Vec<String> = Vec::new();
    let mut page = first.clone();
    loop {
        for e in &page.events {
            if let Some(pb::event::Payload::CameraConfig(c)) = &e.payload {
                listed.push(c.camera_name.clone());
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page = admin.events().list_events(list(page.next_page_token.clone())).await.unwrap().into_inner();
    }
    assert_eq!(listed, ["One", "Two", "Three"]);
    let mut stream = watch_created(&admin, &first.watch_resume_token).await;
    assert_eq!(names(&next_created(&mut stream, 1).await), ["Later"]);
    nothing_more(&mut stream).await;
}

#[tokio::test]
async fn events_published_just_before_a_shutdown_are_stored() {
    let s = TestServer::start().await;
    publish_media_server_restarts(&s, 500);
    let mut db = s.db.superuser();
    s.shutdown().await;
    // Stored and linked on the way out, none left behind in the inbox.
    let linked =
        crate::harness::count(&mut db, "SELECT count(*) AS n FROM events WHERE type = 'media_server.restarted'");
    assert_eq!(linked, 500);
    assert_eq!(crate::harness::count(&mut db, "SELECT count(*) AS n FROM event_inbox"), 0);
}

#[tokio::test]
async fn a_second_server_on_the_same_database_streams_the_same_events() {
    let one = TestServer::start().await;
    let admin = one.admin().await;
    let (db, mut options) = (TestDb { name: one.db.name.clone() }, one.options.clone());
    options.data_dir = Some(crate::harness::temp_dir("events-second"));
    let two = TestServer::start_with(db, options).await;
    // The same session, on the other server.
    let there = two.client().await;
    there.set_tokens(Some(admin.tokens().unwrap()));
    let mut stream = watch_created(&there, "").await;
    create(&admin, "Made on one").await;
    assert_eq!(names(&next_created(&mut stream, 1).await), ["Made on one"]);
}
