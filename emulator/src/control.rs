//! The config paths and runtime paths endpoints of the v3 Control API: path configs written, checked
//! against the schema and read back with defaults, and the state MediaMTX reports of each path.
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use crate::api::{Page, error, list_page, ok};
use crate::auth::authenticate;
use crate::schema::{Schema, check_body, check_conf, check_name};
use crate::{Inner, Shared, VERSION, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v3/info", get(info))
        .route("/v3/config/paths/list", get(config_list))
        .route("/v3/config/paths/get/{*name}", get(config_get))
        .route("/v3/config/paths/add/{*name}", post(|s, h, n, b| config_write("add", s, h, n, b)))
        .route("/v3/config/paths/patch/{*name}", patch(|s, h, n, b| config_write("patch", s, h, n, b)))
        .route("/v3/config/paths/replace/{*name}", post(|s, h, n, b| config_write("replace", s, h, n, b)))
        .route("/v3/config/paths/delete/{*name}", delete(config_delete))
        .route("/v3/paths/list", get(paths_list))
        .route("/v3/paths/get/{*name}", get(paths_get))
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

/// The runtime state of a path (what `/v3/paths/get` reports).
#[derive(Debug, Clone, Default)]
pub(crate) struct Runtime {
    pub(crate) available: bool,
    pub(crate) available_time: Option<DateTime<Utc>>,
}

async fn info(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &headers).await {
        return r;
    }
    let started = lock(&s).started;
    axum::Json(json!({"version": VERSION, "started": started.to_rfc3339_opts(SecondsFormat::Nanos, true)}))
        .into_response()
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
    list_page(&all, &q, |(n, c)| full_conf(&g.schema, n, c))
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

/// `add`, `patch` and `replace`, which differ only in what [`write`] does with the body.
async fn config_write(
    op: &str,
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    write(&s, &headers, op, name, Some(&body)).await
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
    list_page(&all, &q, |(n, r)| runtime_json(&g, n, r))
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
