//! The `PathConf` schema and defaults MediaMTX ships (`openapi.yaml`, `mediamtx.yml`), and MediaMTX's
//! validation of path names, request bodies and whole path configs against them.
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const OPENAPI: &str = include_str!("../mediamtx/openapi.yaml");
const REFERENCE_CONFIG: &str = include_str!("../mediamtx/mediamtx.yml");

/// JSON type of a `PathConf` property, as `openapi.yaml` declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    String,
    Boolean,
    Integer,
    Number,
    Array,
    Object,
}

#[derive(Debug, Clone)]
struct Property {
    kind: Kind,
    nullable: bool,
    /// Allowed values of an enumerated string.
    values: Option<Vec<String>>,
}

/// The `PathConf` schema and defaults.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    properties: HashMap<String, Property>,
    /// `pathDefaults` of the reference configuration, as JSON.
    pub(crate) defaults: Map<String, Value>,
    /// Zero-valued instances of the session schemas (`WebRTCSession`, ...), by schema name.
    pub(crate) sessions: HashMap<String, Map<String, Value>>,
}

pub(crate) fn load_schema() -> Result<Schema, String> {
    let api: Value = yaml_serde::from_str(OPENAPI).map_err(|e| format!("openapi.yaml: {e}"))?;
    let props = api
        .pointer("/components/schemas/PathConf/properties")
        .and_then(Value::as_object)
        .ok_or("openapi.yaml has no PathConf")?;
    let mut properties = HashMap::new();
    for (name, p) in props {
        // A property is typed in place, or by reference to a named schema (directly or in allOf).
        let referenced = p
            .get("$ref")
            .or_else(|| p.pointer("/allOf/0/$ref"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .and_then(|n| api.pointer(&format!("/components/schemas/{n}")));
        let typed = if p.get("type").is_some() { p } else { referenced.unwrap_or(p) };
        let kind = match typed.get("type").and_then(Value::as_str) {
            Some("string") => Kind::String,
            Some("boolean") => Kind::Boolean,
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("array") => Kind::Array,
            Some("object") => Kind::Object,
            other => return Err(format!("PathConf.{name}: unknown type {other:?}")),
        };
        let nullable = p.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        let values = typed
            .get("enum")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect());
        properties.insert(name.clone(), Property { kind, nullable, values });
    }
    let config: Value = yaml_serde::from_str(REFERENCE_CONFIG).map_err(|e| format!("mediamtx.yml: {e}"))?;
    let mut defaults = config.get("pathDefaults").and_then(Value::as_object).cloned().ok_or("no pathDefaults")?;
    // YAML reads `source: publisher` etc. fine; keep only keys the API knows.
    defaults.retain(|k, _| properties.contains_key(k));
    let mut sessions = HashMap::new();
    for name in ["WebRTCSession", "HLSSession", "RTSPSession"] {
        let props = api
            .pointer(&format!("/components/schemas/{name}/properties"))
            .and_then(Value::as_object)
            .ok_or(format!("openapi.yaml has no {name}"))?;
        let zero = props
            .iter()
            .map(|(k, p)| {
                let referenced = p
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .and_then(|n| api.pointer(&format!("/components/schemas/{n}")));
                let typed = referenced.unwrap_or(p);
                let v = match (typed.get("type").and_then(Value::as_str), typed.pointer("/enum/0")) {
                    (_, Some(first)) => first.clone(),
                    (Some("integer"), _) => json!(0),
                    (Some("number"), _) => json!(0.0),
                    (Some("boolean"), _) => json!(false),
                    (Some("array"), _) => json!([]),
                    (Some("string"), _) => json!(""),
                    _ => Value::Null,
                };
                (k.clone(), v)
            })
            .collect();
        sessions.insert(name.to_owned(), zero);
    }
    Ok(Schema { properties, defaults, sessions })
}

/// MediaMTX's name rules.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("invalid path name: cannot be empty".into());
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err(format!("invalid path name '{name}': can't begin or end with a slash"));
    }
    if name.starts_with('~') || name == "all" || name == "all_others" {
        return Err(format!("invalid path name '{name}': reserved"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-/.".contains(&b)) {
        return Err(format!(
            "invalid path name '{name}': can contain only alphanumeric characters, underscore, dot, hyphen and slash"
        ));
    }
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("invalid path name '{name}': can't contain '.' or '..' segments"));
    }
    Ok(())
}

/// The body as a `PathConf`: an object of known keys with the declared types.
pub(crate) fn check_body(schema: &Schema, body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("json: {e}"))?;
    let Value::Object(map) = value else {
        return Err("json: cannot unmarshal non-object into Go value of type conf.OptionalPath".into());
    };
    for (k, v) in &map {
        let Some(p) = schema.properties.get(k) else { return Err(format!("json: unknown field \"{k}\"")) };
        let ok = match (&p.kind, v) {
            (_, Value::Null) => p.nullable,
            (Kind::String, Value::String(_)) | (Kind::Boolean, Value::Bool(_)) => true,
            (Kind::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::Number, Value::Number(_)) => true,
            (Kind::Array, Value::Array(_)) | (Kind::Object, Value::Object(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(format!(
                "json: cannot unmarshal {} into Go struct field Path.{k} of type {:?}",
                kind_of(v),
                p.kind
            ));
        }
        if let (Some(values), Some(text)) = (&p.values, v.as_str())
            && !values.iter().any(|x| x == text)
        {
            return Err(format!("invalid value '{text}' for '{k}'"));
        }
    }
    Ok(map)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A Go duration string ("10s", "1h0m0s", "1d", "500ms") in seconds.
fn go_duration(s: &str) -> Option<f64> {
    if s == "0" || s.is_empty() {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        total += v * match unit.as_str() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

/// MediaMTX's validation of a whole path config (defaults applied).
pub(crate) fn check_conf(schema: &Schema, conf: &Map<String, Value>) -> Result<(), String> {
    let mut full = schema.defaults.clone();
    for (k, v) in conf {
        full.insert(k.clone(), v.clone());
    }
    let text = |k: &str| full.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let record_path = text("recordPath");
    if !record_path.contains("%path") {
        return Err("'recordPath' must contain %path".into());
    }
    let all_parts = ["%Y", "%m", "%d", "%H", "%M", "%S"].iter().all(|p| record_path.contains(p));
    if !record_path.contains("%s") && !all_parts {
        return Err("'recordPath' must contain either %s or %Y %m %d %H %M %S".into());
    }
    if !record_path.contains("%f") {
        return Err("'recordPath' must contain %f".into());
    }
    for k in ["recordSegmentDuration", "recordDeleteAfter", "recordPartDuration"] {
        if go_duration(&text(k)).is_none() {
            return Err(format!("invalid duration '{}' in '{k}'", text(k)));
        }
    }
    let segment = go_duration(&text("recordSegmentDuration")).unwrap_or(0.0);
    let delete_after = go_duration(&text("recordDeleteAfter")).unwrap_or(0.0);
    if segment > 86400.0 {
        return Err("'recordSegmentDuration' must be at most 24h".into());
    }
    if delete_after != 0.0 && delete_after < segment {
        return Err("'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'".into());
    }
    let format = text("recordFormat");
    if format != "fmp4" && format != "mpegts" {
        return Err(format!("invalid record format '{format}'"));
    }
    let source = text("source");
    if full.get("sourceOnDemand").and_then(Value::as_bool) == Some(true) && source == "publisher" {
        return Err("'sourceOnDemand' is useless when source is 'publisher'".into());
    }
    if source != "publisher"
        && source != "redirect"
        && !source.starts_with("rtsp://")
        && !source.starts_with("rtsps://")
        && !source.contains("://")
    {
        return Err(format!("invalid source: '{source}'"));
    }
    let transport = text("rtspTransport");
    if !["automatic", "udp", "multicast", "tcp"].contains(&transport.as_str()) {
        return Err(format!("invalid rtspTransport '{transport}'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_and_defaults_load() {
        let s = load_schema().expect("schema");
        assert_eq!(s.properties.get("record").map(|p| p.kind.clone()), Some(Kind::Boolean));
        assert_eq!(s.defaults.get("source").and_then(Value::as_str), Some("publisher"));
        assert!(check_conf(&s, &Map::new()).is_ok(), "the reference defaults are valid");
    }

    #[test]
    fn bodies_are_checked_strictly() {
        let s = load_schema().expect("schema");
        assert!(check_body(&s, br#"{"record": true}"#).is_ok());
        assert_eq!(check_body(&s, br#"{"recrod": true}"#).expect_err("unknown key"), "json: unknown field \"recrod\"");
        assert!(check_body(&s, br#"{"record": "yes"}"#).is_err());
        let bad_path: Map<String, Value> = serde_json::from_str(r#"{"recordPath": "./rec/%Y"}"#).expect("json");
        assert!(check_conf(&s, &bad_path).is_err());
        let short: Map<String, Value> =
            serde_json::from_str(r#"{"recordDeleteAfter": "30s", "recordSegmentDuration": "1m"}"#).expect("json");
        assert!(check_conf(&s, &short).is_err());
        assert_eq!(go_duration("1h0m0s"), Some(3600.0));
        assert_eq!(go_duration("1d"), Some(86400.0));
        assert!(check_name("a/../b").is_err());
        assert!(check_name("opennvr-abc").is_ok());
    }
}
