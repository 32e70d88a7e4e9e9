//! A typed client of MediaMTX's Control API v3. It authenticates with a short JWT the server signs
//! itself (`api` permission, verified by MediaMTX against the server's JWKS), waits longer than
//! MediaMTX's random 4 s delay on bad credentials, tolerates the differences between versions that
//! CONTRACT.md lists (empty success bodies, `ready` for `available`), and keeps MediaMTX's message
//! in its errors. MediaMTX's answers can hold camera credentials: they are never logged.
use crate::clock::SharedClock;
use crate::security::keyring::KeyRing;
use serde_json::{Map, Value};
use std::time::Duration;

/// Longer than MediaMTX's 0–4 s delay before it answers a failed authentication.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Audience of the API tokens.
pub const AUDIENCE: &str = "mediamtx";

/// What went wrong talking to MediaMTX.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MtxError {
    /// No answer (down, refused, timed out).
    #[error("MediaMTX is unreachable: {0}")]
    Unreachable(String),
    /// MediaMTX refused the server's API token.
    #[error("MediaMTX refused OpenNVR's API token (check authJWTJWKS points at OpenNVR's JWKS): {0}")]
    Unauthorized(String),
    /// The thing asked for does not exist.
    #[error("not found in MediaMTX: {0}")]
    NotFound(String),
    /// MediaMTX refused the request (validation); its own message.
    #[error("MediaMTX refused the request: {0}")]
    Rejected(String),
    /// Anything else (5xx, unreadable answer).
    #[error("MediaMTX failed: {0}")]
    Failed(String),
}

/// `GET /v3/info`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Info {
    pub version: String,
    /// Changes on every restart (v1.15.2+).
    #[serde(default)]
    pub started: String,
}

/// One runtime path (`GET /v3/paths/...`), the fields OpenNVR reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimePath {
    pub name: String,
    pub available: bool,
    pub available_time: Option<String>,
    pub readers: usize,
    pub inbound_bytes: i64,
    pub outbound_bytes: i64,
    pub inbound_frames_in_error: i64,
    /// (codec, width, height).
    pub tracks: Vec<(String, i64, i64)>,
}

impl RuntimePath {
    fn from_json(v: &Value) -> RuntimePath {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let int = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        // `available` since v1.16; `ready` before (still emitted).
        let available = v.get("available").or_else(|| v.get("ready")).and_then(Value::as_bool).unwrap_or(false);
        let tracks = v
            .get("tracks2")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        let props = t.get("codecProps");
                        let dim = |k: &str| props.and_then(|p| p.get(k)).and_then(Value::as_i64).unwrap_or(0);
                        (t.get("codec").and_then(Value::as_str).unwrap_or("").to_owned(), dim("width"), dim("height"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        RuntimePath {
            name: text("name").unwrap_or_default(),
            available,
            available_time: text("availableTime").or_else(|| text("readyTime")),
            readers: v.get("readers").and_then(Value::as_array).map(Vec::len).unwrap_or(0),
            inbound_bytes: int("inboundBytes"),
            outbound_bytes: int("outboundBytes"),
            inbound_frames_in_error: int("inboundFramesInError"),
            tracks,
        }
    }
}

/// A viewer reading a path (`/v3/webrtcsessions`, `hlssessions`, `rtspsessions`, `rtspssessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerSession {
    /// The API collection it is listed in, which is also where it is kicked.
    pub collection: &'static str,
    pub id: String,
    pub path: String,
    /// Who MediaMTX admitted: the `sub` of the viewer's JWT (empty on versions that do not say).
    pub user: String,
}

/// The session collections of readers, one per protocol.
const VIEWER_COLLECTIONS: [&str; 4] = ["webrtcsessions", "hlssessions", "rtspsessions", "rtspssessions"];

/// The client.
#[derive(Clone)]
pub struct MediaMtx {
    http: reqwest::Client,
    base: String,
    keys: KeyRing,
    clock: SharedClock,
    issuer: String,
}

#[derive(serde::Serialize)]
struct MtxClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    mediamtx_permissions: Vec<Permission<'a>>,
}

/// One MediaMTX permission: an action (`api`, `read`, `playback`, ...) on a path (empty = any).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Permission<'a> {
    pub action: &'a str,
    pub path: &'a str,
}

/// A JWT for MediaMTX, signed by the server's key ring: `sub` may do `permissions` for `ttl`. `nbf`
/// lies 30 s in the past to absorb clock skew between the server and MediaMTX. Returns the token and
/// its expiry.
pub fn sign(
    keys: &KeyRing,
    clock: &SharedClock,
    issuer: &str,
    sub: &str,
    permissions: &[Permission<'_>],
    ttl: chrono::Duration,
) -> crate::error::Result<(String, chrono::DateTime<chrono::Utc>)> {
    let now = clock.now();
    let exp = now + ttl;
    let claims = MtxClaims {
        iss: issuer,
        aud: AUDIENCE,
        sub,
        iat: now.timestamp(),
        nbf: now.timestamp() - 30,
        exp: exp.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        mediamtx_permissions: permissions.to_vec(),
    };
    Ok((keys.sign(&claims)?, exp))
}

fn enc(name: &str) -> String {
    // Path names may contain '/', which MediaMTX takes as part of the name.
    name.split('/')
        .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
}

impl MediaMtx {
    /// A client of the API at `base` (e.g. `http://mediamtx:9997`).
    pub fn new(base: &str, keys: KeyRing, clock: SharedClock, issuer: &str) -> Result<MediaMtx, MtxError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| MtxError::Failed(e.to_string()))?;
        Ok(MediaMtx { http, base: base.trim_end_matches('/').to_owned(), keys, clock, issuer: issuer.to_owned() })
    }

    fn token(&self) -> Result<String, MtxError> {
        let api = [Permission { action: "api", path: "" }];
        sign(&self.keys, &self.clock, &self.issuer, "opennvr-server", &api, chrono::Duration::minutes(5))
            .map(|(t, _)| t)
            .map_err(|e| MtxError::Failed(format!("signing the API token: {e}")))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Map<String, Value>>,
    ) -> Result<Value, MtxError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(self.token()?);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| MtxError::Unreachable(without_url(&e)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| MtxError::Unreachable(without_url(&e)))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            // Older servers answer success with an empty body.
            return Ok(json.unwrap_or(Value::Null));
        }
        let message = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| text.trim().chars().take(200).collect());
        Err(match status.as_u16() {
            401 | 403 => MtxError::Unauthorized(message),
            404 => MtxError::NotFound(message),
            400 => MtxError::Rejected(message),
            code => MtxError::Failed(format!("HTTP {code}: {message}")),
        })
    }

    /// Version and start time.
    pub async fn info(&self) -> Result<Info, MtxError> {
        let v = self.call(reqwest::Method::GET, "/v3/info", None).await?;
        serde_json::from_value(v).map_err(|e| MtxError::Failed(format!("unreadable /v3/info: {e}")))
    }

    async fn list_all(&self, path: &str) -> Result<Vec<Value>, MtxError> {
        let mut items = Vec::new();
        let mut page = 0;
        loop {
            let v = self.call(reqwest::Method::GET, &format!("{path}?page={page}&itemsPerPage=1000"), None).await?;
            let batch = v.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            items.extend(batch);
            let pages = v.get("pageCount").and_then(Value::as_u64).unwrap_or(1);
            page += 1;
            if page >= pages {
                return Ok(items);
            }
        }
    }

    /// Every path config (including file-defined ones such as `all_others`), by name.
    pub async fn path_configs(&self) -> Result<Vec<(String, Map<String, Value>)>, MtxError> {
        Ok(self
            .list_all("/v3/config/paths/list")
            .await?
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(m) => Some((m.get("name").and_then(Value::as_str).unwrap_or("").to_owned(), m)),
                _ => None,
            })
            .collect())
    }

    /// One path config.
    pub async fn path_config(&self, name: &str) -> Result<Option<Map<String, Value>>, MtxError> {
        match self.call(reqwest::Method::GET, &format!("/v3/config/paths/get/{}", enc(name)), None).await {
            Ok(Value::Object(m)) => Ok(Some(m)),
            Ok(_) => Err(MtxError::Failed("unreadable path config".into())),
            Err(MtxError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds a path config (400 if it exists).
    pub async fn add(&self, name: &str, conf: &Map<String, Value>) -> Result<(), MtxError> {
        self.call(reqwest::Method::POST, &format!("/v3/config/paths/add/{}", enc(name)), Some(conf)).await.map(|_| ())
    }

    /// Changes only the keys sent (404 if missing).
    pub async fn patch(&self, name: &str, conf: &Map<String, Value>) -> Result<(), MtxError> {
        self.call(reqwest::Method::PATCH, &format!("/v3/config/paths/patch/{}", enc(name)), Some(conf))
            .await
            .map(|_| ())
    }

    /// Writes the whole entry, creating it if needed (upsert since v1.8.2).
    pub async fn replace(&self, name: &str, conf: &Map<String, Value>) -> Result<(), MtxError> {
        self.call(reqwest::Method::POST, &format!("/v3/config/paths/replace/{}", enc(name)), Some(conf))
            .await
            .map(|_| ())
    }

    /// Deletes a path config (404 if missing).
    pub async fn delete(&self, name: &str) -> Result<(), MtxError> {
        self.call(reqwest::Method::DELETE, &format!("/v3/config/paths/delete/{}", enc(name)), None).await.map(|_| ())
    }

    /// Every runtime path.
    pub async fn paths(&self) -> Result<Vec<RuntimePath>, MtxError> {
        Ok(self.list_all("/v3/paths/list").await?.iter().map(RuntimePath::from_json).collect())
    }

    /// One runtime path.
    pub async fn path(&self, name: &str) -> Result<Option<RuntimePath>, MtxError> {
        match self.call(reqwest::Method::GET, &format!("/v3/paths/get/{}", enc(name)), None).await {
            Ok(v) => Ok(Some(RuntimePath::from_json(&v))),
            Err(MtxError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The start of every recorded segment of every path that has some, by path name. MediaMTX reads
    /// them from the files on disk: this is how segments whose hooks were lost are found.
    pub async fn recordings(&self) -> Result<Vec<(String, Vec<chrono::DateTime<chrono::Utc>>)>, MtxError> {
        Ok(self
            .list_all("/v3/recordings/list")
            .await?
            .iter()
            .map(|v| (v.get("name").and_then(Value::as_str).unwrap_or("").to_owned(), segment_starts(v)))
            .collect())
    }

    /// The start of every recorded segment of path `name`, oldest first (none: empty).
    pub async fn recording(&self, name: &str) -> Result<Vec<chrono::DateTime<chrono::Utc>>, MtxError> {
        match self.call(reqwest::Method::GET, &format!("/v3/recordings/get/{}", enc(name)), None).await {
            Ok(v) => Ok(segment_starts(&v)),
            Err(MtxError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the segment of path `name` that starts at `start`.
    pub async fn delete_segment(&self, name: &str, start: chrono::DateTime<chrono::Utc>) -> Result<(), MtxError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("path", name)
            .append_pair("start", &start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .finish();
        self.call(reqwest::Method::DELETE, &format!("/v3/recordings/deletesegment?{query}"), None).await.map(|_| ())
    }

    /// Every viewer session, of every protocol whose server is on (a protocol that is off answers
    /// 404 and has none).
    pub async fn viewer_sessions(&self) -> Result<Vec<ViewerSession>, MtxError> {
        let mut sessions = Vec::new();
        for collection in VIEWER_COLLECTIONS {
            let items = match self.list_all(&format!("/v3/{collection}/list")).await {
                Ok(items) => items,
                Err(MtxError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            sessions.extend(items.iter().map(|v| ViewerSession {
                collection,
                id: text(v, "id"),
                path: text(v, "path"),
                user: text(v, "user"),
            }));
        }
        Ok(sessions)
    }

    /// Ends a viewer session; one already gone is no error.
    pub async fn kick(&self, session: &ViewerSession) -> Result<(), MtxError> {
        let route = format!("/v3/{}/kick/{}", session.collection, enc(&session.id));
        match self.call(reqwest::Method::POST, &route, None).await {
            Ok(_) | Err(MtxError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes MediaMTX fetch the JWKS again (after a signing-key rotation).
    pub async fn refresh_jwks(&self) -> Result<(), MtxError> {
        self.call(reqwest::Method::POST, "/v3/auth/jwks/refresh", None).await.map(|_| ())
    }
}

/// The segment starts of a `Recording` (unreadable ones skipped), oldest first.
fn segment_starts(v: &Value) -> Vec<chrono::DateTime<chrono::Utc>> {
    let mut starts: Vec<_> = v
        .get("segments")
        .and_then(Value::as_array)
        .map(|segs| {
            segs.iter()
                .filter_map(|s| s.get("start").and_then(Value::as_str))
                .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .collect()
        })
        .unwrap_or_default();
    starts.sort();
    starts
}

/// A reqwest error's text without its URL (which never holds secrets here, but stays short).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused or no route"
    } else {
        "request failed"
    };
    kind.to_owned()
}
