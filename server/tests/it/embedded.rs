//! The embedded default: a private PostgreSQL under the data directory, created, supervised and
//! stopped by the server; clear errors when it cannot be.
use crate::harness::{ADMIN_PASSWORD, temp_dir};
use opennvr_server::clock::SystemClock;
use opennvr_server::config::{Config, Options};
use opennvr_server::server::Server;
use std::sync::Arc;

fn embedded_options(data_dir: &std::path::Path) -> Options {
    Options {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_path_buf()),
        argon2_memory_kib: Some(256),
        argon2_iterations: Some(1),
        ..Options::default()
    }
}

type Serving = (String, tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<opennvr_server::error::Result<()>>);

/// Boots the embedded default in `dir` and serves it: its URL, the stop switch, the serving task.
async fn serve_embedded(dir: &std::path::Path) -> Serving {
    let server = Server::boot(Config::from_options(embedded_options(dir)).unwrap(), Arc::new(SystemClock))
        .await
        .expect("embedded boot");
    let url = format!("http://{}", server.local_addr);
    let (tx, rx) = tokio::sync::watch::channel(false);
    (url, tx, tokio::spawn(server.serve(rx)))
}

#[tokio::test]
async fn embedded_database_is_created_kept_and_stopped() {
    let dir = temp_dir("embedded");
    let (url, stop, task) = serve_embedded(&dir).await;
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join(p)).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode("master.key"), 0o600, "generated master key is private");
    assert_eq!(mode("setup-token"), 0o600, "setup token is private");
    assert!(dir.join("postgres/data/PG_VERSION").exists());
    let token = std::fs::read_to_string(dir.join("setup-token")).unwrap();
    let c = opennvr_sdk::Client::connect(&url).await.unwrap();
    c.bootstrap(token.trim(), "admin", ADMIN_PASSWORD).await.unwrap();
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(!dir.join("postgres/data/postmaster.pid").exists(), "PostgreSQL stopped with the server");
    // Started again, the same cluster, keys and users are there.
    let (url, stop, task) = serve_embedded(&dir).await;
    assert!(!dir.join("setup-token").exists(), "no new setup token once an admin exists");
    let c = opennvr_sdk::Client::connect(&url).await.unwrap();
    // The admin has not enrolled a second factor yet: an enrolment-only session.
    let tokens = c.login("admin", ADMIN_PASSWORD).await.unwrap();
    assert!(tokens.mfa_enrolment_required);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}

async fn boot_error(options: Options) -> String {
    match Server::boot(Config::from_options(options).unwrap(), Arc::new(SystemClock)).await {
        Ok(_) => panic!("booted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn missing_binaries_say_what_to_install() {
    let dir = temp_dir("nobins");
    let mut o = embedded_options(&dir);
    o.pg_bin_dir = Some(temp_dir("empty-bin"));
    let e = boot_error(o).await;
    assert!(e.contains("OPENNVR_PG_BIN_DIR") && e.contains("apt-get install postgresql"), "{e}");
    assert!(!dir.join("master.key").exists(), "a refused start leaves no master key behind");
}

#[tokio::test]
async fn a_taken_port_refuses_the_start_before_anything_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = temp_dir("taken");
    let mut o = embedded_options(&dir);
    o.listen = Some(taken.local_addr().unwrap());
    let e = boot_error(o).await;
    assert!(e.contains("OPENNVR_LISTEN: cannot listen on"), "{e}");
    assert!(!dir.join("master.key").exists() && !dir.join("postgres").exists(), "a refused start created files");
}

#[tokio::test]
async fn a_cluster_of_another_major_version_is_named() {
    let dir = temp_dir("oldpg");
    std::fs::create_dir_all(dir.join("postgres/data")).unwrap();
    std::fs::write(dir.join("postgres/data/PG_VERSION"), "9\n").unwrap();
    let e = boot_error(embedded_options(&dir)).await;
    assert!(e.contains("created by PostgreSQL 9") && e.contains("pg_upgrade"), "{e}");
}

#[tokio::test]
async fn a_dead_embedded_database_is_restarted_and_a_failed_boot_stops_it() {
    let dir = temp_dir("supervised");
    let (url, tx, task) = serve_embedded(&dir).await;
    let ready = || async { reqwest::get(format!("{url}/readyz")).await.unwrap().status().as_u16() };
    assert_eq!(ready().await, 200);
    // Kill the postmaster the hard way.
    let pid_file = dir.join("postgres/data/postmaster.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().lines().next().unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let mut down_seen = false;
    let mut back = false;
    for _ in 0..300 {
        match ready().await {
            200 if down_seen => {
                back = true;
                break;
            }
            200 => {}
            _ => down_seen = true,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(down_seen && back, "supervision restarts the embedded PostgreSQL (down seen: {down_seen})");
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(!pid_file.exists());
    // A boot that fails after the cluster started (here: the wrong master key) leaves nothing running.
    let mut o = embedded_options(&dir);
    let other = temp_dir("other-master");
    o.master_key_file = Some(crate::harness::master_key_file(&other));
    let e = boot_error(o).await;
    assert!(e.contains("master key"), "{e}");
    assert!(!pid_file.exists(), "the embedded PostgreSQL was stopped after the failed boot");
}

#[tokio::test]
async fn as_root_a_data_directory_the_postgres_user_cannot_reach_is_refused() {
    if !nix::unistd::Uid::effective().is_root() {
        // The check exists only for root (the cluster then runs as `postgres`); CI runs as root.
        eprintln!("not root: nothing to check");
        return;
    }
    let parent = temp_dir("private-parent");
    std::fs::set_permissions(&parent, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let e = boot_error(embedded_options(&parent.join("var"))).await;
    assert!(e.contains("cannot enter") && e.contains("OPENNVR_DATA_DIR"), "{e}");
}

/// `opennvr-server 2>&1 | tee log` and Ctrl-C: the terminal interrupts the whole pipeline, the
/// reader of the log goes first, and the server still stops its PostgreSQL.
#[tokio::test]
async fn ctrl_c_through_a_pipe_stops_the_embedded_database() {
    use std::os::unix::process::CommandExt;
    let dir = temp_dir("pipe");
    let mut pipeline = std::process::Command::new("sh")
        .arg("-c")
        .arg("\"$0\" 2>&1 | cat >/dev/null")
        .arg(env!("CARGO_BIN_EXE_opennvr-server"))
        .env("OPENNVR_DATA_DIR", &dir)
        .env("OPENNVR_LISTEN", "127.0.0.1:0")
        .env("OPENNVR_ARGON2_MEMORY_KIB", "256")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid_file = dir.join("postgres/data/postmaster.pid");
    let mut postmaster = None;
    for _ in 0..600 {
        if dir.join("setup-token").exists()
            && let Ok(text) = std::fs::read_to_string(&pid_file)
        {
            postmaster = text.lines().next().and_then(|l| l.trim().parse::<u32>().ok());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let postmaster = postmaster.expect("the server started its PostgreSQL");
    let group = nix::unistd::Pid::from_raw(pipeline.id() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT).unwrap();
    pipeline.wait().unwrap();
    let running = || crate::harness::alive(postmaster);
    for _ in 0..300 {
        if !running() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!running(), "PostgreSQL (pid {postmaster}) outlived the interrupted server");
    assert!(!pid_file.exists());
}
