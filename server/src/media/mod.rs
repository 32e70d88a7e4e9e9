//! The media plane: MediaMTX's Control API client and the reconciler that makes MediaMTX hold what
//! the database says (the database is the desired state; MediaMTX forgets everything on restart).
pub mod mediamtx;
pub mod reconciler;

use crate::config::config_error;
use crate::error::Result;
use std::time::Duration;

/// Default `recordPath`: MediaMTX's layout, with the UTC offset in every file name.
pub const DEFAULT_RECORD_PATH: &str = "/recordings/%path/%Y-%m-%d_%H-%M-%S-%f%z";

/// How OpenNVR reaches and configures MediaMTX.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Control API base URL; `None` = no media plane configured.
    pub api_url: Option<String>,
    pub record_path: String,
    pub hook_command: String,
    /// Convergence period without changes.
    pub sync_every: Duration,
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
            return Err(config_error(format!("OPENNVR_MEDIAMTX_API_URL: {u:?} is not an http(s) URL")));
        }
        let record_path = record_path.unwrap_or_else(|| DEFAULT_RECORD_PATH.to_owned());
        for part in ["%path", "%Y", "%m", "%d", "%H", "%M", "%S", "%f", "%z"] {
            if !record_path.contains(part) {
                return Err(config_error(format!(
                    "OPENNVR_MEDIAMTX_RECORD_PATH must contain {part} (segment files must carry their time and UTC offset)"
                )));
            }
        }
        let hook_command = hook_command.unwrap_or_else(|| "/opennvr-hook".to_owned());
        if hook_command.trim().is_empty() || hook_command.contains(char::is_whitespace) {
            return Err(config_error("OPENNVR_MEDIAMTX_HOOK_COMMAND must be one executable path, without arguments"));
        }
        Ok(MediaConfig { api_url, record_path, hook_command, sync_every })
    }
}
