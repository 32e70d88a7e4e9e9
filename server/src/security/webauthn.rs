//! WebAuthn (passkeys and security keys) through `webauthn-rs`, built once from the configured
//! relying party. Ceremony state and credentials travel as JSON so that the store keeps them
//! between the start and the finish of a ceremony; this module alone knows their types.
use crate::error::{Error, ErrorKind, Result, reason};
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder, WebauthnError,
};

/// The relying party: a domain name (or `localhost`) and the origins browsers call from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub name: String,
    pub origins: Vec<Url>,
}

impl RelyingParty {
    /// Checks `id` (a domain name, not an IP address) and the origins (each on that domain).
    pub fn new(id: &str, name: &str, origins: &[String]) -> std::result::Result<RelyingParty, String> {
        let id = id.trim().trim_end_matches('.').to_ascii_lowercase();
        if id.parse::<std::net::IpAddr>().is_ok() || id.starts_with('[') {
            return Err(format!(
                "{id} is an IP address: WebAuthn needs a domain name (or localhost); sites reached by IP address use TOTP"
            ));
        }
        if id.is_empty()
            || !id.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(format!("{id:?} is not a domain name"));
        }
        let origins = if origins.is_empty() { vec![format!("https://{id}")] } else { origins.to_vec() };
        let mut parsed = Vec::new();
        for o in origins {
            let url = Url::parse(o.trim()).map_err(|e| format!("origin {o:?}: {e}"))?;
            let host = url.host_str().unwrap_or("").to_ascii_lowercase();
            if host != id && !host.ends_with(&format!(".{id}")) {
                return Err(format!("origin {o} is not on the relying party's domain {id}"));
            }
            if url.scheme() != "https" && host != "localhost" {
                return Err(format!("origin {o} must use https (browsers allow WebAuthn over http only on localhost)"));
            }
            parsed.push(url);
        }
        Ok(RelyingParty {
            id,
            name: if name.trim().is_empty() { "OpenNVR".to_owned() } else { name.trim().to_owned() },
            origins: parsed,
        })
    }
}

/// Runs WebAuthn ceremonies for one relying party.
#[derive(Clone)]
pub struct PasskeyCeremonies {
    webauthn: std::sync::Arc<Webauthn>,
    rp: RelyingParty,
}

impl std::fmt::Debug for PasskeyCeremonies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyCeremonies").field("rp", &self.rp).finish()
    }
}

/// A stored passkey of a user, as the store keeps it.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub credential_id: Uuid,
    pub passkey: Value,
}

/// A verified assertion: which stored passkey it was, and that passkey's new state (counter).
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    pub credential_id: Uuid,
    pub passkey: Value,
}

fn state_error(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("WebAuthn state: {e}"))
}

/// Why an assertion or attestation failed, in words a user can act on (no secrets in them).
fn rejection(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::MismatchedChallenge | WebauthnError::ChallengeNotFound => {
            "the response answers another challenge (start the ceremony again)"
        }
        WebauthnError::CredentialPossibleCompromise => {
            "the authenticator's signature counter went backwards: it may have been cloned"
        }
        WebauthnError::CredentialNotFound => "the credential is not registered",
        WebauthnError::InvalidRPOrigin => "the response comes from an origin this server does not accept",
        WebauthnError::InvalidRPIDHash => "the response is for another relying party",
        WebauthnError::UserNotVerified => "the authenticator did not verify the user (PIN or biometrics)",
        WebauthnError::InvalidClientDataType => "the response is of the wrong ceremony type",
        WebauthnError::CredentialAlteredAlgFromRequest | WebauthnError::CredentialExcludedFromRequest => {
            "this authenticator is already registered, or answered with an algorithm that was not offered"
        }
        _ => "the response does not verify",
    }
}

fn unauthenticated(e: &WebauthnError) -> Error {
    tracing::info!(error = ?e, "passkey assertion refused");
    Error::new(ErrorKind::Unauthenticated, format!("passkey refused: {}", rejection(e)))
        .with_reason(reason::INVALID_CREDENTIALS)
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(state_error)
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(state_error)
}

/// The browser-facing JSON of challenge options, `{"publicKey": {...}}` only.
fn options_json<T: serde::Serialize>(options: &T, adjust: impl FnOnce(&mut Value)) -> Result<String> {
    let mut v = to_value(options)?;
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| k == "publicKey");
    }
    adjust(&mut v);
    serde_json::to_string(&v).map_err(state_error)
}

/// Parses an assertion sent by a client (`field` names it in the error).
fn assertion(field: &'static str, json: &str) -> Result<PublicKeyCredential> {
    if json.trim().is_empty() {
        return Err(Error::invalid(field, format!("{field} is required")));
    }
    serde_json::from_str(json)
        .map_err(|e| Error::invalid(field, format!("{field} is not a WebAuthn PublicKeyCredential (JSON): {e}")))
}

impl PasskeyCeremonies {
    /// The relying party's id (a domain name).
    pub fn rp_id(&self) -> &str {
        &self.rp.id
    }

    /// Builds the relying party's WebAuthn.
    pub fn new(rp: RelyingParty) -> Result<PasskeyCeremonies> {
        let first = rp.origins.first().ok_or_else(|| Error::internal("no WebAuthn origin"))?;
        let mut builder = WebauthnBuilder::new(&rp.id, first)
            .map_err(|e| crate::error::Error::config(format!("OPENNVR_WEBAUTHN_RP_ID: {e}")))?
            .rp_name(&rp.name);
        for o in &rp.origins[1..] {
            builder = builder.append_allowed_origin(o);
        }
        let webauthn =
            builder.build().map_err(|e| crate::error::Error::config(format!("OPENNVR_WEBAUTHN_ORIGINS: {e}")))?;
        Ok(PasskeyCeremonies { webauthn: std::sync::Arc::new(webauthn), rp })
    }

    /// The relying party.
    pub fn relying_party(&self) -> &RelyingParty {
        &self.rp
    }

    /// Starts registering a passkey for `user` (its id becomes the WebAuthn user handle, so the
    /// passkey can later sign in without a username); `existing` passkeys are excluded. Returns
    /// the creation options (JSON) and the ceremony state. Discoverable credentials are preferred.
    pub fn start_registration(
        &self,
        user: Uuid,
        name: &str,
        display_name: &str,
        existing: &[Value],
    ) -> Result<(String, Value)> {
        let exclude = existing
            .iter()
            .map(|v| from_value::<Passkey>(v.clone()).map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>>>()?;
        let display = if display_name.trim().is_empty() { name } else { display_name };
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user, name, display, Some(exclude))
            .map_err(|e| Error::internal(format!("WebAuthn registration start: {e}")))?;
        let json = options_json(&options, |v| {
            if let Some(sel) = v.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut) {
                sel.insert("residentKey".into(), Value::from("preferred"));
            }
        })?;
        Ok((json, to_value(&state)?))
    }

    /// Verifies an authenticator's registration response against the ceremony state: the new
    /// passkey's WebAuthn credential id and its state to store.
    pub fn finish_registration(&self, credential_json: &str, state: Value) -> Result<(Vec<u8>, Value)> {
        const FIELD: &str = "credential_json";
        if credential_json.trim().is_empty() {
            return Err(Error::invalid(FIELD, "credential_json is required"));
        }
        let response: RegisterPublicKeyCredential = serde_json::from_str(credential_json).map_err(|e| {
            Error::invalid(FIELD, format!("credential_json is not a WebAuthn PublicKeyCredential (JSON): {e}"))
        })?;
        let state: PasskeyRegistration = from_value(state)?;
        let passkey = self.webauthn.finish_passkey_registration(&response, &state).map_err(|e| {
            tracing::info!(error = ?e, "passkey registration refused");
            Error::invalid(FIELD, format!("the registration does not verify: {}", rejection(&e)))
        })?;
        Ok((passkey.cred_id().to_vec(), to_value(&passkey)?))
    }

    /// Starts an assertion by one of `passkeys`: request options (JSON) and ceremony state.
    pub fn start_authentication(&self, passkeys: &[StoredPasskey]) -> Result<(String, Value)> {
        let keys = passkeys.iter().map(|p| from_value::<Passkey>(p.passkey.clone())).collect::<Result<Vec<_>>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| Error::internal(format!("WebAuthn authentication start: {e}")))?;
        Ok((options_json(&options, |_| {})?, to_value(&state)?))
    }

    /// Verifies an assertion (`field` of the request) against the ceremony state and the user's
    /// passkeys: which one signed, with its new counter. A counter that did not move forward is refused.
    pub fn finish_authentication(
        &self,
        field: &'static str,
        assertion_json: &str,
        state: Value,
        passkeys: &[StoredPasskey],
    ) -> Result<VerifiedAssertion> {
        let response = assertion(field, assertion_json)?;
        let state: PasskeyAuthentication = from_value(state)?;
        let result = self.webauthn.finish_passkey_authentication(&response, &state).map_err(|e| unauthenticated(&e))?;
        updated(&result, passkeys)
    }

    /// Starts a passwordless login: request options listing no credential, and the state.
    pub fn start_discoverable(&self) -> Result<(String, Value)> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| Error::internal(format!("WebAuthn discoverable start: {e}")))?;
        Ok((options_json(&options, |_| {})?, to_value(&state)?))
    }

    /// Who a passwordless assertion claims to be: the user handle and the WebAuthn credential id.
    pub fn identify(&self, field: &'static str, assertion_json: &str) -> Result<(Uuid, Vec<u8>)> {
        let response = assertion(field, assertion_json)?;
        let (user, cred) =
            self.webauthn.identify_discoverable_authentication(&response).map_err(|e| unauthenticated(&e))?;
        Ok((user, cred.to_vec()))
    }

    /// Verifies a passwordless assertion against the state and the passkey it names.
    pub fn finish_discoverable(
        &self,
        field: &'static str,
        assertion_json: &str,
        state: Value,
        passkey: &StoredPasskey,
    ) -> Result<VerifiedAssertion> {
        let response = assertion(field, assertion_json)?;
        let state: DiscoverableAuthentication = from_value(state)?;
        let key: Passkey = from_value(passkey.passkey.clone())?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&response, state, &key)
            .map_err(|e| unauthenticated(&e))?;
        updated(&result, std::slice::from_ref(passkey))
    }
}

/// The stored passkey `result` used, with its state brought up to date. The signature counter is
/// checked against the stored one (as it is now, not as it was when the challenge was issued): an
/// authenticator that counts must count forward, or it may be a clone.
fn updated(result: &AuthenticationResult, passkeys: &[StoredPasskey]) -> Result<VerifiedAssertion> {
    for stored in passkeys {
        let mut key: Passkey = from_value(stored.passkey.clone())?;
        if key.cred_id() != result.cred_id() {
            continue;
        }
        let counted = stored.passkey.pointer("/cred/counter").and_then(Value::as_u64).unwrap_or(0);
        let presented = u64::from(result.counter());
        if (presented > 0 || counted > 0) && presented <= counted {
            return Err(unauthenticated(&WebauthnError::CredentialPossibleCompromise));
        }
        if key.update_credential(result).is_some() {
            return Ok(VerifiedAssertion { credential_id: stored.credential_id, passkey: to_value(&key)? });
        }
    }
    Err(Error::new(ErrorKind::Unauthenticated, "passkey refused: the credential is not registered")
        .with_reason(reason::INVALID_CREDENTIALS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_needs_a_domain_and_origins_on_it() {
        assert!(RelyingParty::new("192.168.1.10", "", &[]).unwrap_err().contains("IP address"));
        assert!(RelyingParty::new("::1", "", &[]).unwrap_err().contains("IP address"));
        let rp = RelyingParty::new("nvr.example.org", "", &[]).unwrap();
        assert_eq!(rp.origins[0].as_str(), "https://nvr.example.org/");
        assert_eq!(rp.name, "OpenNVR");
        assert!(RelyingParty::new("nvr.example.org", "", &["https://evil.example".into()]).is_err());
        assert!(RelyingParty::new("nvr.example.org", "", &["http://nvr.example.org".into()]).is_err());
        assert!(RelyingParty::new("localhost", "", &["http://localhost:7450".into()]).is_ok());
        assert!(
            PasskeyCeremonies::new(RelyingParty::new("localhost", "", &["http://localhost:7450".into()]).unwrap())
                .is_ok()
        );
    }
}
