//! A strict emulator of MediaMTX's Control API v3 (release v1.20.1), for OpenNVR's tests: MediaMTX
//! itself cannot run on the machines the tests run on.
//!
//! Strict means: request bodies are checked against `PathConf` in MediaMTX's own `openapi.yaml`
//! (unknown fields refused, as MediaMTX does although the file does not say so), the validation rules
//! and status codes of `CONTRACT.md` apply, every call must carry a JWT with the `api` permission that
//! verifies against the configured JWKS, config GETs return full entries (defaults from MediaMTX's own
//! `mediamtx.yml`) with passwords redacted, and unknown routes answer plain-text 404.
//!
//! Tests can restart it (a new `started`, API-made config gone), take it down and up again, make every
//! config write slow (MediaMTX reloads its configuration on each), and flip paths available.
mod api;
mod auth;
mod config_file;
mod control;
mod playback;
mod recordings;
mod schema;
mod sessions;
mod test_controls;

pub use config_file::ConfigFile;
pub use control::Write;
pub use sessions::{Protocol, Session};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control::Runtime;
use schema::Schema;

/// The MediaMTX version emulated.
pub const VERSION: &str = "v1.20.1";

struct Inner {
    schema: Arc<Schema>,
    started: DateTime<Utc>,
    /// Path configs added through the API (the file defines only `all_others`).
    paths: BTreeMap<String, Map<String, Value>>,
    runtime: BTreeMap<String, Runtime>,
    writes: Vec<Write>,
    write_delay: Duration,
    jwks_url: Option<String>,
    jwks: Option<jsonwebtoken::jwk::JwkSet>,
    issuer: Option<String>,
    audience: Option<String>,
    requests: u64,
    /// Readers by session id.
    sessions: BTreeMap<String, Session>,
    /// Sessions ended through a kick endpoint, oldest first.
    kicked: Vec<Session>,
    /// MediaMTX's local time zone: how segment names without `%z` are read.
    time_zone: FixedOffset,
    /// How long each segment deletion takes.
    delete_delay: Duration,
    /// Segment files deleted through the API, oldest first.
    deleted: Vec<std::path::PathBuf>,
    /// How long the playback server takes before it starts answering `/get` (cutting a clip).
    playback_delay: Duration,
}

/// A running emulator.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Mutex<Inner>>,
    addr: SocketAddr,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// How the emulator checks the API JWT.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `authJWTJWKS`: where the signing keys are. `None` = no authentication (never in OpenNVR's tests
    /// of the client; for the emulator's own checks only).
    pub jwks_url: Option<String>,
    /// `authJWTIssuer`, `authJWTAudience`.
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    match s.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Emulator {
    /// Starts an emulator on a free loopback port.
    pub async fn start(auth: AuthConfig) -> Result<Emulator, String> {
        Emulator::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), auth).await
    }

    /// Starts an emulator whose Control API listens on `address`.
    pub async fn start_at(address: SocketAddr, auth: AuthConfig) -> Result<Emulator, String> {
        let schema = schema::load_schema()?;
        let inner = Inner {
            schema: Arc::new(schema),
            started: Utc::now(),
            paths: BTreeMap::new(),
            runtime: BTreeMap::new(),
            writes: Vec::new(),
            write_delay: Duration::ZERO,
            jwks_url: auth.jwks_url,
            jwks: None,
            issuer: auth.issuer,
            audience: auth.audience,
            requests: 0,
            sessions: BTreeMap::new(),
            kicked: Vec::new(),
            time_zone: FixedOffset::east_opt(0).ok_or("no UTC offset")?,
            delete_delay: Duration::ZERO,
            deleted: Vec::new(),
            playback_delay: Duration::ZERO,
        };
        let listener =
            tokio::net::TcpListener::bind(address).await.map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let emulator = Emulator { inner: Arc::new(Mutex::new(inner)), addr, server: Arc::new(Mutex::new(None)) };
        emulator.serve(listener);
        Ok(emulator)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = router(self.inner.clone());
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        if let Ok(mut s) = self.server.lock() {
            *s = Some(handle);
        }
    }

    /// Serves the same routes on `address` too (MediaMTX's playback server has its own listener).
    pub async fn also_listen(&self, address: SocketAddr) -> Result<(), String> {
        let listener =
            tokio::net::TcpListener::bind(address).await.map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let app = router(self.inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .merge(control::routes())
        .merge(auth::routes())
        .merge(sessions::routes())
        .merge(recordings::routes())
        .merge(playback::routes())
        .fallback(any(|| async { (StatusCode::NOT_FOUND, "404 page not found").into_response() }))
        .with_state(state)
}
