//! The media plane as the rest of the server sees it: the state of MediaMTX's reconciliation
//! (reachable, last sync, pending changes, failures), the wake-up for the reconciler when a camera
//! changes, and MediaMTX's runtime view of its paths (cached for a few seconds).
use super::mediamtx::{MediaMtx, MtxError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A `/v3/paths/list` answer and when it came.
type Listing = (Vec<super::mediamtx::RuntimePath>, tokio::time::Instant);

/// How old a runtime listing may be for status answers.
const RECENT: Duration = Duration::from_secs(3);

/// How the media plane is doing, as the API, `/readyz` and `/metrics` report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncState {
    /// Whether a media plane is configured at all.
    pub configured: bool,
    /// Whether the last attempt reached MediaMTX.
    pub reachable: bool,
    /// End of the last complete convergence.
    pub last_sync: Option<DateTime<Utc>>,
    /// Changes known but not yet applied (cameras whose path differs or is missing).
    pub pending: usize,
    pub last_error: Option<String>,
    /// MediaMTX's `started` as last seen.
    pub started: Option<String>,
    pub version: Option<String>,
    /// Config writes sent since start.
    pub writes: u64,
    /// Paths per camera that could not be applied, with MediaMTX's reason.
    pub failed: BTreeMap<String, String>,
    /// The MediaMTX this server runs itself, if it does.
    pub supervised: Option<ChildState>,
    /// Without a media plane: why, and how to get one.
    pub absent_reason: Option<String>,
}

/// A MediaMTX the server supervises, as last seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChildState {
    pub binary: String,
    pub config_file: String,
    /// `starting`, `running`, `restarting` (after it ended) or `stopped`.
    pub state: String,
    pub pid: Option<u32>,
    /// Starts after the first.
    pub restarts: u32,
    /// How the last run ended (`exit status: 1`, `signal: 9 (SIGKILL)`), if one did.
    pub last_exit: String,
}

/// What one convergence did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub added: usize,
    pub patched: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// Handle to the media plane: wakes the reconciler, reads its state, asks MediaMTX about paths.
#[derive(Clone, Default)]
pub struct MediaPlane {
    wake: Arc<Notify>,
    state: Arc<Mutex<SyncState>>,
    client: Option<MediaMtx>,
    /// Paths seen available at least once since start (so that "offline" differs from "connecting").
    seen_online: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Inbound bitrate per path (bits per second), from the status watcher's polls.
    rates: Arc<Mutex<std::collections::HashMap<String, i64>>>,
    /// The last answer of `/v3/paths/list` and when it came (the status watcher refreshes it).
    last_paths: Arc<Mutex<Option<Listing>>>,
    /// Wakes the status watcher at once (a MediaMTX availability hook).
    poked: Arc<Notify>,
    /// Counts camera changes, so that a change made during a convergence stays pending after it.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl MediaPlane {
    /// The plane of `client` (`None`: no MediaMTX configured).
    pub fn new(client: Option<MediaMtx>) -> MediaPlane {
        let plane = MediaPlane { client, ..MediaPlane::default() };
        let configured = plane.client.is_some();
        plane.update(|s| s.configured = configured);
        plane
    }

    /// The runtime state of every path, as MediaMTX reports it now; `None` without a media plane.
    pub async fn runtimes(&self) -> std::result::Result<Option<Vec<super::mediamtx::RuntimePath>>, MtxError> {
        let Some(client) = &self.client else { return Ok(None) };
        let paths = client.paths().await?;
        if let Ok(mut last) = self.last_paths.lock() {
            *last = Some((paths.clone(), tokio::time::Instant::now()));
        }
        if let Ok(mut seen) = self.seen_online.lock() {
            seen.extend(paths.iter().filter(|p| p.available).map(|p| p.name.clone()));
        }
        Ok(Some(paths))
    }

    /// Look at MediaMTX now rather than at the next poll: it says a path's availability changed, or
    /// someone's rights shrank (their open viewing sessions are judged again).
    pub fn poke(&self) {
        self.poked.notify_one();
    }

    /// The inbound bitrate of `path` over the last poll (bits per second; 0 when unknown).
    pub fn bitrate(&self, path: &str) -> i64 {
        self.rates.lock().ok().and_then(|r| r.get(path).copied()).unwrap_or(0)
    }

    /// The runtime paths as seen within the last few seconds (the status watcher polls every 2 s
    /// and on hooks), asking MediaMTX only when nothing that recent is known: status RPCs do not each
    /// cost MediaMTX a full listing.
    pub async fn recent_runtimes(&self) -> std::result::Result<Option<Vec<super::mediamtx::RuntimePath>>, MtxError> {
        if self.client.is_none() {
            return Ok(None);
        }
        let cached = self
            .last_paths
            .lock()
            .ok()
            .and_then(|l| l.as_ref().filter(|(_, at)| at.elapsed() < RECENT).map(|(p, _)| p.clone()));
        match cached {
            Some(paths) if self.state().reachable => Ok(Some(paths)),
            _ => self.runtimes().await,
        }
    }

    /// Whether `path` was ever seen available since start.
    pub fn seen_online(&self, path: &str) -> bool {
        self.seen_online.lock().map(|s| s.contains(path)).unwrap_or(false)
    }

    /// A camera changed: converge now.
    pub fn changed(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut s) = self.state.lock() {
            s.pending = s.pending.max(1);
        }
        self.wake.notify_one();
    }

    /// How many camera changes were announced so far (a convergence compares it before and after).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until a camera change is announced.
    pub async fn changes(&self) {
        self.wake.notified().await
    }

    /// Waits until someone asks for a look at MediaMTX now ([`MediaPlane::poke`]).
    pub async fn poked(&self) {
        self.poked.notified().await
    }

    /// Replaces the inbound bitrates per path.
    pub fn set_bitrates(&self, rates: std::collections::HashMap<String, i64>) {
        if let Ok(mut r) = self.rates.lock() {
            *r = rates;
        }
    }

    /// The current state.
    pub fn state(&self) -> SyncState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Changes the state (the reconciler and the status watcher report through this).
    pub fn update(&self, f: impl FnOnce(&mut SyncState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }
}
