//! Identity: bootstrap, login and throttling, token expiry, refresh rotation, sessions, users and
//! the last-admin rule.
use crate::harness::{ADMIN_PASSWORD, TestServer};
use opennvr_sdk::pb;
use tonic::Code;

fn code<T: std::fmt::Debug>(r: Result<T, opennvr_sdk::Error>) -> Code {
    match r {
        Err(opennvr_sdk::Error::Status(s)) => s.code(),
        other => panic!("expected a status error, got {other:?}"),
    }
}

fn status_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> Code {
    r.expect_err("expected an error").code()
}

#[tokio::test]
async fn bootstrap_works_once_and_needs_the_setup_token() {
    let s = TestServer::start().await;
    let token = s.setup_token();
    let c = s.client().await;
    assert_eq!(code(c.bootstrap("nvr_setup_wrong", "admin", ADMIN_PASSWORD).await), Code::Unauthenticated);
    assert_eq!(code(c.bootstrap(&token, "admin", "short").await), Code::InvalidArgument);
    let tokens = c.bootstrap(&token, "Admin", ADMIN_PASSWORD).await.unwrap();
    assert_eq!(tokens.user.as_ref().unwrap().username, "admin");
    assert_eq!(tokens.user.as_ref().unwrap().role, pb::Role::Admin as i32);
    assert!(!s.data_dir.join("setup-token").exists(), "the used setup token file is removed");
    let again = s.client().await;
    assert_eq!(code(again.bootstrap(&token, "second", ADMIN_PASSWORD).await), Code::FailedPrecondition);
    // Admins must have a second factor: until one is enrolled the session only enrols.
    assert!(tokens.mfa_enrolment_required);
    let me = c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    assert!(me.mfa_enrolment_required && me.permissions.is_empty(), "{me:?}");
    let refused = c.users().list_users(pb::ListUsersRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    s.enrol_totp(&c, "admin").await;
    let me = c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(me.user.unwrap().username, "admin");
    assert!(me.permissions.contains(&"user.write".to_owned()));
}

#[tokio::test]
async fn concurrent_bootstraps_create_exactly_one_admin() {
    let s = TestServer::start().await;
    let token = s.setup_token();
    let mut calls = Vec::new();
    for i in 0..8 {
        let c = s.client().await;
        let token = token.clone();
        calls.push(tokio::spawn(async move { c.bootstrap(&token, &format!("admin{i}"), ADMIN_PASSWORD).await }));
    }
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(opennvr_sdk::Error::Status(st)) => assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1);
    let mut su = s.db.superuser();
    let n = crate::harness::count(&mut su, "SELECT count(*) AS n FROM users");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn login_ok_wrong_password_and_unknown_user() {
    let s = TestServer::start().await;
    let _admin = s.admin().await;
    let c = s.client().await;
    let wrong = c.login("admin", "not-the-password-at-all").await;
    let unknown = c.login("nobody", "not-the-password-at-all").await;
    for r in [wrong, unknown] {
        match r {
            Err(opennvr_sdk::Error::Status(st)) => {
                assert_eq!(st.code(), Code::Unauthenticated);
                assert_eq!(st.message(), "wrong username or password", "unknown user and wrong password look alike");
            }
            other => panic!("{other:?}"),
        }
    }
    let t = c.login_with_totp("ADMIN", ADMIN_PASSWORD, || s.totp_code("admin")).await.unwrap();
    assert!(!t.access_token.is_empty() && t.refresh_token.starts_with("nvr_rt_"));
    assert_eq!(code(c.login("", ADMIN_PASSWORD).await), Code::InvalidArgument);
}

/// A login from `address` (the test server trusts loopback as a proxy, so X-Forwarded-For counts).
async fn login_from(c: &opennvr_sdk::Client, address: &str, password: &str) -> Result<(), tonic::Status> {
    let mut req = tonic::Request::new(pb::LoginRequest { username: "admin".into(), password: password.into() });
    req.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
    c.auth().login(req).await.map(|_| ())
}

#[tokio::test]
async fn failed_logins_back_off_per_address_and_expire() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.trusted_proxies = Some(vec!["127.0.0.1".parse().unwrap()]);
    let s = TestServer::start_with(db, options).await;
    let _admin = s.admin().await;
    let c = s.client().await;
    let attacker = "203.0.113.9";
    for _ in 0..4 {
        assert_eq!(status_code(login_from(&c, attacker, "wrong-password-xyz").await), Code::Unauthenticated);
    }
    // Blocked now, even with the right password, from that address...
    let blocked = login_from(&c, attacker, ADMIN_PASSWORD).await.unwrap_err();
    assert_eq!(blocked.code(), Code::ResourceExhausted);
    let details = tonic_types::StatusExt::get_error_details(&blocked);
    assert!(details.retry_info().is_some(), "throttling says when to retry");
    assert_eq!(details.error_info().unwrap().reason, "ERROR_REASON_RATE_LIMITED");
    // ...but the admin at another address is not locked out.
    login_from(&c, "198.51.100.7", ADMIN_PASSWORD).await.unwrap();
    // Back-off grows: one more failure after the block expires doubles it.
    s.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(status_code(login_from(&c, attacker, "wrong-password-xyz").await), Code::Unauthenticated);
    s.clock.advance(chrono::Duration::milliseconds(1500));
    assert_eq!(status_code(login_from(&c, attacker, ADMIN_PASSWORD).await), Code::ResourceExhausted);
    // And it expires.
    s.clock.advance(chrono::Duration::seconds(3));
    login_from(&c, attacker, ADMIN_PASSWORD).await.unwrap();
    // A success clears the record: three more failures are free again.
    for _ in 0..3 {
        assert_eq!(status_code(login_from(&c, attacker, "wrong-password-xyz").await), Code::Unauthenticated);
    }
    login_from(&c, attacker, ADMIN_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn access_tokens_expire() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    s.clock.advance(chrono::Duration::seconds(599));
    admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    s.clock.advance(chrono::Duration::seconds(2));
    let e = admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("expired"), "{}", e.message());
    // The refresh token still works and gives a fresh access token.
    admin.refresh().await.unwrap();
    admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let first = admin.tokens().unwrap();
    let second = admin.refresh().await.unwrap();
    assert_ne!(first.refresh_token, second.refresh_token);
    assert_eq!(first.session_id, second.session_id);
    // A client retrying within the grace period is not treated as theft.
    let retry = s.client().await;
    retry.set_tokens(Some(first.clone()));
    retry.refresh().await.unwrap();
    // After the grace, presenting the used token again revokes the whole session.
    s.clock.advance(chrono::Duration::seconds(30));
    let thief = s.client().await;
    thief.set_tokens(Some(first));
    match thief.refresh().await {
        Err(opennvr_sdk::Error::Status(st)) => {
            assert_eq!(st.code(), Code::Unauthenticated);
            assert!(st.message().contains("revoked"), "{}", st.message());
        }
        other => panic!("{other:?}"),
    }
    // The legitimate holder's tokens of that session are dead too.
    assert_eq!(code(admin.refresh().await), Code::Unauthenticated);
    assert_eq!(status_code(admin.auth().who_am_i(pb::WhoAmIRequest {}).await), Code::Unauthenticated);
    assert!(matches!(s.client().await.refresh().await, Err(opennvr_sdk::Error::NoTokens)));
}

#[tokio::test]
async fn logout_sessions_and_password_change() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let b = s.client().await;
    s.login(&b, "admin").await;
    let sessions = a.auth().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner().sessions;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|x| x.current).count(), 1);
    // Revoke b's session from a.
    let b_sid = b.tokens().unwrap().session_id;
    a.auth().revoke_session(pb::RevokeSessionRequest { session_id: b_sid }).await.unwrap();
    assert_eq!(status_code(b.auth().who_am_i(pb::WhoAmIRequest {}).await), Code::Unauthenticated);
    // Password change revokes the other sessions but keeps this one.
    let c = s.client().await;
    s.login(&c, "admin").await;
    let wrong = a
        .auth()
        .change_password(pb::ChangePasswordRequest {
            current_password: "wrong-current-pass".into(),
            new_password: "new-harbor-lantern-99".into(),
            keep_other_sessions: false,
        })
        .await;
    assert_eq!(status_code(wrong), Code::Unauthenticated);
    a.auth()
        .change_password(pb::ChangePasswordRequest {
            current_password: ADMIN_PASSWORD.into(),
            new_password: "new-harbor-lantern-99".into(),
            keep_other_sessions: false,
        })
        .await
        .unwrap();
    a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    assert_eq!(status_code(c.auth().who_am_i(pb::WhoAmIRequest {}).await), Code::Unauthenticated);
    assert_eq!(code(s.client().await.login("admin", ADMIN_PASSWORD).await), Code::Unauthenticated);
    s.client().await.login_with_totp("admin", "new-harbor-lantern-99", || s.totp_code("admin")).await.unwrap();
    // Logout ends the session.
    a.auth().logout(pb::LogoutRequest {}).await.unwrap();
    assert_eq!(status_code(a.auth().who_am_i(pb::WhoAmIRequest {}).await), Code::Unauthenticated);
    assert_eq!(code(a.refresh().await), Code::Unauthenticated);
}

#[tokio::test]
async fn users_crud_validation_and_etags() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let viewer = s.user(&a, "vera", pb::Role::Viewer).await;
    let bad = a
        .users()
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User { username: "bad name!".into(), role: pb::Role::Viewer as i32, ..Default::default() }),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&bad);
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "user.username");
    let dup = a
        .users()
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User { username: "VERA".into(), role: pb::Role::Viewer as i32, ..Default::default() }),
            password: ADMIN_PASSWORD.into(),
        })
        .await;
    assert_eq!(status_code(dup), Code::AlreadyExists);
    let list =
        a.users().list_users(pb::ListUsersRequest { page_size: 1, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(list.users.len(), 1);
    assert!(!list.next_page_token.is_empty());
    let page2 = a
        .users()
        .list_users(pb::ListUsersRequest { page_size: 1, page_token: list.next_page_token, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.users[0].username, "vera");
    let vera = page2.users[0].clone();
    // Promote with the right etag; a stale etag is refused.
    let updated = a
        .users()
        .update_user(pb::UpdateUserRequest {
            user: Some(pb::User { role: pb::Role::Operator as i32, ..vera.clone() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["role".into()] }),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(updated.role, pb::Role::Operator as i32);
    let stale = a
        .users()
        .update_user(pb::UpdateUserRequest {
            user: Some(pb::User { display_name: "Vera".into(), ..vera.clone() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
        })
        .await;
    assert_eq!(status_code(stale), Code::Aborted);
    // The role change revoked her sessions (the old token carried the old role).
    assert_eq!(status_code(viewer.auth().who_am_i(pb::WhoAmIRequest {}).await), Code::Unauthenticated);
    let no_mask = a.users().update_user(pb::UpdateUserRequest { user: Some(updated.clone()), update_mask: None }).await;
    assert_eq!(status_code(no_mask), Code::InvalidArgument);
    a.users().delete_user(pb::DeleteUserRequest { user_id: updated.id.clone(), etag: String::new() }).await.unwrap();
    let gone = a.users().get_user(pb::GetUserRequest { user_id: updated.id }).await;
    assert_eq!(status_code(gone), Code::NotFound);
    let bad_id = a.users().get_user(pb::GetUserRequest { user_id: "x".into() }).await.unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    assert!(bad_id.message().contains("user_id"));
}

#[tokio::test]
async fn the_last_enabled_admin_stays_even_under_concurrent_calls() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let me = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    for (user, mask) in [
        (pb::User { disabled: true, ..me.clone() }, "disabled"),
        (pb::User { role: pb::Role::Viewer as i32, ..me.clone() }, "role"),
    ] {
        let r = a
            .users()
            .update_user(pb::UpdateUserRequest {
                user: Some(pb::User { etag: String::new(), ..user }),
                update_mask: Some(prost_types::FieldMask { paths: vec![mask.into()] }),
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert_eq!(
            tonic_types::StatusExt::get_error_details(&e).error_info().unwrap().reason,
            "ERROR_REASON_LAST_ADMIN"
        );
    }
    // Two admins disable each other at the same moment: exactly one call wins, every round.
    let b = s.user(&a, "bob", pb::Role::Admin).await;
    let bob = b.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    let set_disabled = |c: opennvr_sdk::Client, target: pb::User, disabled: bool| async move {
        c.users()
            .update_user(pb::UpdateUserRequest {
                user: Some(pb::User { disabled, etag: String::new(), ..target }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
            })
            .await
    };
    for round in 0..5 {
        let (ca, cb) = (s.client().await, s.client().await);
        s.login(&ca, "admin").await;
        s.login(&cb, "bob").await;
        let (x, y) =
            tokio::join!(set_disabled(ca.clone(), bob.clone(), true), set_disabled(cb.clone(), me.clone(), true));
        assert_eq!([x.is_ok(), y.is_ok()].iter().filter(|w| **w).count(), 1, "round {round}: {x:?} {y:?}");
        let x_won = x.is_ok();
        let loser_error = if x_won { y.unwrap_err() } else { x.unwrap_err() };
        assert!(
            matches!(loser_error.code(), Code::FailedPrecondition | Code::Unauthenticated),
            "the loser is refused, or was itself disabled first: {loser_error:?}"
        );
        let (survivor, loser) = if x_won { (ca, bob.clone()) } else { (cb, me.clone()) };
        set_disabled(survivor, loser, false).await.unwrap();
    }
    // Two admins delete each other at the same moment: one is deleted, never both.
    let (ca, cb) = (s.client().await, s.client().await);
    s.login(&ca, "admin").await;
    s.login(&cb, "bob").await;
    let (mut aa, mut ab) = (ca.users(), cb.users());
    let (x, y) = tokio::join!(
        aa.delete_user(pb::DeleteUserRequest { user_id: bob.id.clone(), etag: String::new() }),
        ab.delete_user(pb::DeleteUserRequest { user_id: me.id.clone(), etag: String::new() })
    );
    assert_eq!([x.is_ok(), y.is_ok()].iter().filter(|w| **w).count(), 1, "{x:?} {y:?}");
    let mut su = s.db.superuser();
    let n = crate::harness::count(&mut su, "SELECT count(*) AS n FROM users WHERE role = 'admin' AND NOT disabled");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn parallel_guesses_are_counted_one_by_one() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.trusted_proxies = Some(vec!["127.0.0.1".parse().unwrap()]);
    let s = TestServer::start_with(db, options).await;
    let _admin = s.admin().await;
    let mut guesses = Vec::new();
    for i in 0..20 {
        let c = s.client().await;
        guesses
            .push(tokio::spawn(async move { login_from(&c, "203.0.113.50", &format!("guess-number-{i:04}")).await }));
    }
    let (mut checked, mut throttled) = (0, 0);
    for g in guesses {
        match g.await.unwrap().unwrap_err().code() {
            Code::Unauthenticated => checked += 1,
            Code::ResourceExhausted => throttled += 1,
            other => panic!("{other:?}"),
        }
    }
    // The clock stands still: three free attempts and the one that starts the back-off, no more.
    assert_eq!((checked, throttled), (4, 16));
    // Correct logins in parallel from one address are not mistaken for guessing.
    let mut logins = Vec::new();
    for _ in 0..8 {
        let c = s.client().await;
        logins.push(tokio::spawn(async move { login_from(&c, "198.51.100.20", ADMIN_PASSWORD).await }));
    }
    for l in logins {
        l.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn concurrent_refreshes_of_one_session_never_fail_inside_the_server() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for round in 0..10 {
        let t1 = admin.tokens().unwrap();
        let t2 = admin.refresh().await.unwrap();
        let (x, y) = (s.client().await, s.client().await);
        x.set_tokens(Some(t1));
        y.set_tokens(Some(t2));
        let (rx, ry) = tokio::join!(x.refresh(), y.refresh());
        for r in [rx, ry] {
            match r {
                Ok(_) => {}
                Err(opennvr_sdk::Error::Status(st)) => {
                    assert_eq!(st.code(), Code::Unauthenticated, "round {round}: {st:?}")
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        admin.set_tokens(y.tokens());
        if admin.refresh().await.is_err() {
            // The fork was judged as reuse: the session is gone; start a new one.
            s.login(&admin, "admin").await;
        }
    }
}

#[tokio::test]
async fn a_refresh_chain_forked_by_a_replay_is_caught() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let t1 = admin.tokens().unwrap();
    let t2 = admin.refresh().await.unwrap();
    // Someone replays t1 within the retry grace and gets a chain of their own...
    let replay = s.client().await;
    replay.set_tokens(Some(t1));
    replay.refresh().await.unwrap();
    // ...which retires t2: when its holder uses it after the grace, the session is revoked.
    s.clock.advance(chrono::Duration::seconds(30));
    let holder = s.client().await;
    holder.set_tokens(Some(t2));
    assert_eq!(code(holder.refresh().await), Code::Unauthenticated);
    assert_eq!(code(replay.refresh().await), Code::Unauthenticated, "the whole session is gone");
}

#[tokio::test]
async fn nobody_deletes_themselves_and_deleted_users_stay_locked_out() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let b = s.user(&a, "bea", pb::Role::Admin).await;
    let me = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    let own = a.users().delete_user(pb::DeleteUserRequest { user_id: me.id.clone(), etag: String::new() }).await;
    assert_eq!(status_code(own), Code::FailedPrecondition);
    b.users().delete_user(pb::DeleteUserRequest { user_id: me.id, etag: String::new() }).await.unwrap();
    assert_eq!(status_code(a.users().list_roles(pb::ListRolesRequest::default()).await), Code::Unauthenticated);
    assert_eq!(code(a.refresh().await), Code::Unauthenticated);
    // The revoked session outlives the user row, so a restarted server still refuses the token.
    let token = a.tokens().unwrap();
    let (db, mut options) = (crate::harness::TestDb { name: s.db.name.clone() }, s.options.clone());
    let mut su = s.db.superuser();
    s.shutdown().await;
    options.data_dir = Some(crate::harness::temp_dir("restart"));
    let again = TestServer::start_with(db, options).await;
    let c = again.client().await;
    c.set_tokens(Some(token));
    assert_eq!(status_code(c.users().list_roles(pb::ListRolesRequest::default()).await), Code::Unauthenticated);
    let n = crate::harness::count(
        &mut su,
        "SELECT count(*) AS n FROM sessions WHERE user_id IS NULL AND revoked_at IS NOT NULL",
    );
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_full_hashing_queue_refuses_logins_at_once_and_other_calls_go_on() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    // A real cost, so that the queue fills; logins from many addresses (through a trusted proxy),
    // since one user's checks from one address run one at a time anyway.
    options.argon2_memory_kib = Some(32 * 1024);
    options.argon2_iterations = Some(2);
    options.trusted_proxies = Some(vec!["127.0.0.1".parse().unwrap()]);
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let viewer = s.user(&admin, "vera", pb::Role::Viewer).await;
    // Twelve accounts, so that no account's budget of checks under way is what refuses them.
    for i in 0..11 {
        let user = pb::User { username: format!("vera-{i}"), role: pb::Role::Viewer as i32, ..Default::default() };
        admin
            .users()
            .create_user(pb::CreateUserRequest { user: Some(user), password: ADMIN_PASSWORD.into() })
            .await
            .unwrap();
    }
    let mut logins = Vec::new();
    for i in 0..120 {
        let c = s.client().await;
        let username = if i % 12 == 11 { "vera".to_owned() } else { format!("vera-{}", i % 12) };
        logins.push(tokio::spawn(async move {
            let mut req = tonic::Request::new(pb::LoginRequest { username, password: ADMIN_PASSWORD.into() });
            req.metadata_mut().insert("x-forwarded-for", format!("198.51.100.{}", i + 1).parse().unwrap());
            c.auth().login(req).await
        }));
    }
    // Meanwhile the server answers everything else.
    viewer.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    let (mut checked, mut refused) = (0, 0);
    for l in logins {
        match l.await.unwrap() {
            // The password was checked (a second factor follows).
            Ok(_) => checked += 1,
            Err(st) if st.code() == Code::ResourceExhausted => {
                assert!(st.message().contains("password checks are waiting"), "{st:?}");
                refused += 1;
            }
            Err(st) => panic!("{st:?}"),
        }
    }
    assert!(refused > 0, "{checked} checked, none refused: the queue never filled");
    assert!(checked >= 2, "{checked} checked");
    // And once the storm is over, the password is checked again.
    s.client().await.login_start("vera", ADMIN_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_token_already_verified_is_refused_within_a_second_of_its_session_ending() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let viewer = s.user(&admin, "vera", pb::Role::Viewer).await;
    // Another connection holding the same tokens; its access token is verified, and remembered.
    let same = s.client().await;
    same.set_tokens(viewer.tokens());
    for _ in 0..2 {
        same.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    }
    viewer.logout().await.unwrap();
    let ended = std::time::Instant::now();
    let refused = loop {
        match same.auth().who_am_i(pb::WhoAmIRequest {}).await {
            Err(st) => break st,
            Ok(_) if ended.elapsed() < std::time::Duration::from_secs(1) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Ok(_) => panic!("still answered {:?} after the session ended", ended.elapsed()),
        }
    };
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}
