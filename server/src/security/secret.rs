//! Loading and vetting of operator-provided secrets (the master key) and generation of the ones the
//! embedded default may create itself.
use crate::error::{Error, Result};
use base64::Engine;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Words that mark a secret someone forgot to change.
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "password",
    "secret",
    "example",
    "placeholder",
    "default",
    "admin",
    "postgres",
    "opennvr",
    "test",
    "xxxx",
    "todo",
    "replace",
];

/// True when `secret` is short, all one byte, or contains a well-known placeholder word.
pub fn is_placeholder(secret: &[u8]) -> bool {
    if secret.len() < 12 {
        return true;
    }
    if secret.iter().all(|b| *b == secret[0]) {
        return true;
    }
    let lower = String::from_utf8_lossy(secret).to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| lower.contains(p))
}

/// Decodes a master key file: 32 raw bytes, 64 hex digits, or base64 of 32 bytes.
pub fn parse_master_key(bytes: &[u8]) -> Option<[u8; 32]> {
    if bytes.len() == 32 {
        return bytes.try_into().ok();
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()?
    };
    decoded.try_into().ok()
}

/// Reads and vets the master key at `path`. `var` names the setting in error messages.
pub fn load_master_key(var: &str, path: &Path) -> Result<[u8; 32]> {
    // A key other accounts on the machine can read is a key already given away.
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::config(format!(
                "{var}: {} is readable or writable by other users (mode {mode:04o}); run `chmod 600 {}` (owned by the user the server runs as)",
                path.display(),
                path.display()
            )));
        }
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::config(format!("{var}: cannot read {}: {e}", path.display())))?;
    let key = parse_master_key(&bytes).ok_or_else(|| {
        Error::config(format!(
            "{var}: {} must hold exactly 32 random bytes (raw, 64 hex digits or base64)",
            path.display()
        ))
    })?;
    if weak_key(&key) {
        return Err(Error::config(format!(
            "{var}: {} holds a weak key (repeated bytes); generate one with `head -c 32 /dev/urandom`",
            path.display()
        )));
    }
    Ok(key)
}

/// A key with fewer than 8 distinct byte values is not random.
fn weak_key(key: &[u8; 32]) -> bool {
    let mut seen = [false; 256];
    key.iter().for_each(|b| seen[*b as usize] = true);
    seen.iter().filter(|s| **s).count() < 8
}

/// Writes `contents` to a new file readable only by its owner (0600). Fails if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Fills a fresh random array.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// The SHA-256 of a secret the server expects to be presented (setup token, hook secret): it keeps
/// only the digest and compares in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> SecretDigest {
        use sha2::Digest;
        SecretDigest(sha2::Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `presented` is the secret (compared by digest, in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let got = SecretDigest::of(presented);
        self.0.iter().zip(got.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}
