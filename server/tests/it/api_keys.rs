//! API keys: scopes enforced on every RPC of the descriptor, camera limits, step-up only by explicit
//! scope, never more than the creator, and revoked or expired keys refused.
use crate::harness::TestServer;
use crate::permissions::{allowed, rpcs};
use opennvr_sdk::pb;
use opennvr_server::api::policy::{Access, PolicyTable, StepUp};
use opennvr_server::domain::Permission;
use tonic::Code;

/// A key as a test asks for it.
struct Spec<'a> {
    name: &'a str,
    role: pb::Role,
    permissions: &'a [&'a str],
    cameras: Vec<String>,
    step_up: &'a [&'a str],
}

fn request(spec: &Spec) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        api_key: Some(pb::ApiKey {
            name: spec.name.into(),
            role: spec.role as i32,
            permissions: spec.permissions.iter().map(|p| p.to_string()).collect(),
            camera_ids: spec.cameras.clone(),
            step_up_methods: spec.step_up.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
    }
}

/// Creates a key through `creator` and returns a client that authenticates with it, and the key.
async fn key_client(
    s: &TestServer,
    creator: &opennvr_sdk::Client,
    spec: &Spec<'_>,
) -> (opennvr_sdk::Client, pb::ApiKey) {
    let made = creator.api_keys().create_api_key(request(spec)).await.unwrap().into_inner();
    assert!(made.secret.starts_with("nvr_ak_"), "{}", made.secret);
    let c = s.client().await;
    c.set_api_key(&made.secret);
    (c, made.api_key.unwrap())
}

/// Whether a key of `role` narrowed to `permissions` holds `p`.
fn holds(role: pb::Role, permissions: &[&str], p: Permission) -> bool {
    let role = match role {
        pb::Role::Admin => opennvr_server::domain::Role::Admin,
        pb::Role::Operator => opennvr_server::domain::Role::Operator,
        pb::Role::Viewer => opennvr_server::domain::Role::Viewer,
        _ => opennvr_server::domain::Role::Auditor,
    };
    role.allows(p) && (permissions.is_empty() || permissions.contains(&p.name()))
}

/// The RPCs that need a step-up, as reviewed: the proto's `Step-up:` lines must say exactly this.
const STEP_UP_RPCS: [&str; 16] = [
    "AuditService.ExportAuditEvents",
    "ApiKeyService.CreateApiKey",
    "AuthService.DeleteCredential",
    "UserService.DeleteUser",
    "AuthService.RegenerateRecoveryCodes",
    "MasterKeyService.RotateMasterKey",
    "UserService.SetUserPassword",
    "AuthService.StartPasskeyRegistration",
    "AuthService.StartTotpEnrollment",
    "UserService.UpdateUser",
    "CameraService.DeleteCamera",
    "CameraService.SetCameraSource",
    "RecordingService.DeleteRecordings",
    "RecordingService.DeleteRetentionPolicy",
    "RecordingService.ReleaseHold",
    "RecordingService.UpdateRetentionPolicy",
];

#[tokio::test]
async fn an_api_key_reaches_exactly_what_its_scope_allows_on_every_rpc() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let camera = crate::cameras::create(&admin, "Lobby").await;
    let table = PolicyTable::from_descriptor(opennvr_proto::FILE_DESCRIPTOR_SET, "opennvr.v1").unwrap();
    let mut marked: Vec<String> = rpcs()
        .into_iter()
        .map(|(rpc, _)| rpc)
        .filter(|rpc| table.get(&format!("/opennvr.v1.{}", rpc.replace('.', "/"))).unwrap().step_up != StepUp::No)
        .collect();
    marked.sort();
    let mut reviewed: Vec<String> = STEP_UP_RPCS.iter().map(|s| s.to_string()).collect();
    reviewed.sort();
    assert_eq!(marked, reviewed, "the step-up RPCs of the proto changed: review STEP_UP_RPCS");
    let specs = [
        Spec {
            name: "dashboard",
            role: pb::Role::Operator,
            permissions: &["camera.read", "recording.read", "event.watch"],
            cameras: vec![],
            step_up: &[],
        },
        Spec { name: "backup", role: pb::Role::Admin, permissions: &[], cameras: vec![], step_up: &[] },
        Spec {
            name: "decommission",
            role: pb::Role::Admin,
            permissions: &["camera.read", "camera.write"],
            cameras: vec![],
            step_up: &["CameraService.DeleteCamera", "CameraService.SetCameraSource"],
        },
        Spec { name: "auditor", role: pb::Role::Auditor, permissions: &[], cameras: vec![], step_up: &[] },
        Spec {
            name: "kiosk",
            role: pb::Role::Viewer,
            permissions: &["camera.read", "camera.live"],
            cameras: vec![camera.id.clone()],
            step_up: &[],
        },
    ];
    let mut problems = Vec::new();
    for spec in &specs {
        let (client, _) = key_client(&s, &admin, spec).await;
        for (rpc, streaming) in rpcs() {
            let policy = table.get(&format!("/opennvr.v1.{}", rpc.replace('.', "/"))).unwrap();
            let expected = match policy.access {
                Access::Public => true,
                // API keys are no accounts: of the RPCs on one's own account only WhoAmI answers.
                Access::SignedIn => rpc == "AuthService.WhoAmI",
                Access::Permission(p) => {
                    holds(spec.role, spec.permissions, p)
                        && (policy.step_up == StepUp::No || spec.step_up.contains(&rpc.as_str()))
                        // A key limited to cameras reaches cameras only through RPCs about given ones.
                        && (spec.cameras.is_empty()
                            || policy.camera_scoped
                            || !opennvr_server::domain::camera::GRANTABLE.contains(&p))
                }
            };
            match allowed(&client, &rpc, streaming).await {
                Ok(actual) if actual == expected => {}
                Ok(actual) => {
                    problems.push(format!("key {}: {rpc} let through {actual}, expected {expected}", spec.name))
                }
                Err(st) => problems.push(format!("key {}: {rpc} answered {st:?}", spec.name)),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_key_limited_to_cameras_sees_only_those() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let a = crate::cameras::create(&admin, "Lobby").await;
    let b = crate::cameras::create(&admin, "Vault").await;
    let spec =
        Spec { name: "kiosk", role: pb::Role::Viewer, permissions: &[], cameras: vec![a.id.clone()], step_up: &[] };
    let (key, made) = key_client(&s, &admin, &spec).await;
    assert_eq!(made.camera_ids, vec![a.id.clone()]);
    let listed = key.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap().into_inner().cameras;
    assert_eq!(listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["Lobby"]);
    key.cameras().get_camera(pb::GetCameraRequest { camera_id: a.id.clone() }).await.unwrap();
    let hidden = key.cameras().get_camera(pb::GetCameraRequest { camera_id: b.id.clone() }).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let live = key
        .cameras()
        .create_viewer_token(pb::CreateViewerTokenRequest { camera_id: b.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(live.code(), Code::NotFound);
    // What the key is, as it asks.
    let me = key.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(me.api_key_id, made.id);
    assert!(me.session_id.is_empty());
    assert_eq!(me.user.unwrap().username, "admin");
    assert_eq!(me.permissions, vec!["camera.read", "camera.live", "recording.read", "event.watch"]);
    // A camera that does not exist, or a bad id, is refused at creation.
    let mut bad = request(&spec);
    bad.api_key.as_mut().unwrap().camera_ids = vec![uuid::Uuid::new_v4().to_string()];
    let e = admin.api_keys().create_api_key(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("api_key.camera_ids"), "{}", e.message());
}

/// A key of `role` with the role's whole scope.
fn whole_role(name: &str, role: pb::Role) -> Spec<'_> {
    Spec { name, role, permissions: &[], cameras: vec![], step_up: &[] }
}

/// A key request for a viewer key expiring at `until`.
fn expiring_viewer(name: &str, until: chrono::DateTime<chrono::Utc>) -> pb::CreateApiKeyRequest {
    let mut r = request(&whole_role(name, pb::Role::Viewer));
    r.api_key.as_mut().unwrap().expire_time = Some(opennvr_server::api::convert::timestamp(until));
    r
}

/// A key that may make keys holding at most camera reads, and a client using it.
async fn provisioner(s: &TestServer, admin: &opennvr_sdk::Client) -> opennvr_sdk::Client {
    let spec = Spec {
        name: "provisioner",
        role: pb::Role::Admin,
        permissions: &["apikey.manage", "camera.read"],
        cameras: vec![],
        step_up: &["ApiKeyService.CreateApiKey"],
    };
    key_client(s, admin, &spec).await.0
}

/// A viewer key narrowed to camera reads, which a [`provisioner`] may make.
fn camera_reader() -> Spec<'static> {
    Spec { name: "reader", role: pb::Role::Viewer, permissions: &["camera.read"], cameras: vec![], step_up: &[] }
}

/// Lists the cameras as `c`: the call every key test makes to see whether a key still works.
async fn list_cameras(c: &opennvr_sdk::Client) -> Result<pb::ListCamerasResponse, tonic::Status> {
    c.cameras().list_cameras(pb::ListCamerasRequest::default()).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_bad_key_request_names_the_field() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for (spec, field) in [
        (whole_role("", pb::Role::Viewer), "api_key.name"),
        (whole_role("x", pb::Role::Unspecified), "api_key.role"),
        (
            Spec { name: "x", role: pb::Role::Viewer, permissions: &["camera.fly"], cameras: vec![], step_up: &[] },
            "api_key.permissions",
        ),
        (
            Spec { name: "x", role: pb::Role::Viewer, permissions: &["user.write"], cameras: vec![], step_up: &[] },
            "api_key.permissions",
        ),
        (
            Spec {
                name: "x",
                role: pb::Role::Admin,
                permissions: &["camera.read"],
                cameras: vec![],
                step_up: &["CameraService.DeleteCamera"],
            },
            "api_key.step_up_methods",
        ),
        (
            Spec {
                name: "x",
                role: pb::Role::Admin,
                permissions: &[],
                cameras: vec![],
                step_up: &["CameraService.ListCameras"],
            },
            "api_key.step_up_methods",
        ),
        (
            Spec {
                name: "x",
                role: pb::Role::Admin,
                permissions: &[],
                cameras: vec![],
                step_up: &["AuthService.DeleteCredential"],
            },
            "api_key.step_up_methods",
        ),
    ] {
        let e = admin.api_keys().create_api_key(request(&spec)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let past = expiring_viewer("old", s.clock_now());
    assert!(admin.api_keys().create_api_key(past).await.unwrap_err().message().contains("api_key.expire_time"));
}

#[tokio::test]
async fn only_the_hash_of_a_key_is_stored_and_listings_show_its_prefix() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let made =
        admin.api_keys().create_api_key(request(&whole_role("ci", pb::Role::Viewer))).await.unwrap().into_inner();
    let mut su = s.db.superuser();
    let clear = format!("SELECT count(*) AS n FROM api_keys k WHERE k::text LIKE '%{}%'", &made.secret[7..]);
    assert_eq!(crate::harness::count(&mut su, clear), 0);
    let listed = admin.api_keys().list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().api_keys;
    let row = listed.iter().find(|k| k.id == made.api_key.as_ref().unwrap().id).unwrap();
    assert!(made.secret.starts_with(&row.secret_prefix) && row.secret_prefix.len() < 16);
}

#[tokio::test]
async fn the_last_use_of_a_key_is_recorded_in_batches_not_on_every_call() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (ci, key) = key_client(&s, &admin, &whole_role("ci", pb::Role::Viewer)).await;
    list_cameras(&ci).await.unwrap();
    let last_use = |keys: Vec<pb::ApiKey>| keys.into_iter().find(|k| k.id == key.id).unwrap().last_use_time;
    let listed = admin.api_keys().list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().api_keys;
    assert!(last_use(listed).is_none());
    s.api_keys.flush_uses().await.unwrap();
    let listed = admin.api_keys().list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().api_keys;
    assert!(last_use(listed).is_some());
}

#[tokio::test]
async fn a_key_that_expires_in_an_hour_works_then_does_not() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let expiring = expiring_viewer("temp", s.clock_now() + chrono::Duration::hours(1));
    let made = admin.api_keys().create_api_key(expiring).await.unwrap().into_inner();
    let temp = s.client().await;
    temp.set_api_key(&made.secret);
    list_cameras(&temp).await.unwrap();
    s.clock.advance(chrono::Duration::minutes(61));
    let expired = list_cameras(&temp).await.unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(expired.message().contains("expired"), "{}", expired.message());
}

#[tokio::test]
async fn a_revoked_key_stops_at_once_and_stays_listed_with_its_revocation() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let camera = crate::cameras::create(&admin, "Dock").await;
    let (ci, key) = key_client(&s, &admin, &whole_role("ci", pb::Role::Operator)).await;
    ci.cameras().get_camera(pb::GetCameraRequest { camera_id: camera.id.clone() }).await.unwrap();
    let revoked =
        admin.api_keys().revoke_api_key(pb::RevokeApiKeyRequest { api_key_id: key.id.clone() }).await.unwrap();
    assert!(revoked.into_inner().api_key.unwrap().revoke_time.is_some());
    let refused = ci.cameras().get_camera(pb::GetCameraRequest { camera_id: camera.id.clone() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(opennvr_sdk::error_reason(&refused).as_deref(), Some("ERROR_REASON_CREDENTIAL_REVOKED"));
    let live = admin.api_keys().list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().api_keys;
    assert!(live.iter().all(|k| k.id != key.id));
    let all = admin
        .api_keys()
        .list_api_keys(pb::ListApiKeysRequest { show_revoked: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert!(all.iter().any(|k| k.id == key.id && k.revoke_time.is_some()));
}

#[tokio::test]
async fn an_unknown_secret_is_refused() {
    let s = TestServer::start().await;
    let forged = s.client().await;
    forged.set_api_key("nvr_ak_not-a-key-this-server-made");
    assert_eq!(list_cameras(&forged).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_key_that_manages_keys_can_give_no_more_than_it_holds() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let provisioner = provisioner(&s, &admin).await;
    let wider =
        Spec { name: "wider", role: pb::Role::Admin, permissions: &["camera.write"], cameras: vec![], step_up: &[] };
    assert_eq!(
        provisioner.api_keys().create_api_key(request(&wider)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let everything = whole_role("all", pb::Role::Admin);
    assert_eq!(
        provisioner.api_keys().create_api_key(request(&everything)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let (reader, _) = key_client(&s, &provisioner, &camera_reader()).await;
    list_cameras(&reader).await.unwrap();
}

#[tokio::test]
async fn a_key_limited_to_cameras_holds_only_camera_permissions() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let camera = crate::cameras::create(&admin, "Dock").await;
    // A site-wide permission would reach every camera.
    let limited = Spec {
        name: "limited",
        role: pb::Role::Admin,
        permissions: &["camera.read", "retention.manage"],
        cameras: vec![camera.id.clone()],
        step_up: &[],
    };
    let e = admin.api_keys().create_api_key(request(&limited)).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("retention.manage"), "{e:?}");
}

#[tokio::test]
async fn a_key_made_by_an_expiring_key_expires_no_later_and_dies_with_it() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // A key made by another provisioner must outlive this one's revocation.
    let (reader, _) = key_client(&s, &provisioner(&s, &admin).await, &camera_reader()).await;
    let mut parent = request(&Spec {
        name: "temporary provisioner",
        role: pb::Role::Admin,
        permissions: &["camera.read", "apikey.manage"],
        cameras: vec![],
        step_up: &["ApiKeyService.CreateApiKey"],
    });
    let until = s.clock_now() + chrono::Duration::days(1);
    parent.api_key.as_mut().unwrap().expire_time = Some(opennvr_server::api::convert::timestamp(until));
    let made = admin.api_keys().create_api_key(parent).await.unwrap().into_inner();
    let parent_client = s.client().await;
    parent_client.set_api_key(&made.secret);
    let mut child = request(&Spec {
        name: "child",
        role: pb::Role::Viewer,
        permissions: &["camera.read"],
        cameras: vec![],
        step_up: &[],
    });
    let e = parent_client.api_keys().create_api_key(child.clone()).await.unwrap_err();
    assert!(e.message().contains("api_key.expire_time"), "a child of an expiring key must expire: {e:?}");
    child.api_key.as_mut().unwrap().expire_time = Some(opennvr_server::api::convert::timestamp(until));
    let child = parent_client.api_keys().create_api_key(child).await.unwrap().into_inner();
    let child_client = s.client().await;
    child_client.set_api_key(&child.secret);
    list_cameras(&child_client).await.unwrap();
    admin.api_keys().revoke_api_key(pb::RevokeApiKeyRequest { api_key_id: made.api_key.unwrap().id }).await.unwrap();
    assert_eq!(list_cameras(&child_client).await.unwrap_err().code(), Code::Unauthenticated);
    list_cameras(&reader).await.unwrap();
}

#[tokio::test]
async fn what_a_key_does_is_in_the_trail_under_the_key_without_its_secret() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    key_client(&s, &provisioner(&s, &admin).await, &camera_reader()).await;
    let entries = admin
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            filter: Some(pb::AuditEventFilter { action: "api_key.create".into(), ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let by_key = entries.iter().find(|e| e.details.get("name").map(String::as_str) == Some("reader")).unwrap();
    let actor = by_key.actor.as_ref().unwrap();
    assert_eq!(actor.r#type, pb::ActorType::ApiKey as i32);
    assert!(!actor.api_key_id.is_empty());
    assert!(entries.iter().all(|e| !e.details.values().any(|v| v.starts_with("nvr_ak_"))), "no secret in the trail");
}

#[tokio::test]
async fn the_keys_of_an_administrator_who_leaves_die_with_their_account() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let ada = s.user(&admin, "ada", pb::Role::Admin).await;
    let (ada_key, _) = key_client(&s, &ada, &whole_role("ada's", pb::Role::Viewer)).await;
    list_cameras(&ada_key).await.unwrap();
    let ada_id = ada.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap().id;
    s.step_up(&admin, "admin").await;
    admin.users().delete_user(pb::DeleteUserRequest { user_id: ada_id, etag: String::new() }).await.unwrap();
    assert_eq!(list_cameras(&ada_key).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_key_whose_stored_scope_names_an_unknown_permission_is_refused_not_widened() {
    use diesel::RunQueryDsl;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let spec =
        Spec { name: "reader", role: pb::Role::Admin, permissions: &["camera.read"], cameras: vec![], step_up: &[] };
    let (key, made) = key_client(&s, &admin, &spec).await;
    assert_eq!(
        key.users().list_users(pb::ListUsersRequest::default()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // A scope this server cannot read (a newer server's permission, or a hand edit) must not fall
    // back to the key's whole role.
    // (updated_at on the server's clock, as every change of a key: the cache reads what changed.)
    diesel::sql_query(format!(
        "UPDATE api_keys SET permissions = '{{camera.read,camera.teleport}}', updated_at = '{}' WHERE id = '{}'",
        s.clock_now().to_rfc3339(),
        made.id
    ))
    .execute(&mut s.db.superuser())
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let who = key.auth().who_am_i(pb::WhoAmIRequest {}).await;
        if who.as_ref().is_err_and(|e| e.code() == Code::Unauthenticated) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the key still works: {who:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        key.users().list_users(pb::ListUsersRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}
