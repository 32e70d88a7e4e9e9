//! Security primitives: passwords, sealed secrets (BYOK envelope encryption), the signing key ring,
//! access tokens and the session revocation cache.

pub mod api_keys;
pub mod budget;
pub mod keyring;
pub mod password;
pub mod revocation;
pub mod seal;
pub mod secret;
pub mod token;
pub mod totp;
pub mod webauthn;
