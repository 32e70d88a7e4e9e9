//! Rows the request path reads on almost every call — whether the camera a call names exists, a
//! person's camera grants, the caller's own account and session — remembered for at most
//! [`FRESH_FOR`], and forgotten the moment this process commits an audited change (every change made
//! through the API is audited). A change committed by another server process on the same database is
//! seen within [`FRESH_FOR`]: the same bound as a session revoked elsewhere. Reads that decide a
//! write do not come from here; they lock the rows they read.
use super::cameras::{CameraGrantRow, CameraRow};
use super::credentials::FactorSummary;
use super::sessions::SessionRow;
use super::users::UserRow;
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The longest a remembered row is used.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries one memo holds at most; past that, stale ones go, then all.
const MAX_ENTRIES: usize = 4096;

/// When a read began: rows read after it are as new as this stamp.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    at: Instant,
    changes: u64,
}

/// The caller's own account, as WhoAmI shows it.
pub type Account = (UserRow, SessionRow, FactorSummary);

/// The remembered rows.
#[derive(Default)]
pub struct Recent {
    /// Audited changes this process has committed.
    changes: AtomicU64,
    /// Whether each camera exists (not deleted).
    cameras: Memo<Uuid, bool>,
    /// Each person's grants that were live when read.
    grants: Memo<Uuid, Arc<Vec<CameraGrantRow>>>,
    /// Accounts, by session.
    accounts: Memo<Uuid, Arc<Account>>,
}

impl Recent {
    /// The stamp of a read beginning now.
    pub fn stamp(&self) -> Stamp {
        Stamp { at: Instant::now(), changes: self.changes.load(Ordering::SeqCst) }
    }

    /// Forgets everything: this process committed an audited change.
    pub(super) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether camera `id` exists and is not deleted.
    pub fn camera_exists(&self, c: &mut PgConnection, id: Uuid) -> Result<bool> {
        let stamp = self.stamp();
        if let Some(exists) = self.cameras.get(&id, stamp) {
            return Ok(exists);
        }
        let exists = CameraRow::find(c, id)?.is_some();
        self.remember(&self.cameras, id, exists, stamp);
        Ok(exists)
    }

    /// The live grant of `user` on `camera` at `now`, if any.
    pub fn live_grant(
        &self,
        c: &mut PgConnection,
        camera: Uuid,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<CameraGrantRow>> {
        let stamp = self.stamp();
        let grants = match self.grants.get(&user, stamp) {
            Some(grants) => grants,
            None => {
                let grants = Arc::new(CameraGrantRow::live_of(c, user, now)?);
                self.remember(&self.grants, user, grants.clone(), stamp);
                grants
            }
        };
        // A grant live when read may have expired since.
        Ok(grants.iter().find(|g| g.camera_id == camera && g.expire_at.is_none_or(|t| t > now)).cloned())
    }

    /// The account of `session`, when read recently.
    pub fn account(&self, session: Uuid) -> Option<Arc<Account>> {
        self.accounts.get(&session, self.stamp())
    }

    /// Remembers the account of `session`, read since `stamp`.
    pub fn remember_account(&self, session: Uuid, account: Arc<Account>, stamp: Stamp) {
        self.remember(&self.accounts, session, account, stamp);
    }

    /// Remembers `value`, read since `stamp`, unless a change committed since.
    fn remember<K: Eq + Hash, V: Clone>(&self, memo: &Memo<K, V>, key: K, value: V, stamp: Stamp) {
        if stamp.changes == self.changes.load(Ordering::SeqCst) {
            memo.put(key, value, stamp);
        }
    }
}

/// One kind of remembered row.
struct Memo<K, V> {
    entries: Mutex<HashMap<K, (Stamp, V)>>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// The value of `key`, when read less than [`FRESH_FOR`] before `now` and no change committed since.
    fn get(&self, key: &K, now: Stamp) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (stamp, value) = entries.get(key)?;
        (stamp.changes == now.changes && now.at.saturating_duration_since(stamp.at) < FRESH_FOR).then(|| value.clone())
    }

    fn put(&self, key: K, value: V, stamp: Stamp) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (s, _)| now.saturating_duration_since(s.at) < FRESH_FOR);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (stamp, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_value_is_forgotten_after_a_change_or_a_second() {
        let recent = Recent::default();
        let stamp = recent.stamp();
        recent.remember(&recent.cameras, Uuid::nil(), true, stamp);
        assert_eq!(recent.cameras.get(&Uuid::nil(), recent.stamp()), Some(true));
        // Older than FRESH_FOR: not used.
        let later = Stamp { at: stamp.at + FRESH_FOR, changes: stamp.changes };
        assert_eq!(recent.cameras.get(&Uuid::nil(), later), None);
        recent.changed();
        assert_eq!(recent.cameras.get(&Uuid::nil(), recent.stamp()), None);
    }

    #[test]
    fn a_value_read_before_a_change_is_not_remembered() {
        let recent = Recent::default();
        let stamp = recent.stamp();
        recent.changed();
        recent.remember(&recent.cameras, Uuid::nil(), true, stamp);
        assert_eq!(recent.cameras.get(&Uuid::nil(), recent.stamp()), None);
    }

    #[test]
    fn a_full_memo_keeps_its_size() {
        let memo: Memo<u32, u32> = Memo::default();
        let stamp = Stamp { at: Instant::now(), changes: 0 };
        for i in 0..(MAX_ENTRIES as u32 * 2 + 1) {
            memo.put(i, i, stamp);
        }
        assert!(memo.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert_eq!(memo.get(&(MAX_ENTRIES as u32 * 2), stamp), Some(MAX_ENTRIES as u32 * 2));
    }
}
