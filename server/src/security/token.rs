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
}

impl TokenIssuer {
    /// Tokens from `ring`, valid for `ttl`, naming `issuer`.
    pub fn new(ring: KeyRing, clock: SharedClock, issuer: String, ttl: Duration) -> Self {
        Self { ring, clock, issuer, ttl }
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

    /// Verifies signature, issuer, audience and expiry of `token`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
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
        if claims.exp <= self.clock.now().timestamp() {
            return Err(Error::new(ErrorKind::Unauthenticated, "access token expired")
                .with_reason(crate::error::reason::TOKEN_EXPIRED));
        }
        Ok(claims)
    }
}
