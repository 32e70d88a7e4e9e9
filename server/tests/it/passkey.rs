//! A software passkey for the WebAuthn tests: an ES256 key pair that answers the server's creation and
//! request options as a browser's platform authenticator does (attestation "none", user present and
//! verified, a counter that rises), so that webauthn-rs in the server checks every challenge, origin,
//! relying-party hash, signature and counter for real.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};

/// Authenticator data flags (WebAuthn §6.1): user present, user verified, attested credential data.
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED_CREDENTIAL: u8 = 0x40;
/// COSE: key type EC2, algorithm ES256, curve P-256 (RFC 9053).
const COSE_EC2: i64 = 2;
const COSE_ES256: i64 = -7;
const COSE_P256: i64 = 1;

pub struct SoftPasskey {
    /// The origin the "browser" reports in client data.
    pub origin: String,
    /// The relying party the authenticator signs for, when not the one the options name.
    pub rp_id: Option<String>,
    /// Whether it verifies the user (PIN or biometrics) before it signs.
    pub verifies_user: bool,
    key: SigningKey,
    credential_id: Vec<u8>,
    counter: u32,
}

impl SoftPasskey {
    /// A new authenticator for pages served from `origin` (as a browser reports it in client data).
    pub fn new(origin: &str) -> Self {
        use rand::RngCore;
        let mut credential_id = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut credential_id);
        Self {
            origin: origin.trim_end_matches('/').to_owned(),
            rp_id: None,
            verifies_user: true,
            key: SigningKey::random(&mut rand::rngs::OsRng),
            credential_id,
            counter: 0,
        }
    }

    /// The credential id this authenticator registers.
    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }

    /// `navigator.credentials.create()` for the server's creation options `options_json`: the
    /// `RegisterPublicKeyCredential` JSON the dashboard would send back.
    pub fn register(&mut self, options_json: &str) -> String {
        let options: serde_json::Value = serde_json::from_str(options_json).expect("creation options are JSON");
        let public_key = &options["publicKey"];
        let rp_id = public_key["rp"]["id"].as_str().expect("creation options name the relying party");
        let challenge = public_key["challenge"].as_str().expect("creation options carry a challenge");
        let offers_es256 = public_key["pubKeyCredParams"]
            .as_array()
            .is_some_and(|params| params.iter().any(|p| p["alg"].as_i64() == Some(COSE_ES256)));
        assert!(offers_es256, "the server must accept ES256 keys: {options_json}");
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut cose = Vec::new();
        cbor::map(&mut cose, 5);
        for (label, value) in [(1, COSE_EC2), (3, COSE_ES256), (-1, COSE_P256)] {
            cbor::int(&mut cose, label);
            cbor::int(&mut cose, value);
        }
        cbor::int(&mut cose, -2);
        cbor::bytes(&mut cose, point.x().expect("an uncompressed point has x"));
        cbor::int(&mut cose, -3);
        cbor::bytes(&mut cose, point.y().expect("an uncompressed point has y"));

        let mut auth_data = self.authenticator_data(rp_id, ATTESTED_CREDENTIAL);
        auth_data.extend([0u8; 16]); // AAGUID: none, as a privacy-preserving platform authenticator sends
        let id_len = u16::try_from(self.credential_id.len()).expect("a short credential id");
        auth_data.extend(id_len.to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(cose);

        let mut attestation = Vec::new();
        cbor::map(&mut attestation, 3);
        cbor::text(&mut attestation, "fmt");
        cbor::text(&mut attestation, "none");
        cbor::text(&mut attestation, "attStmt");
        cbor::map(&mut attestation, 0);
        cbor::text(&mut attestation, "authData");
        cbor::bytes(&mut attestation, &auth_data);

        let id = B64.encode(&self.credential_id);
        serde_json::json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(attestation),
                "clientDataJSON": B64.encode(self.client_data("webauthn.create", challenge)),
            },
            "extensions": {},
        })
        .to_string()
    }

    /// `navigator.credentials.get()` for the request options `options_json`: the `PublicKeyCredential`
    /// JSON of the assertion. When the options name no credential (a discoverable login), the
    /// credential answers as a resident one does, with `user_handle`.
    pub fn assert(&mut self, options_json: &str, user_handle: Option<&[u8]>) -> String {
        let options: serde_json::Value = serde_json::from_str(options_json).expect("request options are JSON");
        let public_key = &options["publicKey"];
        let rp_id = public_key["rpId"].as_str().expect("request options name the relying party");
        let challenge = public_key["challenge"].as_str().expect("request options carry a challenge");
        let allowed: Vec<&str> = public_key["allowCredentials"]
            .as_array()
            .map(|list| list.iter().filter_map(|c| c["id"].as_str()).collect())
            .unwrap_or_default();
        let id = B64.encode(&self.credential_id);
        if allowed.is_empty() {
            assert!(user_handle.is_some(), "a discoverable login needs the user handle a resident key returns");
        } else {
            assert!(allowed.contains(&id.as_str()), "this credential is not among {allowed:?}");
        }
        self.counter += 1;
        let auth_data = self.authenticator_data(rp_id, 0);
        let client_data = self.client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        serde_json::json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(auth_data),
                "clientDataJSON": B64.encode(client_data),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": user_handle.map(|h| B64.encode(h)),
            },
            "extensions": {},
        })
        .to_string()
    }

    /// The relying party's id hash, the flags (user present, verified unless told not to, plus
    /// `extra`) and the counter.
    fn authenticator_data(&self, rp_id: &str, extra: u8) -> Vec<u8> {
        let rp_id = self.rp_id.as_deref().unwrap_or(rp_id);
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        let verified = if self.verifies_user { USER_VERIFIED } else { 0 };
        data.push(USER_PRESENT | verified | extra);
        data.extend(self.counter.to_be_bytes());
        data
    }

    /// Client data in the order browsers serialise it (WebAuthn §5.8.1.1).
    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        let quoted = |v: &str| serde_json::Value::from(v).to_string();
        format!(
            r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":false}}"#,
            quoted(kind),
            quoted(challenge),
            quoted(&self.origin)
        )
        .into_bytes()
    }
}

/// The few CBOR items (RFC 8949) an attestation object and a COSE key need.
mod cbor {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let major = major << 5;
        match n {
            0..=23 => out.push(major | n as u8),
            24..=0xff => out.extend([major | 24, n as u8]),
            0x100..=0xffff => {
                out.push(major | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(major | 26);
                out.extend(u32::try_from(n).expect("a short item").to_be_bytes());
            }
        }
    }

    pub fn int(out: &mut Vec<u8>, v: i64) {
        if v >= 0 { head(out, 0, v as u64) } else { head(out, 1, (-1 - v) as u64) }
    }

    pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        head(out, 2, b.len() as u64);
        out.extend(b);
    }

    pub fn text(out: &mut Vec<u8>, s: &str) {
        head(out, 3, s.len() as u64);
        out.extend(s.as_bytes());
    }

    pub fn map(out: &mut Vec<u8>, entries: u64) {
        head(out, 5, entries);
    }
}
