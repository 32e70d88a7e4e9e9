//! API keys as the authentication layer sees them: an in-memory copy of every key (keys are few),
//! looked up by the SHA-256 of the presented secret, so that authenticating a key never touches the
//! database. It polls for changes every second (revocations reach it within that staleness;
//! changes made by this process at once), and batches last-use times into one write now and then.
use crate::clock::SharedClock;
use crate::domain::{Permission, Role};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::store::Store;
use crate::store::api_keys::ApiKeyRow;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use uuid::Uuid;

/// Every API key secret starts with this, so the authentication layer tells keys from tokens.
pub const SECRET_PREFIX: &str = "nvr_ak_";

/// One key, as the authentication layer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub permissions: Vec<Permission>,
    pub cameras: Vec<Uuid>,
    pub step_up_methods: Vec<String>,
    pub creator: Uuid,
    pub creator_username: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

/// The SHA-256 under which a secret is stored.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new secret: the prefix and 256 random bits.
pub fn new_secret() -> String {
    use base64::Engine;
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(super::secret::random_bytes::<32>())
    )
}

impl CachedKey {
    /// The key of a row; `None` for a row this server cannot honour: a stored permission it does
    /// not know would otherwise drop out of the narrowing and widen the key to its whole role.
    fn of(row: &ApiKeyRow) -> Option<CachedKey> {
        let permissions = row.permissions.iter().map(|p| p.parse().ok()).collect::<Option<Vec<_>>>()?;
        Some(CachedKey {
            id: row.id,
            name: row.name.clone(),
            role: row.role,
            permissions,
            cameras: row.camera_ids.clone(),
            step_up_methods: row.step_up_methods.clone(),
            creator: row.created_by.unwrap_or_default(),
            creator_username: row.created_by_username.clone(),
            expires_at: row.expires_at,
            revoked: row.revoked_at.is_some() || row.created_by.is_none(),
        })
    }
}

/// The in-memory copy of the keys.
#[derive(Clone)]
pub struct ApiKeyCache {
    store: Store,
    clock: SharedClock,
    inner: Arc<RwLock<Inner>>,
    /// Last uses not written yet.
    uses: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<Vec<u8>, Arc<CachedKey>>,
    hash_of: HashMap<Uuid, Vec<u8>>,
    polled_until: Option<DateTime<Utc>>,
}

impl Inner {
    fn put(&mut self, row: &ApiKeyRow) {
        match CachedKey::of(row) {
            Some(key) => {
                self.hash_of.insert(row.id, row.secret_hash.clone());
                self.by_hash.insert(row.secret_hash.clone(), Arc::new(key));
            }
            None => {
                // Forget whatever was cached for it, so that it stops working rather than keep a
                // scope the row no longer says.
                if let Some(hash) = self.hash_of.remove(&row.id) {
                    self.by_hash.remove(&hash);
                }
                tracing::error!(key = %row.id, permissions = ?row.permissions, "API key with an unknown permission refused");
            }
        }
    }
}

impl ApiKeyCache {
    /// An empty cache; [`ApiKeyCache::poll`] fills it.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self { store, clock, inner: Arc::default(), uses: Arc::default() }
    }

    /// Loads keys changed since the last poll (every key the first time).
    pub async fn poll(&self) -> Result<()> {
        let now = self.clock.now();
        // Overlap by a few seconds: a change committed late with an earlier timestamp is still seen.
        let since = self.inner.read().unwrap_or_else(|e| e.into_inner()).polled_until.map(|t| t - Duration::seconds(5));
        let rows = self.store.run(move |c| ApiKeyRow::changed_since(c, since)).await?;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for row in &rows {
            inner.put(row);
        }
        inner.polled_until = Some(now);
        Ok(())
    }

    /// Takes a key this process created or changed, at once.
    pub fn put(&self, row: &ApiKeyRow) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).put(row);
    }

    /// Marks keys this process revoked, at once.
    pub fn revoked(&self, ids: &[Uuid], _at: DateTime<Utc>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if let Some(hash) = inner.hash_of.get(id).cloned()
                && let Some(key) = inner.by_hash.get(&hash)
            {
                let mut key = (**key).clone();
                key.revoked = true;
                inner.by_hash.insert(hash, Arc::new(key));
            }
        }
    }

    /// The key behind `secret`, if it is live; its use is noted for the next flush. Unknown,
    /// revoked and expired keys answer UNAUTHENTICATED.
    pub fn authenticate(&self, secret: &str) -> Result<Arc<CachedKey>> {
        let key = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_hash
            .get(&secret_hash(secret))
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "invalid API key"))?;
        if key.revoked {
            return Err(Error::new(ErrorKind::Unauthenticated, "the API key has been revoked")
                .with_reason(reason::CREDENTIAL_REVOKED));
        }
        let now = self.clock.now();
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err(
                Error::new(ErrorKind::Unauthenticated, "the API key has expired").with_reason(reason::TOKEN_EXPIRED)
            );
        }
        self.uses.lock().unwrap_or_else(|e| e.into_inner()).insert(key.id, now);
        Ok(key)
    }

    /// Writes the last uses noted since the previous flush, in one transaction.
    pub async fn flush_uses(&self) -> Result<()> {
        let uses: Vec<(Uuid, DateTime<Utc>)> =
            std::mem::take(&mut *self.uses.lock().unwrap_or_else(|e| e.into_inner())).into_iter().collect();
        if uses.is_empty() {
            return Ok(());
        }
        let retry = uses.clone();
        let written = self.store.transaction(move |c| ApiKeyRow::record_uses(c, &uses)).await;
        if written.is_err() {
            // Keep them for the next flush (newer uses win).
            let mut pending = self.uses.lock().unwrap_or_else(|e| e.into_inner());
            for (id, at) in retry {
                pending.entry(id).or_insert(at);
            }
        }
        written
    }
}
