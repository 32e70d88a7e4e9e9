//! The signing key ring over time: a new key is published before it signs, and an old key stays
//! published until every token it signed has expired.
use crate::harness::TestServer;
use chrono::Duration;
use opennvr_sdk::pb;
use opennvr_server::app::keys::maintain_signing_keys;
use opennvr_server::clock::Clock;

fn kids(s: &TestServer) -> Vec<String> {
    let jwks = s.keys.jwks();
    let mut v: Vec<String> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn signer(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn keys_rotate_with_publication_ahead_and_behind() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.session_ttl_secs = Some(90 * 86_400);
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let first = signer(&admin.tokens().unwrap().access_token);
    assert_eq!(kids(&s), vec![first.clone()]);
    // Defaults: rotate after 30 days, publish 2 h ahead, tokens live 10 min.
    s.clock.advance(Duration::days(30) - Duration::hours(2));
    maintain_signing_keys(&s.keys, &s.store, s.clock.now()).await.unwrap();
    let published = kids(&s);
    assert_eq!(published.len(), 2, "the next key is published before it signs");
    let next = published.iter().find(|k| **k != first).unwrap().clone();
    assert_eq!(signer(&admin.refresh().await.unwrap().access_token), first, "still signed by the current key");
    s.clock.advance(Duration::hours(2) - Duration::seconds(1));
    let token_of_old_key = admin.refresh().await.unwrap().access_token;
    assert_eq!(signer(&token_of_old_key), first);
    s.clock.advance(Duration::seconds(2));
    maintain_signing_keys(&s.keys, &s.store, s.clock.now()).await.unwrap();
    assert_eq!(signer(&admin.refresh().await.unwrap().access_token), next, "the new key signs once its time comes");
    assert!(kids(&s).contains(&first), "the old key stays published while its tokens may live");
    // A token the old key signed a moment ago still verifies after the new key took over.
    let c = s.client().await;
    c.set_tokens(Some(pb::Tokens { access_token: token_of_old_key.clone(), ..admin.tokens().unwrap() }));
    c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    s.clock.advance(Duration::seconds(601));
    maintain_signing_keys(&s.keys, &s.store, s.clock.now()).await.unwrap();
    assert_eq!(kids(&s), vec![next.clone()], "retired once every token it signed has expired");
    admin.refresh().await.unwrap();
    admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
}

#[tokio::test]
async fn a_sealed_key_moved_to_another_row_does_not_open() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.session_ttl_secs = Some(90 * 86_400);
    let s = TestServer::start_with(db, options.clone()).await;
    s.clock.advance(Duration::days(30));
    maintain_signing_keys(&s.keys, &s.store, s.clock.now()).await.unwrap();
    assert_eq!(kids(&s).len(), 2);
    let db_name = s.db.name.clone();
    let mut su = s.db.superuser();
    s.shutdown().await;
    use diesel::RunQueryDsl;
    // Swap the sealed private keys of the two rows: each blob now sits under another row's identity.
    diesel::sql_query(
        "UPDATE signing_keys k SET private_key_sealed = o.private_key_sealed \
         FROM signing_keys o WHERE o.kid <> k.kid",
    )
    .execute(&mut su)
    .unwrap();
    options.data_dir = Some(crate::harness::temp_dir("moved"));
    let config = opennvr_server::config::Config::from_options(options).unwrap();
    let e = match opennvr_server::server::Server::boot(config, std::sync::Arc::new(opennvr_server::clock::SystemClock))
        .await
    {
        Ok(_) => panic!("booted with swapped keys in {db_name}"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("does not open"), "{e}");
}

#[tokio::test]
async fn a_token_from_a_key_outside_the_ring_is_refused() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let genuine = admin.tokens().unwrap();
    let claims: serde_json::Value = {
        let payload = genuine.access_token.split('.').nth(1).unwrap();
        use base64::Engine;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let key = jsonwebtoken::EncodingKey::from_ed_der(stranger.to_pkcs8_der().unwrap().as_bytes());
    for kid in ["stranger", signer(&genuine.access_token).as_str()] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let forged = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let c = s.client().await;
        c.set_tokens(Some(pb::Tokens { access_token: forged, ..genuine.clone() }));
        let e = c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "kid {kid}");
    }
}

async fn camera_passwords(s: &TestServer) -> Vec<Option<String>> {
    let rows = s.store.run(opennvr_server::store::cameras::CameraRow::all).await.unwrap();
    rows.iter().map(|r| s.cameras.password(r).unwrap()).collect()
}

fn kek_ids(su: &mut diesel::PgConnection) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct K {
        #[diesel(sql_type = diesel::sql_types::Text)]
        k: String,
    }
    let sql =
        "SELECT DISTINCT k FROM (SELECT kek_id AS k FROM signing_keys UNION ALL SELECT kek_id FROM audit_signing_keys
               UNION ALL SELECT password_kek_id FROM cameras WHERE password_kek_id IS NOT NULL
               UNION ALL SELECT totp_kek_id FROM credentials WHERE totp_kek_id IS NOT NULL
               UNION ALL SELECT kek_id FROM auth_ceremonies WHERE kek_id IS NOT NULL) x ORDER BY k";
    diesel::RunQueryDsl::load::<K>(diesel::sql_query(sql), su).unwrap().into_iter().map(|r| r.k).collect()
}

#[tokio::test]
async fn the_master_key_rotates_online_and_every_secret_stays_readable() {
    use crate::harness::{TestDb, master_key_file, temp_dir};
    let s = TestServer::start().await;
    let admin = s.admin().await;
    crate::cameras::create(&admin, "Before").await;
    s.audit.checkpoint().await.unwrap().expect("an audit key and a checkpoint");
    let old_file = s.options.master_key_file.clone().unwrap();
    let (name, mut options) = (s.db.name.clone(), s.options.clone());
    let mut su = s.db.superuser();
    let old_ids = kek_ids(&mut su);
    assert_eq!(old_ids.len(), 1);
    let totp = s.totp.lock().unwrap().clone();
    s.shutdown().await;

    // A new master key alone cannot open what the old one sealed: the server refuses to start and
    // says which key it needs.
    options.master_key_file = Some(master_key_file(&temp_dir("new-key")));
    options.data_dir = Some(temp_dir("restart"));
    let config = opennvr_server::config::Config::from_options(options.clone()).unwrap();
    let clock = std::sync::Arc::new(opennvr_server::clock::ManualClock::new(chrono::Utc::now()));
    let refused = opennvr_server::server::Server::boot(config, clock).await.err().expect("refused");
    assert!(refused.to_string().contains(&old_ids[0]), "{refused}");
    assert!(refused.to_string().contains("OPENNVR_MASTER_KEY_PREVIOUS_FILES"), "{refused}");

    // With the old key as a previous one, everything opens, and rotation moves every secret over
    // while cameras are being added.
    options.master_key_previous_files = Some(vec![old_file]);
    options.data_dir = Some(temp_dir("restart"));
    let s = TestServer::start_with(TestDb { name: name.clone() }, options.clone()).await;
    s.totp.lock().unwrap().extend(totp.clone());
    let admin = s.client().await;
    s.login(&admin, "admin").await;
    let status = admin.master_key().get_master_key_status(pb::GetMasterKeyStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(
        status.secrets_by_key_id.get(&old_ids[0]),
        Some(&4),
        "access key, audit key, camera, the admin's TOTP seed: {status:?}"
    );
    let adding = {
        let admin = admin.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                crate::cameras::create(&admin, &format!("During {i}")).await;
            }
        })
    };
    let rotated = admin.master_key().rotate_master_key(pb::RotateMasterKeyRequest {}).await.unwrap().into_inner();
    adding.await.unwrap();
    assert!(rotated.rewrapped >= 3, "{rotated:?}");
    let after = admin.master_key().get_master_key_status(pb::GetMasterKeyStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(after.secrets_by_key_id.keys().collect::<Vec<_>>(), vec![&after.current_key_id], "{after:?}");
    // The access and audit signing keys, the admin's TOTP seed, 21 camera passwords.
    assert_eq!(after.secrets_by_key_id[&after.current_key_id], 3 + 21);
    assert_eq!(kek_ids(&mut su), vec![after.current_key_id.clone()]);
    // Nothing in clear at rest, and every secret still opens.
    let clear = "SELECT count(*) AS n FROM cameras c WHERE c::text LIKE '%Cam-Secret%'";
    assert_eq!(crate::harness::count(&mut su, clear), 0);
    assert!(camera_passwords(&s).await.iter().all(|p| p.as_deref() == Some("Cam-Secret-7f3a9")));
    let entry = admin
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            filter: Some(pb::AuditEventFilter { action: "master_key.rotate".into(), ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(entry.len(), 1);
    assert_eq!(entry[0].details.get("remaining_with_old_keys").map(String::as_str), Some("0"));
    let totp = s.totp.lock().unwrap().clone();
    s.shutdown().await;

    // The old key is no longer needed: the server runs on the new one alone.
    options.master_key_previous_files = None;
    options.data_dir = Some(temp_dir("restart"));
    let s = TestServer::start_with(TestDb { name }, options).await;
    s.totp.lock().unwrap().extend(totp);
    let admin = s.client().await;
    s.login(&admin, "admin").await;
    assert_eq!(camera_passwords(&s).await.len(), 21);
    assert!(camera_passwords(&s).await.iter().all(|p| p.as_deref() == Some("Cam-Secret-7f3a9")));
    s.audit.checkpoint().await.unwrap();
    let check = admin.audit().verify_audit_chain(pb::VerifyAuditChainRequest::default()).await.unwrap().into_inner();
    assert!(check.ok, "{check:?}");
}
