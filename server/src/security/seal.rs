//! Envelope encryption of stored secrets (BYOK): each secret gets a fresh data key under AES-256-GCM,
//! bound to its owning row by associated data; the data key is wrapped by the operator's master key.
//!
//! Sealed layout (version 1): `1 | wrap_nonce(12) | wrapped_dek(48) | data_nonce(12) | ciphertext+tag`.
//! The master key id is stored beside the blob (`kek_id` columns) so rotation can find what to rewrap.
use crate::error::{Error, ErrorKind, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const NONCE: usize = 12;
const WRAPPED_DEK: usize = 32 + 16;

/// A sealed secret and the id of the master key that wraps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub kek_id: String,
    pub blob: Vec<u8>,
}

/// The operator's key-encryption key: the current one, which seals, and any previous ones still
/// needed to open what they sealed until a rotation rewraps it.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    previous: std::sync::Arc<Vec<(String, Aes256Gcm)>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Wraps 32 key bytes. The id is derived from the key, so the same file always has the same id.
    pub fn new(bytes: &[u8; 32]) -> Self {
        Self { id: key_id(bytes), cipher: Aes256Gcm::new(bytes.into()), previous: Default::default() }
    }

    /// Adds previous master keys, which open (never seal) what they sealed.
    pub fn with_previous(mut self, keys: &[[u8; 32]]) -> Self {
        let previous: Vec<(String, Aes256Gcm)> =
            keys.iter().filter(|k| key_id(k) != self.id).map(|k| (key_id(k), Aes256Gcm::new(k.into()))).collect();
        self.previous = std::sync::Arc::new(previous);
        self
    }

    /// Ids of every key this can open with, current first.
    pub fn known_ids(&self) -> Vec<String> {
        std::iter::once(self.id.clone()).chain(self.previous.iter().map(|(id, _)| id.clone())).collect()
    }

    fn cipher_of(&self, kek_id: &str) -> Option<&Aes256Gcm> {
        if kek_id == self.id {
            return Some(&self.cipher);
        }
        self.previous.iter().find(|(id, _)| id == kek_id).map(|(_, c)| c)
    }

    /// The key id recorded beside every ciphertext it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` for the row identified by `owner` (e.g. `signing_keys/<kid>`).
    pub fn seal(&self, owner: &str, plaintext: &[u8]) -> Result<Sealed> {
        let dek: [u8; 32] = super::secret::random_bytes();
        let wrap_nonce: [u8; NONCE] = super::secret::random_bytes();
        let data_nonce: [u8; NONCE] = super::secret::random_bytes();
        let wrap_aad = self.wrap_aad(owner);
        let wrapped = self
            .cipher
            .encrypt(&Nonce::from(wrap_nonce), Payload { msg: &dek, aad: &wrap_aad })
            .map_err(|_| Error::internal("data key wrap failed"))?;
        let data = Aes256Gcm::new((&dek).into())
            .encrypt(&Nonce::from(data_nonce), Payload { msg: plaintext, aad: owner.as_bytes() })
            .map_err(|_| Error::internal("seal failed"))?;
        let mut blob = Vec::with_capacity(1 + NONCE + WRAPPED_DEK + NONCE + data.len());
        blob.push(VERSION);
        blob.extend_from_slice(&wrap_nonce);
        blob.extend_from_slice(&wrapped);
        blob.extend_from_slice(&data_nonce);
        blob.extend_from_slice(&data);
        Ok(Sealed { kek_id: self.id.clone(), blob })
    }

    /// Opens a secret sealed for `owner`. Fails if the master key differs, the blob was altered, or it
    /// was sealed for another row.
    pub fn open(&self, owner: &str, sealed: &Sealed) -> Result<Vec<u8>> {
        let (dek, data_nonce, data) = self.unwrap_dek(owner, sealed)?;
        Aes256Gcm::new((&dek).into())
            .decrypt(&nonce(data_nonce)?, Payload { msg: data, aad: owner.as_bytes() })
            .map_err(|_| refused(owner))
    }

    /// The same secret with its data key wrapped by the current master key (the data and its
    /// encryption are untouched); `None` when it is wrapped by the current key already.
    pub fn rewrap(&self, owner: &str, sealed: &Sealed) -> Result<Option<Sealed>> {
        if sealed.kek_id == self.id {
            return Ok(None);
        }
        let (dek, data_nonce, data) = self.unwrap_dek(owner, sealed)?;
        let wrap_nonce: [u8; NONCE] = super::secret::random_bytes();
        let wrapped = self
            .cipher
            .encrypt(&Nonce::from(wrap_nonce), Payload { msg: &dek, aad: &self.wrap_aad(owner) })
            .map_err(|_| Error::internal("data key wrap failed"))?;
        let mut blob = Vec::with_capacity(sealed.blob.len());
        blob.push(VERSION);
        blob.extend_from_slice(&wrap_nonce);
        blob.extend_from_slice(&wrapped);
        blob.extend_from_slice(data_nonce);
        blob.extend_from_slice(data);
        Ok(Some(Sealed { kek_id: self.id.clone(), blob }))
    }

    /// The data key of `sealed`, and its data nonce and ciphertext.
    fn unwrap_dek<'a>(&self, owner: &str, sealed: &'a Sealed) -> Result<([u8; 32], &'a [u8], &'a [u8])> {
        let Some(cipher) = self.cipher_of(&sealed.kek_id) else {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "secret of {owner} is sealed with master key {} but the configured master keys are {}",
                    sealed.kek_id,
                    self.known_ids().join(", ")
                ),
            ));
        };
        let b = &sealed.blob;
        if b.len() < 1 + NONCE + WRAPPED_DEK + NONCE + 16 || b[0] != VERSION {
            return Err(Error::new(ErrorKind::FailedPrecondition, format!("secret of {owner} is malformed")));
        }
        let (wrap_nonce, rest) = b[1..].split_at(NONCE);
        let (wrapped, rest) = rest.split_at(WRAPPED_DEK);
        let (data_nonce, data) = rest.split_at(NONCE);
        let aad = [sealed.kek_id.as_bytes(), b"\0", owner.as_bytes()].concat();
        let dek =
            cipher.decrypt(&nonce(wrap_nonce)?, Payload { msg: wrapped, aad: &aad }).map_err(|_| refused(owner))?;
        let dek: [u8; 32] = dek.try_into().map_err(|_| refused(owner))?;
        Ok((dek, data_nonce, data))
    }

    fn wrap_aad(&self, owner: &str) -> Vec<u8> {
        [self.id.as_bytes(), b"\0", owner.as_bytes()].concat()
    }
}

fn key_id(bytes: &[u8; 32]) -> String {
    let digest = Sha256::new_with_prefix(b"opennvr kek id\0").chain_update(bytes).finalize();
    format!("kek-{}", hex::encode(&digest[..8]))
}

fn refused(owner: &str) -> Error {
    Error::new(
        ErrorKind::FailedPrecondition,
        format!("secret of {owner} does not open: wrong master key, altered, or moved from another row"),
    )
}

fn nonce(bytes: &[u8]) -> Result<Nonce<aes_gcm::aead::consts::U12>> {
    let array: [u8; NONCE] = bytes.try_into().map_err(|_| Error::internal("bad nonce length"))?;
    Ok(Nonce::from(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_what_it_sealed_and_nothing_else() {
        let key = MasterKey::new(&[7u8; 32]);
        let sealed = key.seal("signing_keys/a", b"private").unwrap();
        assert_eq!(key.open("signing_keys/a", &sealed).unwrap(), b"private");
        assert!(!sealed.blob.windows(7).any(|w| w == b"private"));
        assert!(key.open("signing_keys/b", &sealed).is_err(), "moved to another row");
        let other = MasterKey::new(&[8u8; 32]);
        assert!(other.open("signing_keys/a", &sealed).is_err(), "other master key");
        let forged = Sealed { kek_id: other.id().to_owned(), blob: sealed.blob.clone() };
        assert!(other.open("signing_keys/a", &forged).is_err(), "relabelled kek id");
        let mut tampered = sealed.clone();
        let last = tampered.blob.len() - 1;
        tampered.blob[last] ^= 1;
        assert!(key.open("signing_keys/a", &tampered).is_err(), "altered ciphertext");
    }

    #[test]
    fn a_rotation_rewraps_without_touching_the_data() {
        let old = MasterKey::new(&[7u8; 32]);
        let sealed = old.seal("cameras/x/password", b"secret").unwrap();
        let new = MasterKey::new(&[9u8; 32]).with_previous(&[[7u8; 32]]);
        assert_eq!(new.open("cameras/x/password", &sealed).unwrap(), b"secret", "previous keys open");
        let rewrapped = new.rewrap("cameras/x/password", &sealed).unwrap().unwrap();
        assert_eq!(rewrapped.kek_id, new.id());
        assert_eq!(rewrapped.blob[1 + NONCE + WRAPPED_DEK..], sealed.blob[1 + NONCE + WRAPPED_DEK..]);
        assert!(new.rewrap("cameras/x/password", &rewrapped).unwrap().is_none(), "current already");
        let only_new = MasterKey::new(&[9u8; 32]);
        assert_eq!(only_new.open("cameras/x/password", &rewrapped).unwrap(), b"secret");
        assert!(only_new.open("cameras/x/password", &sealed).is_err(), "the old key is needed for old blobs");
        assert!(new.rewrap("cameras/y/password", &sealed).is_err(), "bound to its row");
    }
}
