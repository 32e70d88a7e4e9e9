//! The media plane: MediaMTX's Control API client, the desired state MediaMTX should hold (the
//! database says what; MediaMTX forgets everything on restart) and the plane's shared state. The
//! reconciler that applies it is an app-level worker (`app::reconciler`).
pub mod desired;
pub mod mediamtx;
pub mod plane;
pub mod probe;
pub mod supervisor;

use crate::error::{Error, Result};
use std::time::Duration;

/// Default `recordPath`: MediaMTX's layout, with the UTC offset in every file name.
pub const DEFAULT_RECORD_PATH: &str = "/recordings/%path/%Y-%m-%d_%H-%M-%S-%f%z";

/// A configured base URL (empty = unset): one of `schemes`, with a host, without a trailing slash.
pub fn base_url(v: Option<String>, schemes: &[&str], name: &str) -> Result<Option<String>> {
    match v.filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u) => match url::Url::parse(&u) {
            Ok(p) if schemes.contains(&p.scheme()) && p.host_str().is_some() => {
                Ok(Some(u.trim_end_matches('/').to_owned()))
            }
            _ => Err(Error::config(format!("{name}: {u:?} must be a {} URL", schemes.join(" or ")))),
        },
    }
}

/// How OpenNVR reaches and configures MediaMTX.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Control API base URL; `None` = no media plane configured.
    pub api_url: Option<String>,
    pub record_path: String,
    pub hook_command: String,
    /// Whether MediaMTX is given hook commands (only when the hook endpoint is on).
    pub hooks: bool,
    /// Convergence period without changes.
    pub sync_every: Duration,
    /// Public base URLs viewers use (WHEP, HLS, RTSP); `None` = not offered.
    pub whep_url: Option<String>,
    pub hls_url: Option<String>,
    pub rtsp_url: Option<String>,
    /// Where the server sees MediaMTX's recordings volume, if it does.
    pub recordings_dir: Option<std::path::PathBuf>,
    /// Period of the recording index's reconciliation with MediaMTX.
    pub recording_reconcile_every: Duration,
    /// Period of the retention passes.
    pub retention_every: Duration,
    /// MediaMTX's playback server as the server reaches it (exports), and as players reach it.
    pub playback_url: Option<String>,
    pub public_playback_url: Option<String>,
    /// Longest clip of one export.
    pub export_max: Duration,
    /// How long exported files are kept.
    pub export_keep: Duration,
    /// Largest file one export may write.
    pub export_max_bytes: u64,
}

impl MediaConfig {
    /// Checks the settings (the names in errors are the environment variables).
    pub fn new(
        api_url: Option<String>,
        record_path: Option<String>,
        hook_command: Option<String>,
        sync_every: Duration,
    ) -> Result<MediaConfig> {
        let api_url = api_url.filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_owned());
        if let Some(u) = &api_url
            && url::Url::parse(u).map(|p| !matches!(p.scheme(), "http" | "https")).unwrap_or(true)
        {
            return Err(Error::config(format!("OPENNVR_MEDIAMTX_API_URL: {u:?} is not an http(s) URL")));
        }
        let record_path = record_path.unwrap_or_else(|| DEFAULT_RECORD_PATH.to_owned());
        for part in ["%path", "%Y", "%m", "%d", "%H", "%M", "%S", "%f", "%z"] {
            if !record_path.contains(part) {
                return Err(Error::config(format!(
                    "OPENNVR_MEDIAMTX_RECORD_PATH must contain {part} (segment files must carry their time and UTC offset)"
                )));
            }
        }
        let hook_command = hook_command.unwrap_or_else(|| "/opennvr-hook".to_owned());
        if hook_command.trim().is_empty() || hook_command.contains(char::is_whitespace) {
            return Err(Error::config("OPENNVR_MEDIAMTX_HOOK_COMMAND must be one executable path, without arguments"));
        }
        Ok(MediaConfig {
            api_url,
            record_path,
            hook_command,
            hooks: false,
            sync_every,
            whep_url: None,
            hls_url: None,
            rtsp_url: None,
            recordings_dir: None,
            recording_reconcile_every: Duration::from_secs(300),
            retention_every: Duration::from_secs(600),
            playback_url: None,
            public_playback_url: None,
            export_max: Duration::from_secs(4 * 3600),
            export_keep: Duration::from_secs(7 * 86_400),
            export_max_bytes: DEFAULT_EXPORT_MAX_BYTES,
        })
    }

    /// Adds the public base URLs of live view.
    pub fn with_public_urls(
        mut self,
        whep: Option<String>,
        hls: Option<String>,
        rtsp: Option<String>,
    ) -> Result<MediaConfig> {
        self.whep_url = base_url(whep, &["http", "https"], "OPENNVR_MEDIAMTX_WHEP_URL")?;
        self.hls_url = base_url(hls, &["http", "https"], "OPENNVR_MEDIAMTX_HLS_URL")?;
        self.rtsp_url = base_url(rtsp, &["rtsp", "rtsps"], "OPENNVR_MEDIAMTX_RTSP_URL")?;
        Ok(self)
    }
}

impl MediaConfig {
    /// Adds where the recordings volume is seen (it must be a directory), the reconcile period and
    /// the retention period.
    pub fn with_recordings(
        mut self,
        dir: Option<std::path::PathBuf>,
        every: Duration,
        retention_every: Duration,
    ) -> Result<MediaConfig> {
        if let Some(d) = &dir
            && !d.is_dir()
        {
            return Err(Error::config(format!("OPENNVR_RECORDINGS_DIR: {} is not a directory", d.display())));
        }
        self.recordings_dir = dir;
        self.recording_reconcile_every = every;
        self.retention_every = retention_every;
        Ok(self)
    }
}

impl MediaConfig {
    /// Adds the playback server's URLs and the export limits.
    pub fn with_playback(
        mut self,
        internal: Option<String>,
        public: Option<String>,
        export_max: Duration,
        export_keep: Duration,
    ) -> Result<MediaConfig> {
        self.playback_url = base_url(internal, &["http", "https"], "OPENNVR_MEDIAMTX_PLAYBACK_URL")?;
        self.public_playback_url = base_url(public, &["http", "https"], "OPENNVR_MEDIAMTX_PUBLIC_PLAYBACK_URL")?;
        if export_max > Duration::from_secs(86_400) {
            return Err(Error::config("OPENNVR_EXPORT_MAX_SECS must be at most 86400 (24 h)"));
        }
        self.export_max = export_max;
        self.export_keep = export_keep;
        Ok(self)
    }

    /// Caps the file of one export at `max_bytes` (default [`DEFAULT_EXPORT_MAX_BYTES`]).
    pub fn with_export_cap(mut self, max_bytes: Option<u64>) -> Result<MediaConfig> {
        match max_bytes {
            None => {}
            Some(0) => return Err(Error::config("OPENNVR_EXPORT_MAX_BYTES must be more than 0")),
            Some(n) => self.export_max_bytes = n,
        }
        Ok(self)
    }
}

/// Largest file one export may write unless configured: 16 GiB (four hours of a busy 4K stream).
pub const DEFAULT_EXPORT_MAX_BYTES: u64 = 16 << 30;

/// Live view of one camera: a short-lived token MediaMTX verifies, and where to use it.
#[derive(Debug, Clone)]
pub struct LiveTicket {
    pub token: String,
    pub expires: chrono::DateTime<chrono::Utc>,
    pub whep_url: String,
    pub hls_url: String,
    pub rtsp_url: String,
}

/// The `sub` of the server's own read tokens (frame sources of AI adapters): never a user, and left
/// alone by the reaper of unwanted viewers.
pub const SERVER_READER: &str = "opennvr-inference";

/// Default and bounds of a viewer token's lifetime.
pub const VIEWER_TTL: chrono::Duration = chrono::Duration::minutes(5);
pub const VIEWER_TTL_MAX: chrono::Duration = chrono::Duration::hours(1);
pub const VIEWER_TTL_MIN: chrono::Duration = chrono::Duration::seconds(30);

/// A viewer token's lifetime as asked for (seconds, nanos), if asked for.
pub fn requested_ttl(ttl: Option<(i64, i32)>) -> Result<Option<chrono::Duration>> {
    match ttl {
        None => Ok(None),
        Some((seconds, nanos)) => chrono::Duration::try_seconds(seconds)
            .filter(|_| seconds >= 0 && nanos >= 0)
            .map(Some)
            .ok_or_else(|| crate::error::Error::invalid("ttl", "ttl must be a positive duration of at most an hour")),
    }
}

/// Issues viewer tokens: signed by the server's key ring, `read` on one path only.
#[derive(Clone)]
pub struct LiveView {
    pub keys: crate::security::keyring::KeyRing,
    pub clock: crate::clock::SharedClock,
    pub issuer: String,
    pub config: MediaConfig,
}

impl LiveView {
    /// A token for `viewer` (a user id) to do `action` (`read`, `playback`) on `path` only, for `ttl`
    /// (default 5 min, at least 30 s, at most 1 h). Returns it and its expiry.
    pub fn token(
        &self,
        path: &str,
        viewer: &str,
        action: &str,
        ttl: Option<chrono::Duration>,
    ) -> Result<(String, chrono::DateTime<chrono::Utc>)> {
        let ttl = ttl.unwrap_or(VIEWER_TTL);
        if ttl < VIEWER_TTL_MIN {
            return Err(crate::error::Error::invalid("ttl", "ttl must be at least 30 s"));
        }
        let ttl = ttl.min(VIEWER_TTL_MAX);
        let permission = [mediamtx::Permission { action, path }];
        mediamtx::sign(&self.keys, &self.clock, &self.issuer, viewer, &permission, ttl)
    }

    /// A ticket for `viewer` (a user id) to watch `path` for `ttl` (default 5 min, at most 1 h).
    pub fn ticket(&self, path: &str, viewer: &str, ttl: Option<chrono::Duration>) -> Result<LiveTicket> {
        let (token, expires) = self.token(path, viewer, "read", ttl)?;
        let url = |base: &Option<String>, suffix: &str| {
            base.as_ref().map(|b| format!("{b}/{path}{suffix}")).unwrap_or_default()
        };
        Ok(LiveTicket {
            token,
            expires,
            whep_url: url(&self.config.whep_url, "/whep"),
            hls_url: url(&self.config.hls_url, "/index.m3u8"),
            rtsp_url: url(&self.config.rtsp_url, ""),
        })
    }
}
