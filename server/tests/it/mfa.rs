//! Strong authentication through the API: TOTP and recovery codes at login, enrolment-only sessions,
//! step-up before destructive RPCs, and full WebAuthn ceremonies driven by a software authenticator.
use crate::harness::{ADMIN_PASSWORD, TestServer};
use crate::passkey::SoftPasskey;
use base64::Engine;
use opennvr_sdk::pb;
use opennvr_server::security::totp::TotpSeed;
use tonic::Code;

/// Where the test "browser" runs: WebAuthn tests configure this as the relying party's origin.
pub const ORIGIN: &str = "http://localhost:8443";

fn status<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> tonic::Status {
    r.expect_err("expected an error")
}

fn reason(st: &tonic::Status) -> String {
    opennvr_sdk::error_reason(st).unwrap_or_default()
}

/// The request field a status blames.
fn field(st: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    st.get_details_bad_request().and_then(|b| b.field_violations.first().map(|v| v.field.clone())).unwrap_or_default()
}

/// A password login of `name` that must answer an MFA challenge.
async fn challenge(c: &opennvr_sdk::Client, name: &str) -> pb::MfaChallenge {
    match c.login_start(name, ADMIN_PASSWORD).await.unwrap() {
        opennvr_sdk::LoginOutcome::MfaRequired(ch) => ch,
        other => panic!("{name} has a second factor, yet: {other:?}"),
    }
}

fn totp(code: &str) -> pb::second_factor::Method {
    pb::second_factor::Method::TotpCode(code.to_owned())
}

fn recovery(code: &str) -> pb::second_factor::Method {
    pb::second_factor::Method::RecoveryCode(code.to_owned())
}

/// `name`'s TOTP code at the server's time shifted by `offset_secs`, without the harness's bookkeeping.
fn code_at(s: &TestServer, name: &str, offset_secs: i64) -> String {
    let secret = s.totp.lock().unwrap().get(name).unwrap().0.clone();
    TotpSeed::from_base32(&secret).unwrap().code_at(s.clock_now() + chrono::Duration::seconds(offset_secs))
}

async fn who(c: &opennvr_sdk::Client) -> Result<pb::WhoAmIResponse, tonic::Status> {
    c.auth().who_am_i(pb::WhoAmIRequest {}).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn totp_accepts_the_current_and_an_adjacent_code_once_and_locks_out_guessing() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    s.user(&admin, "tess", pb::Role::Viewer).await;
    // Two steps on: tess's enrolment code is spent, the one of the step before now is not.
    s.clock.advance(chrono::Duration::seconds(60));
    let c = s.client().await;

    // Wrong code: refused, and the ticket stays usable.
    let ch = challenge(&c, "tess").await;
    assert!(ch.methods.contains(&(pb::SecondFactorMethod::Totp as i32)));
    assert!(ch.methods.contains(&(pb::SecondFactorMethod::RecoveryCode as i32)));
    assert!(ch.passkey_request_options_json.is_empty(), "no passkey on a server without WebAuthn");
    let wrong = if code_at(&s, "tess", 0) == "000000" { "111111" } else { "000000" };
    let e = c.finish_mfa(&ch.ticket, totp(wrong)).await.unwrap_err();
    assert!(matches!(&e, opennvr_sdk::Error::Status(st) if st.code() == Code::Unauthenticated), "{e}");
    assert_eq!(e.reason().as_deref(), Some("ERROR_REASON_INVALID_CREDENTIALS"));
    // The code of the previous step (the authenticator's clock lags a little) is accepted.
    let previous = code_at(&s, "tess", -30);
    let tokens = c.finish_mfa(&ch.ticket, totp(&previous)).await.unwrap();
    assert!(!tokens.mfa_enrolment_required);
    let sessions = c.auth().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner().sessions;
    let mine = sessions.iter().find(|x| x.current).unwrap();
    assert_eq!(mine.auth_methods, vec!["pwd", "otp"]);
    assert!(mine.step_up_time.is_some(), "an MFA login starts stepped up");
    // The ticket is spent.
    let again = c.finish_mfa(&ch.ticket, totp(&code_at(&s, "tess", 0))).await.unwrap_err();
    assert_eq!(again.reason().as_deref(), Some("ERROR_REASON_INVALID_CREDENTIALS"));

    // The same code again, on a new ticket: a replay, refused.
    let ch = challenge(&c, "tess").await;
    let replay = c.finish_mfa(&ch.ticket, totp(&previous)).await.unwrap_err();
    assert!(replay.to_string().contains("already used"), "{replay}");
    // The code of the next step (the authenticator's clock runs a little ahead) is accepted too.
    c.finish_mfa(&ch.ticket, totp(&code_at(&s, "tess", 30))).await.unwrap();
    // Two steps away is outside the window.
    let ch = challenge(&c, "tess").await;
    let far = c.finish_mfa(&ch.ticket, totp(&code_at(&s, "tess", 60))).await.unwrap_err();
    assert!(far.to_string().contains("does not match"), "{far}");
    // Something that is not a code at all is a bad request, not a guess.
    let malformed = c.finish_mfa(&ch.ticket, totp("12ab56")).await.unwrap_err();
    let opennvr_sdk::Error::Status(st) = &malformed else { panic!("{malformed}") };
    assert_eq!((st.code(), field(st).as_str()), (Code::InvalidArgument, "factor.totp_code"));

    // Wrong factors count toward a lockout of the user, whatever the ticket: three are free, the
    // fourth blocks, and then even the right code waits.
    for _ in 0..3 {
        let ch = challenge(&c, "tess").await;
        c.finish_mfa(&ch.ticket, totp(wrong)).await.unwrap_err();
    }
    let ch = challenge(&c, "tess").await;
    let locked = c.finish_mfa(&ch.ticket, totp(&code_at(&s, "tess", 0))).await.unwrap_err();
    assert!(matches!(&locked, opennvr_sdk::Error::Status(st) if st.code() == Code::ResourceExhausted), "{locked}");
    assert_eq!(locked.reason().as_deref(), Some("ERROR_REASON_RATE_LIMITED"));
    // Once the back-off has passed, the right code signs in (and clears the count).
    s.clock.advance(chrono::Duration::seconds(30));
    c.finish_mfa(&ch.ticket, totp(&code_at(&s, "tess", 30))).await.unwrap();

    // Guesses sent in parallel are judged one after another: only the free ones and the one that
    // blocks are even checked.
    let tess = c.clone();
    let mut guesses = Vec::new();
    for _ in 0..12 {
        let tess = tess.clone();
        let wrong = wrong.to_owned();
        guesses.push(tokio::spawn(async move { tess.auth().step_up(step_up("", totp(&wrong))).await }));
    }
    let mut codes = Vec::new();
    for g in guesses {
        codes.push(g.await.unwrap().unwrap_err().code());
    }
    assert_eq!(codes.iter().filter(|c| **c == Code::Unauthenticated).count(), 4, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Code::ResourceExhausted).count(), 8, "{codes:?}");
    // Every wrong factor left an entry naming the user.
    let denied = admin
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            filter: Some(pb::AuditEventFilter { action: "mfa.finish".into(), ..Default::default() }),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let refused = denied.iter().filter(|e| e.code == "UNAUTHENTICATED").count();
    assert!(refused >= 6, "{refused} refused second factors in the trail");
}

#[tokio::test]
async fn recovery_codes_work_once_and_regenerating_replaces_them() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let codes = s.recovery_codes("admin");
    assert_eq!(codes.len(), 10);
    assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), 10);
    let c = s.client().await;
    let ch = challenge(&c, "admin").await;
    // Typed in lower case without dashes, it still counts.
    c.finish_mfa(&ch.ticket, recovery(&codes[0].to_lowercase().replace('-', ""))).await.unwrap();
    let ch = challenge(&c, "admin").await;
    let spent = c.finish_mfa(&ch.ticket, recovery(&codes[0])).await.unwrap_err();
    assert!(spent.to_string().contains("already used"), "{spent}");
    // Stored as hashes only.
    let mut su = s.db.superuser();
    let canonical = codes[1].replace('-', "");
    let clear =
        format!("SELECT count(*) AS n FROM recovery_codes WHERE encode(code_hash, 'escape') LIKE '%{canonical}%'");
    assert_eq!(crate::harness::count(&mut su, clear), 0);
    // New codes replace every old one.
    let fresh =
        admin.auth().regenerate_recovery_codes(pb::RegenerateRecoveryCodesRequest {}).await.unwrap().into_inner();
    assert_eq!(fresh.recovery_codes.len(), 10);
    let ch = challenge(&c, "admin").await;
    c.finish_mfa(&ch.ticket, recovery(&codes[1])).await.unwrap_err();
    let ch = challenge(&c, "admin").await;
    let tokens = c.finish_mfa(&ch.ticket, recovery(&fresh.recovery_codes[3])).await.unwrap();
    let sessions = c.auth().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner().sessions;
    let mine = sessions.iter().find(|x| x.id == tokens.session_id).unwrap();
    assert_eq!(mine.auth_methods, vec!["pwd", "rec"]);
}

#[tokio::test]
async fn a_role_that_requires_mfa_gets_an_enrolment_only_session_until_a_factor_is_enrolled() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    admin
        .users()
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User { username: "bea".into(), role: pb::Role::Admin as i32, ..Default::default() }),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap();
    let bea = s.client().await;
    let tokens = bea.login("bea", ADMIN_PASSWORD).await.unwrap();
    assert!(tokens.mfa_enrolment_required);
    // A second enrolment-only session, opened with the password alone (by bea, or by whoever else
    // knows it).
    let other = s.client().await;
    assert!(other.login("bea", ADMIN_PASSWORD).await.unwrap().mfa_enrolment_required);
    // Everything but enrolling is refused, with a reason a client can act on.
    let refused = status(bea.users().list_users(pb::ListUsersRequest::default()).await);
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::PermissionDenied, "ERROR_REASON_MFA_ENROLMENT_REQUIRED")
    );
    let refused = status(bea.cameras().list_cameras(pb::ListCamerasRequest::default()).await);
    assert_eq!(reason(&refused), "ERROR_REASON_MFA_ENROLMENT_REQUIRED");
    let me = who(&bea).await.unwrap();
    assert!(me.mfa_enrolment_required && me.permissions.is_empty());
    // Passkeys need a relying party this server does not have: it says so; TOTP is a path alone.
    let no_passkeys = status(bea.auth().start_passkey_registration(pb::StartPasskeyRegistrationRequest {}).await);
    assert_eq!(no_passkeys.code(), Code::FailedPrecondition);
    assert!(no_passkeys.message().contains("OPENNVR_WEBAUTHN_RP_ID"), "{}", no_passkeys.message());
    let started =
        bea.auth().start_totp_enrollment(pb::StartTotpEnrollmentRequest::default()).await.unwrap().into_inner();
    assert!(started.otpauth_uri.starts_with("otpauth://totp/OpenNVR:bea?"), "{}", started.otpauth_uri);
    assert!(started.otpauth_uri.contains(&format!("secret={}", started.secret)));
    let seed = TotpSeed::from_base32(&started.secret).unwrap();
    let wrong = bea
        .auth()
        .finish_totp_enrollment(pb::FinishTotpEnrollmentRequest {
            enrollment_token: started.enrollment_token.clone(),
            code: seed.code_at(s.clock_now() + chrono::Duration::seconds(600)),
            name: String::new(),
        })
        .await;
    let wrong = status(wrong);
    assert_eq!((wrong.code(), field(&wrong).as_str()), (Code::InvalidArgument, "code"));
    let done = bea
        .auth()
        .finish_totp_enrollment(pb::FinishTotpEnrollmentRequest {
            enrollment_token: started.enrollment_token.clone(),
            code: seed.code_at(s.clock_now()),
            name: "bea's phone".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.recovery_codes.len(), 10);
    assert_eq!(done.credential.as_ref().unwrap().name, "bea's phone");
    // The enrolment token worked once.
    let reused = bea
        .auth()
        .finish_totp_enrollment(pb::FinishTotpEnrollmentRequest {
            enrollment_token: started.enrollment_token,
            code: seed.code_at(s.clock_now()),
            name: String::new(),
        })
        .await;
    assert_eq!(status(reused).code(), Code::FailedPrecondition);
    // The seed is sealed at rest.
    let mut su = s.db.superuser();
    let sealed = crate::harness::count(
        &mut su,
        "SELECT count(*) AS n FROM credentials WHERE totp_secret_sealed IS NOT NULL AND totp_kek_id LIKE 'kek-%'",
    );
    assert_eq!(sealed, 2);
    // Refreshed, the session that enrolled is a full one; a second TOTP is refused.
    assert!(!bea.refresh().await.unwrap().mfa_enrolment_required);
    // The other session proved nothing: it stays enrolment-only until it presents the factor.
    assert!(other.refresh().await.unwrap().mfa_enrolment_required);
    let refused = status(other.users().list_users(pb::ListUsersRequest::default()).await);
    assert_eq!(reason(&refused), "ERROR_REASON_MFA_ENROLMENT_REQUIRED");
    let admin_id = who(&admin).await.unwrap().user.unwrap().id;
    let foreign =
        other.auth().list_credentials(pb::ListCredentialsRequest { user_id: admin_id, ..Default::default() }).await;
    assert_eq!(status(foreign).code(), Code::PermissionDenied, "another user's credentials stay out of reach");
    let right = seed.code_at(s.clock_now() + chrono::Duration::seconds(30));
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let wrong_step = other.auth().step_up(step_up("", totp(wrong))).await;
    assert_eq!(status(wrong_step).code(), Code::Unauthenticated);
    s.clock.advance(chrono::Duration::seconds(30));
    other.auth().step_up(step_up("", totp(&right))).await.unwrap();
    assert!(!other.refresh().await.unwrap().mfa_enrolment_required);
    bea.users().list_users(pb::ListUsersRequest::default()).await.unwrap();
    let twice = status(bea.auth().start_totp_enrollment(pb::StartTotpEnrollmentRequest::default()).await);
    assert_eq!(twice.code(), Code::AlreadyExists);
    // Listings show who has which factor.
    let users = admin.users().list_users(pb::ListUsersRequest::default()).await.unwrap().into_inner().users;
    assert!(users.iter().all(|u| u.has_totp), "{users:?}");
}

#[tokio::test]
async fn destructive_rpcs_need_a_recent_step_up_and_step_up_refreshes_the_window() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let camera = crate::cameras::create(&admin, "Dock").await;
    // Five minutes on, the login's step-up has lapsed: a destructive RPC is refused with the reason.
    s.clock.advance(chrono::Duration::seconds(301));
    let delete = || pb::DeleteCameraRequest { camera_id: camera.id.clone(), ..Default::default() };
    let refused = status(admin.cameras().delete_camera(delete()).await);
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::PermissionDenied, "ERROR_REASON_STEP_UP_REQUIRED"));
    assert!(refused.message().contains("StepUp"), "{}", refused.message());
    // Non-destructive calls carry on.
    admin.cameras().get_camera(pb::GetCameraRequest { camera_id: camera.id.clone() }).await.unwrap();
    // A wrong factor does not step up.
    let started = admin.auth().start_step_up(pb::StartStepUpRequest {}).await.unwrap().into_inner();
    let ch = started.challenge.unwrap();
    assert!(ch.methods.contains(&(pb::SecondFactorMethod::Totp as i32)));
    let wrong = if code_at(&s, "admin", 0) == "000000" { "111111" } else { "000000" };
    assert_eq!(status(admin.auth().step_up(step_up(&ch.ticket, totp(wrong))).await).code(), Code::Unauthenticated);
    assert_eq!(reason(&status(admin.cameras().delete_camera(delete()).await)), "ERROR_REASON_STEP_UP_REQUIRED");
    // The right one does, for the window, and then the call passes.
    let up = admin.auth().step_up(step_up("", totp(&s.totp_code("admin")))).await.unwrap().into_inner();
    let until = up.step_up_expire_time.unwrap().seconds - up.session.unwrap().step_up_time.unwrap().seconds;
    assert_eq!(until, 300);
    admin.cameras().delete_camera(delete()).await.unwrap();
    let me = who(&admin).await.unwrap();
    assert!(me.step_up_expire_time.is_some());

    // A user without any second factor cannot step up: they are told to enrol one.
    admin
        .users()
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User { username: "otto".into(), role: pb::Role::Operator as i32, ..Default::default() }),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap();
    let otto = s.client().await;
    assert!(!otto.login("otto", ADMIN_PASSWORD).await.unwrap().mfa_enrolment_required, "operators need no MFA");
    let own = crate::cameras::create(&otto, "Gate").await;
    let refused =
        status(otto.cameras().delete_camera(pb::DeleteCameraRequest { camera_id: own.id, ..Default::default() }).await);
    assert_eq!(reason(&refused), "ERROR_REASON_STEP_UP_REQUIRED");
    assert!(refused.message().contains("enrol one"), "{}", refused.message());
    assert_eq!(status(otto.auth().start_step_up(pb::StartStepUpRequest {}).await).code(), Code::FailedPrecondition);
    // Enrolling a first factor needs no step-up; once enrolled, enrolling another does.
    s.enrol_totp(&otto, "otto").await;
    s.clock.advance(chrono::Duration::seconds(301));
    let refused = status(otto.auth().start_passkey_registration(pb::StartPasskeyRegistrationRequest {}).await);
    assert_eq!(reason(&refused), "ERROR_REASON_STEP_UP_REQUIRED");
}

fn step_up(ticket: &str, factor: pb::second_factor::Method) -> pb::StepUpRequest {
    pb::StepUpRequest { ticket: ticket.to_owned(), factor: Some(pb::SecondFactor { method: Some(factor) }) }
}

#[tokio::test]
async fn deleting_a_credential_ends_the_sessions_it_signed_in() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let vic = s.user(&admin, "vic", pb::Role::Viewer).await;
    let by_totp = s.client().await;
    s.login(&by_totp, "vic").await;
    let by_recovery = s.client().await;
    let ch = challenge(&by_recovery, "vic").await;
    by_recovery.finish_mfa(&ch.ticket, recovery(&s.recovery_codes("vic")[0])).await.unwrap();
    let creds = vic.auth().list_credentials(pb::ListCredentialsRequest::default()).await.unwrap().into_inner();
    assert_eq!(creds.credentials.len(), 1);
    let cred = creds.credentials[0].clone();
    assert_eq!(cred.r#type, pb::CredentialType::Totp as i32);
    // Renaming is one's own business; another user's credential is not found for a viewer.
    let renamed = vic
        .auth()
        .rename_credential(pb::RenameCredentialRequest { credential_id: cred.id.clone(), name: "old phone".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.credential.unwrap().name, "old phone");
    let empty = status(
        vic.auth()
            .rename_credential(pb::RenameCredentialRequest { credential_id: cred.id.clone(), name: " ".into() })
            .await,
    );
    assert_eq!((empty.code(), field(&empty).as_str()), (Code::InvalidArgument, "name"));
    let admins = admin.auth().list_credentials(pb::ListCredentialsRequest::default()).await.unwrap().into_inner();
    let foreign = vic
        .auth()
        .delete_credential(pb::DeleteCredentialRequest { credential_id: admins.credentials[0].id.clone() })
        .await;
    assert_eq!(status(foreign).code(), Code::NotFound);
    let foreign_list = vic
        .auth()
        .list_credentials(pb::ListCredentialsRequest {
            user_id: admins.credentials[0].user_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(status(foreign_list).code(), Code::PermissionDenied);
    // An administrator removes vic's lost phone: the sessions it signed in or stepped up end (vic's
    // enrolment session stepped up with it too); the recovery-code session stays.
    admin.auth().delete_credential(pb::DeleteCredentialRequest { credential_id: cred.id.clone() }).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(status(who(&by_totp).await).code(), Code::Unauthenticated);
    assert_eq!(status(who(&vic).await).code(), Code::Unauthenticated);
    who(&by_recovery).await.unwrap();
    // With no factor left, the recovery codes went too, and the next login is a password alone.
    let mut su = s.db.superuser();
    assert_eq!(
        crate::harness::count(
            &mut su,
            "SELECT count(*) AS n FROM recovery_codes r JOIN users u ON u.id = r.user_id WHERE u.username = 'vic'"
        ),
        0
    );
    let c = s.client().await;
    c.login("vic", ADMIN_PASSWORD).await.unwrap();
    assert_eq!(
        status(admin.auth().delete_credential(pb::DeleteCredentialRequest { credential_id: cred.id }).await).code(),
        Code::NotFound
    );
}

// ---- WebAuthn, driven by a software authenticator through the API ----

/// A server whose relying party is `localhost`, as a browser at [`ORIGIN`] reaches it.
pub async fn webauthn_server() -> TestServer {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.webauthn_rp_id = Some("localhost".into());
    options.webauthn_origins = Some(vec![ORIGIN.into()]);
    TestServer::start_with(db, options).await
}

/// Registers `key` for the user signed in on `c`.
pub async fn register(
    c: &opennvr_sdk::Client,
    key: &mut SoftPasskey,
    name: &str,
) -> pb::FinishPasskeyRegistrationResponse {
    let started =
        c.auth().start_passkey_registration(pb::StartPasskeyRegistrationRequest {}).await.unwrap().into_inner();
    let created = key.register(&started.creation_options_json);
    c.auth()
        .finish_passkey_registration(pb::FinishPasskeyRegistrationRequest {
            registration_token: started.registration_token,
            credential_json: created,
            name: name.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The assertion `key` makes for the request options `json`, as JSON.
fn assert_with(key: &mut SoftPasskey, json: &str) -> String {
    key.assert(json, None)
}

fn passkey(json: String) -> pb::second_factor::Method {
    pb::second_factor::Method::PasskeyAssertionJson(json)
}

#[tokio::test]
async fn passkeys_register_and_complete_logins_and_refuse_replays_and_wrong_challenges() {
    let s = webauthn_server().await;
    let admin = s.admin().await;
    let mut key = SoftPasskey::new(ORIGIN);
    let done = register(&admin, &mut key, "YubiKey 5C").await;
    assert!(done.recovery_codes.is_empty(), "the admin had TOTP already: no new recovery codes");
    let cred = done.credential.unwrap();
    assert_eq!((cred.r#type, cred.name.as_str()), (pb::CredentialType::Passkey as i32, "YubiKey 5C"));
    // The same authenticator cannot be registered twice: it is excluded, and refused if it answers.
    let again =
        admin.auth().start_passkey_registration(pb::StartPasskeyRegistrationRequest {}).await.unwrap().into_inner();
    let options: serde_json::Value = serde_json::from_str(&again.creation_options_json).unwrap();
    let key_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.credential_id());
    assert_eq!(options["publicKey"]["excludeCredentials"][0]["id"], key_id.as_str(), "{options}");
    let twice = admin
        .auth()
        .finish_passkey_registration(pb::FinishPasskeyRegistrationRequest {
            registration_token: again.registration_token,
            credential_json: key.register(&again.creation_options_json),
            name: "again".into(),
        })
        .await;
    let twice = status(twice);
    assert_eq!(twice.code(), Code::InvalidArgument);
    assert!(twice.message().contains("already registered"), "{}", twice.message());

    // Login with password + passkey.
    let c = s.client().await;
    let ch = challenge(&c, "admin").await;
    assert!(ch.methods.contains(&(pb::SecondFactorMethod::Passkey as i32)));
    let assertion = assert_with(&mut key, &ch.passkey_request_options_json);
    let tokens = c.finish_mfa(&ch.ticket, passkey(assertion.clone())).await.unwrap();
    let sessions = c.auth().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner().sessions;
    assert_eq!(sessions.iter().find(|x| x.id == tokens.session_id).unwrap().auth_methods, vec!["pwd", "hwk"]);

    // Replayed assertion: on the spent ticket, and on a fresh ticket whose challenge differs.
    assert!(c.finish_mfa(&ch.ticket, passkey(assertion.clone())).await.is_err());
    let ch2 = challenge(&c, "admin").await;
    let replay = c.finish_mfa(&ch2.ticket, passkey(assertion)).await.unwrap_err();
    assert!(replay.to_string().contains("another challenge"), "{replay}");
    // Each challenge works once: after a failed assertion a new one must be asked for (StartMfa).
    let stale = assert_with(&mut key, &ch2.passkey_request_options_json);
    let spent = c.finish_mfa(&ch2.ticket, passkey(stale)).await.unwrap_err();
    assert!(matches!(&spent, opennvr_sdk::Error::Status(st) if st.code() == Code::FailedPrecondition), "{spent}");
    // Wrong challenge: an assertion for the first challenge, presented after StartMfa renewed it.
    let ch3 = challenge(&c, "admin").await;
    let for_old = assert_with(&mut key, &ch3.passkey_request_options_json);
    let renewed = c.auth().start_mfa(pb::StartMfaRequest { ticket: ch3.ticket.clone() }).await.unwrap().into_inner();
    let renewed = renewed.challenge.unwrap();
    assert_ne!(renewed.passkey_request_options_json, ch3.passkey_request_options_json, "a new challenge");
    let wrong = c.finish_mfa(&ch3.ticket, passkey(for_old)).await.unwrap_err();
    assert!(wrong.to_string().contains("another challenge"), "{wrong}");
    let ch4 = challenge(&c, "admin").await;
    c.finish_mfa(&ch4.ticket, passkey(assert_with(&mut key, &ch4.passkey_request_options_json))).await.unwrap();

    // A passkey steps up a session too.
    s.clock.advance(chrono::Duration::seconds(301));
    let st = admin.auth().start_step_up(pb::StartStepUpRequest {}).await.unwrap().into_inner().challenge.unwrap();
    let json = assert_with(&mut key, &st.passkey_request_options_json);
    admin.auth().step_up(step_up(&st.ticket, passkey(json))).await.unwrap();
}

#[tokio::test]
async fn a_passkey_whose_counter_goes_back_or_that_was_deleted_is_refused() {
    let s = webauthn_server().await;
    let admin = s.admin().await;
    let mut key = SoftPasskey::new(ORIGIN);
    let done = register(&admin, &mut key, "key").await;
    let cred = done.credential.unwrap();
    let c = s.client().await;
    let ch = challenge(&c, "admin").await;
    c.finish_mfa(&ch.ticket, passkey(assert_with(&mut key, &ch.passkey_request_options_json))).await.unwrap();
    // The stored counter moved forward with the use.
    let mut su = s.db.superuser();
    let counter = |su: &mut diesel::PgConnection| {
        crate::harness::count(
            su,
            format!("SELECT (passkey->'cred'->>'counter')::bigint AS n FROM credentials WHERE id = '{}'", cred.id),
        )
    };
    let used = counter(&mut su);
    assert!(used >= 1, "counter {used}");
    // A cloned authenticator shows up as a counter that does not move forward: make the stored one
    // run ahead of what this authenticator will sign — after the challenge was issued, as when the
    // genuine key is used meanwhile.
    let ch = challenge(&c, "admin").await;
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE credentials SET passkey = jsonb_set(passkey, '{{cred,counter}}', '1000') WHERE id = '{}'",
            cred.id
        )),
        &mut su,
    )
    .unwrap();
    let cloned =
        c.finish_mfa(&ch.ticket, passkey(assert_with(&mut key, &ch.passkey_request_options_json))).await.unwrap_err();
    assert!(cloned.to_string().contains("counter went backwards"), "{cloned}");
    assert_eq!(counter(&mut su), 1000, "a refused assertion changes nothing");
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE credentials SET passkey = jsonb_set(passkey, '{{cred,counter}}', '{used}') WHERE id = '{}'",
            cred.id
        )),
        &mut su,
    )
    .unwrap();
    // Signed in with the passkey, then the passkey is deleted: that session ends, and the
    // authenticator no longer completes a login.
    let c2 = s.client().await;
    let ch = challenge(&c2, "admin").await;
    c2.finish_mfa(&ch.ticket, passkey(assert_with(&mut key, &ch.passkey_request_options_json))).await.unwrap();
    let ch_before = challenge(&c, "admin").await;
    admin.auth().delete_credential(pb::DeleteCredentialRequest { credential_id: cred.id.clone() }).await.unwrap();
    assert_eq!(status(who(&c2).await).code(), Code::Unauthenticated);
    let gone =
        c.finish_mfa(&ch_before.ticket, passkey(assert_with(&mut key, &ch_before.passkey_request_options_json))).await;
    assert!(gone.unwrap_err().to_string().contains("not registered"));
    let ch = challenge(&c, "admin").await;
    assert!(ch.passkey_request_options_json.is_empty(), "no passkey left to ask for");
}

#[tokio::test]
async fn a_passkey_answer_is_refused_for_a_bad_signature_origin_relying_party_or_unverified_user() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let s = webauthn_server().await;
    let admin = s.admin().await;
    let mut key = SoftPasskey::new(ORIGIN);
    register(&admin, &mut key, "key").await;
    let c = s.client().await;
    let refused = |e: opennvr_sdk::Error, why: &str| {
        assert!(matches!(&e, opennvr_sdk::Error::Status(st) if st.code() == Code::Unauthenticated), "{e}");
        assert!(e.to_string().contains(why), "{e}, not {why:?}");
    };
    // One byte of the signature changed.
    let ch = challenge(&c, "admin").await;
    let mut answer: serde_json::Value =
        serde_json::from_str(&assert_with(&mut key, &ch.passkey_request_options_json)).unwrap();
    let mut signature = B64.decode(answer["response"]["signature"].as_str().unwrap()).unwrap();
    let middle = signature.len() / 2;
    signature[middle] ^= 0x01;
    answer["response"]["signature"] = B64.encode(signature).into();
    refused(c.finish_mfa(&ch.ticket, passkey(answer.to_string())).await.unwrap_err(), "does not verify");
    // Signed for a page of another origin, for another relying party, without verifying the user.
    key.origin = "http://localhost.example:8443".into();
    let ch = challenge(&c, "admin").await;
    let answer = assert_with(&mut key, &ch.passkey_request_options_json);
    refused(c.finish_mfa(&ch.ticket, passkey(answer)).await.unwrap_err(), "origin this server does not accept");
    key.origin = ORIGIN.into();
    key.rp_id = Some("example.org".into());
    let ch = challenge(&c, "admin").await;
    let answer = assert_with(&mut key, &ch.passkey_request_options_json);
    refused(c.finish_mfa(&ch.ticket, passkey(answer)).await.unwrap_err(), "another relying party");
    key.rp_id = None;
    key.verifies_user = false;
    let ch = challenge(&c, "admin").await;
    let answer = assert_with(&mut key, &ch.passkey_request_options_json);
    refused(c.finish_mfa(&ch.ticket, passkey(answer)).await.unwrap_err(), "did not verify the user");
    // The same key, answering properly, signs in once the lockout the four wrong answers earned
    // has passed.
    key.verifies_user = true;
    s.clock.advance(chrono::Duration::seconds(2));
    let ch = challenge(&c, "admin").await;
    c.finish_mfa(&ch.ticket, passkey(assert_with(&mut key, &ch.passkey_request_options_json))).await.unwrap();
}

#[tokio::test]
async fn expired_ceremonies_are_refused() {
    let s = webauthn_server().await;
    let admin = s.admin().await;
    let mut key = SoftPasskey::new(ORIGIN);
    // A registration finished after its state expired.
    let started =
        admin.auth().start_passkey_registration(pb::StartPasskeyRegistrationRequest {}).await.unwrap().into_inner();
    let created = key.register(&started.creation_options_json);
    s.clock.advance(chrono::Duration::seconds(301));
    s.step_up(&admin, "admin").await;
    let late = admin
        .auth()
        .finish_passkey_registration(pb::FinishPasskeyRegistrationRequest {
            registration_token: started.registration_token,
            credential_json: created,
            name: String::new(),
        })
        .await;
    let late = status(late);
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert!(late.message().contains("expired"), "{}", late.message());
    // An MFA ticket redeemed after it expired.
    register(&admin, &mut key, "key").await;
    let c = s.client().await;
    let ch = challenge(&c, "admin").await;
    let json = assert_with(&mut key, &ch.passkey_request_options_json);
    s.clock.advance(chrono::Duration::seconds(301));
    let e = c.finish_mfa(&ch.ticket, passkey(json)).await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    // A step-up challenge answered after it expired.
    admin.refresh().await.unwrap();
    let st = admin.auth().start_step_up(pb::StartStepUpRequest {}).await.unwrap().into_inner().challenge.unwrap();
    let json = assert_with(&mut key, &st.passkey_request_options_json);
    s.clock.advance(chrono::Duration::seconds(301));
    admin.refresh().await.unwrap();
    let late = status(admin.auth().step_up(step_up(&st.ticket, passkey(json))).await);
    assert_eq!(late.code(), Code::Unauthenticated);
    assert!(late.message().contains("expired"), "{}", late.message());
    // A passwordless login answered, well-formed, after its state expired.
    let user_id = admin_id(&admin).await;
    assert_eq!(credential_raw_id(&s).await, key.credential_id(), "the attested credential id is stored");
    let started = c.auth().start_passkey_login(pb::StartPasskeyLoginRequest {}).await.unwrap().into_inner();
    let ch = started.challenge.unwrap();
    let json = discoverable_assertion(&mut key, &ch.passkey_request_options_json, user_id);
    s.clock.advance(chrono::Duration::seconds(301));
    let e = c
        .auth()
        .finish_passkey_login(pb::FinishPasskeyLoginRequest { ticket: ch.ticket, passkey_assertion_json: json })
        .await;
    let e = status(e);
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("expired"), "{}", e.message());
}

async fn admin_id(c: &opennvr_sdk::Client) -> uuid::Uuid {
    uuid::Uuid::parse_str(&who(c).await.unwrap().user.unwrap().id).unwrap()
}

/// The WebAuthn credential id of the (one) passkey stored.
async fn credential_raw_id(s: &TestServer) -> Vec<u8> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        id: Vec<u8>,
    }
    let mut su = s.db.superuser();
    let row: Id = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT passkey_credential_id AS id FROM credentials WHERE kind = 'passkey'"),
        &mut su,
    )
    .unwrap();
    row.id
}

/// A passwordless assertion by `key` for the options `json`, which name no credential: the key answers
/// as a resident credential does, with `user` as its user handle.
fn discoverable_assertion(key: &mut SoftPasskey, json: &str, user: uuid::Uuid) -> String {
    let options: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(options["publicKey"]["allowCredentials"], serde_json::json!([]), "no credential named");
    key.assert(json, Some(user.as_bytes()))
}

#[tokio::test]
async fn a_discoverable_passkey_signs_in_without_a_password() {
    let s = webauthn_server().await;
    let admin = s.admin().await;
    let mut key = SoftPasskey::new(ORIGIN);
    register(&admin, &mut key, "laptop").await;
    let user_id = admin_id(&admin).await;
    let c = s.client().await;
    // An assertion whose user handle is not the passkey's owner is refused.
    let vic = s.user(&admin, "vic", pb::Role::Viewer).await;
    let started = c.auth().start_passkey_login(pb::StartPasskeyLoginRequest {}).await.unwrap().into_inner();
    let ch = started.challenge.unwrap();
    let impostor = discoverable_assertion(&mut key, &ch.passkey_request_options_json, admin_id(&vic).await);
    let refused = c
        .auth()
        .finish_passkey_login(pb::FinishPasskeyLoginRequest { ticket: ch.ticket, passkey_assertion_json: impostor })
        .await;
    let refused = status(refused);
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("not registered"), "{}", refused.message());
    // The passkey's owner signs in with it alone.
    let started = c.auth().start_passkey_login(pb::StartPasskeyLoginRequest {}).await.unwrap().into_inner();
    let ch = started.challenge.unwrap();
    let json = discoverable_assertion(&mut key, &ch.passkey_request_options_json, user_id);
    let tokens = c
        .auth()
        .finish_passkey_login(pb::FinishPasskeyLoginRequest {
            ticket: ch.ticket.clone(),
            passkey_assertion_json: json.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(tokens.user.as_ref().unwrap().username, "admin");
    c.set_tokens(Some(tokens.clone()));
    let sessions = c.auth().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner().sessions;
    let mine = sessions.iter().find(|x| x.current).unwrap();
    assert_eq!(mine.auth_methods, vec!["hwk"]);
    assert!(mine.step_up_time.is_some(), "a passkey is both factors");
    // The ticket is single use.
    let again = c
        .auth()
        .finish_passkey_login(pb::FinishPasskeyLoginRequest { ticket: ch.ticket, passkey_assertion_json: json })
        .await;
    assert_eq!(status(again).code(), Code::Unauthenticated);
    // Anyone may start a passwordless login, but one client only so many at once.
    let mut refused = None;
    for _ in 0..25 {
        if let Err(st) = c.auth().start_passkey_login(pb::StartPasskeyLoginRequest {}).await {
            refused = Some(st);
            break;
        }
    }
    let refused = refused.expect("a client starting passwordless logins without end is stopped");
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::ResourceExhausted, "ERROR_REASON_RATE_LIMITED"));
}

#[tokio::test]
async fn a_passkey_only_account_is_refused_not_let_in_when_passkeys_are_turned_off() {
    let s = webauthn_server().await;
    let admin = s.admin().await;
    admin
        .users()
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User { username: "pia".into(), role: pb::Role::Viewer as i32, ..Default::default() }),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap();
    let pia = s.client().await;
    pia.login("pia", ADMIN_PASSWORD).await.unwrap();
    let mut key = SoftPasskey::new(ORIGIN);
    let done = register(&pia, &mut key, "phone").await;
    assert_eq!(done.recovery_codes.len(), 10, "a first factor comes with recovery codes");
    let (name, mut options) = (s.db.name.clone(), s.options.clone());
    let totp = s.totp.lock().unwrap().clone();
    s.shutdown().await;
    // The same site without its relying party (a typo, or the setting dropped).
    options.webauthn_rp_id = None;
    options.webauthn_origins = None;
    options.data_dir = Some(crate::harness::temp_dir("no-webauthn"));
    let s = TestServer::start_with(crate::harness::TestDb { name }, options).await;
    s.totp.lock().unwrap().extend(totp);
    let c = s.client().await;
    // The password alone does not sign pia in: her passkey still counts, it just cannot be asked
    // for here, so the recovery codes are the way in.
    let ch = challenge(&c, "pia").await;
    assert_eq!(ch.methods, vec![pb::SecondFactorMethod::RecoveryCode as i32]);
    c.finish_mfa(&ch.ticket, recovery(&done.recovery_codes[0])).await.unwrap();
    // With no recovery code left, the login is refused outright.
    let mut su = s.db.superuser();
    diesel::RunQueryDsl::execute(diesel::sql_query("UPDATE recovery_codes SET used_at = now()"), &mut su).unwrap();
    let refused = c.login_start("pia", ADMIN_PASSWORD).await.unwrap_err();
    assert!(matches!(&refused, opennvr_sdk::Error::Status(st) if st.code() == Code::FailedPrecondition), "{refused}");
    assert!(refused.to_string().contains("passkey"), "{refused}");
}

#[tokio::test]
async fn the_roles_that_require_mfa_are_configurable() {
    // No role: a new administrator is not held to enrolling.
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.mfa_required_roles = Some("none".into());
    let s = TestServer::start_with(db, options).await;
    let c = s.client().await;
    let tokens = c.bootstrap(&s.setup_token(), "admin", ADMIN_PASSWORD).await.unwrap();
    assert!(!tokens.mfa_enrolment_required);
    c.users().list_users(pb::ListUsersRequest::default()).await.unwrap();
    s.shutdown().await;
    // Operators too: an operator without a factor may only enrol one.
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.mfa_required_roles = Some("admin,operator".into());
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    for (name, role, enrol) in [("olga", pb::Role::Operator, true), ("vera", pb::Role::Viewer, false)] {
        admin
            .users()
            .create_user(pb::CreateUserRequest {
                user: Some(pb::User { username: name.into(), role: role as i32, ..Default::default() }),
                password: ADMIN_PASSWORD.into(),
            })
            .await
            .unwrap();
        let tokens = s.client().await.login(name, ADMIN_PASSWORD).await.unwrap();
        assert_eq!(tokens.mfa_enrolment_required, enrol, "{name}");
    }
    // A role name the server does not know stops it at boot, naming the variable.
    let mut options = crate::harness::test_options(&crate::harness::TestDb::new());
    options.mfa_required_roles = Some("admins".into());
    let e = opennvr_server::config::Config::from_options(options).unwrap_err();
    assert!(e.to_string().contains("OPENNVR_MFA_REQUIRED_ROLES"), "{e}");
}
