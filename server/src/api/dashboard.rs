//! The web dashboard's static files under `/ui/`, outside the authentication gate (the page signs in
//! through the API like any client): hashed assets cached for good, `index.html` (also the answer for
//! every client-side route) revalidated on each load, all of it under a Content-Security-Policy that
//! lets the page reach its own origin and the MediaMTX origins that serve live video, and nothing else.
use crate::error::{Error, Result};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use std::path::{Path, PathBuf};
use tower::ServiceBuilder;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Where a built dashboard is found when `OPENNVR_DASHBOARD_DIR` is not set: the one the checkout this
/// server was built from builds (`npm --prefix dashboard run build`).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("dashboard").join("dist")
}

/// Where the dashboard is and what its pages may reach.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// A directory holding `index.html` and `assets/`; `None`: not built, `/ui/` says how to build it.
    pub dir: Option<PathBuf>,
    /// Origins (scheme://host:port) of MediaMTX's public WHEP and HLS URLs.
    pub media_origins: Vec<String>,
}

impl DashboardConfig {
    /// The dashboard at `explicit` (which must hold a built dashboard), else at [`default_dir`] when it
    /// was built there; `media_urls` are the public MediaMTX base URLs players connect to.
    pub fn locate(explicit: Option<&Path>, media_urls: &[Option<&str>]) -> Result<DashboardConfig> {
        let dir = match explicit {
            Some(d) if d.join("index.html").is_file() => Some(d.to_path_buf()),
            Some(d) => {
                return Err(Error::config(format!(
                    "OPENNVR_DASHBOARD_DIR: {} holds no index.html (point it at a built dashboard: the dist \
                     directory of `npm --prefix dashboard run build`)",
                    d.display()
                )));
            }
            None => Some(default_dir()).filter(|d| d.join("index.html").is_file()),
        };
        let mut media_origins = Vec::new();
        for u in media_urls.iter().flatten() {
            let url = url::Url::parse(u).map_err(|e| Error::config(format!("public media URL {u:?}: {e}")))?;
            let origin = url.origin().ascii_serialization();
            if !media_origins.contains(&origin) {
                media_origins.push(origin);
            }
        }
        Ok(DashboardConfig { dir, media_origins })
    }

    /// The page's Content-Security-Policy: scripts, styles, fonts and images from the server only;
    /// calls to the server and to MediaMTX; video from MediaSource blobs (HLS) and streams (WebRTC);
    /// hls.js's worker from a blob; never framed.
    pub fn content_security_policy(&self) -> String {
        let media = self.media_origins.iter().map(|o| format!(" {o}")).collect::<String>();
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
             font-src 'self'; connect-src 'self'{media}; media-src 'self' blob:{media}; worker-src 'self' blob:; \
             object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
        )
    }
}

/// `/` redirects to `/ui/`; `/ui/assets/…` are the hashed bundles; any other `/ui…` path is a file of
/// the build or, when no such file exists, `index.html` (the page routes on the client).
pub fn routes(config: &DashboardConfig) -> Result<Router> {
    let router = Router::new().route("/", get(|| async { Redirect::to("/ui/") }));
    let Some(dir) = &config.dir else {
        return Ok(router
            .route("/ui", get(not_built))
            .route("/ui/", get(not_built))
            .route("/ui/{*path}", get(not_built)));
    };
    let csp = HeaderValue::from_str(&config.content_security_policy()).map_err(Error::internal)?;
    let set = SetResponseHeaderLayer::overriding;
    let hardened = ServiceBuilder::new()
        .layer(set(header::CONTENT_SECURITY_POLICY, csp))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(set(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    // Only a bundle that exists is cached for good: a 404 (a stale page asking for an old bundle)
    // must not stick.
    let assets = hardened.clone().map_response(cache_for_good).service(ServeDir::new(dir.join("assets")));
    let pages = hardened.layer(set(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))).service(
        ServeDir::new(dir).append_index_html_on_directories(true).fallback(ServeFile::new(dir.join("index.html"))),
    );
    Ok(router.nest_service("/ui/assets", assets).nest_service("/ui", pages))
}

/// Marks a successful answer as cacheable for a year without revalidation (its name holds its hash).
fn cache_for_good<B>(mut res: axum::http::Response<B>) -> axum::http::Response<B> {
    if res.status().is_success() {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    }
    res
}

/// The answer under `/ui/` when no dashboard is built.
async fn not_built() -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, "no-cache")],
        "The web dashboard is not built. Build it with `npm --prefix dashboard ci && npm --prefix dashboard run \
         build` in the OpenNVR checkout, or point OPENNVR_DASHBOARD_DIR at a built one.\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_names_each_media_origin_once() {
        let c = DashboardConfig::locate(
            None,
            &[Some("https://nvr.example:8889"), Some("https://nvr.example:8888/"), Some("https://nvr.example:8889/x")],
        )
        .unwrap();
        assert_eq!(c.media_origins, vec!["https://nvr.example:8889", "https://nvr.example:8888"]);
        let csp = c.content_security_policy();
        assert!(csp.contains("connect-src 'self' https://nvr.example:8889 https://nvr.example:8888;"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
    }

    #[tokio::test]
    async fn without_a_build_the_page_says_how_to_build_it() {
        use tower::ServiceExt;
        let router = routes(&DashboardConfig { dir: None, media_origins: vec![] }).unwrap();
        let req = axum::http::Request::get("/ui/cameras").body(axum::body::Body::empty()).unwrap();
        let res = router.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("npm --prefix dashboard"));
    }

    #[test]
    fn an_explicit_directory_without_a_build_is_a_configuration_error() {
        let empty = std::env::temp_dir();
        let e = DashboardConfig::locate(Some(&empty.join("no-such-dashboard")), &[]).unwrap_err();
        assert!(e.to_string().contains("OPENNVR_DASHBOARD_DIR"), "{e}");
    }
}
