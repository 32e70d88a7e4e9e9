//! Password hashing (argon2id) off the async runtime, and the password policy.
use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Passwords nobody should use, checked case-insensitively (the policy also demands >= 12 characters).
const COMMON: &[&str] = &[
    "password1234",
    "password12345",
    "passwordpassword",
    "123456789012",
    "1234567890123",
    "qwertyuiopas",
    "qwerty123456",
    "administrator",
    "admin1234567",
    "letmein12345",
    "iloveyou1234",
    "welcome12345",
    "changeme1234",
    "opennvr12345",
    "monkey123456",
    "dragon123456",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "trustno1trustno1",
    "abc123abc123",
    "aaaaaaaaaaaa",
    "111111111111",
    "000000000000",
    "password123!",
    "Passw0rd1234",
    "p@ssw0rd1234",
    "correcthorsebatterystaple",
    "superman1234",
    "princess1234",
    "master123456",
    "security1234",
    "camera123456",
    "surveillance",
];

/// Minimum password length in characters.
pub const MIN_LENGTH: usize = 12;

/// Checks `password` against the policy; errors name `field`.
pub fn check_policy(field: &'static str, username: &str, password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(Error::invalid(field, format!("password must have at least {MIN_LENGTH} characters")));
    }
    if chars > 1024 {
        return Err(Error::invalid(field, "password must have at most 1024 characters"));
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() || lower.contains(&username.to_lowercase()) && username.len() >= 4 {
        return Err(Error::invalid(field, "password must not contain the username"));
    }
    if COMMON.iter().any(|c| c.to_lowercase() == lower) {
        return Err(Error::invalid(field, "password is too common"));
    }
    Ok(())
}

/// Hashes and verifies passwords on a bounded blocking pool, so a burst of logins never stalls the
/// async runtime that serves other calls.
#[derive(Clone)]
pub struct PasswordHasherPool {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user is unknown so that an unknown
    /// user costs the same time as a wrong password.
    decoy: Arc<String>,
    /// Hashes being computed or waiting for a slot (exported as a metric).
    in_flight: Gauge,
}

/// Counts one hash in flight while it lives.
struct InFlight(Gauge);

impl InFlight {
    fn new(g: &Gauge) -> Self {
        g.inc();
        InFlight(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl PasswordHasherPool {
    /// argon2id with `memory_kib` and `iterations`; at most `parallel` hashes at once.
    pub fn new(memory_kib: u32, iterations: u32, parallel: usize) -> Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| {
            crate::error::Error::config(format!("OPENNVR_ARGON2_MEMORY_KIB/OPENNVR_ARGON2_ITERATIONS: {e}"))
        })?;
        let decoy_password = hex::encode(super::secret::random_bytes::<16>());
        let decoy = hash_with(&params, &decoy_password)?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            decoy: Arc::new(decoy),
            in_flight: Gauge::default(),
        })
    }

    /// Reports hashes in flight through `gauge`.
    pub fn with_in_flight_gauge(mut self, gauge: Gauge) -> Self {
        self.in_flight = gauge;
        self
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String> {
        let _in_flight = InFlight::new(&self.in_flight);
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password)).await.map_err(Error::internal)?
    }

    /// Verifies `password` against `phc`; with `None` verifies against the decoy and returns false.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool> {
        let _in_flight = InFlight::new(&self.in_flight);
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.as_ref().clone());
        let ok = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&phc).map_err(Error::internal)?;
            Ok::<_, Error>(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(Error::internal)??;
        Ok(ok && known)
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(check_policy("password", "alice", "short").is_err());
        assert!(check_policy("password", "alice", "Password1234").is_err(), "common list, any case");
        assert!(check_policy("password", "alicealice12", "alicealice12").is_err(), "same as username");
        assert!(check_policy("password", "alice", "xx-alice-xx-long").is_err(), "contains username");
        assert!(check_policy("password", "alice", "tulip-orbit-lantern").is_ok());
    }

    #[tokio::test]
    async fn verify_roundtrip_and_unknown_user_never_matches() {
        let pool = PasswordHasherPool::new(64, 1, 2).unwrap();
        let h = pool.hash("tulip-orbit-lantern".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(pool.verify("tulip-orbit-lantern".into(), Some(h.clone())).await.unwrap());
        assert!(!pool.verify("tulip-orbit-lanterN".into(), Some(h)).await.unwrap());
        assert!(!pool.verify("anything at all".into(), None).await.unwrap());
    }
}
