//! IDS alerts as callers see them: every alert to whoever may read alerts — linking one to a camera
//! never hides it — naming only the cameras the caller may see.
use super::{PageRequest, Principal, parse_id};
use crate::clock::SharedClock;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::store::cameras::{CameraGrantRow, Visible};
use crate::store::ids::{IdsAlertFilter, IdsAlertRow};
use chrono::Duration;

/// IDS alert use cases.
#[derive(Clone)]
pub struct IdsApp {
    pub store: Store,
    pub clock: SharedClock,
    /// How long alerts are kept.
    pub retention: Duration,
}

/// Which cameras an alert may name to a caller: all, or these.
#[derive(Debug, Clone)]
enum AlertScope {
    All,
    Cameras(Vec<uuid::Uuid>),
}

/// Which cameras `p` may see named in alerts.
fn scope(c: &mut diesel::PgConnection, p: &Principal, now: chrono::DateTime<chrono::Utc>) -> Result<AlertScope> {
    Ok(match super::authorizer::visible(p, now) {
        Visible::All => AlertScope::All,
        Visible::Cameras(ids) => AlertScope::Cameras(ids),
        Visible::GrantedTo(user, now) => AlertScope::Cameras(CameraGrantRow::live_camera_id_list(c, user, now)?),
    })
}

impl IdsApp {
    /// A page of alerts, newest first.
    pub async fn list(
        &self,
        p: &Principal,
        filter: IdsAlertFilter,
        page: PageRequest,
    ) -> Result<(Vec<IdsAlertRow>, String)> {
        let (p, now) = (p.clone(), self.clock.now());
        let (after, limit) = (page.after_time_and_id()?, page.size);
        let rows = self
            .store
            .run(move |c| {
                let scope = scope(c, &p, now)?;
                // Filtering by a camera the caller may not see would tell which alerts it is linked to.
                if let (Some(camera), AlertScope::Cameras(ids)) = (filter.camera, &scope)
                    && !ids.contains(&camera)
                {
                    return Err(Error::new(ErrorKind::NotFound, format!("camera {camera} not found")));
                }
                let mut rows = IdsAlertRow::page(c, &filter, after, limit)?;
                rows.iter_mut().for_each(|r| only_visible(r, &scope));
                Ok(rows)
            })
            .await?;
        let last = rows.last().map(|r| super::time_and_id(r.time, r.id));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// One alert, naming only the cameras the caller may see.
    pub async fn get(&self, p: &Principal, id: &str) -> Result<IdsAlertRow> {
        let id = parse_id("ids_alert_id", id)?;
        let (p, now) = (p.clone(), self.clock.now());
        self.store
            .run(move |c| {
                let not_found = || Error::new(ErrorKind::NotFound, format!("IDS alert {id} not found"));
                let mut row = IdsAlertRow::find(c, id)?.ok_or_else(not_found)?;
                only_visible(&mut row, &scope(c, &p, now)?);
                Ok(row)
            })
            .await
    }

    /// Drops alerts older than the retention, in batches; returns how many went.
    pub async fn enforce_retention(&self) -> Result<usize> {
        let before = self.clock.now() - self.retention;
        self.store.delete_in_batches(move |c, batch| IdsAlertRow::delete_older(c, before, batch)).await
    }
}

/// Names only the cameras of `scope` among those `row` is linked to.
fn only_visible(row: &mut IdsAlertRow, scope: &AlertScope) {
    if let AlertScope::Cameras(ids) = scope {
        row.camera_ids.retain(|c| ids.contains(c));
    }
}
