//! The audit trail's hash scheme (`opennvr-audit-v1`) and offline verification of JSON Lines exports.
//! The server chains entries with [`chain_hash`]; anyone holding an export and the audit public keys
//! can check it with [`verify_export`], without the server or its database.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

/// Name of the hash scheme, written in export headers.
pub const HASH_SCHEME: &str = "opennvr-audit-v1";
/// `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields of one entry that the chain covers, in their canonical order.
#[derive(Debug, Clone, Default)]
pub struct ChainFields<'a> {
    pub sequence: i64,
    pub id: &'a str,
    /// RFC 3339, UTC, microseconds (see [`format_time`]).
    pub time: &'a str,
    pub actor_type: &'a str,
    pub actor_user_id: &'a str,
    pub actor_username: &'a str,
    pub actor_api_key_id: &'a str,
    pub actor_session_id: &'a str,
    pub client_address: &'a str,
    pub user_agent: &'a str,
    pub action: &'a str,
    pub method: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub camera_id: &'a str,
    /// `success`, `denied` or `failed`.
    pub result: &'a str,
    /// gRPC status code name: `OK`, or the code the call was refused or failed with.
    pub code: &'a str,
    pub reason: &'a str,
    /// Canonical JSON of the details (see [`canonical_details`]).
    pub details: &'a str,
    pub request_id: &'a str,
}

fn put(h: &mut Sha256, s: &str) {
    h.update((s.len() as u32).to_be_bytes());
    h.update(s.as_bytes());
}

impl<'a> ChainFields<'a> {
    /// The chained text fields in their canonical order (everything but the sequence).
    pub fn texts(&self) -> [&'a str; 19] {
        [
            self.id,
            self.time,
            self.actor_type,
            self.actor_user_id,
            self.actor_username,
            self.actor_api_key_id,
            self.actor_session_id,
            self.client_address,
            self.user_agent,
            self.action,
            self.method,
            self.target_type,
            self.target_id,
            self.camera_id,
            self.result,
            self.code,
            self.reason,
            self.details,
            self.request_id,
        ]
    }
}

/// `SHA-256(prev_hash || "opennvr-audit-v1" || sequence || length-prefixed fields)`.
pub fn chain_hash(prev_hash: &[u8], e: &ChainFields<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    put(&mut h, HASH_SCHEME);
    h.update(e.sequence.to_be_bytes());
    for f in e.texts() {
        put(&mut h, f);
    }
    h.finalize().into()
}

/// Details as canonical JSON: an object of strings with sorted keys, no whitespace.
pub fn canonical_details(details: &BTreeMap<String, String>) -> String {
    serde_json::to_string(details).unwrap_or_else(|_| "{}".to_owned())
}

/// A time in the canonical form: RFC 3339, UTC, exactly six fractional digits.
pub fn format_time(unix_micros: i64) -> String {
    let secs = unix_micros.div_euclid(1_000_000);
    let micros = unix_micros.rem_euclid(1_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, micros * 1000)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(sequence: i64, hash: &[u8], time: &str) -> Vec<u8> {
    let mut m = b"opennvr-audit-checkpoint-v1\0".to_vec();
    m.extend_from_slice(&sequence.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&(time.len() as u32).to_be_bytes());
    m.extend_from_slice(time.as_bytes());
    m
}

/// One line of a JSON Lines export.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExportLine {
    Header(ExportHeader),
    Event(Box<ExportEvent>),
    Checkpoint(ExportCheckpoint),
    Trailer(ExportTrailer),
}

/// First line: the scheme, the anchor and the public keys that signed checkpoints.
#[derive(Debug, Deserialize)]
pub struct ExportHeader {
    pub hash_scheme: String,
    #[serde(default)]
    pub first_sequence: Option<i64>,
    #[serde(default)]
    pub last_sequence: Option<i64>,
    /// `prev_hash` of the first exported event (base64).
    pub anchor_hash: String,
    pub keys: Vec<ExportKey>,
}

/// An audit public key.
#[derive(Debug, Deserialize)]
pub struct ExportKey {
    pub key_id: String,
    /// Raw Ed25519 public key, base64.
    pub public_key: String,
}

/// An event line (field names as in `AuditEvent`, flattened; hashes base64). Every field is required
/// and no other is allowed, so an edited field name fails like an edited value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportEvent {
    pub sequence: i64,
    pub id: String,
    pub time: String,
    pub actor_type: String,
    pub actor_user_id: String,
    pub actor_username: String,
    pub actor_api_key_id: String,
    pub actor_session_id: String,
    pub client_address: String,
    pub user_agent: String,
    pub action: String,
    pub method: String,
    pub target_type: String,
    pub target_id: String,
    pub camera_id: String,
    pub result: String,
    pub code: String,
    pub reason: String,
    pub details: BTreeMap<String, String>,
    pub request_id: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A checkpoint line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportCheckpoint {
    pub sequence: i64,
    pub hash: String,
    pub time: String,
    pub key_id: String,
    pub signature: String,
}

/// Last line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportTrailer {
    pub count: i64,
    pub last_sequence: i64,
    pub last_hash: String,
}

impl ExportEvent {
    /// The chained fields of this event.
    pub fn fields<'a>(&'a self, details: &'a str) -> ChainFields<'a> {
        ChainFields {
            sequence: self.sequence,
            id: &self.id,
            time: &self.time,
            actor_type: &self.actor_type,
            actor_user_id: &self.actor_user_id,
            actor_username: &self.actor_username,
            actor_api_key_id: &self.actor_api_key_id,
            actor_session_id: &self.actor_session_id,
            client_address: &self.client_address,
            user_agent: &self.user_agent,
            action: &self.action,
            method: &self.method,
            target_type: &self.target_type,
            target_id: &self.target_id,
            camera_id: &self.camera_id,
            result: &self.result,
            code: &self.code,
            reason: &self.reason,
            details,
            request_id: &self.request_id,
        }
    }
}

/// What an offline verification found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: i64,
    pub first_sequence: Option<i64>,
    pub last_sequence: Option<i64>,
    pub checkpoints: i64,
    /// Sequence of the newest verified checkpoint.
    pub last_checkpoint: Option<i64>,
    /// Keys whose signatures verified, with the SHA-256 fingerprint of their public key (hex): they
    /// come from the export itself, so compare them with keys obtained independently.
    pub signing_keys: Vec<(String, String)>,
    /// False when the first event is not sequence 1: its link to what came before rests on the
    /// export's anchor hash, vouched for only by checkpoints outside the export.
    pub anchored_at_genesis: bool,
}

impl VerifyReport {
    /// Events after the newest checkpoint, vouched for by the chain only.
    pub fn unanchored(&self) -> i64 {
        match (self.last_sequence, self.last_checkpoint) {
            (Some(last), Some(cp)) => last - cp,
            (Some(_), None) => self.events,
            _ => 0,
        }
    }
}

/// Why an export does not verify: the line (1-based) and, where known, the sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", .sequence.map(|s| format!(" (sequence {s})")).unwrap_or_default())]
pub struct VerifyError {
    pub line: usize,
    pub sequence: Option<i64>,
    pub message: String,
}

fn b64(line: usize, seq: Option<i64>, what: &str, s: &str) -> Result<Vec<u8>, VerifyError> {
    B64.decode(s).map_err(|_| VerifyError { line, sequence: seq, message: format!("{what} is not base64") })
}

/// Verifies a JSON Lines export: every event's hash, every link, no gaps, every checkpoint's hash
/// and signature against the keys in the header, and the trailer.
pub fn verify_export(input: impl BufRead) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport::default();
    let mut keys: HashMap<String, VerifyingKey> = HashMap::new();
    let mut prev: Option<Vec<u8>> = None;
    let mut hashes: HashMap<i64, Vec<u8>> = HashMap::new();
    let mut header_seen = false;
    let mut header_range = (None, None);
    let mut trailer_seen = false;
    // Where the export ends: a missing trailer is reported at the line it should have been on.
    let mut lines_read = 0;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        lines_read = n;
        let err = |seq: Option<i64>, message: String| VerifyError { line: n, sequence: seq, message };
        let line = line.map_err(|e| err(None, format!("unreadable: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        if trailer_seen {
            return Err(err(None, "content after the trailer".into()));
        }
        let parsed: ExportLine =
            serde_json::from_str(&line).map_err(|e| err(None, format!("not an export line: {e}")))?;
        match parsed {
            ExportLine::Header(h) => {
                if header_seen || n != 1 {
                    return Err(err(None, "the header must be the first line, once".into()));
                }
                if h.hash_scheme != HASH_SCHEME {
                    return Err(err(None, format!("unknown hash scheme {:?}", h.hash_scheme)));
                }
                for k in h.keys {
                    let raw: [u8; 32] = b64(n, None, "public_key", &k.public_key)?
                        .try_into()
                        .map_err(|_| err(None, format!("key {} is not 32 bytes", k.key_id)))?;
                    let vk = VerifyingKey::from_bytes(&raw)
                        .map_err(|_| err(None, format!("key {} is invalid", k.key_id)))?;
                    keys.insert(k.key_id, vk);
                }
                prev = Some(b64(n, None, "anchor_hash", &h.anchor_hash)?);
                header_range = (h.first_sequence, h.last_sequence);
                header_seen = true;
            }
            _ if !header_seen => return Err(err(None, "missing header".into())),
            ExportLine::Event(e) => {
                let seq = Some(e.sequence);
                if let Some(last) = report.last_sequence
                    && e.sequence != last + 1
                {
                    return Err(err(seq, format!("sequence gap or reordering: {} follows {last}", e.sequence)));
                }
                if report.events == 0 && e.sequence == 1 && prev.as_deref() != Some(GENESIS.as_slice()) {
                    return Err(err(seq, "the first event must link to the genesis hash".into()));
                }
                let prev_hash = b64(n, seq, "prev_hash", &e.prev_hash)?;
                if Some(&prev_hash) != prev.as_ref() {
                    return Err(err(seq, "prev_hash does not link to the previous event".into()));
                }
                let details = canonical_details(&e.details);
                let computed = chain_hash(&prev_hash, &e.fields(&details));
                if b64(n, seq, "hash", &e.hash)? != computed {
                    return Err(err(seq, "hash does not match the event's contents (altered)".into()));
                }
                report.events += 1;
                report.first_sequence.get_or_insert(e.sequence);
                report.last_sequence = Some(e.sequence);
                hashes.insert(e.sequence, computed.to_vec());
                prev = Some(computed.to_vec());
            }
            ExportLine::Checkpoint(c) => {
                let seq = Some(c.sequence);
                let hash = b64(n, seq, "hash", &c.hash)?;
                match hashes.get(&c.sequence) {
                    Some(h) if *h == hash => {}
                    Some(_) => return Err(err(seq, "checkpoint hash differs from the chain".into())),
                    None => return Err(err(seq, "checkpoint for an event not in the export".into())),
                }
                let key = keys.get(&c.key_id).ok_or_else(|| err(seq, format!("unknown key {}", c.key_id)))?;
                let sig: [u8; 64] = b64(n, seq, "signature", &c.signature)?
                    .try_into()
                    .map_err(|_| err(seq, "signature is not 64 bytes".into()))?;
                key.verify(&checkpoint_message(c.sequence, &hash, &c.time), &Signature::from_bytes(&sig))
                    .map_err(|_| err(seq, format!("checkpoint signature by {} does not verify", c.key_id)))?;
                report.checkpoints += 1;
                let fingerprint = key_fingerprint(key.as_bytes());
                if !report.signing_keys.iter().any(|(k, _)| *k == c.key_id) {
                    report.signing_keys.push((c.key_id.clone(), fingerprint));
                }
                report.last_checkpoint = Some(report.last_checkpoint.map_or(c.sequence, |s| s.max(c.sequence)));
            }
            ExportLine::Trailer(t) => {
                let last_hash = b64(n, None, "last_hash", &t.last_hash)?;
                if t.count != report.events
                    || t.last_sequence != report.last_sequence.unwrap_or(0)
                    || (report.events > 0 && Some(&last_hash) != prev.as_ref())
                {
                    return Err(err(None, "trailer does not match the events (truncated or altered)".into()));
                }
                let (hf, hl) = header_range;
                if report.events > 0
                    && (hf.is_some_and(|f| Some(f) != report.first_sequence)
                        || hl.is_some_and(|l| Some(l) != report.last_sequence))
                {
                    return Err(err(None, "the header's range does not match the events".into()));
                }
                trailer_seen = true;
            }
        }
    }
    if !trailer_seen {
        return Err(VerifyError {
            line: lines_read + 1,
            sequence: report.last_sequence,
            message: format!("missing trailer: the export is truncated after line {lines_read}"),
        });
    }
    report.anchored_at_genesis = report.first_sequence.is_none_or(|f| f == 1);
    Ok(report)
}

/// The fingerprint an audit key is shown by: SHA-256 of the raw public key, hex.
pub fn key_fingerprint(public_key: &[u8]) -> String {
    hex_of(&Sha256::digest(public_key))
}

/// The fingerprint of an Ed25519 public key given as a JWK (`AuditSigningKey.public_key_jwk`).
pub fn jwk_fingerprint(jwk: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(jwk).ok()?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.get("x")?.as_str()?).ok()?;
    Some(key_fingerprint(&raw))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use std::fmt::Write;

    /// An export of `count` events chained from genesis, with a checkpoint on the last one signed
    /// by a fixed key.
    fn export(count: i64) -> String {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut out = format!(
            "{{\"type\":\"header\",\"hash_scheme\":\"{HASH_SCHEME}\",\"first_sequence\":1,\"last_sequence\":{count},\
             \"anchor_hash\":\"{}\",\"keys\":[{{\"key_id\":\"k1\",\"public_key\":\"{}\"}}]}}\n",
            B64.encode(GENESIS),
            B64.encode(key.verifying_key().as_bytes()),
        );
        let mut prev = GENESIS.to_vec();
        for sequence in 1..=count {
            let id = format!("id-{sequence}");
            let time = format_time(sequence * 1_000_000);
            let fields = ChainFields {
                sequence,
                id: &id,
                time: &time,
                action: "user.create",
                details: "{}",
                ..Default::default()
            };
            let hash = chain_hash(&prev, &fields);
            let (b64_prev, b64_hash) = (B64.encode(&prev), B64.encode(hash));
            let _ = writeln!(
                out,
                "{{\"type\":\"event\",\"sequence\":{sequence},\"id\":\"{id}\",\"time\":\"{time}\",\"actor_type\":\"\",\
                 \"actor_user_id\":\"\",\"actor_username\":\"\",\"actor_api_key_id\":\"\",\"actor_session_id\":\"\",\
                 \"client_address\":\"\",\"user_agent\":\"\",\"action\":\"user.create\",\"method\":\"\",\
                 \"target_type\":\"\",\"target_id\":\"\",\"camera_id\":\"\",\"result\":\"\",\"code\":\"\",\
                 \"reason\":\"\",\"details\":{{}},\"request_id\":\"\",\"prev_hash\":\"{b64_prev}\",\"hash\":\"{b64_hash}\"}}"
            );
            prev = hash.to_vec();
        }
        let time = format_time(0);
        let signature = key.sign(&checkpoint_message(count, &prev, &time));
        let _ = writeln!(
            out,
            "{{\"type\":\"checkpoint\",\"sequence\":{count},\"hash\":\"{}\",\"time\":\"{time}\",\"key_id\":\"k1\",\
             \"signature\":\"{}\"}}",
            B64.encode(&prev),
            B64.encode(signature.to_bytes()),
        );
        let _ = writeln!(
            out,
            "{{\"type\":\"trailer\",\"count\":{count},\"last_sequence\":{count},\"last_hash\":\"{}\"}}",
            B64.encode(&prev)
        );
        out
    }

    #[test]
    fn format_time_is_utc_with_six_fractional_digits() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_time(1_500_000), "1970-01-01T00:00:01.500000Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn canonical_details_sorts_keys_without_whitespace() {
        let details = BTreeMap::from([("b".to_owned(), "2".to_owned()), ("a".to_owned(), "1".to_owned())]);
        assert_eq!(canonical_details(&details), r#"{"a":"1","b":"2"}"#);
    }

    #[test]
    fn chain_hash_changes_with_every_field_and_the_previous_hash() {
        let base = ChainFields { sequence: 1, id: "x", ..Default::default() };
        let hash = chain_hash(&GENESIS, &base);
        assert_ne!(hash, chain_hash(&[1; 32], &base));
        assert_ne!(hash, chain_hash(&GENESIS, &ChainFields { sequence: 2, ..base.clone() }));
        assert_ne!(hash, chain_hash(&GENESIS, &ChainFields { reason: "r", ..base.clone() }));
        // Length prefixes keep a byte moved between neighbouring fields from hashing the same.
        let moved = ChainFields { id: "", time: "x", ..base };
        assert_ne!(hash, chain_hash(&GENESIS, &moved));
    }

    #[test]
    fn a_signed_export_verifies() {
        let report = verify_export(export(3).as_bytes()).unwrap();
        assert_eq!(report.events, 3);
        assert_eq!((report.first_sequence, report.last_sequence), (Some(1), Some(3)));
        assert_eq!((report.checkpoints, report.last_checkpoint), (1, Some(3)));
        assert_eq!(report.unanchored(), 0);
        assert!(report.anchored_at_genesis);
        let fingerprint = key_fingerprint(SigningKey::from_bytes(&[7; 32]).verifying_key().as_bytes());
        assert_eq!(report.signing_keys, vec![("k1".to_owned(), fingerprint)]);
    }

    #[test]
    fn an_altered_event_does_not_verify() {
        let altered = export(3).replacen("user.create", "user.delete", 1);
        let e = verify_export(altered.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.sequence), (2, Some(1)));
    }

    #[test]
    fn a_truncated_export_does_not_verify() {
        let full = export(2);
        let without_trailer: String = full.lines().take(4).map(|l| format!("{l}\n")).collect();
        let e = verify_export(without_trailer.as_bytes()).unwrap_err();
        assert!(e.message.contains("missing trailer"), "{e}");
        assert_eq!(e.line, 5, "reported where the trailer should have been, after the 4 lines read");
    }

    #[test]
    fn jwk_fingerprint_matches_the_raw_key_fingerprint() {
        let raw = [9u8; 32];
        let jwk = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        assert_eq!(jwk_fingerprint(&jwk), Some(key_fingerprint(&raw)));
        assert_eq!(jwk_fingerprint("not json"), None);
    }
}
