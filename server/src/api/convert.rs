//! Conversions shared by the services: times, durations, roles and etags. Each service converts its
//! own resources beside it.
use crate::domain::Role;
use crate::error::{Error, Result};
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

/// A request timestamp as a time; errors name `field`.
pub fn from_timestamp(field: &'static str, t: &prost_types::Timestamp) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
        .ok_or_else(|| Error::invalid(field, format!("{field} is not a valid time")))
}

/// A wire duration of `us` microseconds.
pub fn duration_of_us(us: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: us.div_euclid(1_000_000),
        nanos: i32::try_from(us.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

pub fn duration_of_ms(ms: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }
}
