//! Keys as audited use cases: the master key (BYOK: which key ids the stored secrets need, and the
//! online rotation that rewraps every secret's data key with the current master key) and the
//! maintenance of the token signing key ring (keys created ahead and retired, each recorded).
use super::Call;
use crate::clock::SharedClock;
use crate::domain::AuditRecord;
use crate::error::Result;
use crate::security::keyring::KeyRing;
use crate::security::seal::{MasterKey, Sealed};
use crate::store::Store;
use crate::store::secrets::{self, SEALED};
use std::collections::BTreeMap;

/// Rows rewrapped per transaction.
const BATCH: i32 = 200;

/// Where the secrets stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyStatus {
    pub current: String,
    pub loaded: Vec<String>,
    /// Stored secrets per master key id.
    pub references: BTreeMap<String, i64>,
}

/// Master-key use cases.
#[derive(Clone)]
pub struct KeyApp {
    pub store: Store,
    pub clock: SharedClock,
    pub master: MasterKey,
}

impl KeyApp {
    /// The current key, the loaded ones, and what each key id wraps.
    pub async fn status(&self) -> Result<MasterKeyStatus> {
        let references = self.store.run(secrets::references).await?;
        Ok(MasterKeyStatus { current: self.master.id().to_owned(), loaded: self.master.known_ids(), references })
    }

    /// Rewraps every secret not wrapped by the current key, in small transactions, while everything
    /// else goes on. Returns how many it rewrapped and the state afterwards; the call is audited.
    pub async fn rotate(&self, call: &Call) -> Result<(i64, MasterKeyStatus)> {
        let before = self.status().await?;
        let mut rewrapped = 0i64;
        for col in SEALED {
            // Rows locked by other work are skipped and taken by a later pass; a few passes settle it.
            for _pass in 0..5 {
                let mut moved_this_pass = 0;
                loop {
                    let master = self.master.clone();
                    let n = self
                        .store
                        .transaction(move |c| {
                            let rows = secrets::stale(c, &col, master.id(), BATCH)?;
                            let mut n = 0;
                            for row in &rows {
                                let sealed = Sealed { kek_id: row.kek.clone(), blob: row.blob.clone() };
                                if let Some(new) = master.rewrap(&col.owner(&row.id), &sealed)?
                                    && secrets::replace(c, &col, &row.id, &row.kek, &new.blob, &new.kek_id)?
                                {
                                    n += 1;
                                }
                            }
                            Ok((n, rows.len() as i32))
                        })
                        .await?;
                    moved_this_pass += n.0;
                    if n.1 < BATCH {
                        break;
                    }
                }
                rewrapped += moved_this_pass;
                if moved_this_pass == 0 {
                    break;
                }
            }
        }
        let after = self.status().await?;
        let old: Vec<&String> = before.references.keys().filter(|k| **k != after.current).collect();
        let remaining: i64 = after.references.iter().filter(|(k, _)| **k != after.current).map(|(_, n)| n).sum();
        let record = call
            .record("master_key", &after.current)
            .detail("rewrapped", rewrapped.to_string())
            .detail("from_key_ids", old.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
            .detail("remaining_with_old_keys", remaining.to_string());
        call.record_alone(&self.store, self.clock.now(), record).await?;
        Ok((rewrapped, after))
    }
}

/// Creates, activates and retires token signing keys as the ring's policy says, records each
/// creation and retirement in the trail in the same transaction, then reloads the ring.
pub async fn maintain_signing_keys(ring: &KeyRing, store: &Store, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    use base64::Engine;
    let r = ring.clone();
    let rows = crate::audit::commit(store, now, move |c| {
        let (rows, change) = r.rotate(c, now)?;
        let mut entries = Vec::new();
        if let Some(k) = change.created {
            entries.push(
                AuditRecord::system("signing_key.create", "signing_key", &k.kid)
                    .detail("activates_at", k.activates_at.to_rfc3339())
                    .detail("public_key", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&k.public_key)),
            );
        }
        entries.extend(change.retired.iter().map(|kid| AuditRecord::system("signing_key.retire", "signing_key", kid)));
        Ok((rows, entries))
    })
    .await?;
    ring.load(rows)
}
