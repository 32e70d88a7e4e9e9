//! The release server in its own process, driven over real sockets: starting it on a test
//! database, its CPU and memory from /proc, and one measurement of a call made by many clients at
//! once (calls/s, p50, p99, server CPU per call). Shared by the external benchmarks.
// Not every benchmark uses every piece.
#![allow(dead_code)]
use super::harness::TestDb;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The server under test, as a child process.
pub struct ServerProcess {
    child: std::process::Child,
    pub url: String,
    pub data_dir: std::path::PathBuf,
}

impl ServerProcess {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// User plus system CPU time the server has used.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap_or(100) as u64;
        Duration::from_micros(ticks * 1_000_000 / hz)
    }

    /// Resident memory, MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.pid())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

pub fn start_server(db: &TestDb) -> ServerProcess {
    let dir = super::harness::temp_dir("load");
    let key = super::harness::master_key_file(&dir);
    let port = super::harness::free_port();
    let binary = std::env::var("LOAD_BENCH_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_opennvr-server").to_owned());
    let child = std::process::Command::new(binary)
        .env("DATABASE_URL", db.runtime_url())
        .env("OPENNVR_DATABASE_OWNER_URL", db.owner_url())
        .env("OPENNVR_MASTER_KEY_FILE", key)
        .env("OPENNVR_DATA_DIR", &dir)
        .env("OPENNVR_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPENNVR_MFA_REQUIRED_ROLES", "none")
        .env("OPENNVR_ACCESS_TOKEN_TTL_SECS", "3600")
        .env("OPENNVR_ANONYMOUS_CALLS_PER_SEC", "1000000")
        // Logins come from many addresses (X-Forwarded-For), as users' logins do.
        .env("OPENNVR_TRUSTED_PROXIES", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the release server starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ServerProcess { child, url, data_dir: dir }
}

/// Resident memory of process `pid`, MiB.
pub fn rss_mib(pid: i32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// (p50, p99) in milliseconds.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// One kind of call, made on one client (one HTTP/2 connection).
pub type Call =
    Arc<dyn Fn(opennvr_sdk::Client) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync>;

/// What one measurement gave.
pub struct Figures {
    pub calls_per_sec: f64,
    pub p50: f64,
    pub p99: f64,
    pub cpu_us_per_call: f64,
    pub errors: usize,
}

/// Runs `call` on `clients` (`in_flight` at once on each) for `secs`.
pub async fn measure(
    server: &ServerProcess,
    clients: &[opennvr_sdk::Client],
    in_flight: usize,
    secs: f64,
    call: Call,
) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in clients {
        for _ in 0..in_flight {
            let (c, call, stop) = (c.clone(), call.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut samples, mut errors) = (Vec::new(), 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if call(c.clone()).await {
                        samples.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (samples, errors)
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut samples, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (s, e) = t.await.unwrap();
        samples.extend(s);
        errors += e;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = (server.cpu() - cpu0).as_secs_f64();
    let n = samples.len().max(1);
    let (p50, p99) = percentiles(&mut samples);
    Figures { calls_per_sec: n as f64 / elapsed, p50, p99, cpu_us_per_call: cpu * 1e6 / n as f64, errors }
}

/// The baseline call: `grpc.health.v1.Health/Check`.
pub fn health_check() -> Call {
    Arc::new(|c: opennvr_sdk::Client| {
        Box::pin(async move {
            let mut h = tonic_health::pb::health_client::HealthClient::new(c.channel());
            h.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok()
        })
    })
}

/// The release server started on `db` and its administrator, bootstrapped with `password`.
pub async fn start_bootstrapped(db: &TestDb, password: &str) -> (ServerProcess, opennvr_sdk::Client) {
    let server = start_server(db);
    let admin = opennvr_sdk::Client::connect(&server.url).await.unwrap();
    let token = std::fs::read_to_string(server.data_dir.join("setup-token")).unwrap();
    admin.bootstrap(token.trim(), "admin", password).await.unwrap();
    (server, admin)
}
