//! Follows Suricata's EVE log and stores its alerts. The reader remembers the file's identity
//! (device and inode) and the offset of the first unread byte, advanced in the same transaction as
//! the alerts read up to it, so an alert is never lost nor stored twice — across restarts, across a
//! rotation (rename + new file: Suricata writes on to the renamed file until it is told to reopen
//! its log, so the old file is followed until the new one has data and the old one has stayed
//! unchanged for [`ROTATION_GRACE`], then read to its end; a log rotated while the server was down
//! is found by its identity and followed the same way), a truncation
//! (copytruncate: read again from the start), a partial last line (left for the next read) and
//! malformed lines (skipped, counted, logged).
use crate::bus::EventBus;
use crate::clock::SharedClock;
use crate::domain::event::{EventKind, SiteEvent};
use crate::domain::ids::{EveAlert, EveLine, parse_line};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::cameras::CameraRow;
use crate::store::ids::{EvePositionRow, IdsAlertRow};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// How often the log is looked at.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// The most read from the log in one pass (a backlog is read over several passes).
const CHUNK: usize = 4 << 20;
/// How long a rotated-away log must stay unchanged before it is taken as finished (Suricata goes
/// on writing to it until logrotate's post-rotate signal makes it reopen the path).
pub const ROTATION_GRACE: chrono::Duration = chrono::Duration::seconds(5);
/// How long a camera's resolved host name is trusted.
const NAME_TTL: chrono::Duration = chrono::Duration::seconds(60);
/// How long one host name lookup may take.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How many bytes before the offset identify where reading stands (see [`tail_at`]): more than
/// an EVE record, so that its timestamp and flow id tell a rewritten file of the same length.
const TAIL: u64 = 4096;

/// An open log file and where reading stands in it.
struct OpenLog {
    file: std::fs::File,
    device: u64,
    inode: u64,
    offset: u64,
    /// The bytes just before `offset`, as they were read.
    tail: Vec<u8>,
}

/// What a pass over the log did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub alerts: usize,
    pub malformed: usize,
}

/// Counters of the follower, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct FollowerStats {
    pub alerts: AtomicU64,
    pub malformed: AtomicU64,
}

/// The reader of one EVE log.
pub struct EveFollower {
    path: PathBuf,
    store: Store,
    clock: SharedClock,
    events: EventBus,
    open: Option<OpenLog>,
    /// Since when the open file, rotated away, has had this length.
    rotated: Option<(u64, chrono::DateTime<chrono::Utc>)>,
    /// The rotated file this reader finished last (device, inode): only the new one is left.
    finished: Option<(u64, u64)>,
    /// Cameras' host names as last resolved, and when.
    names: HashMap<String, (Vec<IpAddr>, chrono::DateTime<chrono::Utc>)>,
    pub stats: Arc<FollowerStats>,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("EVE log {}: {e}", path.display()))
}

/// Reads complete lines from `offset` (at most [`CHUNK`] bytes); with `to_end` (a file that will not
/// grow any more) a last line without its newline counts too. Returns the lines and the offset after
/// them.
fn read_lines(file: &mut std::fs::File, offset: u64, to_end: bool) -> std::io::Result<(Vec<String>, u64)> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(CHUNK as u64).read_to_end(&mut buf)?;
    let complete = match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        // A "line" longer than a whole chunk is no EVE record: skip it rather than stall on it.
        None if buf.len() >= CHUNK => buf.len(),
        None if to_end => buf.len(),
        None => 0,
    };
    let mut end = complete;
    if to_end && buf.len() < CHUNK {
        end = buf.len();
    }
    let lines = buf[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    Ok((lines, offset + end as u64))
}

/// The (up to `n`) bytes before `offset`: if they change, the file was truncated and written
/// again, even when it has grown past `offset` since.
fn tail_at(file: &mut std::fs::File, offset: u64, n: u64) -> std::io::Result<Vec<u8>> {
    let start = offset.saturating_sub(n);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(offset - start).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Whether `open` no longer holds what was read from it (truncated, then maybe written again).
fn rewritten(open: &mut OpenLog) -> std::io::Result<bool> {
    let len = open.file.metadata()?.len();
    // As many bytes as were kept (a position stored by an older version kept fewer).
    let kept = open.tail.len() as u64;
    Ok(len < open.offset || (open.offset > 0 && tail_at(&mut open.file, open.offset, kept)? != open.tail))
}

/// The file in `dir` with this identity (a rotated log), if any.
fn find_by_identity(dir: &Path, device: u64, inode: u64) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.dev() == device && m.ino() == inode))
}

/// The host of a camera's source URL (without IPv6 brackets).
fn source_host(source_url: &str) -> Option<String> {
    let host = url::Url::parse(source_url).ok()?.host_str()?.trim_matches(['[', ']']).to_owned();
    (!host.is_empty()).then_some(host)
}

/// Adds `camera` under `ip` in `map`, once.
fn link(map: &mut HashMap<IpAddr, Vec<Uuid>>, ip: IpAddr, camera: Uuid) {
    let ids = map.entry(ip).or_default();
    if !ids.contains(&camera) {
        ids.push(camera);
    }
}

impl EveFollower {
    /// A reader of the log at `path` (it may not exist yet).
    pub fn new(path: PathBuf, store: Store, clock: SharedClock, events: EventBus) -> EveFollower {
        EveFollower {
            path,
            store,
            clock,
            events,
            open: None,
            rotated: None,
            finished: None,
            names: HashMap::new(),
            stats: Arc::default(),
        }
    }

    /// Reads the log every [`POLL`] until the server stops; trouble is logged and retried.
    pub async fn run(mut self) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e.message(), path = %self.path.display(), "reading the EVE log failed; retrying");
                self.open = None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One look at the log: opens it (finishing a file rotated away meanwhile), reads what was
    /// appended, and follows a rotation or truncation.
    pub async fn pass(&mut self) -> Result<Pass> {
        let mut done = Pass::default();
        if self.open.is_none() && !self.reopen().await? {
            return Ok(done);
        }
        // Truncated in place (copytruncate)? Then what is there now is read from its start.
        if let Some(open) = self.open.as_mut()
            && rewritten(open).map_err(|e| io_error(&self.path, e))?
        {
            tracing::warn!(path = %self.path.display(), "the EVE log was truncated: reading it from the start");
            let was = (open.device, open.inode, open.offset);
            (open.offset, open.tail) = (0, Vec::new());
            self.save_position(Some(was)).await?;
        }
        while self.read_open(false, &mut done).await? > 0 {}
        // Rotated? The path names another file now, or nothing.
        let Some(open) = self.open.as_ref() else { return Ok(done) };
        let now_there = std::fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if now_there != Some((open.device, open.inode)) {
            // Suricata writes on to the renamed file until logrotate's signal makes it reopen the
            // path: follow the old file until the new one has data and the old one has stayed
            // unchanged for a while; then read the old one to its very end and take the new one.
            let identity = (open.device, open.inode);
            let len = open.file.metadata().map_err(|e| io_error(&self.path, e))?.len();
            let reopened = std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0);
            let now = self.clock.now();
            let quiet_since = match self.rotated {
                Some((was, since)) if was == len => since,
                _ => {
                    self.rotated = Some((len, now));
                    now
                }
            };
            if !reopened || now - quiet_since < ROTATION_GRACE {
                return Ok(done);
            }
            self.rotated = None;
            while self.read_open(true, &mut done).await? > 0 {}
            self.finished = Some(identity);
            self.open = None;
            if self.reopen().await? {
                while self.read_open(false, &mut done).await? > 0 {}
            }
        }
        Ok(done)
    }

    /// Opens the log where the stored position says; a stored file that was rotated away (while
    /// nobody read it) is followed first, as the pass follows one it sees rotated. False when there
    /// is no log yet.
    async fn reopen(&mut self) -> Result<bool> {
        self.rotated = None;
        let Ok(meta) = std::fs::metadata(&self.path) else { return Ok(false) };
        let (device, inode) = (meta.dev(), meta.ino());
        let key = self.path.to_string_lossy().into_owned();
        let stored = self.store.run(move |c| EvePositionRow::find(c, &key)).await?;
        let expected = stored.as_ref().map(|p| (p.device as u64, p.inode as u64, p.byte_offset as u64));
        let (mut offset, mut tail) = (0, Vec::new());
        match stored {
            Some(p) if (p.device as u64, p.inode as u64) == (device, inode) => {
                // Where the last reader stopped; a truncation meanwhile shows in the bytes before it
                // (checked by the pass).
                (offset, tail) = (u64::try_from(p.byte_offset).unwrap_or(0), p.tail);
            }
            Some(p) => {
                let identity = (p.device as u64, p.inode as u64);
                let dir = self.path.parent().unwrap_or(Path::new("."));
                match find_by_identity(dir, identity.0, identity.1) {
                    Some(old) if self.finished != Some(identity) => {
                        tracing::info!(rotated = %old.display(), "following the rotated EVE log to its end first");
                        let file = std::fs::File::open(&old).map_err(|e| io_error(&old, e))?;
                        let start = u64::try_from(p.byte_offset).unwrap_or(0);
                        self.open =
                            Some(OpenLog { file, device: identity.0, inode: identity.1, offset: start, tail: p.tail });
                        return Ok(true);
                    }
                    Some(_) => {} // finished by this reader just now
                    None => {
                        tracing::warn!(path = %self.path.display(), "the EVE log was rotated and the old file is gone: alerts written to it after the last read are lost");
                    }
                }
            }
            None => {}
        }
        let file = std::fs::File::open(&self.path).map_err(|e| io_error(&self.path, e))?;
        self.open = Some(OpenLog { file, device, inode, offset, tail });
        self.save_position(expected).await?;
        Ok(true)
    }

    /// Camera addresses: the host of each source URL (an IP, or a name as it resolves, looked up
    /// at most once a minute and never inside a database transaction; a name that does not resolve
    /// links nothing) and the cameras' listed addresses.
    async fn camera_addresses(&mut self) -> Result<HashMap<IpAddr, Vec<Uuid>>> {
        let cameras = self.store.run(CameraRow::all_live).await?;
        let now = self.clock.now();
        let mut out = HashMap::new();
        for cam in cameras {
            let mut ips: Vec<IpAddr> = cam.ip_addresses.iter().filter_map(|a| a.parse().ok()).collect();
            if let Some(host) = source_host(&cam.source_url) {
                match host.parse::<IpAddr>() {
                    Ok(ip) => ips.push(ip),
                    Err(_) => ips.extend(self.resolve(host, now).await),
                }
            }
            for ip in ips {
                link(&mut out, ip, cam.id);
            }
        }
        Ok(out)
    }

    /// What `host` resolves to, from the cache while fresh.
    async fn resolve(&mut self, host: String, now: chrono::DateTime<chrono::Utc>) -> Vec<IpAddr> {
        if let Some((ips, at)) = self.names.get(&host)
            && now - *at < NAME_TTL
        {
            return ips.clone();
        }
        let ips: Vec<IpAddr> = {
            let lookup = tokio::net::lookup_host((host.as_str(), 0));
            match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                _ => {
                    tracing::debug!(%host, "a camera's host name does not resolve");
                    Vec::new()
                }
            }
        };
        self.names.insert(host, (ips.clone(), now));
        ips
    }

    /// Reads one chunk of complete lines of the open file, stores its alerts and the new position in
    /// one transaction. Returns how many bytes it moved forward.
    async fn read_open(&mut self, to_end: bool, done: &mut Pass) -> Result<u64> {
        let Some(mut open) = self.open.take() else { return Ok(0) };
        let path = self.path.clone();
        let (open_back, read) = tokio::task::spawn_blocking(move || {
            let read = read_lines(&mut open.file, open.offset, to_end)
                .and_then(|(lines, next)| Ok((lines, next, tail_at(&mut open.file, next, TAIL)?)));
            (open, read)
        })
        .await
        .map_err(Error::internal)?;
        let mut open = open_back;
        let (lines, next, tail) = match read {
            Ok(r) => r,
            Err(e) => {
                self.open = Some(open);
                return Err(io_error(&path, e));
            }
        };
        let moved = next - open.offset;
        if moved == 0 {
            self.open = Some(open);
            return Ok(0);
        }
        let mut alerts: Vec<EveAlert> = Vec::new();
        for line in &lines {
            match parse_line(line) {
                EveLine::Alert(a) => alerts.push(*a),
                EveLine::Other => {}
                EveLine::Malformed(why) => {
                    done.malformed += 1;
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = %path.display(), reason = %why, "skipped a malformed EVE line");
                }
            }
        }
        let addresses = if alerts.is_empty() {
            HashMap::new()
        } else {
            match self.camera_addresses().await {
                Ok(a) => a,
                Err(e) => {
                    self.open = Some(open);
                    return Err(e);
                }
            }
        };
        let now = self.clock.now();
        let from = open.offset as i64;
        let position = EvePositionRow {
            path: path.to_string_lossy().into_owned(),
            device: open.device as i64,
            inode: open.inode as i64,
            byte_offset: next as i64,
            tail: tail.clone(),
            updated_at: now,
        };
        let stored = self
            .store
            .transaction(move |c| {
                let rows: Vec<(IdsAlertRow, EveAlert)> = alerts
                    .into_iter()
                    .map(|a| {
                        let mut cams: Vec<Uuid> = Vec::new();
                        for ip in [a.src_ip, a.dest_ip] {
                            for id in addresses.get(&ip).into_iter().flatten() {
                                if !cams.contains(id) {
                                    cams.push(*id);
                                }
                            }
                        }
                        (IdsAlertRow::of(Uuid::new_v4(), &a, &cams, now), a)
                    })
                    .collect();
                // Only from where this reader stands: if another one moved on, nothing is stored twice.
                if !position.advance(c, from)? {
                    return Err(Error::new(
                        crate::error::ErrorKind::Aborted,
                        "another reader of the EVE log moved on; taking up its position",
                    ));
                }
                IdsAlertRow::insert_all(c, &rows.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>())?;
                // Each alert's event, in the same transaction: stored with it or not at all.
                let events: Vec<SiteEvent> = rows
                    .iter()
                    .map(|(row, alert)| {
                        // When it happened: the alert's own time, however late the log was read.
                        SiteEvent::new(
                            alert.time,
                            row.camera_ids.first().copied(),
                            EventKind::IdsAlert {
                                id: row.id,
                                alert: Box::new(alert.clone()),
                                cameras: row.camera_ids.clone(),
                                ingest_time: now,
                            },
                        )
                    })
                    .collect();
                crate::store::events::append_all(c, &events)?;
                Ok(events)
            })
            .await;
        let stored = match stored {
            Ok(events) => events,
            Err(e) => {
                // Nothing was stored. Read again from the stored position next time.
                drop(open);
                return Err(e);
            }
        };
        (open.offset, open.tail) = (next, tail);
        self.open = Some(open);
        done.alerts += stored.len();
        self.stats.alerts.fetch_add(stored.len() as u64, Ordering::Relaxed);
        for event in stored {
            self.events.announce_stored(event);
        }
        Ok(moved)
    }

    /// Stores where reading stands now, if the stored position is still `expected` (device, inode,
    /// offset; `None`: none stored): another reader that moved on is never moved back. When it
    /// did, this reader lets go of its file and takes up the stored position next time.
    async fn save_position(&mut self, expected: Option<(u64, u64, u64)>) -> Result<()> {
        let Some(open) = self.open.as_ref() else { return Ok(()) };
        let position = EvePositionRow {
            path: self.path.to_string_lossy().into_owned(),
            device: open.device as i64,
            inode: open.inode as i64,
            byte_offset: open.offset as i64,
            tail: open.tail.clone(),
            updated_at: self.clock.now(),
        };
        let expected = expected.map(|(d, i, o)| (d as i64, i as i64, o as i64));
        if self.store.run(move |c| position.replace(c, expected)).await? {
            return Ok(());
        }
        self.open = None;
        Err(Error::new(
            crate::error::ErrorKind::Aborted,
            "another reader of the EVE log moved on; taking up its position",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn complete_lines_only_unless_the_file_is_finished() {
        let dir = std::env::temp_dir().join(format!("eve-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("eve.json");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let mut r = std::fs::File::open(&p).unwrap();
        let (lines, next) = read_lines(&mut r, 0, false).unwrap();
        assert_eq!((lines.len(), next), (2, 16));
        let (lines, next) = read_lines(&mut r, next, false).unwrap();
        assert_eq!((lines.len(), next), (0, 16), "a partial line waits");
        let (lines, next) = read_lines(&mut r, 16, true).unwrap();
        assert_eq!((lines, next), (vec!["{\"c\":".to_owned()], 21), "a finished file's last line counts");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
