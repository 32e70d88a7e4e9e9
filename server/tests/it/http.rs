//! The one port: grpc-web over HTTP/1.1, health and readiness probes, metrics, JWKS.
use crate::harness::{ADMIN_PASSWORD, TestServer};
use diesel::RunQueryDsl;
use opennvr_sdk::pb;
use prost::Message;

fn http1() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

/// Splits a grpc-web response body into its message frames and its trailer block.
fn grpc_web_frames(body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers, mut rest) = (Vec::new(), String::new(), body);
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = rest[5..5 + len].to_vec();
        if flag & 0x80 != 0 {
            trailers = String::from_utf8(payload).unwrap();
        } else {
            messages.push(payload);
        }
        rest = &rest[5 + len..];
    }
    (messages, trailers)
}

fn grpc_web_request(msg: &impl Message) -> Vec<u8> {
    let bytes = msg.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    frame
}

#[tokio::test]
async fn grpc_web_login_over_plain_http1() {
    let s = TestServer::start().await;
    let _admin = s.admin().await;
    let url = format!("{}/opennvr.v1.AuthService/Login", s.url());
    let send = |password: &str| {
        let body = grpc_web_request(&pb::LoginRequest { username: "admin".into(), password: password.into() });
        http1()
            .post(&url)
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .body(body)
            .send()
    };
    let ok = send(ADMIN_PASSWORD).await.unwrap();
    assert_eq!(ok.version(), reqwest::Version::HTTP_11);
    assert_eq!(ok.status(), 200);
    let (messages, trailers) = grpc_web_frames(&ok.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    // The admin has a second factor: the password alone answers an MFA ticket.
    let login = pb::LoginResponse::decode(messages[0].as_slice()).unwrap();
    assert!(
        matches!(login.result, Some(pb::login_response::Result::MfaRequired(c)) if c.ticket.starts_with("nvr_mfa_"))
    );
    let denied = send("wrong-password-xyz").await.unwrap();
    let status = denied.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    let body = denied.bytes().await.unwrap();
    let (_, trailers) = grpc_web_frames(&body);
    assert!(status.as_deref() == Some("16") || trailers.contains("grpc-status:16"), "{status:?} {trailers}");
}

#[tokio::test]
async fn probes_metrics_and_cors() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.cors_origins = Some(vec!["https://dashboard.example".into()]);
    let s = TestServer::start_with(db, options).await;
    let h = http1();
    let get = |path: &str| h.get(format!("{}{path}", s.url())).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let admin = s.admin().await;
    let metrics = s.scrape("/metrics", &admin).await;
    assert!(
        metrics.contains(r#"opennvr_rpc_requests_total{method="/opennvr.v1.AuthService/Bootstrap",code="OK"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("opennvr_rpc_duration_seconds_bucket"));
    assert!(metrics.contains("opennvr_db_pool_max_connections 8"));
    let preflight = h
        .request(reqwest::Method::OPTIONS, format!("{}/opennvr.v1.AuthService/Login", s.url()))
        .header("origin", "https://dashboard.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web,authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://dashboard.example");
    let foreign = h
        .request(reqwest::Method::OPTIONS, format!("{}/opennvr.v1.AuthService/Login", s.url()))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn metrics_and_readiness_details_need_a_credential_holding_metrics_read() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let url = |path: &str| format!("{}{path}", s.url());
    let h = http1();
    // Anyone: liveness, and readiness as a status alone.
    assert_eq!(h.get(url("/healthz")).send().await.unwrap().status(), 200);
    let ready = h.get(url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n", "no details without a credential");
    let anonymous = h.get(url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let forged = h.get(url("/metrics")).bearer_auth("nvr_ak_forged").send().await.unwrap();
    assert_eq!(forged.status(), 401);
    // A viewer's session does not hold metrics.read.
    let viewer = s.user(&admin, "vera", pb::Role::Viewer).await;
    let token = viewer.tokens().unwrap().access_token;
    assert_eq!(h.get(url("/metrics")).bearer_auth(&token).send().await.unwrap().status(), 403);
    // An API key scoped to metrics.read alone scrapes, and sees the readiness details.
    let key = pb::CreateApiKeyRequest {
        api_key: Some(pb::ApiKey {
            name: "prometheus".into(),
            role: pb::Role::Auditor as i32,
            permissions: vec!["metrics.read".into()],
            ..Default::default()
        }),
    };
    let secret = admin.api_keys().create_api_key(key).await.unwrap().into_inner().secret;
    let scraped = h.get(url("/metrics")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("opennvr_rpc_requests_total"));
    let detailed = h.get(url("/readyz")).bearer_auth(&secret).send().await.unwrap().text().await.unwrap();
    assert!(detailed.contains("media:"), "{detailed}");
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let s = TestServer::start().await;
    let ready = || async { http1().get(format!("{}/readyz", s.url())).send().await.unwrap().status().as_u16() };
    assert_eq!(ready().await, 200);
    let mut su = <diesel::PgConnection as diesel::Connection>::establish(crate::harness::cluster_url()).unwrap();
    let db = &s.db.name;
    diesel::sql_query(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false")).execute(&mut su).unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"))
        .execute(&mut su)
        .unwrap();
    assert_eq!(ready().await, 503);
    assert_eq!(http1().get(format!("{}/healthz", s.url())).send().await.unwrap().status(), 200, "alive all the same");
    diesel::sql_query(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).execute(&mut su).unwrap();
    let mut back = false;
    for _ in 0..50 {
        if ready().await == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "ready again once the database is back");
}

#[tokio::test]
async fn issued_tokens_verify_against_the_published_jwks() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let token = admin.tokens().unwrap().access_token;
    let jwks: jsonwebtoken::jwk::JwkSet =
        http1().get(format!("{}/.well-known/jwks.json", s.url())).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["opennvr-api"]);
    v.set_issuer(&["opennvr"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).unwrap().claims;
    for claim in ["sub", "sid", "role", "iat", "exp", "jti"] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }
    assert_eq!(claims["role"], "admin");
    // A token signed by a key not in the JWKS is refused.
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let c = s.client().await;
    c.set_tokens(Some(pb::Tokens { access_token: forged, ..admin.tokens().unwrap() }));
    assert_eq!(c.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap_err().code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn the_pool_replaces_connections_the_database_dropped() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let list = || {
        let admin = admin.clone();
        async move { admin.cameras().list_cameras(pb::ListCamerasRequest::default()).await }
    };
    // Every pooled connection in steady use (checked out again without a test query).
    let mut warm = Vec::new();
    for _ in 0..16 {
        warm.push(tokio::spawn(list()));
    }
    for w in warm {
        w.await.unwrap().unwrap();
    }
    // PostgreSQL drops all of them, as a restart does.
    let mut su = <diesel::PgConnection as diesel::Connection>::establish(crate::harness::cluster_url()).unwrap();
    let db = &s.db.name;
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut su)
    .unwrap();
    // A connection that broke fails the one call that finds it so, and is never handed out again:
    // at most one failure per pooled connection (8), then every call works.
    let mut failed = 0;
    for _ in 0..30 {
        if list().await.is_err() {
            failed += 1;
        }
    }
    assert!(failed <= 8, "{failed} calls failed");
    for _ in 0..20 {
        list().await.unwrap();
    }
}
