//! Cache of revoked sessions, so checking a token never touches the database. It polls for new
//! revocations every second (staleness is bounded by that), and revocations made by this process
//! are visible at once.
use crate::clock::SharedClock;
use crate::error::Result;
use crate::store::Store;
use crate::store::sessions::SessionRow;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// How often the cache polls the database.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Revoked session ids, remembered as long as a token of theirs could still be valid.
#[derive(Clone)]
pub struct RevocationCache {
    store: Store,
    clock: SharedClock,
    keep_for: Duration,
    inner: Arc<RwLock<Inner>>,
}

struct Inner {
    revoked: HashMap<Uuid, DateTime<Utc>>,
    polled_until: DateTime<Utc>,
}

impl RevocationCache {
    /// A cache that forgets a revocation once `keep_for` (the access-token lifetime) has passed.
    pub fn new(store: Store, clock: SharedClock, keep_for: Duration) -> Self {
        let since = clock.now() - keep_for;
        Self {
            store,
            clock,
            keep_for,
            inner: Arc::new(RwLock::new(Inner { revoked: HashMap::new(), polled_until: since })),
        }
    }

    /// True when `session` has been revoked.
    pub fn is_revoked(&self, session: Uuid) -> bool {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).revoked.contains_key(&session)
    }

    /// Records revocations made by this process.
    pub fn insert(&self, sessions: &[Uuid]) {
        let now = self.clock.now();
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for s in sessions {
            inner.revoked.insert(*s, now);
        }
    }

    /// Loads revocations since the last poll and forgets those too old to matter.
    pub async fn poll(&self) -> Result<()> {
        let now = self.clock.now();
        // Overlap by a few seconds: a revocation committed late with an earlier timestamp is still seen.
        let since = self.inner.read().unwrap_or_else(|e| e.into_inner()).polled_until - Duration::seconds(5);
        let rows = self.store.run(move |c| SessionRow::revoked_since(c, since)).await?;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.revoked.extend(rows);
        let horizon = now - self.keep_for;
        inner.revoked.retain(|_, at| *at >= horizon);
        inner.polled_until = now;
        Ok(())
    }
}
