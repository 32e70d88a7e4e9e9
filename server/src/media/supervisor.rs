//! MediaMTX run by the server itself, as the embedded PostgreSQL is: when no MediaMTX API URL is
//! configured and a `mediamtx` binary is found, the server writes its `mediamtx.yml` under the data
//! directory (the API on loopback, JWT authentication against the server's JWKS, recordings under
//! the data directory, the hook client with a fresh secret), starts it, restarts it with backoff,
//! and stops it on shutdown; a server killed outright takes it along (the kernel sends SIGTERM).
use super::MediaConfig;
use super::plane::{ChildState, MediaPlane};
use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::watch;

/// The setting naming the binary.
pub const BINARY_VAR: &str = "OPENNVR_MEDIAMTX_BIN";

/// What a site without MediaMTX is told, in the log and in the media plane's status.
pub const HOW_TO_GET: &str = "no MediaMTX: cameras are stored but neither recorded nor shown live. \
    Put the mediamtx binary (v1.20, https://github.com/bluenviron/mediamtx/releases) on PATH or set \
    OPENNVR_MEDIAMTX_BIN to run it with the server, or set OPENNVR_MEDIAMTX_API_URL to use one you run";

/// MediaMTX's own default ports, used unless a public URL names another.
const DEFAULT_RTSP: u16 = 8554;
const DEFAULT_HLS: u16 = 8888;
const DEFAULT_WEBRTC: u16 = 8889;
const DEFAULT_PLAYBACK: u16 = 9996;
const DEFAULT_RTP: u16 = 8000;
const DEFAULT_RTCP: u16 = 8001;
const DEFAULT_WEBRTC_UDP: u16 = 8189;

/// Backoff between restarts: doubled after each quick failure, up to the longest.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long resets the backoff.
const STEADY: Duration = Duration::from_secs(60);
/// Size past which MediaMTX's log is set aside at its next start.
const LOG_LIMIT: u64 = 16 << 20;
/// How long MediaMTX gets to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Supervision as configured: the binary (named, or found on PATH), and whether the hook command
/// was set explicitly.
#[derive(Debug, Clone)]
pub struct Supervision {
    pub binary: PathBuf,
    /// Named by OPENNVR_MEDIAMTX_BIN (not merely found on PATH).
    pub named: bool,
    pub hook_command_set: bool,
}

/// Why a server serving TLS does not run MediaMTX itself.
const NOT_WITH_TLS: &str = "a server serving TLS does not run MediaMTX itself yet (MediaMTX would have to \
    trust the server's certificate for its JWKS and serve viewers over TLS too): run MediaMTX yourself with \
    docker/mediamtx.yml and set OPENNVR_MEDIAMTX_API_URL";

/// The `mediamtx` to supervise: `explicit` (which must be an executable file), else `mediamtx` on
/// PATH; `None` when there is none.
pub fn find_binary(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if let Some(p) = explicit {
        if !runnable(p) {
            return Err(Error::config(format!("{BINARY_VAR}: {} is not an executable file", p.display())));
        }
        return Ok(Some(p.to_path_buf()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path).map(|d| d.join("mediamtx")).find(|p| runnable(p)))
}

/// Everything the generated `mediamtx.yml` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where MediaMTX's listeners bind (`None`: every interface).
    pub bind: Option<IpAddr>,
    pub api_port: u16,
    pub rtsp_port: u16,
    pub hls_port: u16,
    pub webrtc_port: u16,
    pub playback_port: u16,
    /// The server's JWKS as MediaMTX fetches it.
    pub jwks_url: String,
    pub issuer: String,
    pub record_path: String,
}

/// A YAML string (a JSON string is one).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `ip:port`, or `:port` for every interface.
fn listen_at(bind: Option<IpAddr>, port: u16) -> String {
    match bind {
        Some(ip) => SocketAddr::new(ip, port).to_string(),
        None => format!(":{port}"),
    }
}

/// The `mediamtx.yml` for `s`: no camera and no secret in it (paths come through the API, the hook
/// secret through the environment).
pub fn config_yaml(s: &Settings) -> String {
    let at = |port| quoted(&listen_at(s.bind, port));
    format!(
        "# Written by opennvr-server at each start of the MediaMTX it supervises: edits are lost.\n\
         # Cameras are configured through the API; this file holds no camera and no secret.\n\
         logLevel: info\n\
         api: true\n\
         apiAddress: {api}\n\
         metrics: false\n\
         pprof: false\n\
         authMethod: jwt\n\
         authJWTJWKS: {jwks}\n\
         authJWTClaimKey: mediamtx_permissions\n\
         authJWTIssuer: {issuer}\n\
         authJWTAudience: {audience}\n\
         playback: true\n\
         playbackAddress: {playback}\n\
         rtsp: true\n\
         rtspAddress: {rtsp}\n\
         rtpAddress: {rtp}\n\
         rtcpAddress: {rtcp}\n\
         rtmp: false\n\
         hls: true\n\
         hlsAddress: {hls}\n\
         webrtc: true\n\
         webrtcAddress: {webrtc}\n\
         webrtcLocalUDPAddress: {webrtc_udp}\n\
         srt: false\n\
         pathDefaults:\n  \
           record: false\n  \
           recordPath: {record_path}\n  \
           recordFormat: fmp4\n  \
           recordSegmentDuration: 60s\n  \
           recordDeleteAfter: 0s\n\
         paths: {{}}\n",
        api = quoted(&SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), s.api_port).to_string()),
        jwks = quoted(&s.jwks_url),
        issuer = quoted(&s.issuer),
        audience = quoted(super::mediamtx::AUDIENCE),
        playback = at(s.playback_port),
        rtsp = at(s.rtsp_port),
        rtp = at(DEFAULT_RTP),
        rtcp = at(DEFAULT_RTCP),
        webrtc_udp = at(DEFAULT_WEBRTC_UDP),
        hls = at(s.hls_port),
        webrtc = at(s.webrtc_port),
        record_path = quoted(&s.record_path),
    )
}

/// The port of a configured URL, or `default`.
fn port_of(url: Option<&str>, default: u16) -> u16 {
    url.and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.port_or_known_default()).unwrap_or(default)
}

/// A free loopback port for MediaMTX's API.
fn free_loopback_port() -> Result<u16> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::config(format!("cannot find a free port for MediaMTX's API: {e}")))?;
    Ok(l.local_addr().map_err(Error::internal)?.port())
}

/// A URL's host part for `ip` (IPv6 in brackets).
fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// What the supervision needs to know of the server.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    pub data_dir: &'a Path,
    /// Where the server listens: MediaMTX listens there too.
    pub listen: SocketAddr,
    pub token_issuer: &'a str,
    /// Whether the server serves TLS (then it does not run MediaMTX).
    pub tls: bool,
}

/// The settings the supervision fills in: the media plane's, where frames are read, the hook secret.
pub struct Filled<'a> {
    pub media: &'a mut MediaConfig,
    pub frames_rtsp_url: &'a mut Option<String>,
    pub hook_secret: &'a mut Option<String>,
}

/// A supervised MediaMTX, prepared and then running.
pub struct Supervisor {
    binary: PathBuf,
    dir: PathBuf,
    settings: Settings,
    /// Where MediaMTX reaches the server (JWKS, hooks), once the server listens.
    server_host: String,
    hook_secret: Option<String>,
    stop: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    done_tx: Option<watch::Sender<bool>>,
}

impl Supervisor {
    /// Fills `config`'s media settings for a MediaMTX the server runs: its API on a free loopback
    /// port, recordings under the data directory, public URLs from the listen address unless set,
    /// and (the hook client being found) a hook secret. `None`: MediaMTX is found on PATH but the
    /// server serves TLS (see [`NOT_WITH_TLS`]); named explicitly, that refuses the start.
    pub fn prepare(host: Host<'_>, filled: Filled<'_>, s: &Supervision) -> Result<Option<Supervisor>> {
        if host.tls {
            if s.named {
                return Err(Error::config(format!("OPENNVR_MEDIAMTX_BIN: {NOT_WITH_TLS}")));
            }
            tracing::warn!(binary = %s.binary.display(), "MediaMTX found on PATH is not started: {NOT_WITH_TLS}");
            return Ok(None);
        }
        let Filled { media, frames_rtsp_url, hook_secret } = filled;
        let data_dir = std::fs::canonicalize(host.data_dir).map_err(Error::internal)?;
        let dir = data_dir.join("mediamtx");
        private_dir(&dir)?;
        let recordings = match &media.recordings_dir {
            Some(d) => d.clone(),
            None => {
                let d = data_dir.join("recordings");
                private_dir(&d)?;
                media.recordings_dir = Some(d.clone());
                d
            }
        };
        if media.record_path == super::DEFAULT_RECORD_PATH {
            media.record_path = format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f%z", recordings.display());
        }
        let listen = host.listen.ip();
        let bind = (!listen.is_unspecified()).then_some(listen);
        let internal = url_host(bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let public = match bind {
            Some(ip) => url_host(ip),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned()),
        };
        let settings = Settings {
            bind,
            api_port: free_loopback_port()?,
            rtsp_port: port_of(media.rtsp_url.as_deref(), DEFAULT_RTSP),
            hls_port: port_of(media.hls_url.as_deref(), DEFAULT_HLS),
            webrtc_port: port_of(media.whep_url.as_deref(), DEFAULT_WEBRTC),
            playback_port: port_of(media.public_playback_url.as_deref(), DEFAULT_PLAYBACK),
            jwks_url: String::new(),
            issuer: host.token_issuer.to_owned(),
            record_path: media.record_path.clone(),
        };
        media.api_url = Some(format!("http://127.0.0.1:{}", settings.api_port));
        let fill = |v: &mut Option<String>, url: String| {
            if v.is_none() {
                *v = Some(url);
            }
        };
        fill(&mut media.whep_url, format!("http://{public}:{}", settings.webrtc_port));
        fill(&mut media.hls_url, format!("http://{public}:{}", settings.hls_port));
        fill(&mut media.rtsp_url, format!("rtsp://{public}:{}", settings.rtsp_port));
        fill(&mut media.public_playback_url, format!("http://{public}:{}", settings.playback_port));
        fill(&mut media.playback_url, format!("http://{internal}:{}", settings.playback_port));
        fill(frames_rtsp_url, format!("rtsp://{internal}:{}", settings.rtsp_port));
        // The hook client: the one named, else the one next to the server binary. Without it,
        // hooks are off (and MediaMTX is given no hook commands).
        let hook = if s.hook_command_set {
            Some(PathBuf::from(&media.hook_command))
        } else {
            std::env::current_exe().ok().and_then(|e| Some(e.parent()?.join("opennvr-hook")))
        };
        match hook {
            Some(h) if h.is_file() => {
                media.hook_command = h.display().to_string();
                if hook_secret.is_none() {
                    let secret: String =
                        crate::security::secret::random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect();
                    *hook_secret = Some(secret);
                }
                media.hooks = true;
            }
            other => {
                media.hooks = false;
                tracing::warn!(
                    hook = %other.map(|h| h.display().to_string()).unwrap_or_default(),
                    "MediaMTX's hooks are off: the hook client opennvr-hook is not next to the server binary \
                     (build it with `cargo build --release -p opennvr-hook`, or set OPENNVR_MEDIAMTX_HOOK_COMMAND); \
                     segments are indexed by the periodic reconciliation (OPENNVR_RECORDING_RECONCILE_SECS)"
                );
            }
        }
        let (stop, _) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        Ok(Some(Supervisor {
            binary: s.binary.clone(),
            dir,
            settings,
            server_host: internal,
            hook_secret: media.hooks.then(|| hook_secret.clone()).flatten(),
            stop,
            done,
            done_tx: Some(done_tx),
        }))
    }

    /// The generated configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("mediamtx.yml")
    }

    /// Writes the configuration for a server listening on `port` and starts supervising MediaMTX,
    /// reporting its state in `plane`.
    pub fn start(&mut self, port: u16, plane: MediaPlane) -> Result<tokio::task::JoinHandle<()>> {
        let base = format!("http://{}:{port}", self.server_host);
        self.settings.jwks_url = format!("{base}/.well-known/jwks.json");
        let file = self.config_file();
        crate::security::secret::write_private_file(&file, config_yaml(&self.settings).as_bytes())
            .map_err(|e| Error::config(format!("cannot write {}: {e}", file.display())))?;
        let mut env: Vec<(String, String)> = ["PATH", "HOME", "TZ", "LANG"]
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?)))
            .collect();
        if let Some(secret) = &self.hook_secret {
            env.push(("OPENNVR_HOOK_URL".into(), format!("{base}/hooks/mediamtx")));
            env.push(("OPENNVR_HOOK_SECRET".into(), secret.clone()));
        }
        let child = Child {
            binary: self.binary.clone(),
            config_file: file,
            log_file: self.dir.join("mediamtx.log"),
            env,
            plane,
            stop: self.stop.subscribe(),
            done: self.done_tx.take().ok_or_else(|| Error::internal("MediaMTX supervised twice"))?,
        };
        tracing::info!(
            binary = %child.binary.display(),
            config = %child.config_file.display(),
            log = %child.log_file.display(),
            api = %format!("127.0.0.1:{}", self.settings.api_port),
            "starting the supervised MediaMTX"
        );
        Ok(tokio::spawn(child.run()))
    }

    /// Stops MediaMTX (SIGTERM, then SIGKILL after a grace period) and waits for it.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(STOP_GRACE + Duration::from_secs(2), done.wait_for(|d| *d)).await;
    }
}

/// A directory only the server's user may enter.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| Error::config(format!("cannot create {}: {e}", dir.display())))
}

/// The supervision loop's side.
struct Child {
    binary: PathBuf,
    config_file: PathBuf,
    log_file: PathBuf,
    env: Vec<(String, String)>,
    plane: MediaPlane,
    stop: watch::Receiver<bool>,
    done: watch::Sender<bool>,
}

impl Child {
    fn report(&self, f: impl FnOnce(&mut ChildState)) {
        let (binary, config_file) = (self.binary.display().to_string(), self.config_file.display().to_string());
        self.plane.update(|s| {
            let state = s.supervised.get_or_insert_with(|| ChildState { binary, config_file, ..ChildState::default() });
            f(state);
        });
    }

    fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let log = open_log(&self.log_file, LOG_LIMIT)?;
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg(&self.config_file)
            .current_dir(self.config_file.parent().unwrap_or(Path::new("/")))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches the server, which stops it.
            .process_group(0)
            .kill_on_drop(true);
        crate::process::end_with_server(&mut cmd, nix::sys::signal::Signal::SIGTERM);
        cmd.spawn()
    }

    async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if *self.stop.borrow() {
                break;
            }
            self.report(|s| s.state = "starting".into());
            let began = tokio::time::Instant::now();
            match self.spawn() {
                Err(e) => {
                    tracing::error!(binary = %self.binary.display(), error = %e, "cannot start MediaMTX");
                    self.report(|s| s.last_exit = format!("cannot start: {e}"));
                }
                Ok(mut child) => {
                    let pid = child.id();
                    self.report(|s| {
                        s.state = "running".into();
                        s.pid = pid;
                    });
                    let ended = tokio::select! {
                        status = child.wait() => Some(status),
                        _ = self.stop.wait_for(|s| *s) => None,
                    };
                    let Some(status) = ended else {
                        terminate(&mut child).await;
                        break;
                    };
                    let exit = match status {
                        Ok(st) => st.to_string(),
                        Err(e) => e.to_string(),
                    };
                    if began.elapsed() >= STEADY {
                        backoff = FIRST_BACKOFF;
                    }
                    tracing::warn!(exit = %exit, log = %self.log_file.display(), "MediaMTX ended; restarting it in {backoff:?}");
                    self.report(|s| {
                        s.pid = None;
                        s.last_exit = exit;
                    });
                }
            }
            self.report(|s| {
                s.state = "restarting".into();
                s.restarts += 1;
            });
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.wait_for(|s| *s) => break,
            }
            backoff = (backoff * 2).min(LONGEST_BACKOFF);
        }
        self.report(|s| {
            s.state = "stopped".into();
            s.pid = None;
        });
        tracing::info!("the supervised MediaMTX stopped");
        let _ = self.done.send(true);
    }
}

/// MediaMTX's log, opened for appending (0600) at each start. Past `limit` bytes it is set aside as
/// `<name>.1` first, replacing the one before: the logs never take more than twice the limit.
fn open_log(path: &Path, limit: u64) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::metadata(path).is_ok_and(|m| m.len() > limit) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// SIGTERM, then SIGKILL if MediaMTX is still there after the grace period.
async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_set_aside_past_its_limit_and_appended_to_below_it() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("opennvr-log-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("mediamtx.log");
        let (earlier, set_aside) = (dir.join("mediamtx.log.1"), b"first run, past the limit\n");
        open_log(&log, 16).unwrap().write_all(set_aside).unwrap();
        assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
        // Past 16 bytes at the next start: set aside, and a new log begun.
        open_log(&log, 16).unwrap().write_all(b"second\n").unwrap();
        assert_eq!(std::fs::read(&earlier).unwrap(), set_aside);
        // Below the limit: appended to.
        open_log(&log, 16).unwrap().write_all(b"third\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "second\nthird\n");
        assert_eq!(std::fs::read(&earlier).unwrap(), set_aside, "the set-aside log is kept as it was");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn listeners_bind_where_the_server_listens() {
        assert_eq!(listen_at(Some("127.0.0.1".parse().unwrap()), 8554), "127.0.0.1:8554");
        assert_eq!(listen_at(Some("::1".parse().unwrap()), 8554), "[::1]:8554");
        assert_eq!(listen_at(None, 8554), ":8554");
    }

    #[test]
    fn a_public_url_names_the_port_of_its_listener() {
        assert_eq!(port_of(Some("http://nvr.example:18889"), DEFAULT_WEBRTC), 18889);
        assert_eq!(port_of(Some("https://nvr.example"), DEFAULT_WEBRTC), 443);
        assert_eq!(port_of(None, DEFAULT_WEBRTC), DEFAULT_WEBRTC);
    }
}
