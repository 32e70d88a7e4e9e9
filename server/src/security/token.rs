//! Access tokens: Ed25519-signed JWTs with `sub`, `sid`, `role`, `iat`, `exp`, `jti`, `iss`, `aud`.
use super::keyring::KeyRing;
use crate::clock::SharedClock;
use crate::domain::Role;
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The audience of access tokens for the API.
pub const AUDIENCE: &str = "opennvr-api";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub role: Role,
    /// The username at issue time (for audit entries and logs).
    #[serde(default)]
    pub preferred_username: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub iss: String,
    pub aud: String,
    /// The session may only enrol a second factor (its user's role requires one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa_enrol: bool,
}

/// Issues and verifies access tokens against the key ring.
#[derive(Clone)]
pub struct TokenIssuer {
    ring: KeyRing,
    clock: SharedClock,
    issuer: String,
    ttl: Duration,
    /// Tokens whose signature, issuer and audience were verified, by their SHA-256, with their
    /// claims: a signature is checked once per token, not once per call. Expiry is still checked on
    /// every use, and revocation is the caller's to check on every call (in memory).
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], AccessClaims>>>,
}

/// Verified tokens remembered at most; past it, the expired ones are forgotten, then all.
const VERIFIED_TOKENS: usize = 20_000;

impl TokenIssuer {
    /// Tokens from `ring`, valid for `ttl`, naming `issuer`.
    pub fn new(ring: KeyRing, clock: SharedClock, issuer: String, ttl: Duration) -> Self {
        Self { ring, clock, issuer, ttl, verified: Default::default() }
    }

    /// A signed access token for `user` in session `session`, and when it expires. With `mfa_enrol`
    /// the token only reaches the RPCs that enrol a second factor.
    pub fn issue(
        &self,
        user: Uuid,
        session: Uuid,
        role: Role,
        username: &str,
        mfa_enrol: bool,
    ) -> Result<(String, DateTime<Utc>)> {
        let now = self.clock.now();
        let exp = now + self.ttl;
        let claims = AccessClaims {
            sub: user,
            sid: session,
            role,
            preferred_username: username.to_owned(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            jti: Uuid::new_v4(),
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            mfa_enrol,
        };
        Ok((self.ring.sign(&claims)?, exp))
    }

    /// Verifies signature, issuer, audience and expiry of `token` (the signature once per token:
    /// see `verified`).
    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = self.clock.now().timestamp();
        let known = self.verified.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signed(token)?;
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                if verified.len() >= VERIFIED_TOKENS {
                    verified.retain(|_, c| c.exp > now);
                    if verified.len() >= VERIFIED_TOKENS {
                        verified.clear();
                    }
                }
                // An expired token is refused below, and not remembered.
                if claims.exp > now {
                    verified.insert(key, claims.clone());
                }
                claims
            }
        };
        if claims.exp <= now {
            return Err(Error::new(ErrorKind::Unauthenticated, "access token expired")
                .with_reason(crate::error::reason::TOKEN_EXPIRED));
        }
        Ok(claims)
    }

    /// The claims of `token` once its signature, issuer and audience verify (expiry not checked).
    fn verify_signed(&self, token: &str) -> Result<AccessClaims> {
        let bad = || Error::new(ErrorKind::Unauthenticated, "invalid access token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad())?;
        if header.alg != jsonwebtoken::Algorithm::EdDSA {
            return Err(bad());
        }
        let kid = header.kid.ok_or_else(bad)?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[AUDIENCE]);
        // Expiry is checked below against the injected clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = self
            .ring
            .with_decoding_key(&kid, |key| jsonwebtoken::decode::<AccessClaims>(token, key, &validation))
            .ok_or_else(bad)?
            .map_err(|_| bad())?
            .claims;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn issuer() -> (TokenIssuer, crate::clock::ManualClock) {
        let clock = crate::clock::ManualClock::new(chrono::Utc::now());
        let ring = KeyRing::ephemeral(Arc::new(clock.clone()));
        (TokenIssuer::new(ring, Arc::new(clock.clone()), "opennvr".into(), Duration::seconds(600)), clock)
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_forged_one_is_never_remembered() {
        let (tokens, clock) = issuer();
        let (token, _) = tokens.issue(Uuid::new_v4(), Uuid::new_v4(), Role::Viewer, "vera", false).unwrap();
        assert!(tokens.verify(&token).is_ok());
        assert!(tokens.verify(&token).is_ok(), "from what was verified");
        clock.advance(Duration::seconds(601));
        let e = tokens.verify(&token).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(e.message().contains("expired"), "{e:?}");
        // A token whose signature does not verify is refused every time, and not kept.
        let (forged, _) = tokens.issue(Uuid::new_v4(), Uuid::new_v4(), Role::Admin, "mallory", false).unwrap();
        let mut forged = forged.into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        for _ in 0..2 {
            assert!(tokens.verify(&forged).is_err());
        }
        assert_eq!(tokens.verified.lock().unwrap().len(), 1, "the good token only");
    }
}
