//! The web dashboard on the server's one port: static files outside the authentication gate, cached
//! as their names allow, under a Content-Security-Policy naming the MediaMTX origins; and the public
//! sign-in options the page reads before anyone signs in.
use crate::harness::{TestDb, TestServer, temp_dir, test_options};
use opennvr_sdk::pb;

/// A built dashboard in miniature: an index and one hashed bundle.
fn built_dashboard() -> std::path::PathBuf {
    let dir = temp_dir("dashboard");
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>OpenNVR</title><div id=root></div>").unwrap();
    std::fs::write(dir.join("assets/index-3f2a9c.js"), "console.log('dashboard')").unwrap();
    dir
}

async fn server_with_dashboard() -> TestServer {
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.dashboard_dir = Some(built_dashboard());
    options.mediamtx_whep_url = Some("http://127.0.0.1:8889".into());
    options.mediamtx_hls_url = Some("http://127.0.0.1:8888/".into());
    TestServer::start_with(db, options).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn the_root_redirects_to_the_dashboard() {
    let s = server_with_dashboard().await;
    let r = no_redirects().get(format!("{}/", s.url())).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(header(&r, "location"), "/ui/");
}

#[tokio::test]
async fn the_page_is_served_without_credentials_revalidated_and_under_a_csp() {
    let s = server_with_dashboard().await;
    let r = no_redirects().get(format!("{}/ui/", s.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-cache");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    let csp = header(&r, "content-security-policy").to_owned();
    assert!(csp.contains("connect-src 'self' http://127.0.0.1:8889 http://127.0.0.1:8888;"), "{csp}");
    assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(r.text().await.unwrap().contains("<div id=root>"));
}

#[tokio::test]
async fn client_side_routes_answer_the_page() {
    let s = server_with_dashboard().await;
    let r = no_redirects().get(format!("{}/ui/cameras/4b1d?layout=2x2", s.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-cache");
    assert!(r.text().await.unwrap().contains("<title>OpenNVR</title>"));
}

#[tokio::test]
async fn hashed_assets_are_cached_for_good_and_missing_ones_are_not_found() {
    let s = server_with_dashboard().await;
    let r = no_redirects().get(format!("{}/ui/assets/index-3f2a9c.js", s.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=31536000, immutable");
    assert!(header(&r, "content-type").contains("javascript"), "{}", header(&r, "content-type"));
    let missing = no_redirects().get(format!("{}/ui/assets/index-000000.js", s.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404, "a stale bundle must not be answered with the page");
    assert!(!header(&missing, "cache-control").contains("immutable"), "a missing bundle must not be cached for good");
}

/// Sends `target` as the request line's path, byte for byte (HTTP clients normalise `..` away).
async fn raw_get(addr: std::net::SocketAddr, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn files_outside_the_dashboard_cannot_be_reached() {
    let s = server_with_dashboard().await;
    let secret = s.options.dashboard_dir.as_ref().unwrap().join("..").join("outside.txt");
    std::fs::write(&secret, "not for the web").unwrap();
    // The control: a file inside the build is served by the same raw request.
    assert!(raw_get(s.addr, "/ui/index.html").await.contains("<div id=root>"));
    for target in [
        "/ui/../outside.txt",
        "/ui/%2e%2e/outside.txt",
        "/ui/%2E%2E%2Foutside.txt",
        "/ui/assets/..%2f..%2foutside.txt",
        "/ui/..%5coutside.txt",
        "/ui/%252e%252e/outside.txt",
        "/ui//../outside.txt",
    ] {
        let answer = raw_get(s.addr, target).await;
        assert!(!answer.contains("not for the web"), "{target} escaped the dashboard:\n{answer}");
    }
}

#[tokio::test]
async fn sign_in_options_tell_a_fresh_site_from_a_set_up_one() {
    let s = TestServer::start().await;
    let c = s.client().await;
    let fresh = c.auth().get_sign_in_options(pb::GetSignInOptionsRequest {}).await.unwrap().into_inner();
    assert_eq!(
        fresh,
        pb::GetSignInOptionsResponse { setup_required: true, passkeys_enabled: false, webauthn_rp_id: String::new() }
    );
    let _admin = s.admin().await;
    let set_up = c.auth().get_sign_in_options(pb::GetSignInOptionsRequest {}).await.unwrap().into_inner();
    assert!(!set_up.setup_required);
}

#[tokio::test]
async fn sign_in_options_name_the_passkey_relying_party() {
    let db = TestDb::new();
    let mut options = test_options(&db);
    options.webauthn_rp_id = Some("localhost".into());
    options.webauthn_origins = Some(vec!["http://localhost:7450".into()]);
    let s = TestServer::start_with(db, options).await;
    let c = s.client().await;
    let o = c.auth().get_sign_in_options(pb::GetSignInOptionsRequest {}).await.unwrap().into_inner();
    assert!(o.passkeys_enabled);
    assert_eq!(o.webauthn_rp_id, "localhost");
}
