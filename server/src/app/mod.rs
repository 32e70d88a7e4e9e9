//! Use cases that combine store, security and domain. Plain structs holding `Arc` handles, callable
//! without gRPC.
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod authorizer;
pub mod bindings;
pub mod camera_status;
pub mod cameras;
pub mod credentials;
pub mod events;
pub mod exports;
pub mod grants;
pub mod ids;
pub mod inference;
pub mod keys;
pub mod mfa;
pub mod reconciler;
pub mod recordings;
pub mod retention;
pub mod setup;
pub mod users;
pub mod watchdog;

use crate::domain::{Actor, ActorType, AuditRecord, AuditResult, Permission, Role};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// Who is calling: established by the authentication layer from a verified access token or an
/// API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The signed-in user; for an API key, the user who created it.
    pub user_id: Uuid,
    /// The session; nil for an API key.
    pub session_id: Uuid,
    pub role: Role,
    pub username: String,
    /// Set when the caller is an API key: what the key narrows the role to.
    pub api_key: Option<Arc<KeyScope>>,
    /// The session may only enrol a second factor (its role requires one, the user has none).
    pub enrolment_only: bool,
}

/// What an API key may do beyond its role's ceiling: the permissions (empty = the role's), the
/// cameras (empty = every camera) and the step-up RPCs it may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope {
    pub id: Uuid,
    pub name: String,
    pub permissions: Vec<Permission>,
    pub cameras: Vec<Uuid>,
    /// "Service.Method" names.
    pub step_up_methods: Vec<String>,
    /// When the key stops working, if ever (keys it creates must stop no later).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One API call as the app layer sees it: who (if anyone yet), from where, which action, and whether
/// its audit entry has been written. The layer around the services records the entry of every call
/// the app did not record itself (denials, failures, sensitive reads), so each call leaves one.
#[derive(Debug, Clone)]
pub struct Call {
    pub principal: Option<Principal>,
    pub client: Client,
    /// Full gRPC method.
    pub method: String,
    /// `<noun>.<verb>` of the method.
    pub action: String,
    pub request_id: String,
    audited: Arc<AtomicBool>,
    /// What the call is about, once the app knows (kind, id, camera), for the entry of a failure.
    target: Arc<std::sync::Mutex<Option<(String, String, String)>>>,
}

impl Call {
    /// A call of `method` (named `action`) from `client`, not yet authenticated.
    pub fn new(client: Client, method: String, action: String, request_id: String) -> Call {
        Call {
            principal: None,
            client,
            method,
            action,
            request_id,
            audited: Arc::new(AtomicBool::new(false)),
            target: Arc::default(),
        }
    }

    /// The signed-in caller, or UNAUTHENTICATED.
    pub fn principal(&self) -> Result<&Principal> {
        self.principal.as_ref().ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "not signed in"))
    }

    /// The actor of this call's entries.
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Some(p) => match &p.api_key {
                None => Actor {
                    kind: ActorType::User,
                    user_id: p.user_id.to_string(),
                    username: p.username.clone(),
                    api_key_id: String::new(),
                    session_id: p.session_id.to_string(),
                },
                Some(key) => Actor {
                    kind: ActorType::ApiKey,
                    user_id: p.user_id.to_string(),
                    username: format!("{} (API key {})", p.username, key.name),
                    api_key_id: key.id.to_string(),
                    session_id: String::new(),
                },
            },
            None => Actor::anonymous(""),
        }
    }

    /// Notes what the call is about, so that its entry names it even when the call fails.
    pub fn about(&self, target_type: &str, target_id: &str, camera_id: &str) {
        if let Ok(mut t) = self.target.lock() {
            *t = Some((target_type.to_owned(), target_id.to_owned(), camera_id.to_owned()));
        }
    }

    /// A success entry for this call about `target_type`/`target_id` (see [`AuditRecord::ended`] for
    /// the others); empty = what [`Call::about`] noted, if anything.
    pub fn record(&self, target_type: &str, target_id: &str) -> AuditRecord {
        let noted = if target_type.is_empty() { self.target.lock().ok().and_then(|t| t.clone()) } else { None };
        let (target_type, target_id, camera_id) =
            noted.unwrap_or_else(|| (target_type.to_owned(), target_id.to_owned(), String::new()));
        AuditRecord {
            actor: self.actor(),
            client_address: self.client.address_text(),
            user_agent: self.client.user_agent.clone(),
            action: self.action.clone(),
            method: self.method.clone(),
            target_type,
            target_id,
            camera_id,
            result: AuditResult::Success,
            code: "OK".to_owned(),
            reason: String::new(),
            details: Default::default(),
            request_id: self.request_id.clone(),
        }
    }

    /// Runs `change` in one transaction together with this call's `entry`: both commit, or neither
    /// does. `change` may adjust the entry (its target, details, or its outcome when the change
    /// itself is a recorded refusal). Once committed, the call counts as recorded, so the layer
    /// around the services adds no second entry; if anything fails, nothing is kept and that layer
    /// records the failure instead.
    pub async fn audited<R, F>(&self, store: &Store, now: DateTime<Utc>, entry: AuditRecord, change: F) -> Result<R>
    where
        F: FnOnce(&mut PgConnection, &mut AuditRecord) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.audited_if(store, now, move |c| {
            let mut entry = entry;
            let result = change(c, &mut entry)?;
            Ok((result, Some(entry)))
        })
        .await
    }

    /// [`Call::audited`] for a use case that learns only in its transaction whether this call is
    /// its to record: `change` answers its result and the entry, or `None` when the entry is left to
    /// a later step of the call (e.g. a login whose user has no second factor goes on to open a
    /// session, which records it).
    pub async fn audited_if<R, F>(&self, store: &Store, now: DateTime<Utc>, change: F) -> Result<R>
    where
        F: FnOnce(&mut PgConnection) -> Result<(R, Option<AuditRecord>)> + Send + 'static,
        R: Send + 'static,
    {
        let (result, recorded) = crate::audit::commit(store, now, move |c| {
            let (result, entry) = change(c)?;
            let recorded = entry.is_some();
            Ok(((result, recorded), entry.into_iter().collect()))
        })
        .await?;
        if recorded {
            self.audited.store(true, Ordering::SeqCst);
        }
        Ok(result)
    }

    /// [`Call::audited`] for a change that commits even when the call then fails (a counted wrong
    /// code, a spent single-use ticket): `change` answers the call's outcome, and the entry records
    /// it — `entry` on success, or on failure the entry any failed call gets (what [`Call::about`]
    /// noted, the code and the message the caller reads).
    pub async fn audited_outcome<R, F>(
        &self,
        store: &Store,
        now: DateTime<Utc>,
        entry: AuditRecord,
        change: F,
    ) -> Result<R>
    where
        F: FnOnce(&mut PgConnection, &mut AuditRecord) -> Result<Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let failure = self.record("", "");
        self.audited(store, now, entry, move |c, entry| {
            let outcome = change(c, entry)?;
            if let Err(e) = &outcome {
                // The entry the layer around the services would write for this failure, but in the
                // transaction of what the failure changed.
                *entry = failure.ended(e.kind().code_name(), &e.caller_message());
            }
            Ok(outcome)
        })
        .await?
    }

    /// Records `entry` alone, in a transaction of its own: an outcome the use case itself decides
    /// to record (a refused login, a throttled attempt) before it answers with an error.
    pub async fn record_alone(&self, store: &Store, now: DateTime<Utc>, entry: AuditRecord) -> Result<()> {
        self.audited(store, now, entry, |_, _| Ok(())).await
    }

    /// Whether the app noted what the call is about (see [`Call::about`]).
    pub fn has_target(&self) -> bool {
        self.target.lock().map(|t| t.is_some()).unwrap_or(false)
    }

    /// Whether the app wrote this call's entry.
    pub fn is_audited(&self) -> bool {
        self.audited.load(Ordering::SeqCst)
    }
}

impl Principal {
    /// Whether the role holds `permission` (and, for an API key, the key's scope too). An
    /// enrolment-only session holds none until its user has a second factor.
    pub fn allows(&self, permission: Permission) -> bool {
        !self.enrolment_only
            && self.role.allows(permission)
            && self.api_key.as_ref().is_none_or(|k| k.permissions.is_empty() || k.permissions.contains(&permission))
    }

    /// Every permission the caller holds site-wide.
    pub fn permissions(&self) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| self.allows(*p)).collect()
    }

    /// Fails with PERMISSION_DENIED unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.allows(permission) {
            Ok(())
        } else {
            let who = if self.api_key.is_some() { "the API key's scope" } else { "the role" };
            Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("permission {} required ({who} does not hold it)", permission.name()),
            ))
        }
    }

    /// Fails with PERMISSION_DENIED for API keys: the use case acts on a person's own account.
    pub fn require_user(&self) -> Result<()> {
        match &self.api_key {
            None => Ok(()),
            Some(_) => Err(Error::new(ErrorKind::PermissionDenied, "API keys cannot act on a user account")),
        }
    }
}

/// Where a call comes from, as far as the server can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the socket peer, or the forwarded address from a trusted proxy.
    pub address: Option<IpAddr>,
    pub user_agent: String,
}

impl Client {
    /// The key failed password attempts are counted under: the IPv4 address, or the /64 network of
    /// an IPv6 address (one host can use a whole /64).
    pub fn throttle_key(&self) -> String {
        match self.address {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => String::new(),
        }
    }

    /// The address as stored (`""` when unknown).
    pub fn address_text(&self) -> String {
        self.address.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// A page request, decoded. Tokens are bound to the request's filters: a token from another query
/// is refused.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: i64,
    pub after: Option<String>,
    binding: String,
}

/// Largest page a List RPC returns.
pub const MAX_PAGE_SIZE: i64 = 1000;

impl PageRequest {
    /// Validates `page_size` (0 = 50, above 1000 lowered to 1000, negative refused) and decodes
    /// `page_token`, which must have been issued for the same `binding` (the request's filters).
    pub fn new(page_size: i32, page_token: &str, binding: &str) -> Result<PageRequest> {
        use base64::Engine;
        let size = match page_size {
            0 => 50,
            n if n < 0 => return Err(Error::invalid("page_size", "page_size must not be negative")),
            n => i64::from(n).min(MAX_PAGE_SIZE),
        };
        let foreign = || Error::invalid("page_token", "page_token is not one this server issued for this query");
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(page_token).map_err(|_| foreign())?;
            let text = String::from_utf8(bytes).map_err(|_| foreign())?;
            let (bound, last) = text.split_once('\u{1f}').ok_or_else(foreign)?;
            if bound != binding {
                return Err(foreign());
            }
            Some(last.to_owned())
        };
        Ok(PageRequest { size, after, binding: binding.to_owned() })
    }

    /// The (time, id) position a keyset page of newest-first rows resumes after (see [`time_and_id`]).
    pub fn after_time_and_id(&self) -> Result<Option<(chrono::DateTime<chrono::Utc>, Uuid)>> {
        let bad = || Error::invalid("page_token", "page_token is not one this server issued");
        let Some(t) = &self.after else { return Ok(None) };
        let (micros, id) = t.split_once('/').ok_or_else(bad)?;
        let at = micros.parse::<i64>().ok().and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_micros);
        Ok(Some((at.ok_or_else(bad)?, Uuid::parse_str(id).map_err(|_| bad())?)))
    }

    /// The token for the page after `last`, when the page was full.
    pub fn next_token(&self, returned: usize, last: Option<&str>) -> String {
        use base64::Engine;
        match last {
            Some(last) if returned as i64 >= self.size => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}\u{1f}{last}", self.binding))
            }
            _ => String::new(),
        }
    }
}

/// A row's (time, id) position, as [`PageRequest::after_time_and_id`] reads it back.
pub fn time_and_id(at: chrono::DateTime<chrono::Utc>, id: Uuid) -> String {
    format!("{}/{id}", at.timestamp_micros())
}

/// Fails with INVALID_ARGUMENT naming `update_mask` unless every path of `mask` is `updatable`.
pub fn check_mask(mask: &[String], updatable: &[&str]) -> Result<()> {
    match mask.iter().find(|p| !updatable.contains(&p.as_str())) {
        None => Ok(()),
        Some(path) => Err(Error::invalid(
            "update_mask",
            format!("update_mask path {path:?} is not updatable ({})", updatable.join(", ")),
        )),
    }
}

/// The most items a repeated field of a request may hold (ids, labels, types, addresses): every
/// request's work stays bounded.
pub const MAX_LIST: usize = 200;

/// The distinct items of repeated field `field`, in order: at most [`MAX_LIST`] of them, none twice
/// (INVALID_ARGUMENT naming the field otherwise).
pub fn distinct<T: Eq + std::hash::Hash + std::fmt::Debug>(field: &'static str, items: Vec<T>) -> Result<Vec<T>> {
    if items.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("{field} holds at most {MAX_LIST} items, not {}", items.len())));
    }
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for item in &items {
        if !seen.insert(item) {
            return Err(Error::invalid(field, format!("{field} holds {item:?} twice")));
        }
    }
    Ok(items)
}

/// The UUIDs of repeated field `field`: each a UUID, none twice, at most [`MAX_LIST`].
pub fn parse_ids(field: &'static str, values: &[String]) -> Result<Vec<Uuid>> {
    if values.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("{field} holds at most {MAX_LIST} ids, not {}", values.len())));
    }
    distinct(field, values.iter().map(|v| parse_id(field, v)).collect::<Result<Vec<Uuid>>>()?)
}

/// Parses a UUID request field.
pub fn parse_id(field: &'static str, value: &str) -> Result<Uuid> {
    if value.is_empty() {
        return Err(Error::invalid(field, format!("{field} is required")));
    }
    Uuid::parse_str(value).map_err(|_| Error::invalid(field, format!("{field} must be a UUID")))
}
