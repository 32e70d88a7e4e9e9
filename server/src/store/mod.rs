//! PostgreSQL through Diesel: the pool, embedded migrations and every query. The only place SQL lives.
pub mod api_keys;
pub mod audit;
pub mod cameras;
pub mod ceremonies;
pub mod columns;
pub mod credentials;
pub mod events;
pub mod exports;
pub mod ids;
pub mod inference;
pub mod keys;
pub mod prepared;
pub mod recent;
pub mod recordings;
pub mod schema;
pub mod secrets;
pub mod sessions;
pub mod snapshots;
pub mod throttle;
pub mod users;

use crate::error::{Error, ErrorKind, Result};
use deadpool_diesel::postgres::{HookError, Runtime};
use diesel::prelude::*;
use diesel::{Connection, PgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::sync::Arc;
use std::time::Duration;

/// Every migration in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// The runtime connection pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Signalled when work committed audit entries that await linking.
    appended: Arc<tokio::sync::Notify>,
    /// Rows the request path reads again and again, remembered briefly.
    recent: Arc<recent::Recent>,
    /// Where the pool connects, for connections of their own (listeners).
    url: Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("status", &self.pool.status()).finish()
    }
}

/// A pooled connection.
type Pooled = deadpool_diesel::Connection<PgConnection>;

/// The runtime pool.
type Pool = deadpool::managed::Pool<Checkout>;

/// A connection used this recently is handed out again without a test query.
const RECENTLY_USED: Duration = Duration::from_secs(1);

/// How connections are checked out: deadpool-diesel's manager, except that a connection in steady
/// use (used within [`RECENTLY_USED`]) is handed out again without the `SELECT 1` round trip — its
/// transaction state is still checked, in place, without a thread hand-off. A connection that sat
/// idle is tested as before, so connections broken while idle (PostgreSQL restarted) are replaced
/// before anyone gets them; one that breaks in use fails its call and is dropped.
pub struct Checkout(deadpool_diesel::postgres::Manager);

impl deadpool::managed::Manager for Checkout {
    type Type = Pooled;
    type Error = deadpool_diesel::Error;

    async fn create(&self) -> std::result::Result<Pooled, deadpool_diesel::Error> {
        self.0.create().await
    }

    async fn recycle(
        &self,
        conn: &mut Pooled,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<deadpool_diesel::Error> {
        if metrics.last_used() >= RECENTLY_USED {
            return self.0.recycle(conn, metrics).await;
        }
        use diesel::connection::TransactionManager;
        let Ok(mut c) = conn.try_lock() else {
            return Err(deadpool::managed::RecycleError::message("the connection is busy or poisoned"));
        };
        if <PgConnection as Connection>::TransactionManager::is_broken_transaction_manager(&mut *c) {
            return Err(deadpool::managed::RecycleError::Backend(deadpool_diesel::Error::BrokenTransactionManger));
        }
        Ok(())
    }
}

/// A snapshot of pool usage, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    pub size: usize,
    pub available: usize,
    pub max_size: usize,
    pub waiting: usize,
}

impl Store {
    /// Builds the runtime pool on `url`; every new connection gets `statement_timeout`.
    pub fn connect(url: &str, max_size: usize, statement_timeout: Duration) -> Result<Store> {
        let timeout_ms = statement_timeout.as_millis();
        let hook = deadpool::managed::Hook::async_fn(move |conn: &mut Pooled, _| {
            Box::pin(async move {
                conn.interact(move |c| diesel::sql_query(format!("SET statement_timeout = {timeout_ms}")).execute(c))
                    .await
                    .map_err(|e| HookError::Message(e.to_string().into()))?
                    .map_err(|e| HookError::Message(e.to_string().into()))?;
                Ok(())
            })
        });
        let pool = Pool::builder(Checkout(deadpool_diesel::postgres::Manager::new(url, Runtime::Tokio1)))
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .post_create(hook)
            .build()
            .map_err(Error::internal)?;
        Ok(Store { pool, appended: Arc::default(), recent: Arc::default(), url: url.into() })
    }

    /// Runs `delete` (which removes at most the number of rows it is given) until it removes
    /// fewer; returns how many rows went. Each batch is its own statement: no long lock.
    pub async fn delete_in_batches<F>(&self, delete: F) -> Result<usize>
    where
        F: Fn(&mut PgConnection, i64) -> Result<usize> + Clone + Send + 'static,
    {
        const BATCH: i64 = 10_000;
        let mut total = 0;
        loop {
            let delete = delete.clone();
            let n = self.run(move |c| delete(c, BATCH)).await?;
            total += n;
            if (n as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Runs `f` on a pooled connection, off the async runtime.
    pub async fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut PgConnection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let conn = self.pool.get().await?;
        let (appended, recent) = (self.appended.clone(), self.recent.clone());
        let (result, lost) = conn
            .interact(move |c| {
                audit::take_pending();
                crate::error::connection_lost();
                let result = f(c);
                // Entries this work wrote wait in the inbox: the linker links them as they commit.
                // What it changed may be remembered: forgotten now.
                if audit::take_pending() {
                    recent.changed();
                    appended.notify_one();
                }
                (result, crate::error::connection_lost())
            })
            .await?;
        if lost {
            // Not handed out again: the next checkout makes a new connection.
            drop(deadpool::managed::Object::take(conn));
        }
        result
    }

    /// Runs `f` in a transaction on a pooled connection.
    pub async fn transaction<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut PgConnection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.run(move |c| c.transaction(f)).await
    }

    /// True when a connection can be had and answers a trivial query.
    pub async fn ping(&self) -> bool {
        let check = self.run(|c| {
            diesel::sql_query("SELECT 1").execute(c)?;
            Ok(())
        });
        matches!(tokio::time::timeout(Duration::from_secs(2), check).await, Ok(Ok(())))
    }

    /// Waits until work may have committed audit entries that await linking.
    pub async fn appended(&self) {
        self.appended.notified().await
    }

    /// A connection outside the pool, for a task that holds one for good (a listener). Blocking.
    pub fn dedicated(&self) -> Result<PgConnection> {
        Ok(PgConnection::establish(&self.url)?)
    }

    /// Rows read recently on the request path.
    pub fn recent(&self) -> &recent::Recent {
        &self.recent
    }

    /// Current pool usage.
    pub fn usage(&self) -> PoolUsage {
        let s = self.pool.status();
        PoolUsage { size: s.size, available: s.available, max_size: s.max_size, waiting: s.waiting }
    }

    /// Closes the pool: idle connections drop, no new ones are made.
    pub fn close(&self) {
        self.pool.close();
    }
}

impl From<diesel::ConnectionError> for Error {
    fn from(e: diesel::ConnectionError) -> Self {
        tracing::warn!(error = %e, "database connection");
        Error::new(ErrorKind::Unavailable, "database unavailable")
    }
}

/// Versions the database has applied that this binary does not know (a newer server migrated it).
pub fn unknown_versions(conn: &mut PgConnection) -> Result<Vec<String>> {
    let known: Vec<String> = MigrationHarness::applied_migrations(conn)
        .map_err(Error::internal)?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    let ours: Vec<String> = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(Error::internal)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    Ok(known.into_iter().filter(|v| !ours.contains(v)).collect())
}

/// Brings the schema up to date as the owner role at `owner_url`. Refuses a schema newer than this
/// binary. Returns the number of migrations applied.
pub fn migrate(owner_url: &str) -> Result<usize> {
    let mut conn = PgConnection::establish(owner_url).map_err(|e| {
        Error::new(ErrorKind::Unavailable, format!("cannot connect to the database as the owner role: {e}"))
    })?;
    // Serialise concurrent starts: only one process migrates at a time.
    diesel::sql_query("SELECT pg_advisory_lock(7450001)").execute(&mut conn)?;
    let result = migrate_locked(&mut conn);
    diesel::sql_query("SELECT pg_advisory_unlock(7450001)").execute(&mut conn)?;
    result
}

fn migrate_locked(conn: &mut PgConnection) -> Result<usize> {
    let newer = has_migrations_table(conn)?.then(|| unknown_versions(conn)).transpose()?.unwrap_or_default();
    if !newer.is_empty() {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "the database schema is newer than this server knows (unknown migrations: {}): run a newer opennvr-server, or restore a backup made for this version",
                newer.join(", ")
            ),
        ));
    }
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| Error::new(ErrorKind::FailedPrecondition, format!("database migration failed: {e}")))?;
    Ok(applied.len())
}

fn has_migrations_table(conn: &mut PgConnection) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let row: Exists =
        diesel::sql_query("SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS exists").get_result(conn)?;
    Ok(row.exists)
}

/// Writes the settings only the owner may change (whether audit archiving is allowed).
pub fn apply_owner_settings(owner_url: &str, archive_enabled: bool) -> Result<()> {
    let mut conn = PgConnection::establish(owner_url).map_err(|e| {
        Error::new(ErrorKind::Unavailable, format!("cannot connect to the database as the owner role: {e}"))
    })?;
    diesel::sql_query("UPDATE audit_settings SET archive_enabled = $1")
        .bind::<diesel::sql_types::Bool, _>(archive_enabled)
        .execute(&mut conn)?;
    Ok(())
}

/// Reverts every applied migration (tests and `migrate` round-trips only).
pub fn revert_all(conn: &mut PgConnection) -> Result<usize> {
    let reverted = conn.revert_all_migrations(MIGRATIONS).map_err(Error::internal)?;
    Ok(reverted.len())
}

/// Creates, as a superuser, the roles OpenNVR uses: the owner that runs migrations, the NOLOGIN
/// group `opennvr_runtime` that holds the runtime privileges, and a login role in that group.
/// Idempotent. Passwords are only set when given (socket-only clusters use trust).
pub fn provision_roles(superuser: &mut PgConnection, owner: &str, runtime_login: &str) -> Result<()> {
    for name in [owner, runtime_login] {
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(Error::internal(format!("bad role name {name}")));
        }
    }
    let sql = format!(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opennvr_runtime') THEN CREATE ROLE opennvr_runtime NOLOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') THEN CREATE ROLE {owner} LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{runtime_login}') THEN CREATE ROLE {runtime_login} LOGIN IN ROLE opennvr_runtime; END IF;
         END $$"
    );
    diesel::sql_query(sql).execute(superuser)?;
    Ok(())
}

/// Creates database `name` owned by `owner` (optionally from `template`) unless it exists.
pub fn create_database(superuser: &mut PgConnection, name: &str, owner: &str, template: Option<&str>) -> Result<()> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let existing: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(superuser)?;
    for ident in [Some(name), Some(owner), template].into_iter().flatten() {
        if !ident.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::internal(format!("bad database identifier {ident:?}")));
        }
    }
    if existing.n == 0 {
        let template = template.map(|t| format!(" TEMPLATE \"{t}\"")).unwrap_or_default();
        diesel::sql_query(format!("CREATE DATABASE \"{name}\" OWNER \"{owner}\"{template}")).execute(superuser)?;
    }
    Ok(())
}
