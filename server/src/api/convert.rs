//! Conversions between app types and `opennvr.v1` wire messages.
use crate::app::auth::IssuedTokens;
use crate::domain::Role;
use crate::error::{Error, Result};
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;
use chrono::{DateTime, Utc};
use opennvr_proto::v1 as pb;

/// A protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// Wire role of a domain role.
pub fn role_to_pb(r: Role) -> pb::Role {
    match r {
        Role::Admin => pb::Role::Admin,
        Role::Operator => pb::Role::Operator,
        Role::Viewer => pb::Role::Viewer,
        Role::Auditor => pb::Role::Auditor,
    }
}

/// Domain role of a wire role value; `None` for unspecified.
pub fn role_from_pb(field: &'static str, value: i32) -> Result<Option<Role>> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Unspecified) => Ok(None),
        Ok(pb::Role::Admin) => Ok(Some(Role::Admin)),
        Ok(pb::Role::Operator) => Ok(Some(Role::Operator)),
        Ok(pb::Role::Viewer) => Ok(Some(Role::Viewer)),
        Ok(pb::Role::Auditor) => Ok(Some(Role::Auditor)),
        Err(_) => Err(Error::invalid(field, format!("{field} {value} is not a known role"))),
    }
}

/// Parses an etag sent back by a client.
pub fn etag(field: &'static str, value: &str) -> Result<Option<i64>> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, format!("{field} is not an etag this server issued")))
}

/// Wire user.
pub fn user(u: &UserRow) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: u.role.parse::<Role>().map(role_to_pb).unwrap_or(pb::Role::Unspecified) as i32,
        disabled: u.disabled,
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
        etag: format!("\"{}\"", u.version),
        has_totp: false,
        passkey_count: 0,
    }
}

/// Wire session; `current` marks the caller's own.
pub fn session(s: &SessionRow, current: uuid::Uuid) -> pb::Session {
    pb::Session {
        id: s.id.to_string(),
        user_id: s.user_id.map(|u| u.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(s.created_at)),
        last_refresh_time: Some(timestamp(s.last_refresh_at)),
        expire_time: Some(timestamp(s.expires_at)),
        client_address: s.client_address.clone(),
        user_agent: s.user_agent.clone(),
        current: s.id == current,
        step_up_time: s.step_up_at.map(timestamp),
    }
}

/// Wire tokens.
pub fn tokens(t: &IssuedTokens) -> pb::Tokens {
    pb::Tokens {
        access_token: t.access_token.clone(),
        access_token_expire_time: Some(timestamp(t.access_expires_at)),
        refresh_token: t.refresh_token.clone(),
        refresh_token_expire_time: Some(timestamp(t.refresh_expires_at)),
        session_id: t.session_id.to_string(),
        user: Some(user(&t.user)),
    }
}
