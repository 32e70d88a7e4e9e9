//! The Rust SDK's own behaviour: finding cameras, adapters and users by id or name, logging out,
//! and refreshing the session by itself before its access token expires.
use crate::cameras::create;
use crate::harness::{TestServer, register_adapter};
use opennvr_sdk::{Error, pb};
use tonic::Code;

/// Has `c` judge expiry by the server's (manual) clock.
fn on_server_time(s: &TestServer, c: &opennvr_sdk::Client) {
    let clock = s.clock.clone();
    c.set_clock(move || opennvr_server::clock::Clock::now(&clock).into());
}

/// Moves the server's clock a second past the expiry of `c`'s access token.
fn expire_access_token(s: &TestServer, c: &opennvr_sdk::Client) {
    let expires = c.tokens().unwrap().access_token_expire_time.unwrap().seconds;
    s.clock.advance(chrono::Duration::seconds(expires - s.clock_now().timestamp() + 1));
}

#[tokio::test]
async fn a_camera_is_found_by_id_or_by_its_name_in_any_case() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let dock = create(&a, "Dock").await;
    create(&a, "Gate").await;
    assert_eq!(a.find_camera(&dock.id).await.unwrap().id, dock.id);
    assert_eq!(a.find_camera("dOCK").await.unwrap().id, dock.id);
}

#[tokio::test]
async fn an_unknown_camera_name_is_not_found_naming_it() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    create(&a, "Dock").await;
    let e = a.find_camera("Yard").await.unwrap_err();
    assert!(matches!(&e, Error::NotFound { kind: "camera", wanted } if wanted == "Yard"), "{e:?}");
}

#[tokio::test]
async fn an_adapter_is_found_by_id_or_by_its_name_in_any_case() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let faces = register_adapter(&a, "faces", "http://127.0.0.1:9/", 1000, 1, 1).await;
    register_adapter(&a, "plates", "http://127.0.0.1:9/", 1000, 1, 1).await;
    assert_eq!(a.find_adapter(&faces.id).await.unwrap().id, faces.id);
    assert_eq!(a.find_adapter("FACES").await.unwrap().id, faces.id);
    assert!(matches!(a.find_adapter("cars").await, Err(Error::NotFound { kind: "adapter", .. })));
}

#[tokio::test]
async fn a_user_is_found_by_id_or_by_username_in_any_case() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let me = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    assert_eq!(a.find_user(&me.id).await.unwrap().id, me.id);
    assert_eq!(a.find_user("ADMIN").await.unwrap().id, me.id);
    assert!(matches!(a.find_user("nobody").await, Err(Error::NotFound { kind: "user", .. })));
}

#[tokio::test]
async fn after_logout_the_next_call_is_unauthenticated() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let tokens = a.tokens().unwrap();
    a.logout().await.unwrap();
    assert!(a.tokens().is_none(), "the tokens are forgotten");
    let anonymous = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    // And the session is over on the server: its old tokens no longer work either.
    a.set_tokens(Some(tokens));
    let ended = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
}

#[tokio::test]
async fn a_call_after_the_access_token_expired_refreshes_first_and_succeeds() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    on_server_time(&s, &a);
    let refreshed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = refreshed.clone();
    a.on_refresh(move |t| seen.lock().unwrap().push(t.refresh_token.clone()));
    let before = a.tokens().unwrap();
    expire_access_token(&s, &a);
    let me = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    assert_eq!(me.username, "admin");
    let after = a.tokens().unwrap();
    assert_ne!(after.refresh_token, before.refresh_token, "the refresh token was rotated");
    assert_eq!(after.session_id, before.session_id);
    assert_eq!(*refreshed.lock().unwrap(), vec![after.refresh_token], "the hook heard of the one refresh");
}

#[tokio::test]
async fn without_a_refresh_the_expired_access_token_is_refused() {
    // The control for the test above: the server does refuse the expired token, so the call
    // there succeeded because the SDK refreshed.
    let s = TestServer::start().await;
    let a = s.admin().await;
    expire_access_token(&s, &a);
    let refused = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

#[tokio::test]
async fn calls_at_once_on_an_expiring_session_refresh_it_once() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    on_server_time(&s, &a);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    a.on_refresh(move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    expire_access_token(&s, &a);
    let calls = (0..8).map(|_| {
        let c = a.clone();
        tokio::spawn(async move { c.auth().who_am_i(pb::WhoAmIRequest {}).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}
