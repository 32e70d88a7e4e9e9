//! The one-time setup token that lets the first administrator be created.
use crate::error::{Error, ErrorKind, Result};
use crate::security::secret::SecretDigest;
use base64::Engine;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Name of the setup token file in the data directory.
pub const SETUP_TOKEN_FILE: &str = "setup-token";

/// Holds the hash of the setup token while no user exists.
#[derive(Clone, Default)]
pub struct SetupToken {
    hash: Arc<Mutex<Option<SecretDigest>>>,
    file: Arc<Mutex<Option<PathBuf>>>,
}

impl SetupToken {
    /// Writes a fresh token to `<data_dir>/setup-token` (mode 0600) and remembers its hash.
    pub fn issue(&self, data_dir: &Path) -> Result<PathBuf> {
        let token = format!(
            "nvr_setup_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::security::secret::random_bytes::<24>())
        );
        let path = data_dir.join(SETUP_TOKEN_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::internal(format!("removing {}: {e}", path.display()))),
        }
        crate::security::secret::write_private_file(&path, format!("{token}\n").as_bytes())
            .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))?;
        *self.hash.lock().unwrap_or_else(|e| e.into_inner()) = Some(SecretDigest::of(&token));
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.clone());
        Ok(path)
    }

    /// Checks `presented` against the token in constant time.
    pub fn check(&self, presented: &str) -> Result<()> {
        let expected = *self.hash.lock().unwrap_or_else(|e| e.into_inner());
        let Some(expected) = expected else {
            return Err(super::auth::already_bootstrapped());
        };
        if !expected.matches(presented.trim()) {
            return Err(Error::new(ErrorKind::Unauthenticated, "setup_token is wrong")
                .with_reason(crate::error::reason::INVALID_CREDENTIALS));
        }
        Ok(())
    }

    /// Forgets the token and removes its file (after the first admin exists).
    pub fn consume(&self) {
        *self.hash.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(path) = self.file.lock().unwrap_or_else(|e| e.into_inner()).take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the used setup token file");
        }
    }
}
