//! Test fixtures: a private PostgreSQL cluster, a migrated template database cloned per test, and
//! the real server started in-process on an ephemeral port.
#![allow(dead_code)]
use chrono::Utc;
use diesel::{Connection, PgConnection, RunQueryDsl};
use opennvr_server::clock::ManualClock;
use opennvr_server::config::{Config, Options};
use opennvr_server::server::Server;
use opennvr_server::store;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Strong enough for the policy, used by every test admin.
pub const ADMIN_PASSWORD: &str = "granite-harbor-lantern-42";

/// The cluster every test of this process uses: `OPENNVR_TEST_PG_URL` (a superuser URL of a
/// cluster the test script started), or a private one started here and stopped with the process.
pub fn cluster_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("OPENNVR_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_private_cluster(),
    })
}

/// Removes the data directories of private clusters whose process is gone (the cluster dies with
/// the test or bench process that started it, its directory stays: benchmark clusters hold GBs).
fn remove_dead_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if !e.file_name().to_string_lossy().starts_with("opennvr-test-pg-") {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        // A directory without a pid file may be one starting right now: only old ones go.
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600));
        if !alive && (pid.is_some() || old) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn start_private_cluster() -> String {
    remove_dead_clusters();
    let bins = opennvr_server::postgres::find_binaries(None).expect("PostgreSQL binaries for tests");
    let dir = std::env::temp_dir().join(format!("opennvr-test-pg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = nix::unistd::Uid::effective().is_root();
    let pg_user = root.then(|| nix::unistd::User::from_name("postgres").unwrap().expect("postgres user"));
    if let Some(u) = &pg_user {
        nix::unistd::chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
    }
    let cmd = |program: &str| {
        let mut c = Command::new(bins.bin_dir.join(program));
        if let Some(u) = &pg_user {
            c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        c.current_dir(&dir);
        c
    };
    let data = dir.join("data");
    let ok = cmd("initdb")
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "initdb: {}", String::from_utf8_lossy(&ok.stderr));
    let port = free_port();
    let mut postgres = cmd("postgres");
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300"])
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // The cluster dies with this test process. The death signal fires when the spawning *thread*
    // exits, so spawn from a thread that lives as long as the process.
    unsafe {
        postgres.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = postgres.spawn();
        tx.send(child.map(|_| ())).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    for _ in 0..100 {
        if PgConnection::establish(&url).is_ok() {
            return url;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("private PostgreSQL did not start");
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `url` with its database replaced by `db` and its user by `user`.
pub fn url_for(url: &str, user: &str, db: &str) -> String {
    let (_, rest) = url.split_once("://").unwrap();
    let (_, hostpart) = rest.split_once('@').unwrap();
    let (host, _) = hostpart.split_once('/').unwrap();
    format!("postgres://{user}@{host}/{db}")
}

const OWNER: &str = "opennvr_owner";
const RUNTIME: &str = "opennvr_app";

/// The migrated template: created once per cluster (serialised across processes by an advisory lock).
fn template() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let su_url = cluster_url();
        let mut su = PgConnection::establish(su_url).unwrap();
        diesel::sql_query("SELECT pg_advisory_lock(7450100)").execute(&mut su).unwrap();
        let versions: Vec<String> =
            diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&store::MIGRATIONS)
                .unwrap()
                .iter()
                .map(|m| m.name().to_string())
                .collect();
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            versions.hash(&mut h);
            for dir in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")).unwrap() {
                let dir = dir.unwrap().path();
                for f in ["up.sql", "down.sql"] {
                    std::fs::read_to_string(dir.join(f)).unwrap_or_default().hash(&mut h);
                }
            }
            h.finish()
        };
        let name = format!("opennvr_template_{digest:016x}");
        store::provision_roles(&mut su, OWNER, RUNTIME).unwrap();
        let exists = count(&mut su, format!("SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"));
        if exists == 0 {
            let building = format!("{name}_building");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building}")).execute(&mut su).unwrap();
            store::create_database(&mut su, &building, OWNER, None).unwrap();
            store::migrate(&url_for(su_url, OWNER, &building)).unwrap();
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}")).execute(&mut su).unwrap();
        }
        diesel::sql_query("SELECT pg_advisory_unlock(7450100)").execute(&mut su).unwrap();
        name
    })
}

/// A database of its own for one test.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// A fresh database cloned from the migrated template.
    pub fn new() -> TestDb {
        let template = template();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut su = PgConnection::establish(cluster_url()).unwrap();
        store::create_database(&mut su, &name, OWNER, Some(template)).unwrap();
        TestDb { name }
    }

    /// An empty database (no migrations), owned by the owner role.
    pub fn empty() -> TestDb {
        let name = format!("e_{}", uuid::Uuid::new_v4().simple());
        let mut su = PgConnection::establish(cluster_url()).unwrap();
        store::provision_roles(&mut su, OWNER, RUNTIME).unwrap();
        store::create_database(&mut su, &name, OWNER, None).unwrap();
        TestDb { name }
    }

    pub fn runtime_url(&self) -> String {
        url_for(cluster_url(), RUNTIME, &self.name)
    }

    pub fn owner_url(&self) -> String {
        url_for(cluster_url(), OWNER, &self.name)
    }

    pub fn superuser_url(&self) -> String {
        url_for(cluster_url(), "postgres", &self.name)
    }

    /// A superuser connection to this database.
    pub fn superuser(&self) -> PgConnection {
        PgConnection::establish(&self.superuser_url()).unwrap()
    }
}

/// A fresh temporary directory.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("opennvr-{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a random master key file (0600) into `dir`.
pub fn master_key_file(dir: &Path) -> PathBuf {
    let p = dir.join("master.key");
    let key: [u8; 32] = std::array::from_fn(|i| (uuid::Uuid::new_v4().as_bytes()[i % 16]).wrapping_add(i as u8));
    std::fs::write(&p, hex_encode(&key)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Configuration of a test server on `db`: cheap argon2, ephemeral port, a fresh data directory.
pub fn test_options(db: &TestDb) -> Options {
    let data_dir = temp_dir("data");
    Options {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        master_key_file: Some(master_key_file(&data_dir)),
        data_dir: Some(data_dir),
        database_url: Some(db.runtime_url()),
        database_owner_url: Some(db.owner_url()),
        db_pool_size: Some(8),
        argon2_memory_kib: Some(256),
        argon2_iterations: Some(1),
        // Never a MediaMTX found on the machine's PATH: tests name the one they use.
        mediamtx_bin: Some(PathBuf::new()),
        ..Options::default()
    }
}

/// The real server, serving in-process.
pub struct TestServer {
    pub db: TestDb,
    pub clock: ManualClock,
    pub addr: std::net::SocketAddr,
    pub data_dir: PathBuf,
    pub options: Options,
    pub keys: opennvr_server::security::keyring::KeyRing,
    pub audit: opennvr_server::audit::AuditTrail,
    pub store: opennvr_server::store::Store,
    pub cameras: opennvr_server::app::cameras::CameraApp,
    pub events: opennvr_server::bus::EventBus,
    pub api_keys: opennvr_server::security::api_keys::ApiKeyCache,
    /// The frame router (benchmarks feed it synthetic frames).
    pub frames: opennvr_server::inference::router::FrameRouter,
    /// TOTP secrets (base32) of the users the harness enrolled, and the last time step each used,
    /// by username.
    pub totp: Arc<std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>>,
    /// The recovery codes each enrolled user was given, by username.
    pub recovery: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// A server on a fresh database with default test options.
    pub async fn start() -> TestServer {
        let db = TestDb::new();
        let options = test_options(&db);
        TestServer::start_with(db, options).await
    }

    /// A server on `db` with `options`.
    pub async fn start_with(db: TestDb, options: Options) -> TestServer {
        let clock = ManualClock::new(Utc::now());
        let config = Config::from_options(options.clone()).expect("valid test config");
        let data_dir = config.data_dir.clone();
        let server = Server::boot(config, Arc::new(clock.clone())).await.expect("server boots");
        let addr = server.local_addr;
        let keys = server.keys.clone();
        let audit = server.audit.clone();
        let store = server.store.clone();
        let cameras = server.cameras.clone();
        let events = server.events.clone();
        let api_keys = server.api_keys.clone();
        let frames = server.frames.clone();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            server.serve(rx).await.expect("server serves");
        });
        TestServer {
            db,
            clock,
            addr,
            data_dir,
            options,
            keys,
            audit,
            store,
            cameras,
            events,
            api_keys,
            frames,
            totp: Arc::default(),
            recovery: Arc::default(),
            stop,
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The body of a plain GET of `path` (`/metrics`, `/readyz`) with `c`'s access token, as a
    /// scrape holding `metrics.read` sends it.
    pub async fn scrape(&self, path: &str, c: &opennvr_sdk::Client) -> String {
        let token = c.tokens().expect("signed in").access_token;
        let r = reqwest::Client::new().get(format!("{}{path}", self.url())).bearer_auth(token).send().await.unwrap();
        assert!(r.status().is_success() || path == "/readyz", "{path}: {}", r.status());
        r.text().await.unwrap()
    }

    /// A client connected to this server, not signed in.
    pub async fn client(&self) -> opennvr_sdk::Client {
        opennvr_sdk::Client::connect(&self.url()).await.unwrap()
    }

    /// The one-time setup token the server wrote.
    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("setup-token")).unwrap().trim().to_owned()
    }

    /// A client signed in as a freshly bootstrapped admin `admin` who has enrolled TOTP (admins must
    /// have a second factor): its session completed MFA and is stepped up.
    pub async fn admin(&self) -> opennvr_sdk::Client {
        let c = self.client().await;
        let tokens = c.bootstrap(&self.setup_token(), "admin", ADMIN_PASSWORD).await.unwrap();
        assert!(tokens.mfa_enrolment_required, "an admin without a second factor must enrol one first");
        self.enrol_totp(&c, "admin").await;
        c
    }

    /// Enrols TOTP for the user signed in on `c` (as `name`), then refreshes its tokens: the session
    /// has completed MFA and is stepped up. Returns the ten recovery codes.
    pub async fn enrol_totp(&self, c: &opennvr_sdk::Client, name: &str) -> Vec<String> {
        use opennvr_sdk::pb;
        let started =
            c.auth().start_totp_enrollment(pb::StartTotpEnrollmentRequest::default()).await.unwrap().into_inner();
        let seed = opennvr_server::security::totp::TotpSeed::from_base32(&started.secret).unwrap();
        let finished = c
            .auth()
            .finish_totp_enrollment(pb::FinishTotpEnrollmentRequest {
                enrollment_token: started.enrollment_token,
                code: seed.code_at(self.clock_now()),
                name: "harness phone".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let step = self.clock_now().timestamp() / 30;
        self.totp.lock().unwrap().insert(name.to_owned(), (started.secret, step));
        self.recovery.lock().unwrap().insert(name.to_owned(), finished.recovery_codes.clone());
        let tokens = c.refresh().await.unwrap();
        assert!(!tokens.mfa_enrolment_required);
        finished.recovery_codes
    }

    /// The recovery codes `name` was given at enrolment.
    pub fn recovery_codes(&self, name: &str) -> Vec<String> {
        self.recovery.lock().unwrap().get(name).cloned().unwrap_or_default()
    }

    /// The server's clock now.
    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        use opennvr_server::clock::Clock;
        self.clock.now()
    }

    /// A fresh TOTP code of `name`. A code works once: when this user's code of the current 30 s
    /// step was used already, the clock moves on to the next step first.
    pub fn totp_code(&self, name: &str) -> String {
        let mut all = self.totp.lock().unwrap();
        let (secret, last) = all.get_mut(name).unwrap_or_else(|| panic!("{name} has no TOTP"));
        let now = self.clock_now().timestamp();
        if now / 30 <= *last {
            self.clock.advance(chrono::Duration::seconds((*last + 1) * 30 - now));
        }
        *last = self.clock_now().timestamp() / 30;
        opennvr_server::security::totp::TotpSeed::from_base32(secret).unwrap().code_at(self.clock_now())
    }

    /// Signs `c` in as `name` with the test password and, if asked, its TOTP code.
    pub async fn login(&self, c: &opennvr_sdk::Client, name: &str) -> opennvr_sdk::pb::Tokens {
        c.login_with_totp(name, ADMIN_PASSWORD, || self.totp_code(name)).await.unwrap()
    }

    /// Steps up the session of `name` on `c` with a fresh TOTP code.
    pub async fn step_up(&self, c: &opennvr_sdk::Client, name: &str) {
        c.step_up_totp(&self.totp_code(name)).await.unwrap();
    }

    /// Creates a user with `role` through `admin` and returns a client signed in as them, with TOTP
    /// enrolled (so they can step up; later logins need the code: [`TestServer::login`]).
    pub async fn user(
        &self,
        admin: &opennvr_sdk::Client,
        name: &str,
        role: opennvr_sdk::pb::Role,
    ) -> opennvr_sdk::Client {
        admin
            .users()
            .create_user(opennvr_sdk::pb::CreateUserRequest {
                user: Some(opennvr_sdk::pb::User { username: name.into(), role: role as i32, ..Default::default() }),
                password: ADMIN_PASSWORD.into(),
            })
            .await
            .unwrap();
        let c = self.client().await;
        c.login(name, ADMIN_PASSWORD).await.unwrap();
        self.enrol_totp(&c, name).await;
        c
    }

    /// Stops serving and waits for the shutdown to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

/// The single `count(*) AS n` a query returns.
pub fn count(conn: &mut PgConnection, sql: impl AsRef<str>) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let row: N = diesel::sql_query(sql.as_ref()).get_result(conn).unwrap();
    row.n
}

/// Passes message bytes through unchanged, so one call site can send any RPC its fixture.
#[derive(Clone, Default)]
pub struct RawCodec;
pub struct RawBytes;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }
    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Calls `path` with `body` as `client`'s signed-in user: the answer's messages (a stream's first
/// message only, within 3 s) or its status.
pub async fn raw_call(
    client: &opennvr_sdk::Client,
    path: &str,
    body: Vec<u8>,
    streaming: bool,
) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(client.channel());
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(body);
    if let Some(secret) = client.credential() {
        req.metadata_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
    }
    let pq: http::uri::PathAndQuery = path.parse().unwrap();
    if streaming {
        let mut stream = grpc.server_streaming(req, pq, RawCodec).await?.into_inner();
        match tokio::time::timeout(std::time::Duration::from_secs(3), stream.message()).await {
            Ok(Ok(Some(m))) => Ok(vec![m]),
            Ok(Ok(None)) | Err(_) => Ok(Vec::new()),
            Ok(Err(st)) => Err(st),
        }
    } else {
        grpc.unary(req, pq, RawCodec).await.map(|r| vec![r.into_inner()])
    }
}

/// Registers the adapter at `url` as `admin` (enabled, with a token).
pub async fn register_adapter(
    admin: &opennvr_sdk::Client,
    name: &str,
    url: &str,
    timeout_ms: i64,
    concurrency: i32,
    queue: i32,
) -> opennvr_sdk::pb::Adapter {
    admin
        .inference()
        .create_adapter(opennvr_sdk::pb::CreateAdapterRequest {
            adapter: Some(opennvr_sdk::pb::Adapter {
                name: name.into(),
                endpoint_url: url.into(),
                timeout: Some(prost_types::Duration {
                    seconds: timeout_ms / 1000,
                    nanos: ((timeout_ms % 1000) * 1_000_000) as i32,
                }),
                max_concurrency: concurrency,
                max_queue: queue,
                enabled: true,
                ..Default::default()
            }),
            token: "adapter-token-7f3a".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .adapter
        .unwrap()
}

/// Binds `camera` to `adapter` as `c` (enabled).
pub async fn bind_adapter(
    c: &opennvr_sdk::Client,
    camera: &opennvr_sdk::pb::Camera,
    adapter: &opennvr_sdk::pb::Adapter,
    interval_ms: i64,
    labels: &[&str],
    min_confidence: f32,
) -> Result<opennvr_sdk::pb::AdapterBinding, tonic::Status> {
    c.inference()
        .create_adapter_binding(opennvr_sdk::pb::CreateAdapterBindingRequest {
            binding: Some(opennvr_sdk::pb::AdapterBinding {
                camera_id: camera.id.clone(),
                adapter_id: adapter.id.clone(),
                frame_interval: Some(prost_types::Duration {
                    seconds: interval_ms / 1000,
                    nanos: ((interval_ms % 1000) * 1_000_000) as i32,
                }),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                min_confidence,
                enabled: true,
                ..Default::default()
            }),
        })
        .await
        .map(|r| r.into_inner().binding.unwrap())
}

/// Whether process `pid` runs (exists and is not a zombie waiting for its parent).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A binary the workspace builds next to this test binary (`target/<profile>/`): `nvrctl`, the
/// emulator's, the hook client.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (cargo test --release --workspace builds it)",
        p.display()
    );
    p
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (with `openssl`), written into `dir`:
/// (certificate, key) PEM files.
pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}
