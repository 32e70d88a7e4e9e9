//! API keys: credentials of service accounts (scripts, integrations), never of a person. A key
//! holds its role's permissions narrowed to a subset, on every camera or on named ones, and may
//! call a step-up RPC only when created with it explicitly — never more than its creator holds.
use super::{Call, PageRequest, Principal, parse_id};
use crate::clock::SharedClock;
use crate::domain::camera::GRANTABLE;
use crate::domain::{Permission, Role};
use crate::error::{Error, ErrorKind, Result};
use crate::security::api_keys::{ApiKeyCache, new_secret, secret_hash};
use crate::store::Store;
use crate::store::api_keys::ApiKeyRow;
use crate::store::cameras::{CameraRow, Visible};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// The RPCs that need a step-up ("Service.Method"), with the permission each needs (`None` for
/// RPCs on one's own account, which API keys never call).
#[derive(Debug, Clone, Default)]
pub struct StepUpCatalog(pub BTreeMap<String, Option<Permission>>);

/// An API key as a request describes it.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub role: Option<Role>,
    pub permissions: Vec<String>,
    pub camera_ids: Vec<String>,
    pub step_up_methods: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// API key use cases.
#[derive(Clone)]
pub struct ApiKeyApp {
    pub store: Store,
    pub clock: SharedClock,
    pub cache: ApiKeyCache,
    pub catalog: Arc<StepUpCatalog>,
}

/// Characters of the secret shown in listings (the fixed prefix and a few random ones).
const SHOWN: usize = 12;

impl ApiKeyApp {
    /// Creates a key; returns it and its secret (shown once, stored as a hash).
    pub async fn create(&self, call: &Call, spec: NewApiKey) -> Result<(ApiKeyRow, String)> {
        let who = call.principal()?.clone();
        let now = self.clock.now();
        let name = spec.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid("api_key.name", "api_key.name must be 1-64 printable characters"));
        }
        let role = spec.role.ok_or_else(|| Error::invalid("api_key.role", "api_key.role is required"))?;
        let mut permissions = Vec::new();
        for p in &spec.permissions {
            let perm = p
                .parse::<Permission>()
                .map_err(|_| Error::invalid("api_key.permissions", format!("unknown permission {p:?}")))?;
            if !role.allows(perm) {
                return Err(Error::invalid(
                    "api_key.permissions",
                    format!("permission {p} is not part of role {role}: pick a role that holds it"),
                ));
            }
            if !permissions.contains(&perm) {
                permissions.push(perm);
            }
        }
        // What the key will hold, and the creator must hold all of it.
        let held: Vec<Permission> =
            if permissions.is_empty() { role.permissions().to_vec() } else { permissions.clone() };
        if let Some(p) = held.iter().find(|p| !who.allows(**p)) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("a key cannot hold permission {} that its creator lacks", p.name()),
            ));
        }
        let cameras = super::parse_ids("api_key.camera_ids", &spec.camera_ids)?;
        // A key limited to cameras holds only what a camera grant can hold: a site-wide permission
        // (retention, storage, audit, users...) would reach every camera.
        if !cameras.is_empty()
            && let Some(p) = held.iter().find(|p| !GRANTABLE.contains(p) && **p != Permission::EventWatch)
        {
            return Err(Error::invalid(
                "api_key.permissions",
                format!(
                    "a key limited to cameras holds only camera permissions ({}, event.watch): {} reaches every camera",
                    GRANTABLE.map(Permission::name).join(", "),
                    p.name()
                ),
            ));
        }
        if cameras.is_empty() && !matches!(super::authorizer::visible(&who, now), Visible::All) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "a key cannot reach every camera when its creator does not: name the cameras (api_key.camera_ids)",
            ));
        }
        let mut methods = Vec::new();
        for m in &spec.step_up_methods {
            let m = m.trim().trim_start_matches('/').trim_start_matches("opennvr.v1.").replace('/', ".");
            let Some(needed) = self.catalog.0.get(&m) else {
                return Err(Error::invalid(
                    "api_key.step_up_methods",
                    format!(
                        "{m} is not an RPC that needs a step-up (give Service.Method, e.g. CameraService.DeleteCamera)"
                    ),
                ));
            };
            let Some(needed) = needed else {
                return Err(Error::invalid(
                    "api_key.step_up_methods",
                    format!("{m} acts on a user account: API keys cannot call it"),
                ));
            };
            if !held.contains(needed) {
                return Err(Error::invalid(
                    "api_key.step_up_methods",
                    format!("{m} needs permission {}, which the key does not hold", needed.name()),
                ));
            }
            if let Some(creator_key) = &who.api_key
                && !creator_key.step_up_methods.contains(&m)
            {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("a key cannot be given step-up RPC {m} that its creating key lacks"),
                ));
            }
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        if let Some(at) = spec.expires_at
            && at <= now
        {
            return Err(Error::invalid("api_key.expire_time", "api_key.expire_time must be in the future"));
        }
        // A key made by a key stops no later than its maker.
        if let Some(limit) = who.api_key.as_ref().and_then(|k| k.expires_at)
            && spec.expires_at.is_none_or(|at| at > limit)
        {
            return Err(Error::invalid(
                "api_key.expire_time",
                format!("api_key.expire_time must be no later than the creating key's ({})", limit.to_rfc3339()),
            ));
        }
        let secret = new_secret();
        let row = ApiKeyRow {
            id: Uuid::new_v4(),
            name,
            secret_hash: secret_hash(&secret),
            secret_prefix: secret.chars().take(SHOWN).collect(),
            created_by: Some(who.user_id),
            created_by_username: who.username.clone(),
            created_by_key: who.api_key.as_ref().map(|k| k.id),
            role,
            permissions: permissions.iter().map(|p| p.name().to_owned()).collect(),
            camera_ids: cameras.clone(),
            step_up_methods: methods,
            created_at: now,
            expires_at: spec.expires_at,
            last_used_at: None,
            revoked_at: None,
            revoked_reason: None,
            updated_at: now,
        };
        let record = call
            .record("api_key", &row.id.to_string())
            .detail("name", row.name.clone())
            .detail("role", row.role.as_str())
            .detail("permissions", row.permissions.join(" "))
            .detail("camera_ids", cameras.iter().map(Uuid::to_string).collect::<Vec<_>>().join(" "))
            .detail("step_up_methods", row.step_up_methods.join(" "))
            .detail("expire_time", row.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default());
        let insert = row.clone();
        let maker = who.api_key.as_ref().map(|k| k.id);
        call.audited(&self.store, now, record, move |c, _| {
            // A key made by a key: that key must still be live as this one is made (it cannot be
            // revoked until this transaction ends, and its revocation then takes this one too).
            if let Some(maker) = maker {
                let live = ApiKeyRow::find_for_share(c, maker)?
                    .is_some_and(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now));
                if !live {
                    return Err(Error::new(
                        ErrorKind::Unauthenticated,
                        "the API key making this one is no longer live",
                    )
                    .with_reason(crate::error::reason::CREDENTIAL_REVOKED));
                }
            }
            for id in &cameras {
                if CameraRow::find(c, *id)?.is_none() || super::authorizer::held_on(c, &who, *id, now)?.is_empty() {
                    return Err(Error::invalid("api_key.camera_ids", format!("camera {id} not found")));
                }
            }
            insert.insert(c)?;
            Ok(())
        })
        .await?;
        self.cache.put(&row);
        Ok((row, secret))
    }

    /// A page of keys, newest first.
    pub async fn list(&self, page: PageRequest, show_revoked: bool) -> Result<(Vec<ApiKeyRow>, String)> {
        let (after, limit) = (page.after_time_and_id()?, page.size);
        let rows = self.store.run(move |c| ApiKeyRow::page(c, show_revoked, after, limit)).await?;
        let last = rows.last().map(|r| super::time_and_id(r.created_at, r.id));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// Revokes a key at once (idempotent).
    pub async fn revoke(&self, call: &Call, id: &str) -> Result<ApiKeyRow> {
        let id = parse_id("api_key_id", id)?;
        let now = self.clock.now();
        let record = call.record("api_key", &id.to_string());
        let (row, revoked) = call
            .audited(&self.store, now, record, move |c, record| {
                let (row, revoked) = ApiKeyRow::revoke(c, id, now, "revoked")?
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("API key {id} not found")))?;
                record.note("name", row.name.clone());
                record.note("keys_revoked", revoked.len().to_string());
                Ok((row, revoked))
            })
            .await?;
        self.cache.revoked(&revoked, now);
        self.cache.put(&row);
        Ok(row)
    }
}

/// The principal of an authenticated API key.
pub fn principal_of(key: &crate::security::api_keys::CachedKey) -> Principal {
    Principal {
        user_id: key.creator,
        session_id: Uuid::nil(),
        role: key.role,
        username: key.creator_username.clone(),
        api_key: Some(Arc::new(super::KeyScope {
            id: key.id,
            name: key.name.clone(),
            permissions: key.permissions.clone(),
            cameras: key.cameras.clone(),
            step_up_methods: key.step_up_methods.clone(),
            expires_at: key.expires_at,
        })),
        enrolment_only: false,
    }
}
