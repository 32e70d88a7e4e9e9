//! MediaMTX run by the server itself: started from the configuration the server writes (the
//! emulator's binary stands in for `mediamtx` and refuses a file MediaMTX would refuse), started again
//! when it dies, stopped with the server, and taken along when the server is killed.
use crate::cameras::create;
use crate::harness::{TestDb, TestServer, alive, free_port, test_options, workspace_binary};
use crate::media::eventually;
use opennvr_sdk::pb;
use std::path::PathBuf;
use std::time::Duration;

/// Options for a server that supervises the emulator as its MediaMTX, with a free playback port.
fn supervising(db: &TestDb) -> opennvr_server::config::Options {
    let mut options = test_options(db);
    options.mediamtx_bin = Some(workspace_binary("mediamtx-emulator"));
    options.mediamtx_hook_command = Some(workspace_binary("opennvr-hook").display().to_string());
    options.mediamtx_public_playback_url = Some(format!("http://127.0.0.1:{}", free_port()));
    options
}

async fn plane(admin: &opennvr_sdk::Client) -> pb::GetMediaPlaneStatusResponse {
    admin.cameras().get_media_plane_status(pb::GetMediaPlaneStatusRequest {}).await.unwrap().into_inner()
}

/// Polls the media plane's status until `f` holds (up to 20 s).
async fn plane_until(
    admin: &opennvr_sdk::Client,
    what: &str,
    f: impl Fn(&pb::GetMediaPlaneStatusResponse) -> bool,
) -> pb::GetMediaPlaneStatusResponse {
    for _ in 0..200 {
        let st = plane(admin).await;
        if f(&st) {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}; last status {:?}", plane(admin).await);
}

fn running(st: &pb::GetMediaPlaneStatusResponse) -> Option<&pb::SupervisedMediaMtx> {
    st.supervised.as_ref().filter(|m| m.state == "running" && m.pid > 0)
}

#[tokio::test]
async fn the_server_runs_mediamtx_from_its_generated_config_restarts_it_and_stops_it() {
    let db = TestDb::new();
    let options = supervising(&db);
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let st = plane_until(&admin, "MediaMTX running and in sync", |st| {
        running(st).is_some() && st.reachable && st.last_sync_time.is_some()
    })
    .await;
    assert!(st.configured);
    let first = st.supervised.unwrap();
    // The file MediaMTX started from: private, accepted by MediaMTX's rules, with the API on
    // loopback, JWTs checked against this server's keys, recordings under the data directory,
    // and no secret in it.
    let file = PathBuf::from(&first.config_file);
    assert_eq!(file, s.data_dir.canonicalize().unwrap().join("mediamtx/mediamtx.yml"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    let parsed = mediamtx_emulator::ConfigFile::parse(&text).unwrap();
    assert!(parsed.api_address.ip().is_loopback());
    assert_eq!(parsed.auth.jwks_url.as_deref(), Some(format!("{}/.well-known/jwks.json", s.url()).as_str()));
    let recordings = s.data_dir.canonicalize().unwrap().join("recordings");
    assert!(text.contains(&format!("recordPath: \"{}/%path/", recordings.display())), "{text}");
    assert!(!text.contains("HOOK_SECRET"), "{text}");
    // Every listener, UDP ones included, binds where the server listens (loopback here).
    for key in ["rtspAddress", "rtpAddress", "rtcpAddress", "hlsAddress", "webrtcAddress", "webrtcLocalUDPAddress"] {
        assert!(text.contains(&format!("{key}: \"127.0.0.1:")), "{key}: {text}");
    }
    // The hook client's address and secret are in MediaMTX's environment only.
    let env = std::fs::read(format!("/proc/{}/environ", first.pid)).unwrap();
    let env = String::from_utf8_lossy(&env);
    assert!(env.contains(&format!("OPENNVR_HOOK_URL={}/hooks/mediamtx", s.url())), "{env}");
    assert!(env.split('\0').any(|v| v.starts_with("OPENNVR_HOOK_SECRET=") && v.len() > 40));
    assert!(!env.contains("DATABASE_URL"), "the server's own settings stay out of MediaMTX");

    // A camera added through the API is configured in it at once.
    let cam = create(&admin, "Supervised").await;
    let st = plane_until(&admin, "the camera applied", |st| st.config_writes > 0 && st.pending_changes == 0).await;
    let writes_before = st.config_writes;

    // Killed, MediaMTX is started again, and given the camera again (it forgot it).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let st = plane_until(&admin, "MediaMTX started again and the camera given back", |st| {
        running(st).is_some_and(|m| m.pid != first.pid) && st.reachable && st.config_writes > writes_before
    })
    .await;
    let second = st.supervised.unwrap();
    assert_eq!(second.restarts, first.restarts + 1);
    assert!(second.last_exit.contains("signal: 9"), "{}", second.last_exit);
    assert!(!alive(first.pid as u32));
    let status = admin
        .cameras()
        .get_camera_status(pb::GetCameraStatusRequest { camera_id: cam.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert!(status.last_error.is_empty(), "{status:?}");

    // Stopped with the server: asked to stop (SIGTERM), not killed.
    let log = file.with_file_name("mediamtx.log");
    s.shutdown().await;
    eventually("MediaMTX stopped with the server", || !alive(second.pid as u32)).await;
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.trim_end().ends_with("mediamtx-emulator: stopping on SIGTERM"), "{said}");
}

/// The server binary supervising the emulator in a process group of its own, as a shell starts
/// it: the process, its data directory, and MediaMTX's pid once it runs.
async fn server_process(db: &TestDb) -> (std::process::Child, PathBuf, u32) {
    use std::os::unix::process::CommandExt;
    let options = supervising(db);
    let data_dir = options.data_dir.clone().unwrap();
    let server = std::process::Command::new(env!("CARGO_BIN_EXE_opennvr-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENNVR_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("OPENNVR_DATA_DIR", &data_dir)
        .env("OPENNVR_MASTER_KEY_FILE", options.master_key_file.unwrap())
        .env("DATABASE_URL", db.runtime_url())
        .env("OPENNVR_DATABASE_OWNER_URL", db.owner_url())
        .env("OPENNVR_MEDIAMTX_BIN", options.mediamtx_bin.unwrap())
        .env("OPENNVR_MEDIAMTX_PUBLIC_PLAYBACK_URL", options.mediamtx_public_playback_url.unwrap())
        .env("OPENNVR_ARGON2_MEMORY_KIB", "256")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let child_of = |parent: u32| -> Option<u32> {
        std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|s| {
                s.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok()) == Some(parent)
                    && s.contains("(mediamtx-emulat")
            })
        })
    };
    let mut mediamtx = None;
    for _ in 0..300 {
        mediamtx = child_of(server.id()).filter(|p| alive(*p));
        let log = std::fs::read_to_string(data_dir.join("mediamtx/mediamtx.log")).unwrap_or_default();
        if mediamtx.is_some() && log.contains("api http://") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mediamtx = mediamtx.expect("the server started MediaMTX");
    (server, data_dir, mediamtx)
}

#[tokio::test]
async fn a_killed_server_takes_its_mediamtx_along() {
    let db = TestDb::new();
    let (mut server, _, mediamtx) = server_process(&db).await;
    server.kill().unwrap();
    server.wait().unwrap();
    eventually("MediaMTX gone with the killed server", || !alive(mediamtx)).await;
}

/// Ctrl-C at a terminal interrupts the server's process group: MediaMTX, in a group of its own, is
/// not interrupted (and restarted) behind the server's back, but stopped by it.
#[tokio::test]
async fn ctrl_c_reaches_the_server_which_stops_its_mediamtx() {
    let db = TestDb::new();
    let (mut server, data_dir, mediamtx) = server_process(&db).await;
    let group = nix::unistd::Pid::from_raw(server.id() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT).unwrap();
    assert!(server.wait().unwrap().success());
    assert!(!alive(mediamtx));
    let said = std::fs::read_to_string(data_dir.join("mediamtx/mediamtx.log")).unwrap();
    assert!(said.trim_end().ends_with("mediamtx-emulator: stopping on SIGTERM"), "{said}");
}

#[tokio::test]
async fn without_mediamtx_the_status_says_how_to_get_it() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let st = plane(&admin).await;
    assert!(!st.configured);
    assert!(st.supervised.is_none());
    assert!(
        st.reason.contains("OPENNVR_MEDIAMTX_BIN") && st.reason.contains("OPENNVR_MEDIAMTX_API_URL"),
        "{}",
        st.reason
    );
    let ready = s.scrape("/readyz", &admin).await;
    assert!(ready.contains("media: not configured (no MediaMTX:"), "{ready}");
}

#[tokio::test]
async fn a_server_serving_tls_refuses_to_run_a_named_mediamtx_saying_what_to_do() {
    let (cert, key) = crate::harness::self_signed_certificate(&crate::harness::temp_dir("tls-mediamtx"));
    let db = TestDb::new();
    let mut options = supervising(&db);
    options.tls_cert_file = Some(cert);
    options.tls_key_file = Some(key);
    let config = opennvr_server::Config::from_options(options).unwrap();
    let clock = std::sync::Arc::new(opennvr_server::clock::SystemClock);
    let e = match opennvr_server::server::Server::boot(config, clock).await {
        Ok(_) => panic!("booted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("OPENNVR_MEDIAMTX_BIN") && e.contains("OPENNVR_MEDIAMTX_API_URL"), "{e}");
}
