//! Recordings as MediaMTX finds them on disk: segment files read back from `recordPath`, and the v3
//! API's recordings list, get and segment deletion.
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone};
use serde_json::{Value, json};

use crate::api::{Page, error, list_page, ok};
use crate::auth::authenticate;
use crate::schema::check_name;
use crate::{Inner, Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v3/recordings/list", get(recordings_list))
        .route("/v3/recordings/get/{*name}", get(recordings_get))
        .route("/v3/recordings/deletesegment", delete(recordings_delete_segment))
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
pub(crate) fn segments_of(g: &Inner, name: &str) -> Vec<(DateTime<FixedOffset>, std::path::PathBuf)> {
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
    list_page(&all, &q, |(n, segs)| recording_json(n, segs))
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
    use chrono::Utc;

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
}
