//! JWT checking as MediaMTX does it with `authJWTJWKS`: API calls, playback requests and viewers must
//! carry a token that verifies against the JWKS and grants the action.
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

use crate::api::{error, ok};
use crate::{Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/v3/auth/jwks/refresh", post(jwks_refresh))
}

/// Checks the bearer JWT of an API call: it verifies (see [`verify`]) and holds an `api` permission in
/// `mediamtx_permissions`.
pub(crate) async fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    if lock(state).jwks_url.is_none() {
        lock(state).requests += 1;
        return Ok(());
    }
    let claims = bearer_claims(state, headers).await?;
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

/// The claims of a request's bearer JWT if it verifies (see [`verify`]), else MediaMTX's refusal.
async fn bearer_claims(state: &Shared, headers: &HeaderMap) -> Result<Value, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(denied)?;
    verify(state, token).await.map_err(|()| denied())
}

/// What MediaMTX answers a request whose token is missing, does not verify or grants too little.
fn denied() -> Response {
    error(StatusCode::UNAUTHORIZED, "authentication error")
}

/// A JWT's claims if it verifies as MediaMTX checks it: signed by a key of the JWKS, issuer and
/// audience if configured, `exp` and `nbf`.
pub(crate) async fn verify(state: &Shared, token: &str) -> Result<Value, ()> {
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

/// Checks a playback request's bearer JWT: it verifies and grants `playback` on `path`.
pub(crate) async fn authorize_playback(state: &Shared, headers: &HeaderMap, path: &str) -> Result<(), Response> {
    let claims = bearer_claims(state, headers).await?;
    if grants(&claims, "playback", path) { Ok(()) } else { Err(denied()) }
}

/// Whether a token's `mediamtx_permissions` allow `action` on `path` (a permission without a path
/// covers every path).
pub(crate) fn grants(claims: &Value, action: &str, path: &str) -> bool {
    claims.get("mediamtx_permissions").and_then(Value::as_array).is_some_and(|perms| {
        perms.iter().any(|p| {
            let on = p.get("path").and_then(Value::as_str).unwrap_or("");
            p.get("action").and_then(Value::as_str) == Some(action) && (on.is_empty() || on == path)
        })
    })
}
