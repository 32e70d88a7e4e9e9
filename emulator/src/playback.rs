//! The playback server (its own port in MediaMTX, the API's here): `/list` of recorded spans and
//! `/get` of a clip cut from the segment files, for bearers granted `playback` on the path.
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{Value, json};

use crate::api::error;
use crate::auth::authorize_playback;
use crate::recordings::segments_of;
use crate::schema::check_name;
use crate::{Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/list", get(playback_list)).route("/get", get(playback_get))
}

/// The path of a playback request, if valid and the bearer may play it back.
async fn playback_path(state: &Shared, headers: &HeaderMap, path: Option<String>) -> Result<String, Response> {
    let name = path.unwrap_or_default();
    check_name(&name).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    authorize_playback(state, headers, &name).await?;
    Ok(name)
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
    let delay = lock(&s).playback_delay;
    tokio::time::sleep(delay).await;
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
