//! The HTTP side of the adapter contract (`docs/adapter-contract.md`): health, capabilities and
//! inference calls, with the bearer token and a correlation id, and every answer checked — a
//! garbage answer is a failure like an error.
use crate::domain::inference::Finding;
use crate::store::inference::AdapterCapabilities;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

/// Why a call to an adapter did not give a usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the adapter's timeout.
    Timeout,
    /// The adapter says it may work later (overload, warm-up), or the connection failed.
    Transient(String),
    /// A server error, an error about the call itself (token, route), or an answer that is not
    /// the contract's: counts against the adapter's health.
    Failed(String),
    /// The adapter refused this frame for good (bad image, unknown task: a 4xx with the
    /// contract's error envelope): the adapter itself is fine.
    Rejected(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("the adapter did not answer in time"),
            CallError::Transient(m) => write!(f, "transient: {m}"),
            CallError::Failed(m) | CallError::Rejected(m) => f.write_str(m),
        }
    }
}

#[derive(Deserialize)]
struct WireBox {
    x: f32,
    y: f32,
    width: f32,
    height: f32,
}

#[derive(Deserialize)]
struct WireDetection {
    label: String,
    confidence: f32,
    #[serde(rename = "box")]
    bbox: WireBox,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    track_id: String,
}

#[derive(Deserialize)]
struct WireInfer {
    detections: Vec<WireDetection>,
}

#[derive(Deserialize)]
struct WireCapabilities {
    #[serde(default)]
    model: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    tasks: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    max_in_flight: i32,
}

#[derive(Deserialize)]
struct WireErrorBody {
    message: String,
    #[serde(default)]
    transient: bool,
}

#[derive(Deserialize)]
struct WireError {
    error: WireErrorBody,
}

/// A client of one adapter.
#[derive(Clone)]
pub struct AdapterClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for AdapterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterClient").field("base", &self.base).field("has_token", &self.token.is_some()).finish()
    }
}

/// The largest answer read from an adapter; a longer one is garbage.
const MAX_ANSWER: usize = 4 << 20;

/// Reads an answer's body, at most [`MAX_ANSWER`] bytes.
async fn read_capped(mut resp: reqwest::Response) -> Result<axum::body::Bytes, CallError> {
    let broke = |e: reqwest::Error| {
        if e.is_timeout() {
            CallError::Timeout
        } else {
            CallError::Transient(format!("the adapter's answer broke off: {e}"))
        }
    };
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(broke)? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(CallError::Failed(format!("the adapter's answer is longer than {MAX_ANSWER} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// An error with the chain of its causes (a refused name says why only in its source).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

fn unit(v: f32) -> bool {
    v.is_finite() && (0.0..=1.0).contains(&v)
}

impl AdapterClient {
    /// A client of the adapter at `base` (its URL, without a trailing slash), sending `token`.
    pub fn new(http: reqwest::Client, base: &str, token: Option<String>, timeout: Duration) -> AdapterClient {
        AdapterClient { http, base: base.trim_end_matches('/').to_owned(), token, timeout }
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let b = builder.timeout(self.timeout).header("x-correlation-id", Uuid::new_v4().to_string());
        match &self.token {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    /// Sends a request and reads its body, mapping transport trouble and error envelopes.
    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<axum::body::Bytes, CallError> {
        let resp = self.request(builder).send().await.map_err(|e| {
            if e.is_timeout() {
                CallError::Timeout
            } else {
                CallError::Transient(format!("cannot reach the adapter: {}", causes(&e)))
            }
        })?;
        let status = resp.status();
        let body = read_capped(resp).await?;
        if status.is_success() {
            return Ok(body);
        }
        let code = status.as_u16();
        let envelope = serde_json::from_slice::<WireError>(&body).ok();
        let detail: String = match &envelope {
            Some(w) => w.error.message.chars().take(300).collect(),
            None => String::from_utf8_lossy(&body).chars().take(200).collect(),
        };
        let said = format!("HTTP {code}: {detail}");
        if envelope.as_ref().is_some_and(|w| w.error.transient)
            || status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            // A crashing model (5xx) trips the breaker whatever it says of itself.
            return Err(if status.is_server_error() && !envelope.as_ref().is_some_and(|w| w.error.transient) {
                CallError::Failed(said)
            } else {
                CallError::Transient(said)
            });
        }
        // The frame's fault, told in the contract's words; anything else (a wrong token, a wrong
        // route, no envelope) is the adapter's or its configuration's.
        let frames_fault = matches!(code, 400 | 413 | 415 | 422);
        Err(if envelope.is_some() && frames_fault { CallError::Rejected(said) } else { CallError::Failed(said) })
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<(), CallError> {
        self.send(self.http.get(format!("{}/health", self.base))).await.map(|_| ())
    }

    /// `GET /capabilities`.
    pub async fn capabilities(&self) -> Result<AdapterCapabilities, CallError> {
        let body = self.send(self.http.get(format!("{}/capabilities", self.base))).await?;
        let w: WireCapabilities = serde_json::from_slice(&body)
            .map_err(|e| CallError::Failed(format!("the capabilities are not the contract's JSON: {e}")))?;
        Ok(AdapterCapabilities {
            model: w.model.chars().take(128).collect(),
            model_version: w.version.chars().take(64).collect(),
            tasks: w.tasks.into_iter().take(64).map(|t| t.chars().take(64).collect()).collect(),
            labels: w.labels.into_iter().take(1000).map(|t| t.chars().take(128).collect()).collect(),
            max_in_flight: w.max_in_flight.clamp(0, 64),
        })
    }

    /// `POST /infer` with one JPEG frame.
    pub async fn infer(
        &self,
        jpeg: Vec<u8>,
        task: &str,
        camera_id: Option<Uuid>,
        frame_time: Option<DateTime<Utc>>,
    ) -> Result<Vec<Finding>, CallError> {
        let frame = reqwest::multipart::Part::bytes(jpeg)
            .file_name("frame.jpg")
            .mime_str("image/jpeg")
            .map_err(|e| CallError::Failed(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new()
            .part("frame", frame)
            .text("task", task.to_owned())
            .text("camera_id", camera_id.map(|c| c.to_string()).unwrap_or_default());
        if let Some(t) = frame_time {
            form = form.text("frame_time", t.to_rfc3339());
        }
        let body = self.send(self.http.post(format!("{}/infer", self.base)).multipart(form)).await?;
        let w: WireInfer = serde_json::from_slice(&body)
            .map_err(|e| CallError::Failed(format!("the answer is not the contract's JSON: {e}")))?;
        let mut out = Vec::with_capacity(w.detections.len());
        for d in w.detections.into_iter().take(1000) {
            let b = &d.bbox;
            if d.label.is_empty() || !unit(d.confidence) || ![b.x, b.y, b.width, b.height].into_iter().all(unit) {
                return Err(CallError::Failed(format!(
                    "a detection is outside the contract (label, confidence and box within [0, 1]): {:?}",
                    d.label
                )));
            }
            out.push(Finding {
                label: d.label.chars().take(128).collect(),
                confidence: d.confidence,
                x: b.x,
                y: b.y,
                width: b.width.min(1.0 - b.x),
                height: b.height.min(1.0 - b.y),
                attributes: d.attributes.into_iter().take(32).collect(),
                track_id: d.track_id.chars().take(128).collect(),
            });
        }
        Ok(out)
    }
}
