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
    let token_of_old_key = admin.tokens().unwrap().access_token;
    s.clock.advance(Duration::hours(2) + Duration::seconds(1));
    s.keys.maintain().await.unwrap();
    assert_eq!(signer(&admin.refresh().await.unwrap().access_token), next, "the new key signs once its time comes");
    assert!(kids(&s).contains(&first), "the old key stays published while its tokens may live");
    let c = s.client().await;
    c.set_tokens(Some(pb::Tokens { access_token: token_of_old_key.clone(), ..admin.tokens().unwrap() }));
    // The old token is past its own expiry now (2 h passed), so it is refused for that reason.
    assert_eq!(c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    s.clock.advance(Duration::seconds(601));
    s.keys.maintain().await.unwrap();
    assert_eq!(kids(&s), vec![next.clone()], "retired once every token it signed has expired");
    admin.refresh().await.unwrap();
    admin.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap();
}
