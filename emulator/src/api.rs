//! What every endpoint answers alike: MediaMTX's error and ok bodies, and the paging of its lists.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"status": "error", "error": message.into()}))).into_response()
}

pub(crate) fn ok() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct Page {
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

/// A list endpoint's answer: the requested page of `all`, each item as `show` renders it (400 for a
/// malformed page request).
pub(crate) fn list_page<T: Clone>(all: &[T], q: &Page, show: impl Fn(&T) -> Value) -> Response {
    let (items, pages) = match page_of(all, q) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let items: Vec<Value> = items.iter().map(show).collect();
    axum::Json(json!({"pageCount": pages, "itemCount": all.len(), "items": items})).into_response()
}
