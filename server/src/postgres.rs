//! The embedded default: a private PostgreSQL cluster under the data directory, created on first
//! start, supervised while the server runs and stopped on shutdown. It listens only on a Unix socket
//! in a directory no other user can enter.
use crate::error::{Error, ErrorKind, Result};
use diesel::{Connection, PgConnection};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Owner role (runs migrations) of the embedded database.
pub const OWNER_ROLE: &str = "opennvr_owner";
/// Login role of the server's runtime queries (member of `opennvr_runtime`).
pub const RUNTIME_ROLE: &str = "opennvr_app";
/// Name of the embedded database.
pub const DATABASE: &str = "opennvr";
const PORT: u16 = 5432;

/// The PostgreSQL server programs to use.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub bin_dir: PathBuf,
    pub major: u32,
}

/// Finds `initdb`, `pg_ctl` and `postgres`: in `explicit`, else on PATH, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_binaries(explicit: Option<&Path>) -> Result<Binaries> {
    let has_all = |d: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| d.join(b).is_file());
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = explicit {
        if !has_all(d) {
            return Err(not_found(&format!(
                "OPENNVR_PG_BIN_DIR={} does not hold initdb, pg_ctl and postgres",
                d.display()
            )));
        }
        candidates.push(d.to_path_buf());
    } else {
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).filter(|d| has_all(d)));
        }
        let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
            .filter(|(_, d)| has_all(d))
            .collect();
        versioned.sort();
        candidates.extend(versioned.into_iter().rev().map(|(_, d)| d));
    }
    let bin_dir = candidates.into_iter().next().ok_or_else(|| {
        not_found(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found on PATH or under /usr/lib/postgresql/*/bin",
        )
    })?;
    let out = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .output()
        .map_err(|e| not_found(&format!("cannot run {}/postgres: {e}", bin_dir.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let major = text
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse::<u32>().ok())
        .ok_or_else(|| Error::internal(format!("cannot read the PostgreSQL version from {text:?}")))?;
    Ok(Binaries { bin_dir, major })
}

fn not_found(what: &str) -> Error {
    Error::new(
        ErrorKind::FailedPrecondition,
        format!(
            "{what}. Install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`), set OPENNVR_PG_BIN_DIR, or set DATABASE_URL to use an existing database"
        ),
    )
}

/// The user the cluster runs as: ourselves, or `postgres` when we are root (PostgreSQL refuses root).
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .map_err(Error::internal)?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "running as root, the embedded PostgreSQL needs an unprivileged `postgres` user to run as: create one (`useradd --system postgres`) or run opennvr-server as an ordinary user",
            )
        })?;
    Ok(Some(RunAs { uid: user.uid.as_raw(), gid: user.gid.as_raw() }))
}

/// A running embedded cluster. Dropping it stops the cluster.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bins: Binaries,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    run_as: Option<RunAs>,
    stopped: std::sync::atomic::AtomicBool,
    /// Held while starting or stopping, so supervision never races a deliberate stop.
    control: std::sync::Mutex<()>,
}

/// Running as root, the `postgres` user must be able to walk down to the data directory.
fn check_reachable(data_dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in data_dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else { continue };
        if meta.mode() & 0o001 == 0 {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "running as root, the embedded PostgreSQL runs as the `postgres` user, which cannot enter {} (mode {:o}): set OPENNVR_DATA_DIR to a directory outside it (e.g. /var/lib/opennvr), or run opennvr-server as an ordinary user",
                    dir.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

impl EmbeddedPostgres {
    /// Creates (first time) and starts the cluster under `<data_dir>/postgres`, then makes sure the
    /// roles and database exist.
    pub fn start(data_dir: &Path, bins: Binaries) -> Result<EmbeddedPostgres> {
        let run_as = run_as()?;
        if run_as.is_some() {
            check_reachable(data_dir)?;
        }
        let root = data_dir.join("postgres");
        let data = root.join("data");
        let socket_dir = root.join("run");
        for d in [&root, &socket_dir] {
            std::fs::create_dir_all(d).map_err(|e| Error::internal(format!("creating {}: {e}", d.display())))?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(Error::internal)?;
            if let Some(r) = run_as {
                nix::unistd::chown(d.as_path(), Some(r.uid.into()), Some(r.gid.into())).map_err(Error::internal)?;
            }
        }
        if run_as.is_some() {
            // The postgres user must be able to traverse the data directory to reach its own folder.
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711)).map_err(Error::internal)?;
        }
        let log = root.join("postgres.log");
        let stopped = std::sync::atomic::AtomicBool::new(true);
        let pg = EmbeddedPostgres { bins, data, socket_dir, log, run_as, stopped, control: Default::default() };
        pg.check_version()?;
        if !pg.data.join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        pg.stop_stale();
        pg.start_server()?;
        pg.provision()?;
        Ok(pg)
    }

    fn start_server(&self) -> Result<()> {
        let log = self.log.to_string_lossy().into_owned();
        // Marked running before the attempt: if `pg_ctl start` times out while the postmaster still
        // comes up, dropping this handle stops it all the same.
        self.stopped.store(false, std::sync::atomic::Ordering::SeqCst);
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &self.server_options()])
    }

    /// True when `pg_ctl status` says, positively, that no server runs (exit status 3). Any other
    /// failure (a busy machine, a spawn error) is not taken as a death.
    fn is_down(&self) -> bool {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.data).arg("status").stdout(Stdio::null()).stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.code() == Some(3))
    }

    /// Supervision: starts the cluster again if it died while the server runs.
    pub fn ensure_running(&self) -> Result<()> {
        let _control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopped.load(std::sync::atomic::Ordering::SeqCst) || !self.is_down() {
            return Ok(());
        }
        tracing::error!(log = %self.log.display(), "the embedded PostgreSQL is not running: starting it again");
        self.start_server()
    }

    fn check_version(&self) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(self.data.join("PG_VERSION")) else { return Ok(()) };
        let made_by: u32 = text.trim().parse().unwrap_or(0);
        if made_by != self.bins.major {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "the embedded database in {} was created by PostgreSQL {made_by}, but the binaries found ({}) are PostgreSQL {}: install PostgreSQL {made_by} and set OPENNVR_PG_BIN_DIR, or upgrade the cluster with pg_upgrade",
                    self.data.display(),
                    self.bins.bin_dir.display(),
                    self.bins.major
                ),
            ));
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bins.bin_dir.join(program));
        cmd.current_dir(self.data.parent().unwrap_or(Path::new("/"))).stdin(Stdio::null());
        if let Some(r) = self.run_as {
            cmd.uid(r.uid).gid(r.gid).env("HOME", self.data.parent().unwrap_or(Path::new("/")));
        }
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<()> {
        let out = cmd.output().map_err(|e| Error::internal(format!("{what}: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{what} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        Ok(())
    }

    fn initdb(&self) -> Result<()> {
        tracing::info!(dir = %self.data.display(), "creating the embedded PostgreSQL cluster");
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.data).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"]);
        self.run(cmd, "initdb")
    }

    fn server_options(&self) -> String {
        format!("-c listen_addresses='' -k {} -p {PORT}", self.socket_dir.display())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.data).args(args);
        self.run(cmd, &format!("pg_ctl {}", args.first().copied().unwrap_or("")))
    }

    /// A server left running by a previous process that died is stopped before starting afresh.
    fn stop_stale(&self) {
        if self.data.join("postmaster.pid").exists() {
            tracing::warn!("stopping an embedded PostgreSQL left running by a previous start");
            let _ = self.pg_ctl(&["stop", "-m", "fast", "-w"]);
        }
    }

    /// URL to connect as `role` to `database` over the private socket.
    pub fn url(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@/{database}?host={}&port={PORT}", self.socket_dir.display())
    }

    fn provision(&self) -> Result<()> {
        let mut su = PgConnection::establish(&self.url("postgres", "postgres"))
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("embedded PostgreSQL: {e}")))?;
        crate::store::provision_roles(&mut su, OWNER_ROLE, RUNTIME_ROLE)?;
        crate::store::create_database(&mut su, DATABASE, OWNER_ROLE, None)?;
        Ok(())
    }

    /// Stops the cluster (fast shutdown: open transactions roll back). Idempotent.
    pub fn stop(&self) -> Result<()> {
        let _control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        tracing::info!("stopping the embedded PostgreSQL");
        self.pg_ctl(&["stop", "-m", "fast", "-w"])
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "stopping the embedded PostgreSQL");
        }
    }
}
