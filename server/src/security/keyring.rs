//! The Ed25519 signing key ring: keys are stored sealed, published in the JWKS for a while before
//! they sign, and stay published until every token they signed has expired.
use super::seal::{MasterKey, Sealed};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::keys::SigningKeyRow;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use diesel::PgConnection;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use std::sync::{Arc, RwLock};

/// What the key ring's timing is.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// How long a new key is published before it signs.
    pub publish_ahead: Duration,
    /// Age at which the signing key is replaced.
    pub rotate_after: Duration,
    /// The longest lifetime of any token a key signs.
    pub max_token_ttl: Duration,
}

/// A key one maintenance pass created.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub kid: String,
    pub activates_at: DateTime<Utc>,
    pub public_key: Vec<u8>,
}

/// What one maintenance pass changed.
#[derive(Debug, Clone, Default)]
pub struct RingChange {
    pub created: Option<CreatedKey>,
    /// Keys no longer published (every token they signed has expired), now deleted.
    pub retired: Vec<String>,
}

/// A key in memory, opened.
pub struct RingKey {
    pub kid: String,
    pub public: [u8; 32],
    pub activates_at: DateTime<Utc>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The in-memory ring, loaded from the database by [`KeyRing::load`].
#[derive(Clone)]
pub struct KeyRing {
    master: MasterKey,
    clock: SharedClock,
    policy: KeyPolicy,
    purpose: &'static str,
    keys: Arc<RwLock<Arc<Vec<RingKey>>>>,
}

impl KeyRing {
    /// A ring for access tokens, empty until [`KeyRing::load`] runs.
    pub fn new(master: MasterKey, clock: SharedClock, policy: KeyPolicy) -> Self {
        Self { master, clock, policy, purpose: "access", keys: Arc::new(RwLock::new(Arc::new(Vec::new()))) }
    }

    fn snapshot(&self) -> Arc<Vec<RingKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Creates and retires keys as the policy says, inside the caller's transaction `c` and under
    /// the ring's lock. Returns the keys kept (load them with [`KeyRing::load`] once committed) and
    /// what changed, for the caller to record.
    pub fn rotate(&self, c: &mut PgConnection, now: DateTime<Utc>) -> Result<(Vec<SigningKeyRow>, RingChange)> {
        let policy = self.policy;
        SigningKeyRow::lock_ring(c)?;
        let mut rows = SigningKeyRow::all(c, self.purpose)?;
        let signing = rows.iter().rev().find(|k| k.activates_at <= now);
        let pending = rows.iter().any(|k| k.activates_at > now);
        let new_key_at = match signing {
            // Nothing can have cached a JWKS without any key: the very first key signs at once.
            None => Some(now),
            Some(k) if !pending && now - k.activates_at >= policy.rotate_after - policy.publish_ahead => {
                Some(now + policy.publish_ahead)
            }
            Some(_) => None,
        };
        let mut change = RingChange::default();
        if let Some(activates_at) = new_key_at {
            let row = generate(&self.master, self.purpose, now, activates_at)?;
            row.insert(c)?;
            change.created =
                Some(CreatedKey { kid: row.kid.clone(), activates_at, public_key: row.public_key.clone() });
            rows.push(row);
            rows.sort_by_key(|r| r.activates_at);
        }
        let expired: Vec<String> = unpublished(&rows, now, policy.max_token_ttl);
        if !expired.is_empty() {
            SigningKeyRow::delete(c, &expired)?;
            rows.retain(|r| !expired.contains(&r.kid));
            change.retired = expired;
        }
        Ok((rows, change))
    }

    /// Opens `rows` and makes them the ring.
    pub fn load(&self, rows: Vec<SigningKeyRow>) -> Result<()> {
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            keys.push(open(&self.master, row)?);
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// The key that signs now: the latest one whose activation has come.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String> {
        let now = self.clock.now();
        let keys = self.snapshot();
        let key = keys
            .iter()
            .rev()
            .find(|k| k.activates_at <= now)
            .ok_or_else(|| Error::internal("no active signing key"))?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(Error::internal)
    }

    /// Runs `f` with the decoding key of published key `kid`, if any.
    pub fn with_decoding_key<R>(&self, kid: &str, f: impl FnOnce(&DecodingKey) -> R) -> Option<R> {
        let now = self.clock.now();
        let keys = self.snapshot();
        let published = published_kids(&keys, now, self.policy.max_token_ttl);
        keys.iter().find(|k| k.kid == kid && published.contains(&k.kid.as_str())).map(|k| f(&k.decoding))
    }

    /// The JSON Web Key Set of every published key.
    pub fn jwks(&self) -> serde_json::Value {
        let now = self.clock.now();
        let keys = self.snapshot();
        let published = published_kids(&keys, now, self.policy.max_token_ttl);
        let jwks: Vec<serde_json::Value> = keys
            .iter()
            .filter(|k| published.contains(&k.kid.as_str()))
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": k.kid, "x": URL_SAFE_NO_PAD.encode(k.public),
                })
            })
            .collect();
        serde_json::json!({ "keys": jwks })
    }
}

/// A key is published from creation until its successor has signed for `max_ttl` (so every token it
/// signed has expired).
fn is_published(activates: &[DateTime<Utc>], i: usize, now: DateTime<Utc>, max_ttl: Duration) -> bool {
    // The successor that actually took over is the next key whose activation has come.
    match activates.get(i + 1) {
        Some(next) if *next <= now => now < *next + max_ttl,
        _ => true,
    }
}

fn published_kids(keys: &[RingKey], now: DateTime<Utc>, max_ttl: Duration) -> Vec<&str> {
    let activates: Vec<DateTime<Utc>> = keys.iter().map(|k| k.activates_at).collect();
    keys.iter()
        .enumerate()
        .filter(|(i, _)| is_published(&activates, *i, now, max_ttl))
        .map(|(_, k)| k.kid.as_str())
        .collect()
}

fn unpublished(rows: &[SigningKeyRow], now: DateTime<Utc>, max_ttl: Duration) -> Vec<String> {
    let activates: Vec<DateTime<Utc>> = rows.iter().map(|k| k.activates_at).collect();
    rows.iter()
        .enumerate()
        .filter(|(i, _)| !is_published(&activates, *i, now, max_ttl))
        .map(|(_, k)| k.kid.clone())
        .collect()
}

fn owner(kid: &str) -> String {
    format!("signing_keys/{kid}")
}

#[cfg(test)]
impl KeyRing {
    /// A ring with one key that signs at once, in memory only (unit tests).
    pub fn ephemeral(clock: SharedClock) -> KeyRing {
        let master = MasterKey::new(&super::secret::random_bytes::<32>());
        let policy = KeyPolicy {
            publish_ahead: Duration::zero(),
            rotate_after: Duration::days(30),
            max_token_ttl: Duration::hours(1),
        };
        let ring = KeyRing::new(master.clone(), clock.clone(), policy);
        let now = clock.now();
        ring.load(vec![generate(&master, "access", now, now).expect("a key")]).expect("the key opens");
        ring
    }
}

fn generate(
    master: &MasterKey,
    purpose: &str,
    now: DateTime<Utc>,
    activates_at: DateTime<Utc>,
) -> Result<SigningKeyRow> {
    let secret: [u8; 32] = super::secret::random_bytes();
    let signing = SigningKey::from_bytes(&secret);
    let public = signing.verifying_key().to_bytes();
    let kid = format!("{}-{}", now.format("%Y%m%d"), hex::encode(&public[..6]));
    let sealed = master.seal(&owner(&kid), &secret)?;
    Ok(SigningKeyRow {
        kid,
        purpose: purpose.to_owned(),
        public_key: public.to_vec(),
        private_key_sealed: sealed.blob,
        kek_id: sealed.kek_id,
        created_at: now,
        activates_at,
    })
}

fn open(master: &MasterKey, row: SigningKeyRow) -> Result<RingKey> {
    let secret = master.open(&owner(&row.kid), &Sealed { kek_id: row.kek_id, blob: row.private_key_sealed })?;
    let secret: [u8; 32] = secret.try_into().map_err(|_| Error::internal("signing key has the wrong length"))?;
    let signing = SigningKey::from_bytes(&secret);
    let public = signing.verifying_key().to_bytes();
    if public.as_slice() != row.public_key.as_slice() {
        return Err(Error::internal(format!("signing key {} does not match its public key", row.kid)));
    }
    let der = signing.to_pkcs8_der().map_err(Error::internal)?;
    Ok(RingKey {
        kid: row.kid,
        public,
        activates_at: row.activates_at,
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        decoding: DecodingKey::from_ed_der(&public),
    })
}
