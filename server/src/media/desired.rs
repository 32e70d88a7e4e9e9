//! MediaMTX's desired state, computed without I/O: the path config each camera should have, and
//! the writes that turn what MediaMTX holds into that (never a no-op write: every write reloads
//! MediaMTX's configuration; only the recording keys patched when only they changed, so the stream
//! does not drop; only OpenNVR's own paths ever touched).
use super::MediaConfig;
use crate::domain::camera::SourceUrl;
use crate::error::Result;
use crate::store::cameras::CameraRow;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The hook commands OpenNVR sets when its hook endpoint is on.
const HOOK_KEYS: [&str; 4] =
    ["runOnRecordSegmentCreate", "runOnRecordSegmentComplete", "runOnAvailable", "runOnUnavailable"];

/// Keys that MediaMTX hot-reloads: changing only these does not drop the stream.
const HOT_KEYS: [&str; 5] = ["record", "recordPath", "recordFormat", "recordSegmentDuration", "recordDeleteAfter"];

/// `message` without any of `secrets` (MediaMTX may quote a source URL, credentials included).
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_owned();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

/// A Go duration string (`"60s"`, `"1m0s"`, `"1h"`, `"1d"`, `""`) in milliseconds.
fn go_millis(s: &str) -> Option<i64> {
    if s.is_empty() || s == "0" {
        return Some(0);
    }
    let (mut total, mut number, mut rest) = (0f64, String::new(), s);
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        number.push_str(&rest[..digits]);
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor = match unit {
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 6e4,
            "h" => 3.6e6,
            "d" => 8.64e7,
            "us" | "µs" => 1e-3,
            "ns" => 1e-6,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * factor;
        number.clear();
    }
    Some(total.round() as i64)
}

/// Whether a MediaMTX value equals the desired one (durations compared by length, zero durations
/// may come back as `""`).
fn same(key: &str, actual: Option<&Value>, desired: &Value) -> bool {
    match (actual, desired) {
        (Some(Value::String(a)), Value::String(d)) if key.ends_with("Duration") || key.ends_with("After") => {
            go_millis(a).is_some() && go_millis(a) == go_millis(d)
        }
        (Some(a), d) => a == d,
        (None, _) => false,
    }
}

/// The path of a camera out of service that still has footage: no source (`publisher`, and
/// OpenNVR never issues publish tokens), no recording, the recording layout kept.
pub fn retained(config: &MediaConfig) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("source".into(), json!("publisher"));
    m.insert("record".into(), json!(false));
    m.insert("recordPath".into(), json!(config.record_path));
    m.insert("recordFormat".into(), json!("fmp4"));
    m.insert("recordDeleteAfter".into(), json!("0s"));
    m
}

/// The path config MediaMTX should hold for `camera`. The credentials are put into the source URL
/// here, in memory, and only ever sent to MediaMTX.
/// `address` is the camera's checked address: MediaMTX connects to it, never to a fresh
/// resolution of the name.
pub fn desired(
    config: &MediaConfig,
    camera: &CameraRow,
    password: Option<&str>,
    address: std::net::IpAddr,
) -> Result<Map<String, Value>> {
    let source = SourceUrl::parse("source_url", &camera.source_url)?
        .at(address)
        .with_credentials(&camera.username, password.unwrap_or(""));
    let mut conf = json!({
        "source": source,
        "sourceOnDemand": false,
        "rtspTransport": camera.transport.as_str(),
        "record": camera.recording_enabled,
        "recordPath": config.record_path,
        "recordFormat": "fmp4",
        "recordSegmentDuration": format!("{}s", camera.segment_seconds),
        "recordDeleteAfter": "0s",
    });
    if config.hooks {
        for (key, event) in HOOK_KEYS.iter().zip(["segment-create", "segment-complete", "available", "unavailable"]) {
            conf[*key] = json!(format!("{} {event}", config.hook_command));
        }
    }
    match conf {
        Value::Object(m) => Ok(m),
        _ => Err(crate::error::Error::internal("path config is not an object")),
    }
}

/// One write that brings MediaMTX's path configs toward the desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum PathWrite {
    /// A path MediaMTX lacks: added whole.
    Add(String, Map<String, Value>),
    /// Only hot-reloaded keys differ: those keys alone (the stream does not drop).
    Patch(String, Map<String, Value>),
    /// Other keys differ: the whole entry replaced.
    Replace(String, Map<String, Value>),
    /// An OpenNVR path that nothing wants any more.
    Delete(String),
}

/// The writes that turn `actual` (OpenNVR's paths as MediaMTX holds them) into `wanted`, leaving
/// the paths in `keep` as they are; nothing for paths that already match.
pub fn diff(
    wanted: &BTreeMap<String, Map<String, Value>>,
    actual: &BTreeMap<String, Map<String, Value>>,
    keep: &[String],
) -> Vec<PathWrite> {
    let mut writes = Vec::new();
    for (name, conf) in wanted {
        match actual.get(name) {
            None => writes.push(PathWrite::Add(name.clone(), conf.clone())),
            Some(have) => {
                let changed: Vec<&String> = conf.keys().filter(|k| !same(k, have.get(*k), &conf[*k])).collect();
                // Hook commands left from when hooks were on: the whole entry is replaced without them.
                let stale_hooks = HOOK_KEYS.iter().any(|k| {
                    !conf.contains_key(*k) && have.get(*k).and_then(Value::as_str).is_some_and(|v| !v.is_empty())
                });
                if stale_hooks {
                    writes.push(PathWrite::Replace(name.clone(), conf.clone()));
                    continue;
                }
                if changed.is_empty() {
                    continue;
                }
                if changed.iter().all(|k| HOT_KEYS.contains(&k.as_str())) {
                    let only: Map<String, Value> = changed.iter().map(|k| ((*k).clone(), conf[*k].clone())).collect();
                    writes.push(PathWrite::Patch(name.clone(), only));
                } else {
                    writes.push(PathWrite::Replace(name.clone(), conf.clone()));
                }
            }
        }
    }
    for name in actual.keys().filter(|n| !wanted.contains_key(*n) && !keep.contains(n)) {
        writes.push(PathWrite::Delete(name.clone()));
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn a_path_that_matches_needs_no_write() {
        let wanted = BTreeMap::from([("opennvr-a".to_owned(), conf(&[("recordSegmentDuration", json!("60s"))]))]);
        let actual = BTreeMap::from([("opennvr-a".to_owned(), conf(&[("recordSegmentDuration", json!("1m0s"))]))]);
        assert!(diff(&wanted, &actual, &[]).is_empty());
    }

    #[test]
    fn only_hot_keys_changed_is_a_patch_of_those_keys() {
        let wanted = BTreeMap::from([(
            "opennvr-a".to_owned(),
            conf(&[("source", json!("rtsp://10.0.0.1/x")), ("record", json!(true))]),
        )]);
        let actual = BTreeMap::from([(
            "opennvr-a".to_owned(),
            conf(&[("source", json!("rtsp://10.0.0.1/x")), ("record", json!(false))]),
        )]);
        assert_eq!(
            diff(&wanted, &actual, &[]),
            vec![PathWrite::Patch("opennvr-a".into(), conf(&[("record", json!(true))]))]
        );
    }

    #[test]
    fn other_keys_changed_replace_the_path_and_missing_paths_are_added() {
        let new_source = conf(&[("source", json!("rtsp://10.0.0.2/x")), ("record", json!(true))]);
        let wanted = BTreeMap::from([
            ("opennvr-a".to_owned(), new_source.clone()),
            ("opennvr-b".to_owned(), conf(&[("record", json!(true))])),
        ]);
        let actual = BTreeMap::from([(
            "opennvr-a".to_owned(),
            conf(&[("source", json!("rtsp://10.0.0.1/x")), ("record", json!(true))]),
        )]);
        assert_eq!(
            diff(&wanted, &actual, &[]),
            vec![
                PathWrite::Replace("opennvr-a".into(), new_source),
                PathWrite::Add("opennvr-b".into(), conf(&[("record", json!(true))])),
            ]
        );
    }

    #[test]
    fn unwanted_paths_are_deleted_unless_kept() {
        let wanted = BTreeMap::new();
        let actual = BTreeMap::from([
            ("opennvr-gone".to_owned(), conf(&[("record", json!(true))])),
            ("opennvr-kept".to_owned(), conf(&[("record", json!(true))])),
        ]);
        assert_eq!(
            diff(&wanted, &actual, &["opennvr-kept".to_owned()]),
            vec![PathWrite::Delete("opennvr-gone".into())]
        );
    }

    #[test]
    fn hook_commands_left_from_before_replace_the_path_without_them() {
        let wanted = BTreeMap::from([("opennvr-a".to_owned(), conf(&[("record", json!(true))]))]);
        let hooked = conf(&[("record", json!(true)), ("runOnAvailable", json!("/opennvr-hook available"))]);
        let actual = BTreeMap::from([("opennvr-a".to_owned(), hooked)]);
        assert_eq!(
            diff(&wanted, &actual, &[]),
            vec![PathWrite::Replace("opennvr-a".into(), conf(&[("record", json!(true))]))]
        );
        // MediaMTX reports an unset hook as "": nothing to do then.
        let unset = conf(&[("record", json!(true)), ("runOnAvailable", json!(""))]);
        assert!(diff(&wanted, &BTreeMap::from([("opennvr-a".to_owned(), unset)]), &[]).is_empty());
    }

    #[test]
    fn secrets_are_scrubbed_from_mediamtx_messages() {
        let secrets = vec!["rtsp://u:p%40ss@10.0.0.1/x".to_owned(), "p%40ss".to_owned(), "p@ss".to_owned()];
        let m = scrub("invalid source: 'rtsp://u:p%40ss@10.0.0.1/x' (p@ss)", &secrets);
        assert_eq!(m, "invalid source: '<redacted>' (<redacted>)");
    }

    #[test]
    fn durations_compare_by_length() {
        assert_eq!(go_millis("60s"), Some(60_000));
        assert_eq!(go_millis("1m0s"), Some(60_000));
        assert_eq!(go_millis("1h0m0s"), go_millis("3600s"));
        assert_eq!(go_millis(""), Some(0));
        assert_eq!(go_millis("0s"), Some(0));
        assert_eq!(go_millis("1d"), Some(86_400_000));
        assert_eq!(go_millis("5x"), None);
        assert!(same("recordSegmentDuration", Some(&json!("1m0s")), &json!("60s")));
        assert!(same("recordDeleteAfter", Some(&json!("")), &json!("0s")));
        assert!(!same("record", Some(&json!(false)), &json!(true)));
    }
}
