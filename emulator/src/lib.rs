//! A strict emulator of MediaMTX's Control API v3 (release v1.20.1), for OpenNVR's tests: MediaMTX
//! itself cannot run on the machines the tests run on.
//!
//! Strict means: request bodies are checked against `PathConf` in MediaMTX's own `openapi.yaml`
//! (unknown fields refused, as MediaMTX does although the file does not say so), the validation rules
//! and status codes of `CONTRACT.md` apply, every call must carry a JWT with the `api` permission that
//! verifies against the configured JWKS, config GETs return full entries (defaults from MediaMTX's own
//! `mediamtx.yml`) with passwords redacted, and unknown routes answer plain-text 404.
//!
//! Tests can restart it (a new `started`, API-made config gone), take it down and up again, make every
//! config write slow (MediaMTX reloads its configuration on each), and flip paths available.
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, patch, post};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const OPENAPI: &str = include_str!("../mediamtx/openapi.yaml");
const REFERENCE_CONFIG: &str = include_str!("../mediamtx/mediamtx.yml");
/// The MediaMTX version emulated.
pub const VERSION: &str = "v1.20.1";

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
struct Schema {
    properties: HashMap<String, Property>,
    /// `pathDefaults` of the reference configuration, as JSON.
    defaults: Map<String, Value>,
    /// Zero-valued instances of the session schemas (`WebRTCSession`, ...), by schema name.
    sessions: HashMap<String, Map<String, Value>>,
}

fn load_schema() -> Result<Schema, String> {
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

/// The runtime state of a path (what `/v3/paths/get` reports).
#[derive(Debug, Clone, Default)]
struct Runtime {
    available: bool,
    available_time: Option<DateTime<Utc>>,
}

/// How a viewer reads a path; each has its own session list and kick endpoint in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    WebRtc,
    Hls,
    Rtsp,
    Rtsps,
}

impl Protocol {
    /// Every protocol whose sessions the API lists.
    pub const ALL: [Protocol; 4] = [Protocol::WebRtc, Protocol::Hls, Protocol::Rtsp, Protocol::Rtsps];

    /// The API's collection name (`/v3/<name>/list`, `/v3/<name>/kick/{id}`).
    pub fn collection(self) -> &'static str {
        match self {
            Protocol::WebRtc => "webrtcsessions",
            Protocol::Hls => "hlssessions",
            Protocol::Rtsp => "rtspsessions",
            Protocol::Rtsps => "rtspssessions",
        }
    }

    /// The `openapi.yaml` schema of one session.
    fn schema(self) -> &'static str {
        match self {
            Protocol::WebRtc => "WebRTCSession",
            Protocol::Hls => "HLSSession",
            Protocol::Rtsp | Protocol::Rtsps => "RTSPSession",
        }
    }

    /// How `/v3/paths` lists such a reader (`PathReaderType`).
    fn reader_type(self) -> &'static str {
        match self {
            Protocol::WebRtc => "webRTCSession",
            Protocol::Hls => "hlsSession",
            Protocol::Rtsp => "rtspSession",
            Protocol::Rtsps => "rtspsSession",
        }
    }
}

/// A viewer reading a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub protocol: Protocol,
    pub path: String,
    /// The JWT's `sub`, which MediaMTX reports as the session's user.
    pub user: String,
    pub created: DateTime<Utc>,
}

/// One config write the emulator accepted, as tests inspect them.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// `add`, `patch`, `replace` or `delete`.
    pub op: String,
    pub name: String,
    /// The body as sent (empty for delete).
    pub body: Map<String, Value>,
}

struct Inner {
    schema: Arc<Schema>,
    started: DateTime<Utc>,
    /// Path configs added through the API (the file defines only `all_others`).
    paths: BTreeMap<String, Map<String, Value>>,
    runtime: BTreeMap<String, Runtime>,
    writes: Vec<Write>,
    write_delay: Duration,
    jwks_url: Option<String>,
    jwks: Option<jsonwebtoken::jwk::JwkSet>,
    issuer: Option<String>,
    audience: Option<String>,
    requests: u64,
    /// Readers by session id.
    sessions: BTreeMap<String, Session>,
    /// Sessions ended through a kick endpoint, oldest first.
    kicked: Vec<Session>,
    /// MediaMTX's local time zone: how segment names without `%z` are read.
    time_zone: FixedOffset,
    /// How long each segment deletion takes.
    delete_delay: Duration,
    /// Segment files deleted through the API, oldest first.
    deleted: Vec<std::path::PathBuf>,
}

/// A running emulator.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Mutex<Inner>>,
    addr: SocketAddr,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// How the emulator checks the API JWT.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `authJWTJWKS`: where the signing keys are. `None` = no authentication (never in OpenNVR's tests
    /// of the client; for the emulator's own checks only).
    pub jwks_url: Option<String>,
    /// `authJWTIssuer`, `authJWTAudience`.
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"status": "error", "error": message.into()}))).into_response()
}

fn ok() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    match s.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Emulator {
    /// Starts an emulator on a free loopback port.
    pub async fn start(auth: AuthConfig) -> Result<Emulator, String> {
        let schema = load_schema()?;
        let inner = Inner {
            schema: Arc::new(schema),
            started: Utc::now(),
            paths: BTreeMap::new(),
            runtime: BTreeMap::new(),
            writes: Vec::new(),
            write_delay: Duration::ZERO,
            jwks_url: auth.jwks_url,
            jwks: None,
            issuer: auth.issuer,
            audience: auth.audience,
            requests: 0,
            sessions: BTreeMap::new(),
            kicked: Vec::new(),
            time_zone: FixedOffset::east_opt(0).ok_or("no UTC offset")?,
            delete_delay: Duration::ZERO,
            deleted: Vec::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let emulator = Emulator { inner: Arc::new(Mutex::new(inner)), addr, server: Arc::new(Mutex::new(None)) };
        emulator.serve(listener);
        Ok(emulator)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = router(self.inner.clone());
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        if let Ok(mut s) = self.server.lock() {
            *s = Some(handle);
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// MediaMTX restarted: a new `started`, every API-made path config gone, nothing available.
    pub fn restart(&self) {
        let mut g = lock(&self.inner);
        g.started = Utc::now().max(g.started + chrono::Duration::milliseconds(1));
        g.paths.clear();
        g.runtime.clear();
        g.sessions.clear();
        g.jwks = None;
    }

    /// MediaMTX goes away: connections are refused until [`Emulator::up`].
    pub fn down(&self) {
        if let Ok(mut s) = self.server.lock()
            && let Some(h) = s.take()
        {
            h.abort();
        }
    }

    /// MediaMTX is back on the same port (as a fresh process: see [`Emulator::restart`] for the state).
    pub async fn up(&self) -> Result<(), String> {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
        socket.bind(self.addr).map_err(|e| e.to_string())?;
        let listener = socket.listen(1024).map_err(|e| e.to_string())?;
        self.serve(listener);
        Ok(())
    }

    /// Points `authJWTJWKS` elsewhere (the server under test starts after the emulator).
    pub fn set_jwks_url(&self, url: &str) {
        let mut g = lock(&self.inner);
        g.jwks_url = Some(url.to_owned());
        g.jwks = None;
    }

    /// Every config write takes this long before it answers (MediaMTX reloads its configuration).
    pub fn set_write_delay(&self, d: Duration) {
        lock(&self.inner).write_delay = d;
    }

    /// Marks a path's source available or not (as MediaMTX reports once the camera delivers media).
    pub fn set_available(&self, name: &str, available: bool) {
        let mut g = lock(&self.inner);
        if g.paths.contains_key(name) {
            let r = g.runtime.entry(name.to_owned()).or_default();
            r.available = available;
            r.available_time = available.then(Utc::now);
            if !available {
                // Readers go with the source.
                g.sessions.retain(|_, s| s.path != name);
            }
        }
    }

    /// A viewer opens `path` over `protocol` with `token` (a JWT, as the Bearer header or the RTSP
    /// password carries it), as MediaMTX admits readers: the token must verify against the JWKS
    /// (issuer, audience, times) and grant `read` on that path, and the path must be available.
    /// Returns the session id.
    pub async fn open_session(&self, protocol: Protocol, path: &str, token: &str) -> Result<String, String> {
        let claims = verify(&self.inner, token).await.map_err(|_| "authentication error".to_owned())?;
        let may_read = claims.get("mediamtx_permissions").and_then(Value::as_array).is_some_and(|perms| {
            perms.iter().any(|p| {
                let on = p.get("path").and_then(Value::as_str).unwrap_or("");
                p.get("action").and_then(Value::as_str) == Some("read") && (on.is_empty() || on == path)
            })
        });
        if !may_read {
            return Err("authentication error: user doesn't have permission to perform action".into());
        }
        let mut g = lock(&self.inner);
        if !g.runtime.get(path).is_some_and(|r| r.available) {
            return Err(format!("no stream is available on path '{path}'"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let user = claims.get("sub").and_then(Value::as_str).unwrap_or("").to_owned();
        let session = Session { id: id.clone(), protocol, path: path.to_owned(), user, created: Utc::now() };
        g.sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// Every segment deletion takes this long before it answers.
    pub fn set_delete_delay(&self, d: Duration) {
        lock(&self.inner).delete_delay = d;
    }

    /// The segment files deleted through `/v3/recordings/deletesegment`, oldest first.
    pub fn deleted_segments(&self) -> Vec<std::path::PathBuf> {
        lock(&self.inner).deleted.clone()
    }

    /// Runs MediaMTX in another time zone (segment names without `%z` are local time).
    pub fn set_time_zone(&self, offset: FixedOffset) {
        lock(&self.inner).time_zone = offset;
    }

    /// The open viewer sessions.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.inner).sessions.values().cloned().collect()
    }

    /// The sessions ended through the kick endpoints, oldest first.
    pub fn kicked(&self) -> Vec<Session> {
        lock(&self.inner).kicked.clone()
    }

    /// Adds a path config as if written in `mediamtx.yml` by someone else (not OpenNVR's).
    pub fn add_foreign_path(&self, name: &str, conf: Map<String, Value>) {
        let mut g = lock(&self.inner);
        g.paths.insert(name.to_owned(), conf);
        g.runtime.insert(name.to_owned(), Runtime::default());
    }

    /// The stored config of `name` (as sent, without defaults), if any.
    pub fn path(&self, name: &str) -> Option<Map<String, Value>> {
        lock(&self.inner).paths.get(name).cloned()
    }

    /// Names of the configured paths.
    pub fn path_names(&self) -> Vec<String> {
        lock(&self.inner).paths.keys().cloned().collect()
    }

    /// Every accepted config write, oldest first.
    pub fn writes(&self) -> Vec<Write> {
        lock(&self.inner).writes.clone()
    }

    /// Forgets the write log.
    pub fn clear_writes(&self) {
        lock(&self.inner).writes.clear();
    }

    /// Number of authenticated API requests served.
    pub fn requests(&self) -> u64 {
        lock(&self.inner).requests
    }
}

fn router(state: Shared) -> Router {
    let mut router = Router::new()
        .route("/v3/info", get(info))
        .route("/v3/auth/jwks/refresh", post(jwks_refresh))
        .route("/v3/config/paths/list", get(config_list))
        .route("/v3/config/paths/get/{*name}", get(config_get))
        .route("/v3/config/paths/add/{*name}", post(config_add))
        .route("/v3/config/paths/patch/{*name}", patch(config_patch))
        .route("/v3/config/paths/replace/{*name}", post(config_replace))
        .route("/v3/config/paths/delete/{*name}", delete(config_delete))
        .route("/v3/paths/list", get(paths_list))
        .route("/v3/paths/get/{*name}", get(paths_get))
        .route("/v3/recordings/list", get(recordings_list))
        .route("/v3/recordings/get/{*name}", get(recordings_get))
        .route("/v3/recordings/deletesegment", delete(recordings_delete_segment))
        // The playback server (its own port in MediaMTX, this one here).
        .route("/list", get(playback_list))
        .route("/get", get(playback_get));
    for protocol in Protocol::ALL {
        let c = protocol.collection();
        router = router
            .route(
                &format!("/v3/{c}/list"),
                get(move |State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Page>| {
                    sessions_list(s, headers, q, protocol)
                }),
            )
            .route(
                &format!("/v3/{c}/get/{{id}}"),
                get(move |State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>| {
                    session_get(s, headers, id, protocol)
                }),
            )
            .route(
                &format!("/v3/{c}/kick/{{id}}"),
                post(move |State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>| {
                    session_kick(s, headers, id, protocol)
                }),
            );
    }
    router.fallback(any(|| async { (StatusCode::NOT_FOUND, "404 page not found").into_response() })).with_state(state)
}

/// Checks the bearer JWT of an API call: it verifies (see [`verify`]) and holds an `api` permission in
/// `mediamtx_permissions`.
async fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let denied = || error(StatusCode::UNAUTHORIZED, "authentication error");
    if lock(state).jwks_url.is_none() {
        lock(state).requests += 1;
        return Ok(());
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(denied)?;
    let claims = verify(state, token).await.map_err(|()| denied())?;
    let allowed = claims
        .get("mediamtx_permissions")
        .and_then(Value::as_array)
        .is_some_and(|perms| perms.iter().any(|p| p.get("action").and_then(Value::as_str) == Some("api")));
    if !allowed {
        return Err(denied());
    }
    lock(state).requests += 1;
    Ok(())
}

/// A JWT's claims if it verifies as MediaMTX checks it: signed by a key of the JWKS, issuer and
/// audience if configured, `exp` and `nbf`.
async fn verify(state: &Shared, token: &str) -> Result<Value, ()> {
    let (url, cached, issuer, audience) = {
        let g = lock(state);
        (g.jwks_url.clone(), g.jwks.clone(), g.issuer.clone(), g.audience.clone())
    };
    let url = url.ok_or(())?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| ())?;
    let kid = header.kid.ok_or(())?;
    // Fetched once, then only on `/v3/auth/jwks/refresh` (MediaMTX's hourly refetch is beyond any
    // test): a token signed by a key published later is refused, as MediaMTX would.
    let jwks = match cached {
        Some(j) => j,
        None => fetch_jwks(state, &url).await.ok_or(())?,
    };
    let jwk = jwks.find(&kid).ok_or(())?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| ())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_nbf = true;
    validation.validate_aud = audience.is_some();
    if let Some(a) = &audience {
        validation.set_audience(&[a]);
    }
    if let Some(i) = &issuer {
        validation.set_issuer(&[i]);
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|d| d.claims).map_err(|_| ())
}

async fn fetch_jwks(state: &Shared, url: &str) -> Option<jsonwebtoken::jwk::JwkSet> {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(url).await.ok()?.json().await.ok()?;
    lock(state).jwks = Some(jwks.clone());
    Some(jwks)
}

async fn info(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let started = lock(&s).started;
    axum::Json(json!({"version": VERSION, "started": started.to_rfc3339_opts(SecondsFormat::Nanos, true)}))
        .into_response()
}

async fn jwks_refresh(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let url = lock(&s).jwks_url.clone();
    if let Some(url) = url {
        fetch_jwks(&s, &url).await;
    }
    ok()
}

#[derive(serde::Deserialize)]
struct Page {
    page: Option<String>,
    #[serde(rename = "itemsPerPage")]
    items_per_page: Option<String>,
}

fn page_of<T: Clone>(items: &[T], q: &Page) -> Result<(Vec<T>, usize), String> {
    let parse = |v: &Option<String>, default: usize, name: &str| match v {
        None => Ok(default),
        Some(s) => s.parse::<usize>().map_err(|_| format!("invalid {name}")),
    };
    let page = parse(&q.page, 0, "page")?;
    let per = parse(&q.items_per_page, 100, "itemsPerPage")?;
    if per == 0 {
        return Err("invalid itemsPerPage".into());
    }
    let count = items.len().div_ceil(per);
    Ok((items.iter().skip(page * per).take(per).cloned().collect(), count))
}

/// A path config as GET answers it: defaults, then the stored keys, `name`, passwords redacted.
fn full_conf(schema: &Schema, name: &str, stored: &Map<String, Value>) -> Value {
    let mut conf = schema.defaults.clone();
    for (k, v) in stored {
        conf.insert(k.clone(), v.clone());
    }
    conf.insert("name".into(), Value::String(name.to_owned()));
    for k in ["publishPass", "readPass", "runOnDemandPass"] {
        if conf.get(k).and_then(Value::as_str).is_some_and(|v| !v.is_empty()) {
            conf.insert(k.into(), Value::String("<redacted>".into()));
        }
    }
    Value::Object(conf)
}

async fn config_list(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Page>) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    // The file's own entry is listed too, sorted with the rest.
    let mut all: Vec<(String, Map<String, Value>)> = g.paths.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.push(("all_others".into(), Map::new()));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, pages) = match page_of(&all, &q) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let items: Vec<Value> = items.iter().map(|(n, c)| full_conf(&g.schema, n, c)).collect();
    axum::Json(json!({"pageCount": pages, "itemCount": all.len(), "items": items})).into_response()
}

async fn config_get(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    match g.paths.get(&name) {
        Some(c) => axum::Json(full_conf(&g.schema, &name, c)).into_response(),
        None if name == "all_others" => axum::Json(full_conf(&g.schema, &name, &Map::new())).into_response(),
        None => error(StatusCode::NOT_FOUND, "path configuration not found"),
    }
}

/// MediaMTX's name rules.
fn check_name(name: &str) -> Result<(), String> {
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
fn check_body(schema: &Schema, body: &[u8]) -> Result<Map<String, Value>, String> {
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
fn check_conf(schema: &Schema, conf: &Map<String, Value>) -> Result<(), String> {
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

async fn write(s: &Shared, headers: &HeaderMap, op: &str, name: String, body: Option<&[u8]>) -> Response {
    if let Err(r) = authenticate(s, headers).await {
        return r;
    }
    if let Err(e) = check_name(&name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let (schema, delay) = {
        let g = lock(s);
        (g.schema.clone(), g.write_delay)
    };
    let body = match body.map(|b| check_body(&schema, b)).transpose() {
        Ok(b) => b.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let result = {
        let mut g = lock(s);
        let exists = g.paths.contains_key(&name);
        let next = match op {
            "add" if exists => Err((StatusCode::BAD_REQUEST, "path already exists".to_owned())),
            "add" | "replace" => Ok(Some(body.clone())),
            "patch" if !exists => Err((StatusCode::NOT_FOUND, "path configuration not found".to_owned())),
            "patch" => {
                let mut conf = g.paths.get(&name).cloned().unwrap_or_default();
                for (k, v) in &body {
                    conf.insert(k.clone(), v.clone());
                }
                Ok(Some(conf))
            }
            _ if !exists => Err((StatusCode::NOT_FOUND, "path configuration not found".to_owned())),
            _ => Ok(None),
        };
        match next {
            Err((status, e)) => Err((status, e)),
            Ok(Some(conf)) => match check_conf(&schema, &conf) {
                Err(e) => Err((StatusCode::BAD_REQUEST, e)),
                Ok(()) => {
                    // Changing the source (or anything but record*) recreates the path.
                    let recreated = g.paths.get(&name).is_none_or(|old| {
                        let strip = |c: &Map<String, Value>| {
                            c.iter()
                                .filter(|(k, _)| !k.starts_with("record"))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect::<BTreeMap<_, _>>()
                        };
                        strip(old) != strip(&conf)
                    });
                    g.paths.insert(name.clone(), conf);
                    if recreated {
                        g.runtime.insert(name.clone(), Runtime::default());
                        // A recreated path drops its readers.
                        g.sessions.retain(|_, s| s.path != name);
                    }
                    g.writes.push(Write { op: op.to_owned(), name: name.clone(), body });
                    Ok(())
                }
            },
            Ok(None) => {
                g.paths.remove(&name);
                g.runtime.remove(&name);
                g.sessions.retain(|_, s| s.path != name);
                g.writes.push(Write { op: op.to_owned(), name: name.clone(), body });
                Ok(())
            }
        }
    };
    // The answer comes once the configuration is reloaded.
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match result {
        Ok(()) => ok(),
        Err((status, e)) => error(status, e),
    }
}

async fn config_add(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    write(&s, &headers, "add", name, Some(&body)).await
}

async fn config_patch(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    write(&s, &headers, "patch", name, Some(&body)).await
}

async fn config_replace(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    write(&s, &headers, "replace", name, Some(&body)).await
}

async fn config_delete(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    write(&s, &headers, "delete", name, None).await
}

fn runtime_json(g: &Inner, name: &str, r: &Runtime) -> Value {
    let conf = g.paths.get(name);
    let source = conf.and_then(|c| c.get("source")).and_then(Value::as_str).unwrap_or("publisher");
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Nanos, true))).unwrap_or(Value::Null)
    };
    json!({
        "name": name,
        "confName": name,
        // A static source shows up before it connects: health is `available`, never `source`.
        "source": if source == "publisher" { Value::Null } else { json!({"type": "rtspSource", "id": ""}) },
        "available": r.available,
        "availableTime": time(r.available_time),
        "online": r.available,
        "onlineTime": time(r.available_time),
        "ready": r.available,
        "readyTime": time(r.available_time),
        "tracks": if r.available { json!(["H264"]) } else { json!([]) },
        "tracks2": if r.available {
            json!([{"codec": "H264", "codecProps": {"width": 1280, "height": 720, "profile": "High", "level": "4.0"}}])
        } else { json!([]) },
        // A source delivering 1 Mbit/s since it became available.
        "inboundBytes": r.available_time.map(|t| (Utc::now() - t).num_milliseconds().max(0) * 125).unwrap_or(0),
        "outboundBytes": 0,
        "inboundFramesInError": 0,
        "readers": g
            .sessions
            .values()
            .filter(|s| s.path == name)
            .map(|s| json!({"type": s.protocol.reader_type(), "id": s.id}))
            .collect::<Vec<_>>(),
    })
}

async fn paths_list(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Page>) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    let all: Vec<(String, Runtime)> = g.runtime.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let (items, pages) = match page_of(&all, &q) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let items: Vec<Value> = items.iter().map(|(n, r)| runtime_json(&g, n, r)).collect();
    axum::Json(json!({"pageCount": pages, "itemCount": all.len(), "items": items})).into_response()
}

async fn paths_get(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    match g.runtime.get(&name) {
        Some(r) => axum::Json(runtime_json(&g, &name, r)).into_response(),
        None => error(StatusCode::NOT_FOUND, "path not found"),
    }
}

/// A session as the API reports it: every property of its `openapi.yaml` schema, zero-valued unless
/// known here.
fn session_json(g: &Inner, s: &Session) -> Value {
    let mut v = g.schema.sessions.get(s.protocol.schema()).cloned().unwrap_or_default();
    v.insert("id".into(), json!(s.id));
    v.insert("created".into(), json!(s.created.to_rfc3339_opts(SecondsFormat::Nanos, true)));
    v.insert("remoteAddr".into(), json!("127.0.0.1:50000"));
    v.insert("path".into(), json!(s.path));
    v.insert("user".into(), json!(s.user));
    if v.contains_key("state") {
        v.insert("state".into(), json!("read"));
    }
    Value::Object(v)
}

async fn sessions_list(s: Shared, headers: HeaderMap, q: Page, protocol: Protocol) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    let all: Vec<Session> = g.sessions.values().filter(|x| x.protocol == protocol).cloned().collect();
    let (items, pages) = match page_of(&all, &q) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let items: Vec<Value> = items.iter().map(|x| session_json(&g, x)).collect();
    axum::Json(json!({"pageCount": pages, "itemCount": all.len(), "items": items})).into_response()
}

/// The session `id` of `protocol`, or the error MediaMTX answers (400 for a malformed id).
fn find_session(g: &Inner, id: &str, protocol: Protocol) -> Result<Session, (StatusCode, String)> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err((StatusCode::BAD_REQUEST, format!("invalid UUID: {id}")));
    }
    g.sessions
        .get(id)
        .filter(|x| x.protocol == protocol)
        .cloned()
        .ok_or_else(|| (StatusCode::NOT_FOUND, "session not found".to_owned()))
}

async fn session_get(s: Shared, headers: HeaderMap, id: String, protocol: Protocol) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    match find_session(&g, &id, protocol) {
        Ok(x) => axum::Json(session_json(&g, &x)).into_response(),
        Err((status, e)) => error(status, e),
    }
}

async fn session_kick(s: Shared, headers: HeaderMap, id: String, protocol: Protocol) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let mut g = lock(&s);
    match find_session(&g, &id, protocol) {
        Ok(x) => {
            g.sessions.remove(&id);
            g.kicked.push(x);
            ok()
        }
        Err((status, e)) => error(status, e),
    }
}

/// The path of a playback request, if valid and the bearer may play it back.
async fn playback_path(state: &Shared, headers: &HeaderMap, path: Option<String>) -> Result<String, Response> {
    let name = path.unwrap_or_default();
    check_name(&name).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    authorize_playback(state, headers, &name).await?;
    Ok(name)
}

/// Checks a playback request's bearer JWT: it verifies and grants `playback` on `path`.
async fn authorize_playback(state: &Shared, headers: &HeaderMap, path: &str) -> Result<(), Response> {
    let denied = || error(StatusCode::UNAUTHORIZED, "authentication error");
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(denied)?;
    let claims = verify(state, token).await.map_err(|()| denied())?;
    let allowed = claims.get("mediamtx_permissions").and_then(Value::as_array).is_some_and(|perms| {
        perms.iter().any(|p| {
            let on = p.get("path").and_then(Value::as_str).unwrap_or("");
            p.get("action").and_then(Value::as_str) == Some("playback") && (on.is_empty() || on == path)
        })
    });
    if allowed { Ok(()) } else { Err(denied()) }
}

/// A segment file's media duration in seconds, read by `ffprobe` (MediaMTX parses the fMP4 itself).
async fn media_seconds(file: &std::path::Path) -> Option<f64> {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[derive(serde::Deserialize)]
struct PlaybackQuery {
    path: Option<String>,
    start: Option<String>,
    end: Option<String>,
    duration: Option<String>,
    format: Option<String>,
}

/// One segment file: start, media seconds, file.
type Part = (DateTime<FixedOffset>, f64, std::path::PathBuf);
/// A recorded span: start, seconds, its segment files.
type Span = (DateTime<FixedOffset>, f64, Vec<Part>);

/// Recorded spans of a path as the playback server lists them: adjacent segments merged.
async fn playback_spans(s: &Shared, name: &str) -> Vec<Span> {
    let segments = segments_of(&lock(s), name);
    let mut spans: Vec<Span> = Vec::new();
    for (start, file) in segments {
        let Some(d) = media_seconds(&file).await else { continue };
        match spans.last_mut() {
            Some((s0, dur, parts))
                if ((start - *s0).num_microseconds().unwrap_or(0) as f64 / 1e6 - *dur).abs() < 1.0 =>
            {
                *dur = (start - *s0).num_microseconds().unwrap_or(0) as f64 / 1e6 + d;
                parts.push((start, d, file));
            }
            _ => spans.push((start, d, vec![(start, d, file)])),
        }
    }
    spans
}

async fn playback_list(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<PlaybackQuery>) -> Response {
    let name = match playback_path(&s, &headers, q.path.clone()).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let bound = |t: &Option<String>| t.as_deref().map(DateTime::parse_from_rfc3339).transpose();
    let (Ok(from), Ok(to)) = (bound(&q.start), bound(&q.end)) else {
        return error(StatusCode::BAD_REQUEST, "invalid start or end");
    };
    let items: Vec<Value> = playback_spans(&s, &name)
        .await
        .into_iter()
        .filter(|(start, d, _)| {
            let end = *start + chrono::Duration::microseconds((d * 1e6) as i64);
            from.is_none_or(|f| end > f) && to.is_none_or(|t| *start < t)
        })
        .map(|(start, d, _)| {
            let at = start.to_rfc3339_opts(SecondsFormat::Nanos, true);
            json!({"start": at, "duration": d, "url": format!("/get?path={name}&start={}&duration={d}", at.replace('+', "%2B"))})
        })
        .collect();
    if items.is_empty() {
        return error(StatusCode::NOT_FOUND, "no recordings found");
    }
    axum::Json(items).into_response()
}

/// `/get`: the recorded media of `[start, start + duration)` as one MP4 (fragmented with
/// `format=fmp4`), cut from the segment files with `ffmpeg -c copy`.
async fn playback_get(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<PlaybackQuery>) -> Response {
    let name = match playback_path(&s, &headers, q.path.clone()).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some(start) = q.start.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return error(StatusCode::BAD_REQUEST, "invalid start");
    };
    let Some(duration) = q.duration.as_deref().and_then(|d| d.parse::<f64>().ok()).filter(|d| *d > 0.0) else {
        return error(StatusCode::BAD_REQUEST, "invalid duration");
    };
    let fragmented = match q.format.as_deref() {
        None | Some("fmp4") => true,
        Some("mp4") => false,
        Some(other) => return error(StatusCode::BAD_REQUEST, format!("invalid format: {other}")),
    };
    let end = start + chrono::Duration::microseconds((duration * 1e6) as i64);
    let Some((first, parts)) = playback_spans(&s, &name).await.into_iter().find_map(|(s0, d, parts)| {
        let span_end = s0 + chrono::Duration::microseconds((d * 1e6) as i64);
        (span_end > start && s0 < end).then_some((s0, parts))
    }) else {
        return error(StatusCode::NOT_FOUND, "no recordings found");
    };
    let work = std::env::temp_dir().join(format!("mediamtx-emulator-{}", uuid::Uuid::new_v4().simple()));
    if let Err(e) = std::fs::create_dir_all(&work) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let list: String = parts.iter().map(|(_, _, f)| format!("file '{}'\n", f.display())).collect();
    let (list_file, out) = (work.join("list.txt"), work.join("clip.mp4"));
    if let Err(e) = std::fs::write(&list_file, list) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let offset = ((start - first).num_microseconds().unwrap_or(0) as f64 / 1e6).max(0.0);
    let movflags = if fragmented { "+frag_keyframe+empty_moov+default_base_moof" } else { "+faststart" };
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i"])
        .arg(&list_file)
        .args(["-ss", &format!("{offset:.3}"), "-t", &format!("{duration:.3}"), "-c", "copy", "-movflags", movflags])
        .arg(&out)
        .status()
        .await;
    let body = match status {
        Ok(st) if st.success() => std::fs::read(&out),
        Ok(st) => Err(std::io::Error::other(format!("ffmpeg exited with {st}"))),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&work);
    match body {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, "video/mp4")], bytes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Written apart from OpenNVR's own reading of segment names on purpose: the emulator stands for
/// MediaMTX, and a shared parser would hide a bug both sides share.
///
/// The start time a segment file name carries, read with `template` (a `recordPath` with `%path`
/// already replaced, plus the extension) as MediaMTX reads it; `None` if the name does not match.
/// Without `%z` the time is MediaMTX's local time (`zone`).
fn segment_start(template: &str, file: &str, zone: FixedOffset) -> Option<DateTime<FixedOffset>> {
    let (t, f) = (template.as_bytes(), file.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut parts = [1970i64, 1, 1, 0, 0, 0, 0];
    let (mut offset, mut unix) = (None, None);
    let digits = |j: &mut usize, n: usize| -> Option<i64> {
        let s = f.get(*j..*j + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *j += n;
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    while i < t.len() {
        if t[i] == b'%' && i + 1 < t.len() {
            let spec = t[i + 1];
            i += 2;
            match spec {
                b'Y' => parts[0] = digits(&mut j, 4)?,
                b'm' => parts[1] = digits(&mut j, 2)?,
                b'd' => parts[2] = digits(&mut j, 2)?,
                b'H' => parts[3] = digits(&mut j, 2)?,
                b'M' => parts[4] = digits(&mut j, 2)?,
                b'S' => parts[5] = digits(&mut j, 2)?,
                b'f' => parts[6] = digits(&mut j, 6)?,
                b'z' => {
                    let sign = match f.get(j)? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    j += 1;
                    let hhmm = digits(&mut j, 4)?;
                    offset = FixedOffset::east_opt((sign * (hhmm / 100 * 3600 + hhmm % 100 * 60)) as i32);
                    offset?;
                }
                b's' => {
                    let n = f[j..].iter().take_while(|b| b.is_ascii_digit()).count();
                    unix = Some(digits(&mut j, n.max(1))?);
                }
                _ => return None,
            }
        } else {
            if f.get(j) != Some(&t[i]) {
                return None;
            }
            i += 1;
            j += 1;
        }
    }
    if j != f.len() {
        return None;
    }
    let zone = offset.unwrap_or(zone);
    let start = match unix {
        Some(u) => zone.timestamp_opt(u, 0).single()?,
        None => zone
            .with_ymd_and_hms(
                parts[0] as i32,
                parts[1] as u32,
                parts[2] as u32,
                parts[3] as u32,
                parts[4] as u32,
                parts[5] as u32,
            )
            .single()?,
    };
    Some(start + chrono::Duration::microseconds(parts[6]))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The recorded segments of path `name` (start, file), oldest first, found on disk from the
/// `recordPath` of its configuration (or of `all_others`), as MediaMTX finds them.
fn segments_of(g: &Inner, name: &str) -> Vec<(DateTime<FixedOffset>, std::path::PathBuf)> {
    let conf = g.paths.get(name).cloned().unwrap_or_default();
    let text =
        |k: &str| conf.get(k).or_else(|| g.schema.defaults.get(k)).and_then(Value::as_str).unwrap_or("").to_owned();
    let extension = if text("recordFormat") == "mpegts" { ".ts" } else { ".mp4" };
    let template = format!("{}{extension}", text("recordPath").replace("%path", name));
    // Files are looked for under the directory before the first time field.
    let fixed = &template[..template.find('%').unwrap_or(template.len())];
    let base = &fixed[..fixed.rfind('/').map(|i| i + 1).unwrap_or(0)];
    let mut files = Vec::new();
    files_under(std::path::Path::new(if base.is_empty() { "." } else { base }), &mut files);
    let mut found: Vec<_> = files
        .into_iter()
        .filter_map(|f| {
            let shown = f.to_string_lossy().to_string();
            let shown = if base.is_empty() { shown.trim_start_matches("./").to_owned() } else { shown };
            segment_start(&template, &shown, g.time_zone).map(|start| (start, f))
        })
        .collect();
    found.sort();
    found
}

fn recording_json(name: &str, segments: &[(DateTime<FixedOffset>, std::path::PathBuf)]) -> Value {
    let starts: Vec<Value> = segments
        .iter()
        .map(|(start, _)| json!({"start": start.to_rfc3339_opts(SecondsFormat::AutoSi, true)}))
        .collect();
    json!({"name": name, "segments": starts})
}

async fn recordings_list(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Page>) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let g = lock(&s);
    let all: Vec<(String, Vec<_>)> =
        g.paths.keys().map(|n| (n.clone(), segments_of(&g, n))).filter(|(_, segs)| !segs.is_empty()).collect();
    let (items, pages) = match page_of(&all, &q) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let items: Vec<Value> = items.iter().map(|(n, segs)| recording_json(n, segs)).collect();
    axum::Json(json!({"pageCount": pages, "itemCount": all.len(), "items": items})).into_response()
}

async fn recordings_get(State(s): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    if let Err(e) = check_name(&name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let g = lock(&s);
    let segments = segments_of(&g, &name);
    if segments.is_empty() {
        return error(StatusCode::NOT_FOUND, "no recording segments found");
    }
    axum::Json(recording_json(&name, &segments)).into_response()
}

#[derive(serde::Deserialize)]
struct SegmentQuery {
    path: Option<String>,
    start: Option<String>,
}

async fn recordings_delete_segment(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<SegmentQuery>,
) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let name = q.path.unwrap_or_default();
    if let Err(e) = check_name(&name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let Some(start) = q.start.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return error(StatusCode::BAD_REQUEST, "invalid 'start' parameter");
    };
    let (file, delay) = {
        let g = lock(&s);
        (segments_of(&g, &name).into_iter().find(|(at, _)| *at == start).map(|(_, f)| f), g.delete_delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match file.clone().map(std::fs::remove_file) {
        Some(Ok(())) => {
            lock(&s).deleted.extend(file);
            ok()
        }
        Some(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        None => error(StatusCode::BAD_REQUEST, "no such file or directory"),
    }
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
    fn segment_names_are_read_as_mediamtx_writes_them() {
        let utc = FixedOffset::east_opt(0).expect("parses");
        let paris = FixedOffset::east_opt(3600).expect("parses");
        let t = "/rec/cam/%Y-%m-%d_%H-%M-%S-%f%z.mp4";
        let start = segment_start(t, "/rec/cam/2026-11-25_10-00-00-250000+0100.mp4", utc).expect("parses");
        assert_eq!(start.with_timezone(&Utc).to_rfc3339(), "2026-11-25T09:00:00.250+00:00");
        // Without %z the name is MediaMTX's local time.
        let local = segment_start("/rec/%Y-%m-%d_%H-%M-%S-%f.mp4", "/rec/2026-11-25_10-00-00-000000.mp4", paris);
        assert_eq!(local.expect("parses").with_timezone(&Utc).to_rfc3339(), "2026-11-25T09:00:00+00:00");
        assert!(segment_start(t, "/rec/cam/2026-11-25_10-00-00-250000+0100.ts", utc).is_none());
        assert!(segment_start(t, "/rec/cam/2026-11-25_10-00-00+0100.mp4", utc).is_none());
        assert!(segment_start(t, "/rec/other/2026-11-25_10-00-00-250000+0100.mp4", utc).is_none());
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
