//! Suricata EVE records: one JSON object per line; `event_type: "alert"` lines become alerts, every
//! other type is skipped, and a line that is not a well-formed record is reported, never fatal.
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What Suricata did with the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AlertAction {
    Allowed,
    Blocked,
}

impl AlertAction {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Allowed => "allowed",
            AlertAction::Blocked => "blocked",
        }
    }
}

/// One alert, as the EVE record gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EveAlert {
    pub time: DateTime<Utc>,
    pub flow_id: i64,
    pub in_iface: String,
    pub community_id: String,
    pub src_ip: IpAddr,
    pub src_port: i32,
    pub dest_ip: IpAddr,
    pub dest_port: i32,
    pub proto: String,
    pub app_proto: String,
    pub action: Option<AlertAction>,
    pub gid: i64,
    pub signature_id: i64,
    pub rev: i64,
    pub signature: String,
    pub category: String,
    pub severity: i32,
    pub metadata: BTreeMap<String, Vec<String>>,
    pub source_ip: String,
    pub target_ip: String,
    pub rule: String,
    /// The line as read.
    pub eve_json: String,
}

/// What one line of the log is.
#[derive(Debug, Clone, PartialEq)]
pub enum EveLine {
    Alert(Box<EveAlert>),
    /// A record of another type (flow, dns, stats, ...), or an empty line.
    Other,
    /// Not a record OpenNVR can read, and why.
    Malformed(String),
}

/// EVE's timestamp: `2026-11-25T03:12:19.097374+0000` (RFC 3339 with a colon is accepted too).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").chars().take(4096).collect()
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn port(v: &Value, key: &str) -> Result<i32, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(p) => p
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| (0..=65_535).contains(p))
            .ok_or_else(|| format!("{key} is not a port")),
    }
}

fn address(v: &Value, key: &str) -> Result<IpAddr, String> {
    let raw = v.get(key).and_then(Value::as_str).ok_or_else(|| format!("{key} is missing"))?;
    raw.parse().map_err(|_| format!("{key} {raw:?} is not an IP address"))
}

/// Reads one line of an EVE log.
pub fn parse_line(line: &str) -> EveLine {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return EveLine::Other;
    }
    let v: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return EveLine::Malformed("not a JSON object".into()),
        Err(e) => return EveLine::Malformed(format!("not JSON: {e}")),
    };
    match v.get("event_type").and_then(Value::as_str) {
        Some("alert") => {}
        Some(_) => return EveLine::Other,
        None => return EveLine::Malformed("no event_type".into()),
    }
    match alert(&v, line) {
        Ok(a) => EveLine::Alert(Box::new(a)),
        Err(e) => EveLine::Malformed(e),
    }
}

fn alert(v: &Value, line: &str) -> Result<EveAlert, String> {
    let time = v
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .ok_or_else(|| "timestamp is missing or not a time".to_owned())?;
    let a = v.get("alert").filter(|a| a.is_object()).ok_or_else(|| "alert is missing".to_owned())?;
    let action = match a.get("action").and_then(Value::as_str) {
        Some("allowed") => Some(AlertAction::Allowed),
        Some("blocked") => Some(AlertAction::Blocked),
        _ => None,
    };
    let metadata = a
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, vs)| {
                    let values = match vs {
                        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                        Value::String(s) => vec![s.clone()],
                        _ => Vec::new(),
                    };
                    (k.clone(), values)
                })
                .collect()
        })
        .unwrap_or_default();
    let ip_of = |key: &str| a.get(key).and_then(|o| o.get("ip")).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok(EveAlert {
        time,
        flow_id: int(v, "flow_id"),
        in_iface: text(v, "in_iface"),
        community_id: text(v, "community_id"),
        src_ip: address(v, "src_ip")?,
        src_port: port(v, "src_port")?,
        dest_ip: address(v, "dest_ip")?,
        dest_port: port(v, "dest_port")?,
        proto: text(v, "proto"),
        app_proto: text(v, "app_proto"),
        action,
        gid: int(a, "gid"),
        signature_id: int(a, "signature_id"),
        rev: int(a, "rev"),
        signature: text(a, "signature"),
        category: text(a, "category"),
        severity: i32::try_from(int(a, "severity")).unwrap_or(0),
        metadata,
        source_ip: ip_of("source"),
        target_ip: ip_of("target"),
        rule: text(a, "rule"),
        eve_json: line.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"timestamp":"2026-11-25T03:12:19.097374+0000","flow_id":1402357817263281,"in_iface":"eth1","event_type":"alert","src_ip":"10.0.0.23","src_port":49152,"dest_ip":"198.51.100.7","dest_port":443,"proto":"TCP","app_proto":"tls","alert":{"action":"allowed","gid":1,"signature_id":2027865,"rev":3,"signature":"ET POLICY Possible IoT device phoning home","category":"Potential Corporate Privacy Violation","severity":2,"metadata":{"signature_severity":["Minor"]}}}"#;

    #[test]
    fn reads_the_documented_alert() {
        let EveLine::Alert(a) = parse_line(EXAMPLE) else { panic!("not an alert") };
        assert_eq!(a.time.to_rfc3339(), "2026-11-25T03:12:19.097374+00:00");
        assert_eq!((a.src_ip.to_string(), a.src_port, a.dest_port), ("10.0.0.23".into(), 49152, 443));
        assert_eq!((a.signature_id, a.severity, a.action), (2_027_865, 2, Some(AlertAction::Allowed)));
        assert_eq!(a.metadata.get("signature_severity"), Some(&vec!["Minor".to_owned()]));
        assert_eq!(a.eve_json, EXAMPLE);
    }

    #[test]
    fn other_types_are_skipped_and_bad_lines_reported() {
        assert_eq!(parse_line(r#"{"timestamp":"2026-11-25T03:12:19.0+0000","event_type":"flow"}"#), EveLine::Other);
        assert_eq!(parse_line(""), EveLine::Other);
        assert!(matches!(parse_line("{\"event_type\":\"alert\""), EveLine::Malformed(_)));
        assert!(matches!(parse_line("[1,2]"), EveLine::Malformed(_)));
        let no_ip = EXAMPLE.replace("\"10.0.0.23\"", "\"camera-7\"");
        assert!(matches!(parse_line(&no_ip), EveLine::Malformed(m) if m.contains("src_ip")));
        let icmp = EXAMPLE.replace(",\"src_port\":49152", "").replace(",\"dest_port\":443", "");
        assert!(matches!(parse_line(&icmp), EveLine::Alert(a) if a.src_port == 0 && a.dest_port == 0));
        assert!(parse_time("2026-11-25T03:12:19.097374-0300").is_some());
    }
}
