//! Password hashing (argon2id) on a fixed set of worker threads with their own memory, off the
//! async runtime, and the password policy.
use crate::error::{Error, Result};
#[cfg(test)]
use argon2::password_hash::PasswordHasher;
use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;

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

/// What a hashing worker is asked to do.
enum Job {
    Hash { password: String, reply: tokio::sync::oneshot::Sender<Result<String>> },
    Verify { password: String, phc: String, reply: tokio::sync::oneshot::Sender<Result<bool>> },
}

/// Password checks waiting for a worker, at most, per worker: past them a check is refused at once
/// (RESOURCE_EXHAUSTED) rather than queued without end.
pub const QUEUE_PER_WORKER: usize = 16;

/// Hashes and verifies passwords on a fixed set of worker threads (one per core at most), each
/// reusing its own argon2 memory — no allocation of the cost's worth of memory per hash, so a storm
/// of logins cannot grow the process — fed by a bounded queue.
#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// A hash of a random password: unknown users are checked against it, so that they take as
    /// long as known ones.
    decoy: Arc<String>,
    in_flight: Gauge,
}

/// Counts a check in flight for as long as it lives.
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

/// A worker's memory: the blocks of the configured cost, allocated once.
struct Memory {
    params: Params,
    blocks: Vec<argon2::Block>,
}

impl Memory {
    fn new(params: &Params) -> Memory {
        Memory { params: params.clone(), blocks: vec![argon2::Block::default(); params.block_count()] }
    }

    /// The raw argon2id output of `password` with `salt` under `params` (the worker's own memory
    /// when they are the configured ones, else a block of their size for this once).
    fn raw(&mut self, params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<()> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        if params.block_count() == self.params.block_count() {
            argon.hash_password_into_with_memory(password, salt, out, &mut self.blocks[..])
        } else {
            argon.hash_password_into(password, salt, out)
        }
        .map_err(Error::internal)
    }

    /// A PHC string of `password` with a fresh salt.
    fn hash(&mut self, password: &str) -> Result<String> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(Error::internal)?;
        let mut out = [0u8; 32];
        let params = self.params.clone();
        self.raw(&params, password.as_bytes(), salt_raw, &mut out)?;
        let output = argon2::password_hash::Output::new(&out).map_err(Error::internal)?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: (&params).try_into().map_err(Error::internal)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` is the one `phc` was made from (compared in constant time).
    fn verify(&mut self, password: &str, phc: &str) -> Result<bool> {
        let parsed = PasswordHash::new(phc).map_err(Error::internal)?;
        if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.version.is_some_and(|v| v != Version::V0x13 as u32) {
            // Not ours (another algorithm or version): the library checks it the slow way.
            return Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
        }
        let params = Params::try_from(&parsed).map_err(Error::internal)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(Error::internal("a stored password hash has no salt or output"));
        };
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(Error::internal)?;
        let mut out = vec![0u8; expected.len()];
        self.raw(&params, password.as_bytes(), salt_raw, &mut out)?;
        let got = argon2::password_hash::Output::new(&out).map_err(Error::internal)?;
        Ok(got == expected)
    }
}

/// Lowers the calling thread's scheduling priority (nice 10): hashing takes whatever CPU the rest
/// of the server leaves, so that a storm of logins does not slow every other call down with it.
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; on Linux, PRIO_PROCESS with id 0 names
    // the calling thread. A failure leaves the priority as it was, which is harmless.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
}

impl PasswordHasherPool {
    /// argon2id with `memory_kib` and `iterations`, on `workers` threads (at least one).
    pub fn new(memory_kib: u32, iterations: u32, workers: usize) -> Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| {
            crate::error::Error::config(format!("OPENNVR_ARGON2_MEMORY_KIB/OPENNVR_ARGON2_ITERATIONS: {e}"))
        })?;
        let workers = workers.max(1);
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(workers * QUEUE_PER_WORKER);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..workers {
            let (queue, params) = (queue.clone(), params.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    // Taken at the first job, then kept: an idle server holds none of it.
                    let mut memory: Option<Memory> = None;
                    loop {
                        // One worker waits on the queue at a time; the others wait for the lock.
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        // Err: every handle of the pool is gone.
                        let Ok(job) = job else { return };
                        let memory = memory.get_or_insert_with(|| Memory::new(&params));
                        match job {
                            Job::Hash { password, reply } => {
                                let _ = reply.send(memory.hash(&password));
                            }
                            Job::Verify { password, phc, reply } => {
                                let _ = reply.send(memory.verify(&password, &phc));
                            }
                        }
                    }
                })
                .map_err(Error::internal)?;
        }
        let decoy_password = hex::encode(super::secret::random_bytes::<16>());
        let decoy = Memory::new(&params).hash(&decoy_password)?;
        Ok(Self { jobs, decoy: Arc::new(decoy), in_flight: Gauge::default() })
    }

    /// Reports checks in flight (queued or running) through `gauge`.
    pub fn with_in_flight_gauge(mut self, gauge: Gauge) -> Self {
        self.in_flight = gauge;
        self
    }

    /// Hands `job` to a worker: RESOURCE_EXHAUSTED when the queue is full.
    fn submit(&self, job: Job) -> Result<()> {
        self.jobs.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => Error::new(
                crate::error::ErrorKind::ResourceExhausted,
                "too many password checks are waiting; retry in a moment",
            )
            .with_retry_after(std::time::Duration::from_secs(1))
            .with_reason(crate::error::reason::RATE_LIMITED),
            std::sync::mpsc::TrySendError::Disconnected(_) => Error::internal("the password workers are gone"),
        })
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String> {
        let _in_flight = InFlight::new(&self.in_flight);
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        answer.await.map_err(Error::internal)?
    }

    /// Verifies `password` against `phc`; with `None` verifies against the decoy and returns false.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool> {
        let _in_flight = InFlight::new(&self.in_flight);
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.as_ref().clone());
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Verify { password, phc, reply })?;
        let ok = answer.await.map_err(Error::internal)??;
        Ok(ok && known)
    }
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
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(pool.verify("tulip-orbit-lantern".into(), Some(h.clone())).await.unwrap());
        assert!(!pool.verify("tulip-orbit-lanterN".into(), Some(h)).await.unwrap());
        assert!(!pool.verify("anything at all".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_agree_with_the_library_both_ways_and_other_costs_still_verify() {
        let pool = PasswordHasherPool::new(64, 1, 1).unwrap();
        let ours = pool.hash("tulip-orbit-lantern".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"tulip-orbit-lantern", &parsed).is_ok());
        // A hash made with another cost (an older configuration) still verifies.
        let older = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(128, 2, 1, None).unwrap())
            .hash_password(b"tulip-orbit-lantern", &SaltString::generate(&mut rand::rngs::OsRng))
            .unwrap()
            .to_string();
        assert!(pool.verify("tulip-orbit-lantern".into(), Some(older.clone())).await.unwrap());
        assert!(!pool.verify("tulip-orbit-lantern!".into(), Some(older)).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_the_pool_goes_on() {
        let pool = PasswordHasherPool::new(8 * 1024, 4, 1).unwrap();
        let h = pool.hash("tulip-orbit-lantern".into()).await.unwrap();
        let checks: Vec<_> = (0..(QUEUE_PER_WORKER + 8))
            .map(|_| {
                let (pool, h) = (pool.clone(), h.clone());
                tokio::spawn(async move { pool.verify("tulip-orbit-lantern".into(), Some(h)).await })
            })
            .collect();
        let mut refused = 0;
        for c in checks {
            match c.await.unwrap() {
                Ok(ok) => assert!(ok),
                Err(e) => {
                    assert_eq!(e.kind(), crate::error::ErrorKind::ResourceExhausted, "{e:?}");
                    refused += 1;
                }
            }
        }
        assert!(refused >= 1, "the queue holds {QUEUE_PER_WORKER} per worker");
        assert!(pool.verify("tulip-orbit-lantern".into(), Some(h)).await.unwrap(), "and then works again");
    }
}
