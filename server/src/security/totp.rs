//! TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits, one step of tolerance each way) through
//! `totp-rs`; the caller keeps the last accepted step so that each code works once.
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};

/// Length of a new seed in bytes (160 bits, as RFC 4226 recommends).
pub const SEED_BYTES: usize = 20;

/// A TOTP seed with the labels an authenticator app shows.
pub struct TotpSeed {
    totp: totp_rs::Totp,
}

impl TotpSeed {
    /// A seed from its bytes; `issuer` and `account` label it in authenticator apps.
    pub fn new(seed: &[u8], issuer: &str, account: &str) -> Result<TotpSeed> {
        let totp = totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(30)
            .with_secret(seed.to_vec())
            .with_issuer(Some(issuer.replace(':', " ")))
            .with_account_name(account.replace(':', " "))
            .build()
            .map_err(Error::internal)?;
        Ok(TotpSeed { totp })
    }

    /// A seed typed from its base32 form (as authenticator apps take it).
    pub fn from_base32(text: &str) -> Result<TotpSeed> {
        let secret = totp_rs::Secret::try_from_base32(text.trim())
            .map_err(|_| Error::invalid("secret", "not a base32 TOTP secret"))?;
        TotpSeed::new(secret.as_ref(), "OpenNVR", "")
    }

    /// A fresh random seed.
    pub fn generate(issuer: &str, account: &str) -> Result<(Vec<u8>, TotpSeed)> {
        let seed = super::secret::random_bytes::<SEED_BYTES>().to_vec();
        let totp = TotpSeed::new(&seed, issuer, account)?;
        Ok((seed, totp))
    }

    /// The seed in base32, for typing into an app.
    pub fn base32(&self) -> String {
        self.totp.secret().to_base32()
    }

    /// The `otpauth://totp/...` URI (a QR code's content).
    pub fn uri(&self) -> Result<String> {
        self.totp.to_url().map_err(Error::internal)
    }

    /// The step number `code` is valid for at `now` (the current step or one either side), if any.
    pub fn verify(&self, code: &str, now: DateTime<Utc>) -> Option<i64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let time = u64::try_from(now.timestamp()).ok()?;
        self.totp.check(code, time).and_then(|step| i64::try_from(step).ok())
    }

    /// The code at `time` (authenticator side; tests and tools).
    pub fn code_at(&self, time: DateTime<Utc>) -> String {
        self.totp.generate(u64::try_from(time.timestamp()).unwrap_or(0)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_6238_sha1_vectors_and_tolerates_one_step() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", 8 digits there: the last 6 here.
        let seed = TotpSeed::new(b"12345678901234567890", "OpenNVR", "alice").unwrap();
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        assert_eq!(seed.code_at(at(59)), "287082");
        assert_eq!(seed.code_at(at(1_111_111_109)), "081804");
        assert_eq!(seed.code_at(at(2_000_000_000)), "279037");
        assert_eq!(seed.verify("081804", at(1_111_111_109)), Some(1_111_111_109 / 30));
        assert_eq!(seed.verify("081804", at(1_111_111_109 + 30)), Some(1_111_111_109 / 30), "one step late");
        assert_eq!(seed.verify("081804", at(1_111_111_109 + 61)), None, "two steps late");
        assert_eq!(seed.verify("08180", at(1_111_111_109)), None);
        assert!(seed.uri().unwrap().starts_with("otpauth://totp/OpenNVR:alice?"));
        let typed = TotpSeed::from_base32(&seed.base32()).unwrap();
        assert_eq!(typed.code_at(at(59)), "287082");
    }
}
