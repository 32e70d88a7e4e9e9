//! What a camera is and which values it accepts: names, source URLs (never with credentials),
//! transport, recording settings, labels, and the MediaMTX path name derived from its id.
use super::Permission;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::net::IpAddr;
use uuid::Uuid;

/// Prefix of every MediaMTX path OpenNVR manages; paths without it are never touched.
pub const PATH_PREFIX: &str = "opennvr-";

/// The MediaMTX path of camera `id`: derived from the id, never from user text.
pub fn path_name(id: Uuid) -> String {
    format!("{PATH_PREFIX}{}", id.simple())
}

/// How MediaMTX's RTSP client carries a camera's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Automatic,
    Tcp,
    Udp,
}

impl Transport {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Automatic => "automatic",
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl super::StoredName for Transport {
    const WHAT: &'static str = "transport";
    const ALL: &'static [Transport] = &[Transport::Automatic, Transport::Tcp, Transport::Udp];
    fn stored_name(self) -> &'static str {
        self.as_str()
    }
}

/// What is kept of a recording camera's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingMode {
    Continuous,
    Events,
}

impl RecordingMode {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingMode::Continuous => "continuous",
            RecordingMode::Events => "events",
        }
    }
}

impl super::StoredName for RecordingMode {
    const WHAT: &'static str = "recording mode";
    const ALL: &'static [RecordingMode] = &[RecordingMode::Continuous, RecordingMode::Events];
    fn stored_name(self) -> &'static str {
        self.as_str()
    }
}

/// Summary state of a camera for its operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CameraState {
    /// Not enabled: not in MediaMTX.
    Disabled,
    /// Configured, not delivering media yet.
    Connecting,
    /// Delivering media.
    Online,
    /// Delivered media before, does not now.
    Offline,
    /// Its configuration could not be applied (MediaMTX refused it, or is unreachable).
    Error,
}

/// The state of a camera from what is known of it.
pub fn camera_state(enabled: bool, not_applied: bool, available: bool, seen_online: bool) -> CameraState {
    match (enabled, not_applied, available, seen_online) {
        (false, ..) => CameraState::Disabled,
        (true, true, ..) => CameraState::Error,
        (true, false, true, _) => CameraState::Online,
        (true, false, false, true) => CameraState::Offline,
        (true, false, false, false) => CameraState::Connecting,
    }
}

/// Segment length when none is given.
pub const DEFAULT_SEGMENT_SECONDS: i32 = 60;
/// Bounds of a segment's length.
pub const SEGMENT_SECONDS: std::ops::RangeInclusive<i64> = 10..=3600;
/// Longest event pre-roll or post-roll.
pub const MAX_ROLL_MS: i64 = 3_600_000;

/// A camera's name: trimmed, 1–100 characters, no control characters. Unique without regard to case.
pub fn validate_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid(field, format!("{field} is required")));
    }
    if name.chars().count() > 100 {
        return Err(Error::invalid(field, format!("{field} must be at most 100 characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(name.to_owned())
}

/// Free text (description, location): at most `max` characters, no control characters but newlines.
pub fn validate_text(field: &'static str, text: &str, max: usize) -> Result<String> {
    if text.chars().count() > max {
        return Err(Error::invalid(field, format!("{field} must be at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(text.to_owned())
}

/// A checked source URL: `rtsp://` or `rtsps://`, a host, no credentials, no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl {
    url: url::Url,
}

impl SourceUrl {
    /// Parses and checks `text` (the error names `field`).
    pub fn parse(field: &'static str, text: &str) -> Result<SourceUrl> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid(field, format!("{field} is required")));
        }
        if text.len() > 2048 {
            return Err(Error::invalid(field, format!("{field} must be at most 2048 bytes")));
        }
        let url =
            url::Url::parse(text).map_err(|e| Error::invalid(field, format!("{field} is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "rtsp" | "rtsps") {
            return Err(Error::invalid(field, format!("{field} must be an rtsp:// or rtsps:// URL")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(
                field,
                format!("{field} must not carry credentials: give username and password separately"),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::invalid(field, format!("{field} must name a host")));
        }
        if url.fragment().is_some() {
            return Err(Error::invalid(field, format!("{field} must not have a #fragment")));
        }
        Ok(SourceUrl { url })
    }

    /// The URL as stored (no credentials).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// Host and port (the scheme's default when absent): a stored password only ever goes back to the
    /// same pair.
    pub fn endpoint(&self) -> (String, u16) {
        let port = self.url.port().unwrap_or(if self.url.scheme() == "rtsps" { 322 } else { 554 });
        (self.url.host_str().unwrap_or("").to_ascii_lowercase(), port)
    }

    /// The same URL aimed at `ip` instead of its host: connections then go to the address that was
    /// checked, not to whatever the name resolves to later.
    pub fn at(&self, ip: IpAddr) -> SourceUrl {
        let mut url = self.url.clone();
        // An rtsp(s) URL with a host always takes an IP host.
        let _ = url.set_ip_host(ip);
        SourceUrl { url }
    }

    /// The URL with `username`/`password` percent-encoded into it, for MediaMTX only (in memory).
    pub fn with_credentials(&self, username: &str, password: &str) -> String {
        let mut url = self.url.clone();
        if !username.is_empty() {
            // Setting credentials only fails for URLs without a host, which parse() refused.
            let _ = url.set_username(username);
            if !password.is_empty() {
                let _ = url.set_password(Some(password));
            }
        }
        url.to_string()
    }
}

/// The networks cameras may live in: sources and connection tests are limited to them, so the API
/// cannot be used to reach anything else (the server's own database, MediaMTX's API, the internet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraNetworks(Vec<ipnet::IpNet>);

/// The private ranges (RFC 1918, IPv6 unique-local). Not loopback (the server's own database and
/// MediaMTX's API), not link-local (169.254.169.254 is a cloud metadata service), not shared address
/// space: a site whose cameras use those lists them in OPENNVR_CAMERA_NETWORKS.
pub const DEFAULT_CAMERA_NETWORKS: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

impl CameraNetworks {
    /// Parses comma-separated CIDRs (a bare address is a one-address network).
    pub fn parse(text: &str) -> std::result::Result<CameraNetworks, String> {
        let mut nets = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{part:?} is not a CIDR network"))?;
            nets.push(net.trunc());
        }
        Ok(CameraNetworks(nets))
    }

    /// Whether `ip` lies in one of the networks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// An RTSP username: at most 128 characters, no control characters.
pub fn validate_username(field: &'static str, username: &str) -> Result<String> {
    validate_text(field, username, 128).and_then(|u| {
        if u.contains('\n') {
            Err(Error::invalid(field, format!("{field} must not contain control characters")))
        } else {
            Ok(u)
        }
    })
}

/// An RTSP password: at most 256 bytes, no control characters.
pub fn validate_password(field: &'static str, password: &str) -> Result<()> {
    if password.len() > 256 {
        return Err(Error::invalid(field, format!("{field} must be at most 256 bytes")));
    }
    if password.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(())
}

/// Labels: at most 32; keys 1–63 characters of `[a-z0-9_.-]` starting with a letter or digit;
/// values at most 256 characters.
pub fn validate_labels(field: &'static str, labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.len() > 32 {
        return Err(Error::invalid(field, format!("{field} holds at most 32 labels")));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
            && k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if !key_ok {
            return Err(Error::invalid(
                field,
                format!(
                    "{field} key {k:?} must be 1-63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
                ),
            ));
        }
        if v.chars().count() > 256 || v.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("{field} value of {k:?} must be at most 256 characters, no control characters"),
            ));
        }
    }
    Ok(())
}

/// The event topics whose footage a camera keeps as event footage, as stored: `None` for an empty
/// list (the defaults); only motion, detections and IDS alerts are accepted.
pub fn validate_footage_topics(field: &'static str, topics: &[super::event::Topic]) -> Result<Option<Vec<String>>> {
    use super::event::Topic;
    if topics.is_empty() {
        return Ok(None);
    }
    let mut names = Vec::new();
    for t in topics {
        if !Topic::FOOTAGE_DEFAULT.contains(t) {
            return Err(Error::invalid(
                field,
                format!("{field}: only EVENT_TYPE_MOTION, EVENT_TYPE_DETECTION and EVENT_TYPE_IDS_ALERT mark footage"),
            ));
        }
        if !names.contains(&t.name().to_owned()) {
            names.push(t.name().to_owned());
        }
    }
    Ok(Some(names))
}

/// A camera's motion detector settings, checked and with defaults filled, as stored.
pub fn validate_motion(
    field: &'static str,
    motion: Option<&super::motion::MotionSettings>,
) -> Result<Option<serde_json::Value>> {
    motion.map(|m| m.clone().checked(field).and_then(|m| serde_json::to_value(m).map_err(Error::internal))).transpose()
}

/// Extra device addresses: literal IPs inside the camera networks (an address outside them would let
/// a camera claim, and so hide or harvest, other hosts' intrusion alerts), at most 16, normalised.
pub fn validate_ip_addresses(
    field: &'static str,
    addresses: &[String],
    networks: &CameraNetworks,
) -> Result<Vec<String>> {
    if addresses.len() > 16 {
        return Err(Error::invalid(field, format!("{field} holds at most 16 addresses")));
    }
    let mut out: Vec<String> = Vec::with_capacity(addresses.len());
    for a in addresses {
        let ip: IpAddr =
            a.trim().parse().map_err(|_| Error::invalid(field, format!("{field}: {a:?} is not an IP address")))?;
        if !networks.contains(ip) {
            return Err(Error::invalid(
                field,
                format!("{field}: {ip} lies outside the camera networks (OPENNVR_CAMERA_NETWORKS)"),
            ));
        }
        let ip = ip.to_canonical().to_string();
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// A segment length in whole seconds within [`SEGMENT_SECONDS`].
pub fn validate_segment_seconds(field: &'static str, seconds: i64, nanos: i32) -> Result<i32> {
    if nanos != 0 || !SEGMENT_SECONDS.contains(&seconds) {
        return Err(Error::invalid(field, format!("{field} must be whole seconds between 10 s and 1 h")));
    }
    Ok(seconds as i32)
}

/// An event pre-roll or post-roll in milliseconds, at most an hour.
/// Video kept before and after each event when a camera does not say.
pub const DEFAULT_PRE_ROLL_MS: i64 = 10_000;
pub const DEFAULT_POST_ROLL_MS: i64 = 30_000;

pub fn validate_roll(field: &'static str, seconds: i64, nanos: i32) -> Result<i64> {
    let ms = seconds.checked_mul(1000).and_then(|s| s.checked_add(i64::from(nanos) / 1_000_000));
    match ms {
        Some(ms) if (0..=MAX_ROLL_MS).contains(&ms) && nanos >= 0 => Ok(ms),
        _ => Err(Error::invalid(field, format!("{field} must be between 0 and 1 h"))),
    }
}

/// Permissions a camera grant may hold, with what each lets a user do on that one camera: see it,
/// watch it live, change it (manage), play its recordings back, export clips.
pub const GRANTABLE: [Permission; 5] = [
    Permission::CameraRead,
    Permission::CameraLive,
    Permission::CameraWrite,
    Permission::RecordingRead,
    Permission::RecordingExport,
];

/// Parses a grant's permission names (camera.read is implied and added); sorted, unique.
pub fn grant_permissions(field: &'static str, names: &[String]) -> Result<Vec<Permission>> {
    if names.is_empty() {
        return Err(Error::invalid(field, format!("{field} names no permission")));
    }
    let mut out = vec![Permission::CameraRead];
    for n in names {
        let p = n
            .parse::<Permission>()
            .ok()
            .filter(|p| GRANTABLE.contains(p))
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("{field}: {n:?} is not grantable on a camera (camera.read, camera.live, camera.write, recording.read, recording.export)"),
                )
            })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.name());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls() {
        let u = SourceUrl::parse("f", "rtsp://10.0.0.5/stream1").unwrap();
        assert_eq!(u.endpoint(), ("10.0.0.5".to_owned(), 554));
        assert_eq!(u.with_credentials("ad min", "p@ss:/w"), "rtsp://ad%20min:p%40ss%3A%2Fw@10.0.0.5/stream1");
        assert_eq!(
            SourceUrl::parse("f", "rtsps://cam.local:8322/x").unwrap().endpoint(),
            ("cam.local".to_owned(), 8322)
        );
        for bad in
            ["http://10.0.0.5/", "rtsp://user:pw@10.0.0.5/", "rtsp://user@10.0.0.5/", "rtsp:///x", "", "rtsp://h/#f"]
        {
            let e = SourceUrl::parse("camera.source_url", bad).unwrap_err();
            assert_eq!(e.field(), Some("camera.source_url"), "{bad}");
        }
    }

    #[test]
    fn grants_imply_read() {
        let p = grant_permissions("p", &["camera.live".into()]).unwrap();
        assert_eq!(p, vec![Permission::CameraLive, Permission::CameraRead]);
        assert!(grant_permissions("p", &["user.write".into()]).is_err());
        assert!(grant_permissions("p", &[]).is_err());
    }

    #[test]
    fn camera_networks() {
        let n = CameraNetworks::parse(DEFAULT_CAMERA_NETWORKS).unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("192.168.1.9".parse().unwrap()));
        assert!(n.contains("::ffff:192.168.1.9".parse().unwrap()), "mapped IPv4");
        assert!(!n.contains("127.0.0.1".parse().unwrap()), "loopback is not a camera network");
        assert!(!n.contains("::1".parse().unwrap()));
        assert!(!n.contains("8.8.8.8".parse().unwrap()));
        assert!(CameraNetworks::parse("10.0.0.0/33").is_err());
        assert!(CameraNetworks::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn path_names_come_from_ids() {
        let id = Uuid::nil();
        assert_eq!(path_name(id), "opennvr-00000000000000000000000000000000");
    }
}
