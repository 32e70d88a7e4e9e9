//! Security primitives: passwords, sealed secrets (BYOK envelope encryption), the signing key ring,
//! access tokens and the session revocation cache.

pub mod keyring;
pub mod password;
pub mod revocation;
pub mod seal;
pub mod secret;
pub mod token;
