//! Queries on `ids_alerts` and `ids_eve_positions`.
use super::schema::{ids_alerts, ids_eve_positions};
use crate::error::Result;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A row of `ids_alerts`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ids_alerts, check_for_backend(diesel::pg::Pg))]
pub struct IdsAlertRow {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
    pub flow_id: i64,
    pub in_iface: String,
    pub community_id: String,
    pub src_ip: String,
    pub src_port: i32,
    pub dest_ip: String,
    pub dest_port: i32,
    pub proto: String,
    pub app_proto: String,
    pub action: String,
    pub gid: i64,
    pub signature_id: i64,
    pub rev: i64,
    pub signature: String,
    pub category: String,
    pub severity: i32,
    pub metadata: serde_json::Value,
    pub source_ip: String,
    pub target_ip: String,
    pub rule: String,
    pub camera_ids: Vec<Uuid>,
    pub eve_json: String,
}

/// Filters of an alert listing.
#[derive(Debug, Clone, Default)]
pub struct IdsAlertFilter {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Severity number at most this (1 = highest); `None` = any.
    pub max_severity: Option<i32>,
    pub src_ip: Option<String>,
    pub dest_ip: Option<String>,
    pub camera: Option<Uuid>,
    pub signature_id: Option<i64>,
    pub action: Option<String>,
}

impl IdsAlertRow {
    /// The row of `alert`, stored under `id` and linked to `cameras`.
    pub fn of(
        id: Uuid,
        alert: &crate::domain::ids::EveAlert,
        cameras: &[Uuid],
        ingest_time: DateTime<Utc>,
    ) -> IdsAlertRow {
        IdsAlertRow {
            id,
            time: alert.time,
            ingest_time,
            flow_id: alert.flow_id,
            in_iface: alert.in_iface.clone(),
            community_id: alert.community_id.clone(),
            src_ip: alert.src_ip.to_string(),
            src_port: alert.src_port,
            dest_ip: alert.dest_ip.to_string(),
            dest_port: alert.dest_port,
            proto: alert.proto.clone(),
            app_proto: alert.app_proto.clone(),
            action: alert.action.map(|a| a.as_str()).unwrap_or("").to_owned(),
            gid: alert.gid,
            signature_id: alert.signature_id,
            rev: alert.rev,
            signature: alert.signature.clone(),
            category: alert.category.clone(),
            severity: alert.severity,
            metadata: serde_json::to_value(&alert.metadata).unwrap_or_default(),
            source_ip: alert.source_ip.clone(),
            target_ip: alert.target_ip.clone(),
            rule: alert.rule.clone(),
            camera_ids: cameras.to_vec(),
            eve_json: alert.eve_json.clone(),
        }
    }

    /// Inserts alerts.
    pub fn insert_all(c: &mut PgConnection, rows: &[IdsAlertRow]) -> Result<()> {
        for chunk in rows.chunks(500) {
            diesel::insert_into(ids_alerts::table).values(chunk).execute(c)?;
        }
        Ok(())
    }

    /// The alert with `id`.
    pub fn find(c: &mut PgConnection, id: Uuid) -> Result<Option<IdsAlertRow>> {
        Ok(ids_alerts::table.find(id).select(IdsAlertRow::as_select()).first(c).optional()?)
    }

    /// A page of alerts, newest first, after the (time, id) position `after`.
    pub fn page(
        c: &mut PgConnection,
        f: &IdsAlertFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<IdsAlertRow>> {
        let mut q = ids_alerts::table
            .select(IdsAlertRow::as_select())
            .order((ids_alerts::time.desc(), ids_alerts::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(t) = f.start {
            q = q.filter(ids_alerts::time.ge(t));
        }
        if let Some(t) = f.end {
            q = q.filter(ids_alerts::time.lt(t));
        }
        if let Some(s) = f.max_severity {
            q = q.filter(ids_alerts::severity.le(s));
        }
        if let Some(ip) = &f.src_ip {
            q = q.filter(ids_alerts::src_ip.eq(ip.clone()));
        }
        if let Some(ip) = &f.dest_ip {
            q = q.filter(ids_alerts::dest_ip.eq(ip.clone()));
        }
        if let Some(cam) = f.camera {
            q = q.filter(ids_alerts::camera_ids.contains(vec![cam]));
        }
        if let Some(sid) = f.signature_id {
            q = q.filter(ids_alerts::signature_id.eq(sid));
        }
        if let Some(a) = &f.action {
            q = q.filter(ids_alerts::action.eq(a.clone()));
        }
        if let Some((at, id)) = after {
            q = q.filter(ids_alerts::time.lt(at).or(ids_alerts::time.eq(at).and(ids_alerts::id.lt(id))));
        }
        Ok(q.load(c)?)
    }

    /// Deletes up to `limit` alerts older than `before`; returns how many went.
    pub fn delete_older(c: &mut PgConnection, before: DateTime<Utc>, limit: i64) -> Result<usize> {
        let ids: Vec<Uuid> =
            ids_alerts::table.filter(ids_alerts::time.lt(before)).select(ids_alerts::id).limit(limit).load(c)?;
        Ok(diesel::delete(ids_alerts::table.filter(ids_alerts::id.eq_any(ids))).execute(c)?)
    }
}

/// A row of `ids_eve_positions`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ids_eve_positions, check_for_backend(diesel::pg::Pg))]
pub struct EvePositionRow {
    pub path: String,
    pub device: i64,
    pub inode: i64,
    pub byte_offset: i64,
    pub tail: Vec<u8>,
    pub updated_at: DateTime<Utc>,
}

impl EvePositionRow {
    /// Where the reader of `path` stands, if it ever read it.
    pub fn find(c: &mut PgConnection, path: &str) -> Result<Option<EvePositionRow>> {
        Ok(ids_eve_positions::table.find(path).select(EvePositionRow::as_select()).first(c).optional()?)
    }

    /// Moves the position of this file from `from` to the row's offset, only if it still stands at
    /// `from` in the same file (another reader may have moved it). Returns whether it moved.
    pub fn advance(&self, c: &mut PgConnection, from: i64) -> Result<bool> {
        Ok(diesel::update(
            ids_eve_positions::table
                .find(&self.path)
                .filter(ids_eve_positions::device.eq(self.device))
                .filter(ids_eve_positions::inode.eq(self.inode))
                .filter(ids_eve_positions::byte_offset.eq(from)),
        )
        .set((
            ids_eve_positions::byte_offset.eq(self.byte_offset),
            ids_eve_positions::tail.eq(&self.tail),
            ids_eve_positions::updated_at.eq(self.updated_at),
        ))
        .execute(c)?
            == 1)
    }

    /// Records the position if the stored one is still `expected` (device, inode, offset; `None`:
    /// no position stored yet). Returns whether it did.
    pub fn replace(&self, c: &mut PgConnection, expected: Option<(i64, i64, i64)>) -> Result<bool> {
        let n = match expected {
            None => diesel::insert_into(ids_eve_positions::table)
                .values(self)
                .on_conflict(ids_eve_positions::path)
                .do_nothing()
                .execute(c)?,
            Some((device, inode, offset)) => diesel::update(
                ids_eve_positions::table
                    .find(&self.path)
                    .filter(ids_eve_positions::device.eq(device))
                    .filter(ids_eve_positions::inode.eq(inode))
                    .filter(ids_eve_positions::byte_offset.eq(offset)),
            )
            .set((
                ids_eve_positions::device.eq(self.device),
                ids_eve_positions::inode.eq(self.inode),
                ids_eve_positions::byte_offset.eq(self.byte_offset),
                ids_eve_positions::tail.eq(&self.tail),
                ids_eve_positions::updated_at.eq(self.updated_at),
            ))
            .execute(c)?,
        };
        Ok(n == 1)
    }
}
