//! The process around the API: TLS on the one port, graceful shutdown.
use crate::harness::{ADMIN_PASSWORD, TestDb, TestServer, temp_dir, test_options};
use std::time::Instant;

#[tokio::test]
async fn tls_serves_http2_and_http1_on_one_port() {
    let (cert, key) = crate::harness::self_signed_certificate(&temp_dir("tls"));
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.tls_cert_file = Some(cert.clone());
    options.tls_key_file = Some(key);
    let s = TestServer::start_with(db, options).await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let url = format!("https://localhost:{}/healthz", s.addr.port());
    let h2 = reqwest::Client::builder().tls_certs_only(vec![ca.clone()]).resolve("localhost", s.addr).build().unwrap();
    let r = h2.get(&url).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    let h1 =
        reqwest::Client::builder().tls_certs_only(vec![ca]).resolve("localhost", s.addr).http1_only().build().unwrap();
    let r = h1.get(&url).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_11));
    // The SDK speaks gRPC over TLS, trusting the site's CA.
    let pem = std::fs::read(&cert).unwrap();
    let sdk = opennvr_sdk::Client::connect_with_ca(&format!("https://127.0.0.1:{}", s.addr.port()), Some(&pem))
        .await
        .unwrap();
    sdk.bootstrap(&s.setup_token(), "admin", crate::harness::ADMIN_PASSWORD).await.unwrap();
    // Plain text is not answered on a TLS port.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", s.addr.port())).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish() {
    let db = TestDb::new();
    let mut options = test_options(&db);
    // An expensive hash keeps a login in flight long enough to signal shutdown in the middle of it.
    options.argon2_memory_kib = Some(262_144);
    options.argon2_iterations = Some(3);
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let c = s.client().await;
    let login = tokio::spawn(async move {
        // The password check answers the MFA challenge of the admin's second factor.
        let r = c.login_start("admin", ADMIN_PASSWORD).await;
        (r, Instant::now())
    });
    // Wait until the server is hashing that password: the call is in flight.
    let mut in_flight = false;
    for _ in 0..400 {
        let text = s.scrape("/metrics", &admin).await;
        if text.lines().any(|l| l.starts_with("opennvr_password_hashes_in_flight ") && !l.ends_with(" 0")) {
            in_flight = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(in_flight, "the login never reached the password check");
    let addr = s.addr;
    let signalled = Instant::now();
    s.shutdown().await;
    let (result, finished) = login.await.unwrap();
    assert!(finished > signalled);
    result.expect("the in-flight login completes");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections after shutdown");
}
