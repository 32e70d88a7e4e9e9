//! Listings read to the end: every SDK `all_*` helper the CLI uses, and every `nvrctl` listing run
//! in process against the live server, return each of more rows than one page exactly once.
use crate::cameras::{create, grant};
use crate::harness::{ADMIN_PASSWORD, TestServer, register_adapter, temp_dir};
use opennvr_sdk::{Client, pb};

/// Rows per page in these tests: every listing below has more rows than this.
const PAGE: i32 = 2;

/// Asserts that `got` holds every one of `want` exactly once, and nothing else.
fn each_once(mut got: Vec<String>, mut want: Vec<String>) {
    got.sort();
    want.sort();
    assert_eq!(got, want, "every row exactly once");
}

/// Runs `nvrctl --page-size 2 --output json ARGS` on the session of `c`, and returns the `column`
/// of every row printed.
pub(crate) async fn nvrctl(s: &TestServer, c: &Client, args: &[&str], column: &str) -> Vec<String> {
    let file = temp_dir("nvrctl").join("session.json");
    nvrctl::session::save_to(&file, &s.url(), &c.tokens().unwrap()).unwrap();
    let url = s.url();
    let page = PAGE.to_string();
    let head = ["nvrctl", "--server", &url, "--page-size", &page, "--output", "json"];
    let mut out = Vec::new();
    nvrctl::run_captured(head.iter().chain(args), &file, &mut out).await.unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    rows.iter().map(|r| r[column].as_str().map(str::to_owned).unwrap_or_else(|| r[column].to_string())).collect()
}

async fn add_users(a: &Client, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        let user = pb::User { username: (*name).into(), role: pb::Role::Viewer as i32, ..Default::default() };
        let made =
            a.users().create_user(pb::CreateUserRequest { user: Some(user), password: ADMIN_PASSWORD.into() }).await;
        ids.push(made.unwrap().into_inner().user.unwrap().id);
    }
    ids
}

async fn add_cameras(a: &Client, n: usize) -> Vec<pb::Camera> {
    let mut cameras = Vec::new();
    for i in 0..n {
        cameras.push(create(a, &format!("Camera {i}")).await);
    }
    cameras
}

fn ids(cameras: &[pb::Camera]) -> Vec<String> {
    cameras.iter().map(|c| c.id.clone()).collect()
}

#[tokio::test]
async fn users_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let me = a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
    let mut want = add_users(&a, &["ada", "bo", "cy", "di"]).await;
    want.push(me.id);
    let all = a.all_users(pb::ListUsersRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    each_once(all.into_iter().map(|u| u.id).collect(), want.clone());
    each_once(nvrctl(&s, &a, &["users", "list"], "id").await, want);
}

#[tokio::test]
async fn cameras_and_their_statuses_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let want = ids(&add_cameras(&a, 5).await);
    let all = a.all_cameras(pb::ListCamerasRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    each_once(all.into_iter().map(|c| c.id).collect(), want.clone());
    let statuses = a.all_camera_statuses(pb::ListCameraStatusesRequest { page_size: PAGE, ..Default::default() });
    each_once(statuses.await.unwrap().into_iter().map(|st| st.camera_id).collect(), want.clone());
    each_once(nvrctl(&s, &a, &["cameras", "list"], "id").await, want.clone());
    each_once(nvrctl(&s, &a, &["cameras", "status"], "id").await, want);
}

#[tokio::test]
async fn camera_grants_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let camera = add_cameras(&a, 1).await.remove(0);
    let users = add_users(&a, &["ada", "bo", "cy", "di", "ed"]).await;
    for id in &users {
        let user = pb::User { id: id.clone(), ..Default::default() };
        grant(&a, &camera, &user, &["camera.read"], None).await.unwrap();
    }
    let filter = pb::ListCameraGrantsRequest { page_size: PAGE, camera_id: camera.id.clone(), ..Default::default() };
    each_once(a.all_camera_grants(filter).await.unwrap().into_iter().map(|g| g.user_id).collect(), users.clone());
    each_once(nvrctl(&s, &a, &["grants", "list", "--camera", "camera 0"], "user_id").await, users);
}

#[tokio::test]
async fn holds_and_retention_policies_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let cameras = add_cameras(&a, 5).await;
    let mut holds = Vec::new();
    for c in &cameras {
        let hold = pb::Hold {
            camera_ids: vec![c.id.clone()],
            start_time: Some(prost_types::Timestamp { seconds: 1_764_000_000, nanos: 0 }),
            case_id: "CASE-7".into(),
            reason: "break-in at the dock".into(),
            ..Default::default()
        };
        let made = a.recordings().create_hold(pb::CreateHoldRequest { hold: Some(hold) }).await.unwrap();
        holds.push(made.into_inner().hold.unwrap().id);
        let policy = pb::RetentionPolicy {
            camera_id: c.id.clone(),
            max_age: Some(prost_types::Duration { seconds: 86_400, nanos: 0 }),
            ..Default::default()
        };
        let update = pb::UpdateRetentionPolicyRequest {
            policy: Some(policy),
            update_mask: Some(prost_types::FieldMask { paths: vec!["max_age".into()] }),
        };
        a.recordings().update_retention_policy(update).await.unwrap();
    }
    let listed = a.all_holds(pb::ListHoldsRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    each_once(listed.into_iter().map(|h| h.id).collect(), holds.clone());
    each_once(nvrctl(&s, &a, &["holds", "list"], "hold").await, holds);
    let policies = a.all_retention_policies(pb::ListRetentionPoliciesRequest { page_size: PAGE, ..Default::default() });
    let per_camera: Vec<String> =
        policies.await.unwrap().into_iter().map(|p| p.camera_id).filter(|id| !id.is_empty()).collect();
    each_once(per_camera, ids(&cameras));
    let shown = nvrctl(&s, &a, &["retention", "show"], "camera_id").await;
    each_once(shown.into_iter().filter(|p| !p.is_empty()).collect(), ids(&cameras));
}

#[tokio::test]
async fn api_keys_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let mut keys = Vec::new();
    for name in ["ha", "nodered", "backup", "grafana", "frigate"] {
        let key = pb::ApiKey { name: name.into(), role: pb::Role::Viewer as i32, ..Default::default() };
        let made = a.api_keys().create_api_key(pb::CreateApiKeyRequest { api_key: Some(key) }).await;
        keys.push(made.unwrap().into_inner().api_key.unwrap().id);
    }
    let listed = a.all_api_keys(pb::ListApiKeysRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    each_once(listed.into_iter().map(|k| k.id).collect(), keys.clone());
    each_once(nvrctl(&s, &a, &["apikeys", "list"], "id").await, keys);
}

#[tokio::test]
async fn adapters_their_health_and_bindings_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let camera = add_cameras(&a, 1).await.remove(0);
    let mut adapters = Vec::new();
    let mut bindings = Vec::new();
    for name in ["faces", "plates", "people", "cars", "dogs"] {
        let adapter = register_adapter(&a, name, "http://127.0.0.1:9/", 1000, 1, 1).await;
        let binding = crate::harness::bind_adapter(&a, &camera, &adapter, 1000, &[], 0.5).await.unwrap();
        adapters.push(adapter.id);
        bindings.push(binding.id);
    }
    let listed = a.all_adapters(pb::ListAdaptersRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    each_once(listed.into_iter().map(|x| x.id).collect(), adapters.clone());
    let health = a.all_adapter_statuses(pb::ListAdapterStatusesRequest { page_size: PAGE, ..Default::default() });
    each_once(health.await.unwrap().into_iter().map(|x| x.adapter_id).collect(), adapters.clone());
    let bound = a.all_adapter_bindings(pb::ListAdapterBindingsRequest { page_size: PAGE, ..Default::default() });
    each_once(bound.await.unwrap().into_iter().map(|x| x.id).collect(), bindings.clone());
    each_once(nvrctl(&s, &a, &["adapters", "list"], "id").await, adapters.clone());
    each_once(nvrctl(&s, &a, &["adapters", "health"], "adapter").await, adapters);
    each_once(nvrctl(&s, &a, &["bindings", "list"], "id").await, bindings);
}

#[tokio::test]
async fn audit_events_are_listed_past_the_first_page_up_to_the_limit() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    add_users(&a, &["ada", "bo", "cy", "di", "ed", "flo", "gus"]).await;
    // Listing is audited too, so the newest events move on between calls: what each listing
    // returns is checked to be seven events in a row, newest first (none skipped or repeated).
    let in_a_row = |sequences: &[i64]| sequences.len() == 7 && sequences.windows(2).all(|w| w[0] == w[1] + 1);
    let filter = pb::ListAuditEventsRequest { page_size: PAGE, ..Default::default() };
    let first: Vec<i64> = a.first_audit_events(filter, 7).await.unwrap().iter().map(|e| e.sequence).collect();
    assert!(in_a_row(&first), "{first:?}");
    let listed: Vec<i64> =
        nvrctl(&s, &a, &["audit", "list", "--limit", "7"], "seq").await.iter().map(|q| q.parse().unwrap()).collect();
    assert!(in_a_row(&listed), "{listed:?}");
}

#[tokio::test]
async fn ids_alerts_are_listed_to_the_last_page() {
    use crate::ids::{alert_line, append, follower};
    let s = TestServer::start().await;
    let a = s.admin().await;
    let eve = temp_dir("eve").join("eve.json");
    let lines: Vec<String> =
        (1..=5).map(|sid| alert_line("2026-11-25T03:12:19.097374+0000", "10.0.0.23", sid)).collect();
    append(&eve, &(lines.join("\n") + "\n"));
    follower(&s, &eve).pass().await.unwrap();
    let all = a.all_ids_alerts(pb::ListIdsAlertsRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 5);
    let want: Vec<String> = all.into_iter().map(|x| x.id).collect();
    each_once(nvrctl(&s, &a, &["alerts", "list"], "id").await, want);
}

#[tokio::test]
async fn detections_are_listed_to_the_last_page() {
    use diesel::RunQueryDsl;
    let s = TestServer::start().await;
    let a = s.admin().await;
    let cam = create(&a, "Yard").await;
    // Stored as the detection writer stores them (the routing tests drive the writer itself).
    let labels = ["person", "car", "dog", "bicycle", "truck"];
    let mut su = s.db.superuser();
    for (i, label) in labels.iter().enumerate() {
        let at = (s.clock_now() - chrono::Duration::seconds(i as i64)).to_rfc3339();
        diesel::sql_query(format!(
            "INSERT INTO detections (id, camera_id, adapter_id, frame_time, label, confidence, box_x, box_y, \
             box_width, box_height, created_at) VALUES (gen_random_uuid(), '{}', gen_random_uuid(), '{at}', \
             '{label}', 0.9, 0.1, 0.1, 0.2, 0.2, '{at}')",
            cam.id
        ))
        .execute(&mut su)
        .unwrap();
    }
    let want: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    let all = a.all_detections(pb::ListDetectionsRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    each_once(all.into_iter().map(|d| d.label).collect(), want.clone());
    each_once(nvrctl(&s, &a, &["detections", "list"], "label").await, want);
}

#[tokio::test]
async fn sessions_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let mut want = vec![a.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().session_id];
    for _ in 0..4 {
        let c = s.client().await;
        want.push(s.login(&c, "admin").await.session_id);
    }
    let all = a.all_sessions(pb::ListSessionsRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    each_once(all.into_iter().map(|x| x.id).collect(), want.clone());
    each_once(nvrctl(&s, &a, &["sessions", "list"], "id").await, want);
}

#[tokio::test]
async fn segments_are_listed_to_the_last_page() {
    let r = crate::recordings::Recorder::start().await;
    let a = r.s.admin().await;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-25T08:00:00Z").unwrap().to_utc();
    let (cam, starts) = r.recorded(&a, "Dock", t0, 5).await;
    let range = |page_size| pb::ListSegmentsRequest {
        camera_id: cam.id.clone(),
        start_time: Some(opennvr_server::api::convert::timestamp(t0)),
        end_time: Some(opennvr_server::api::convert::timestamp(t0 + chrono::Duration::hours(1))),
        page_size,
        ..Default::default()
    };
    let all = a.all_segments(range(PAGE)).await.unwrap();
    let secs = |s: &pb::Segment| s.start_time.as_ref().unwrap().seconds.to_string();
    each_once(all.iter().map(secs).collect(), starts.iter().map(|t| t.timestamp().to_string()).collect());
    let args = ["recordings", "list", "Dock", "--since", "2026-11-25T08:00:00Z", "--until", "2026-11-25T09:00:00Z"];
    let mut listed = nvrctl(&r.s, &a, &args, "start").await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    listed.dedup();
    assert_eq!(listed.len(), 5, "every segment once: {listed:?}");
}

#[tokio::test]
async fn credentials_are_listed_to_the_last_page() {
    use crate::passkey::SoftPasskey;
    let s = crate::mfa::webauthn_server().await;
    let a = s.admin().await;
    // The administrator's TOTP, and two passkeys (the second one needs the step-up of the login).
    let mut want: Vec<String> = Vec::new();
    for name in ["Key 1", "Key 2"] {
        let done = crate::mfa::register(&a, &mut SoftPasskey::new(crate::mfa::ORIGIN), name).await;
        want.push(done.credential.unwrap().id);
    }
    let all = a.all_credentials(pb::ListCredentialsRequest { page_size: PAGE, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 3, "TOTP and two passkeys: {all:?}");
    want.extend(all.iter().filter(|c| c.r#type == pb::CredentialType::Totp as i32).map(|c| c.id.clone()));
    each_once(all.into_iter().map(|c| c.id).collect(), want.clone());
    each_once(nvrctl(&s, &a, &["credentials", "list"], "id").await, want);
}

#[tokio::test]
async fn audit_signing_keys_are_listed_to_the_last_page() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    // The first checkpoint makes the first key; each rotation retires it and makes another.
    s.audit.checkpoint().await.unwrap();
    for _ in 0..3 {
        s.audit.rotate_key().await.unwrap();
    }
    let all = a.all_audit_signing_keys(pb::ListAuditSigningKeysRequest { page_size: PAGE, ..Default::default() });
    let want: Vec<String> = all.await.unwrap().into_iter().map(|k| k.key_id).collect();
    assert_eq!(want.len(), 4, "{want:?}");
    let mut dedup = want.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 4, "every key once: {want:?}");
    each_once(nvrctl(&s, &a, &["audit", "keys"], "key").await, want);
}
