//! The signing key ring over time: a new key is published before it signs, and an old key stays
//! published until every token it signed has expired.
use crate::harness::TestServer;
use chrono::Duration;
use opennvr_sdk::pb;

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
    s.keys.maintain().await.unwrap();
    let published = kids(&s);
    assert_eq!(published.len(), 2, "the next key is published before it signs");
    let next = published.iter().find(|k| **k != first).unwrap().clone();
    assert_eq!(signer(&admin.refresh().await.unwrap().access_token), first, "still signed by the current key");
    s.clock.advance(Duration::hours(2) - Duration::seconds(1));
    let token_of_old_key = admin.refresh().await.unwrap().access_token;
    assert_eq!(signer(&token_of_old_key), first);
    s.clock.advance(Duration::seconds(2));
    s.keys.maintain().await.unwrap();
    assert_eq!(signer(&admin.refresh().await.unwrap().access_token), next, "the new key signs once its time comes");
    assert!(kids(&s).contains(&first), "the old key stays published while its tokens may live");
    // A token the old key signed a moment ago still verifies after the new key took over.
    let c = s.client().await;
    c.set_tokens(Some(pb::Tokens { access_token: token_of_old_key.clone(), ..admin.tokens().unwrap() }));
    c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    s.clock.advance(Duration::seconds(601));
    s.keys.maintain().await.unwrap();
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
    s.keys.maintain().await.unwrap();
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
