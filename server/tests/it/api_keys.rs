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

#[tokio::test]
async fn keys_are_shown_once_hashed_revocable_expire_and_never_exceed_their_creator() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let camera = crate::cameras::create(&admin, "Dock").await;
    // Bad requests name the field.
    for (spec, field) in [
        (Spec { name: "", role: pb::Role::Viewer, permissions: &[], cameras: vec![], step_up: &[] }, "api_key.name"),
        (
            Spec { name: "x", role: pb::Role::Unspecified, permissions: &[], cameras: vec![], step_up: &[] },
            "api_key.role",
        ),
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
    let mut past =
        request(&Spec { name: "old", role: pb::Role::Viewer, permissions: &[], cameras: vec![], step_up: &[] });
    past.api_key.as_mut().unwrap().expire_time = Some(opennvr_server::api::convert::timestamp(s.clock_now()));
    assert!(admin.api_keys().create_api_key(past).await.unwrap_err().message().contains("api_key.expire_time"));

    // A key that expires in an hour works, then does not.
    let mut expiring =
        request(&Spec { name: "temp", role: pb::Role::Viewer, permissions: &[], cameras: vec![], step_up: &[] });
    expiring.api_key.as_mut().unwrap().expire_time =
        Some(opennvr_server::api::convert::timestamp(s.clock_now() + chrono::Duration::hours(1)));
    let made = admin.api_keys().create_api_key(expiring).await.unwrap().into_inner();
    let temp = s.client().await;
    temp.set_api_key(&made.secret);
    temp.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap();
    // Only the hash is stored; listings show the prefix, never the secret.
    let mut su = s.db.superuser();
    let clear = format!("SELECT count(*) AS n FROM api_keys k WHERE k::text LIKE '%{}%'", &made.secret[7..]);
    assert_eq!(crate::harness::count(&mut su, clear), 0);
    let listed = admin.api_keys().list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().api_keys;
    let row = listed.iter().find(|k| k.id == made.api_key.as_ref().unwrap().id).unwrap();
    assert!(made.secret.starts_with(&row.secret_prefix) && row.secret_prefix.len() < 16);
    // Last use is recorded in batches, not on every call.
    assert!(row.last_use_time.is_none());
    s.api_keys.flush_uses().await.unwrap();
    let listed = admin.api_keys().list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().api_keys;
    assert!(listed.iter().find(|k| k.id == row.id).unwrap().last_use_time.is_some());
    s.clock.advance(chrono::Duration::minutes(61));
    let expired = temp.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(expired.message().contains("expired"), "{}", expired.message());
    admin.refresh().await.unwrap();
    s.step_up(&admin, "admin").await;

    // A revoked key stops at once and stays listed with its revocation.
    let spec = Spec { name: "ci", role: pb::Role::Operator, permissions: &[], cameras: vec![], step_up: &[] };
    let (ci, key) = key_client(&s, &admin, &spec).await;
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
    // An unknown secret is just refused.
    let forged = s.client().await;
    forged.set_api_key("nvr_ak_not-a-key-this-server-made");
    assert_eq!(
        forged.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // A key that manages keys can give no more than it holds.
    let spec = Spec {
        name: "provisioner",
        role: pb::Role::Admin,
        permissions: &["apikey.manage", "camera.read"],
        cameras: vec![],
        step_up: &["ApiKeyService.CreateApiKey"],
    };
    let (provisioner, _) = key_client(&s, &admin, &spec).await;
    let wider =
        Spec { name: "wider", role: pb::Role::Admin, permissions: &["camera.write"], cameras: vec![], step_up: &[] };
    assert_eq!(
        provisioner.api_keys().create_api_key(request(&wider)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let everything = Spec { name: "all", role: pb::Role::Admin, permissions: &[], cameras: vec![], step_up: &[] };
    assert_eq!(
        provisioner.api_keys().create_api_key(request(&everything)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let narrower =
        Spec { name: "reader", role: pb::Role::Viewer, permissions: &["camera.read"], cameras: vec![], step_up: &[] };
    let (reader, _) = key_client(&s, &provisioner, &narrower).await;
    reader.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap();

    // A key limited to cameras holds only camera permissions: a site-wide one would reach every camera.
    let limited = Spec {
        name: "limited",
        role: pb::Role::Admin,
        permissions: &["camera.read", "retention.manage"],
        cameras: vec![camera.id.clone()],
        step_up: &[],
    };
    let e = admin.api_keys().create_api_key(request(&limited)).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("retention.manage"), "{e:?}");
    // A key made by an expiring key expires no later; revoking a key revokes the keys it made.
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
    child_client.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap();
    admin.api_keys().revoke_api_key(pb::RevokeApiKeyRequest { api_key_id: made.api_key.unwrap().id }).await.unwrap();
    let gone = child_client.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated);
    reader.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap();
    // What a key does is in the trail under the key.
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

    // The keys of an administrator who leaves die with their account.
    let ada = s.user(&admin, "ada", pb::Role::Admin).await;
    let (ada_key, _) = key_client(
        &s,
        &ada,
        &Spec { name: "ada's", role: pb::Role::Viewer, permissions: &[], cameras: vec![], step_up: &[] },
    )
    .await;
    ada_key.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap();
    let ada_id = ada.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap().id;
    s.step_up(&admin, "admin").await;
    admin.users().delete_user(pb::DeleteUserRequest { user_id: ada_id, etag: String::new() }).await.unwrap();
    assert_eq!(
        ada_key.cameras().list_cameras(pb::ListCamerasRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}
