//! What tests drive the emulator with: restarts, outages, slow writes and deletions, paths made
//! available, viewers opened, and the logs of what the API was asked to do.
use chrono::{FixedOffset, Utc};
use serde_json::{Map, Value};
use std::time::Duration;

use crate::auth::{grants, verify};
use crate::control::{Runtime, Write};
use crate::sessions::{Protocol, Session};
use crate::{Emulator, lock};

impl Emulator {
    /// MediaMTX restarted: a new `started`, every API-made path config gone, nothing available.
    pub fn restart(&self) {
        let mut g = lock(&self.inner);
        g.started = Utc::now().max(g.started + chrono::Duration::milliseconds(1));
        g.paths.clear();
        g.runtime.clear();
        g.sessions.clear();
        g.jwks = None;
    }

    /// MediaMTX goes away: connections are refused until [`Emulator::up`].
    pub fn down(&self) {
        if let Ok(mut s) = self.server.lock()
            && let Some(h) = s.take()
        {
            h.abort();
        }
    }

    /// MediaMTX is back on the same port (as a fresh process: see [`Emulator::restart`] for the state).
    pub async fn up(&self) -> Result<(), String> {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
        socket.bind(self.addr).map_err(|e| e.to_string())?;
        let listener = socket.listen(1024).map_err(|e| e.to_string())?;
        self.serve(listener);
        Ok(())
    }

    /// Points `authJWTJWKS` elsewhere (the server under test starts after the emulator).
    pub fn set_jwks_url(&self, url: &str) {
        let mut g = lock(&self.inner);
        g.jwks_url = Some(url.to_owned());
        g.jwks = None;
    }

    /// Every config write takes this long before it answers (MediaMTX reloads its configuration).
    pub fn set_write_delay(&self, d: Duration) {
        lock(&self.inner).write_delay = d;
    }

    /// Marks a path's source available or not (as MediaMTX reports once the camera delivers media).
    pub fn set_available(&self, name: &str, available: bool) {
        let mut g = lock(&self.inner);
        if g.paths.contains_key(name) {
            let r = g.runtime.entry(name.to_owned()).or_default();
            r.available = available;
            r.available_time = available.then(Utc::now);
            if !available {
                // Readers go with the source.
                g.sessions.retain(|_, s| s.path != name);
            }
        }
    }

    /// A viewer opens `path` over `protocol` with `token` (a JWT, as the Bearer header or the RTSP
    /// password carries it), as MediaMTX admits readers: the token must verify against the JWKS
    /// (issuer, audience, times) and grant `read` on that path, and the path must be available.
    /// Returns the session id.
    pub async fn open_session(&self, protocol: Protocol, path: &str, token: &str) -> Result<String, String> {
        let claims = verify(&self.inner, token).await.map_err(|_| "authentication error".to_owned())?;
        if !grants(&claims, "read", path) {
            return Err("authentication error: user doesn't have permission to perform action".into());
        }
        let mut g = lock(&self.inner);
        if !g.runtime.get(path).is_some_and(|r| r.available) {
            return Err(format!("no stream is available on path '{path}'"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let user = claims.get("sub").and_then(Value::as_str).unwrap_or("").to_owned();
        let session = Session { id: id.clone(), protocol, path: path.to_owned(), user, created: Utc::now() };
        g.sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// The playback server takes `d` before it answers a `/get` (a long clip being cut).
    pub fn set_playback_delay(&self, d: Duration) {
        lock(&self.inner).playback_delay = d;
    }

    /// Every segment deletion takes this long before it answers.
    pub fn set_delete_delay(&self, d: Duration) {
        lock(&self.inner).delete_delay = d;
    }

    /// The segment files deleted through `/v3/recordings/deletesegment`, oldest first.
    pub fn deleted_segments(&self) -> Vec<std::path::PathBuf> {
        lock(&self.inner).deleted.clone()
    }

    /// Runs MediaMTX in another time zone (segment names without `%z` are local time).
    pub fn set_time_zone(&self, offset: FixedOffset) {
        lock(&self.inner).time_zone = offset;
    }

    /// The open viewer sessions.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.inner).sessions.values().cloned().collect()
    }

    /// The sessions ended through the kick endpoints, oldest first.
    pub fn kicked(&self) -> Vec<Session> {
        lock(&self.inner).kicked.clone()
    }

    /// Adds a path config as if written in `mediamtx.yml` by someone else (not OpenNVR's).
    pub fn add_foreign_path(&self, name: &str, conf: Map<String, Value>) {
        let mut g = lock(&self.inner);
        g.paths.insert(name.to_owned(), conf);
        g.runtime.insert(name.to_owned(), Runtime::default());
    }

    /// The stored config of `name` (as sent, without defaults), if any.
    pub fn path(&self, name: &str) -> Option<Map<String, Value>> {
        lock(&self.inner).paths.get(name).cloned()
    }

    /// Names of the configured paths.
    pub fn path_names(&self) -> Vec<String> {
        lock(&self.inner).paths.keys().cloned().collect()
    }

    /// Every accepted config write, oldest first.
    pub fn writes(&self) -> Vec<Write> {
        lock(&self.inner).writes.clone()
    }

    /// Forgets the write log.
    pub fn clear_writes(&self) {
        lock(&self.inner).writes.clear();
    }

    /// Number of authenticated API requests served.
    pub fn requests(&self) -> u64 {
        lock(&self.inner).requests
    }
}
