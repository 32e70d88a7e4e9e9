//! A `mediamtx.yml` as MediaMTX reads it at start: every key must be one of the reference
//! configuration's, with a value of the same kind (MediaMTX refuses to start otherwise), and the
//! settings the emulator acts on (the API, the playback server, JWT authentication) taken from it.
use crate::AuthConfig;
use std::net::SocketAddr;
use yaml_serde::{Mapping, Value};

const REFERENCE_CONFIG: &str = include_str!("../mediamtx/mediamtx.yml");

/// What the emulator takes from a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// `apiAddress`, where the Control API listens.
    pub api_address: SocketAddr,
    /// `playbackAddress`, when `playback` is on.
    pub playback_address: Option<SocketAddr>,
    /// The JWT settings (`authJWTJWKS`, `authJWTIssuer`, `authJWTAudience`).
    pub auth: AuthConfig,
}

/// A MediaMTX listen address: `:port` (every interface) or `host:port`.
fn address(key: &str, v: &str) -> Result<SocketAddr, String> {
    let full = if v.starts_with(':') { format!("0.0.0.0{v}") } else { v.to_owned() };
    full.parse().map_err(|_| format!("{key}: {v:?} is not an address MediaMTX can listen on (':port' or 'ip:port')"))
}

/// Whether `ours` is the same kind of value as the reference's `theirs` (a reference left empty is
/// an unset string).
fn same_kind(theirs: &Value, ours: &Value) -> bool {
    matches!(
        (theirs, ours),
        (Value::Null, Value::Null | Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
            | (Value::Sequence(_), Value::Sequence(_))
            | (Value::Mapping(_), Value::Mapping(_) | Value::Null)
    )
}

/// Checks every key of `ours` against `reference`, naming `prefix` in errors.
fn check_keys(ours: &Mapping, reference: &Mapping, prefix: &str) -> Result<(), String> {
    for (k, v) in ours {
        let key = k.as_str().ok_or_else(|| format!("{prefix}a key is not a string: {k:?}"))?;
        let theirs = reference.get(k).ok_or_else(|| format!("{prefix}{key}: not a MediaMTX setting"))?;
        if !same_kind(theirs, v) {
            return Err(format!("{prefix}{key}: {v:?} is not the kind of value MediaMTX expects (like {theirs:?})"));
        }
    }
    Ok(())
}

impl ConfigFile {
    /// Reads `text` as MediaMTX would, refusing what MediaMTX refuses and what the emulator cannot
    /// emulate (no API, authentication other than JWT).
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        let reference: Value = yaml_serde::from_str(REFERENCE_CONFIG).map_err(|e| format!("reference: {e}"))?;
        let reference = reference.as_mapping().ok_or("the reference configuration is not a mapping")?;
        let ours: Value = yaml_serde::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        let ours = ours.as_mapping().ok_or("the configuration is not a mapping")?;
        check_keys(ours, reference, "")?;
        let defaults = reference.get("pathDefaults").and_then(Value::as_mapping).ok_or("no pathDefaults")?;
        if let Some(v) = ours.get("pathDefaults").and_then(Value::as_mapping) {
            check_keys(v, defaults, "pathDefaults.")?;
        }
        if let Some(paths) = ours.get("paths").and_then(Value::as_mapping) {
            for (name, conf) in paths {
                let name = name.as_str().unwrap_or("?");
                if let Some(conf) = conf.as_mapping() {
                    check_keys(conf, defaults, &format!("paths.{name}."))?;
                }
            }
        }
        let get = |k: &str| ours.get(k).or_else(|| reference.get(k));
        let text_of = |k: &str| get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        if get("api").and_then(Value::as_bool) != Some(true) {
            return Err("api is not on: the emulator emulates the Control API only".into());
        }
        if text_of("authMethod").as_deref() != Some("jwt") {
            return Err("authMethod must be jwt: the emulator verifies JWTs only".into());
        }
        let jwks = text_of("authJWTJWKS").ok_or("authJWTJWKS is empty: JWTs cannot be verified")?;
        let api_address = address("apiAddress", &text_of("apiAddress").ok_or("apiAddress is empty")?)?;
        let playback_address = match get("playback").and_then(Value::as_bool) {
            Some(true) => {
                Some(address("playbackAddress", &text_of("playbackAddress").ok_or("playbackAddress is empty")?)?)
            }
            _ => None,
        };
        Ok(ConfigFile {
            api_address,
            playback_address,
            auth: AuthConfig {
                jwks_url: Some(jwks),
                issuer: text_of("authJWTIssuer"),
                audience: text_of("authJWTAudience"),
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OK: &str = "api: true\napiAddress: 127.0.0.1:19997\nauthMethod: jwt\nauthJWTJWKS: http://127.0.0.1:7450/.well-known/jwks.json\nauthJWTIssuer: opennvr\nplayback: true\nplaybackAddress: :19996\npathDefaults:\n  recordFormat: fmp4\npaths: {}\n";

    #[test]
    fn a_valid_file_gives_the_api_and_playback_addresses_and_the_jwt_settings() {
        let c = ConfigFile::parse(OK).unwrap();
        assert_eq!(c.api_address, "127.0.0.1:19997".parse().unwrap());
        assert_eq!(c.playback_address, Some("0.0.0.0:19996".parse().unwrap()));
        assert_eq!(c.auth.issuer.as_deref(), Some("opennvr"));
        assert_eq!(c.auth.audience, None);
    }

    #[test]
    fn unknown_keys_and_wrong_kinds_are_refused_like_mediamtx_does() {
        let e = ConfigFile::parse(&format!("{OK}apiPort: 9997\n")).unwrap_err();
        assert!(e.contains("apiPort: not a MediaMTX setting"), "{e}");
        let e = ConfigFile::parse(&OK.replace("api: true", "api: \"yes\"")).unwrap_err();
        assert!(e.starts_with("api:"), "{e}");
        let e = ConfigFile::parse(&OK.replace("recordFormat", "recordFmt")).unwrap_err();
        assert!(e.contains("pathDefaults.recordFmt"), "{e}");
    }

    #[test]
    fn no_api_or_no_jwt_cannot_be_emulated() {
        assert!(ConfigFile::parse(&OK.replace("api: true", "api: false")).unwrap_err().contains("api"));
        assert!(ConfigFile::parse(&OK.replace("authMethod: jwt", "authMethod: internal")).is_err());
    }
}
