//! Boot and serve: configuration → database (embedded or external) → migrations → keys → app →
//! one listener for gRPC, grpc-web and HTTP (optionally TLS) → graceful shutdown.
use crate::api::{self};
use crate::app::auth::AuthApp;
use crate::audit::AuditTrail;
use crate::clock::SharedClock;
use crate::config::{Config, Database};
use crate::error::{Error, ErrorKind, Result};
use crate::postgres::{self, EmbeddedPostgres};
use crate::security::keyring::KeyRing;
use crate::security::seal::MasterKey;
use crate::security::secret;
use crate::store::Store;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

mod boot;
mod opening;
use boot::{Apps, Core, open_database, spawn_background};

/// How often the last uses of API keys are written.
const API_KEY_USE_FLUSH: Duration = Duration::from_secs(15);

/// How long in-flight calls get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(20);
/// How long each later step of a shutdown may take.
const STEP: Duration = Duration::from_secs(10);

/// A booted server, before or while it serves.
pub struct Server {
    pub config: Config,
    pub store: Store,
    pub keys: KeyRing,
    pub auth: AuthApp,
    pub audit: AuditTrail,
    pub cameras: crate::app::cameras::CameraApp,
    pub events: crate::bus::EventBus,
    /// The event history, whose recorder is drained when the server stops.
    event_log: crate::app::events::EventLog,
    /// API keys as the authentication layer knows them.
    pub api_keys: crate::security::api_keys::ApiKeyCache,
    pub local_addr: SocketAddr,
    listener: Option<TcpListener>,
    router: axum::Router,
    embedded: Option<Arc<EmbeddedPostgres>>,
    background: Vec<JoinHandle<()>>,
    /// Frame sources of the AI adapters: their `ffmpeg` children end with the server.
    pub frames: crate::inference::router::FrameRouter,
    /// The MediaMTX the server runs itself, if it does.
    mediamtx: Option<crate::media::supervisor::Supervisor>,
}

/// Runs migrations for `config` and returns how many were applied (`opennvr-server migrate`).
pub async fn migrate_only(config: &Config) -> Result<usize> {
    prepare_data_dir(&config.data_dir)?;
    let (_, owner_url, embedded) = database_urls(config).await?;
    let applied =
        tokio::task::spawn_blocking(move || crate::store::migrate(&owner_url)).await.map_err(Error::internal)??;
    if let Some(pg) = embedded {
        pg.stop()?;
    }
    Ok(applied)
}

fn prepare_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::config(format!("OPENNVR_DATA_DIR: cannot create {}: {e}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::config(format!("OPENNVR_DATA_DIR: cannot restrict {}: {e}", dir.display())))
}

async fn database_urls(config: &Config) -> Result<(String, String, Option<EmbeddedPostgres>)> {
    match &config.database {
        Database::External { runtime_url, owner_url } => Ok((runtime_url.clone(), owner_url.clone(), None)),
        Database::Embedded { pg_bin_dir } => {
            let data_dir = std::fs::canonicalize(&config.data_dir).map_err(Error::internal)?;
            let bin = pg_bin_dir.clone();
            let pg = tokio::task::spawn_blocking(move || {
                let bins = postgres::find_binaries(bin.as_deref())?;
                EmbeddedPostgres::start(&data_dir, bins)
            })
            .await
            .map_err(Error::internal)??;
            Ok((
                pg.url(postgres::RUNTIME_ROLE, postgres::DATABASE),
                pg.url(postgres::OWNER_ROLE, postgres::DATABASE),
                Some(pg),
            ))
        }
    }
}

/// A master key generated for the embedded default, written to its file only once the server is
/// sure to start (a start refused for another reason leaves no key behind).
struct NewMasterKey {
    path: std::path::PathBuf,
    key: [u8; 32],
}

impl NewMasterKey {
    fn write(self) -> Result<()> {
        secret::write_private_file(&self.path, &self.key)
            .map_err(|e| Error::config(format!("cannot write {}: {e}", self.path.display())))?;
        tracing::warn!(
            path = %self.path.display(),
            "generated a master key for the embedded database; back it up, or set OPENNVR_MASTER_KEY_FILE to a key you keep elsewhere"
        );
        Ok(())
    }
}

/// The master key: from the configured file, or (embedded default only) generated for the data
/// directory (then written by the caller once nothing else refuses the start).
fn master_key(config: &Config) -> Result<(MasterKey, Option<NewMasterKey>)> {
    const VAR: &str = "OPENNVR_MASTER_KEY_FILE";
    let mut previous = Vec::new();
    for p in &config.master_key_previous_files {
        previous.push(secret::load_master_key("OPENNVR_MASTER_KEY_PREVIOUS_FILES", p)?);
    }
    let path = match &config.master_key_file {
        Some(p) => p.clone(),
        None if config.is_embedded() => {
            let p = config.data_dir.join("master.key");
            if !p.exists() {
                let key = secret::random_bytes::<32>();
                let master = MasterKey::new(&key).with_previous(&previous);
                return Ok((master, Some(NewMasterKey { path: p, key })));
            }
            p
        }
        None => return Err(Error::config(format!("{VAR} is required with DATABASE_URL"))),
    };
    Ok((MasterKey::new(&secret::load_master_key(VAR, &path)?).with_previous(&previous), None))
}

/// Refuses to run without a master key that some stored secret needs.
async fn check_master_keys(store: &Store, master: &MasterKey) -> Result<()> {
    let needed = store.run(crate::store::secrets::references).await?;
    let loaded = master.known_ids();
    if let Some((missing, n)) = needed.iter().find(|(id, _)| !loaded.contains(id)) {
        return Err(Error::config(format!(
            "{n} stored secret(s) are sealed with master key {missing}, which is not configured: set OPENNVR_MASTER_KEY_FILE to it, or list its file in OPENNVR_MASTER_KEY_PREVIOUS_FILES (and rotate with RotateMasterKey)"
        )));
    }
    let unused: Vec<&String> = loaded.iter().skip(1).filter(|id| !needed.contains_key(*id)).collect();
    if !unused.is_empty() {
        tracing::info!(?unused, "previous master keys wrap no stored secret any more and can be removed");
    }
    Ok(())
}

impl Server {
    /// Boots everything up to a bound listener; call [`Server::serve`] to answer calls.
    pub async fn boot(mut config: Config, clock: SharedClock) -> Result<Server> {
        prepare_data_dir(&config.data_dir)?;
        // The port first: a start refused because it is taken leaves nothing behind.
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::config(format!("OPENNVR_LISTEN: cannot listen on {}: {e}", config.listen)))?;
        let local_addr = listener.local_addr().map_err(Error::internal)?;
        let (master, new_key) = master_key(&config)?;
        let mut mediamtx = match config.mediamtx.clone() {
            Some(s) => {
                use crate::media::supervisor::{Filled, Host, Supervisor};
                let host = Host {
                    data_dir: &config.data_dir,
                    listen: local_addr,
                    token_issuer: &config.token_issuer,
                    tls: config.tls.is_some(),
                };
                let filled = Filled {
                    media: &mut config.media,
                    frames_rtsp_url: &mut config.frames.rtsp_url,
                    hook_secret: &mut config.hook_secret,
                };
                Supervisor::prepare(host, filled, &s)?
            }
            None => None,
        };
        let (store, embedded) = open_database(&config, &master).await?;
        // Nothing is sealed before this point: the new key is kept only by a start that goes on.
        if let Some(key) = new_key {
            key.write()?;
        }
        let core = Core::start(&config, clock, master, store).await?;
        boot::warn_of_media_gaps(&config, &core.media);
        let apps = Apps::build(&config, &core).await?;
        let router = api::router(apps.router_parts(&config, &core)?)?;
        let mut background = spawn_background(&config, &core, &apps, embedded.as_ref())?;
        if let Some(m) = &mut mediamtx {
            background.push(m.start(local_addr.port(), core.media.clone())?);
        }
        Ok(Server {
            mediamtx,
            config,
            store: core.store,
            keys: core.keys,
            auth: apps.auth,
            audit: core.audit,
            cameras: apps.cameras,
            events: core.events,
            event_log: core.event_log,
            api_keys: core.api_keys,
            local_addr,
            listener: Some(listener),
            router,
            embedded,
            background,
            frames: apps.frames,
        })
    }

    /// Serves until `shutdown` turns true, lets in-flight calls finish, then closes the pool and
    /// stops the embedded database.
    pub async fn serve(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let listener = self.listener.take().ok_or_else(|| Error::internal("server already served"))?;
        let tls = match &self.config.tls {
            Some(t) => Some(tls_acceptor(&t.cert_file, &t.key_file)?),
            None => None,
        };
        tracing::info!(addr = %self.local_addr, tls = tls.is_some(), "serving gRPC, grpc-web and HTTP");
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = connection_builder();
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.max_connections));
        let per_address: crate::security::budget::Occupancy<std::net::IpAddr> = Default::default();
        let mut refused_since_log = 0u64;
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = async { shutdown.wait_for(|stop| *stop).await.map(|_| ()) } => break,
            };
            // A connection cap: past it, new connections are closed at once (counted in the log),
            // so that one client cannot take every socket and task the server has.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                refused_since_log += 1;
                if refused_since_log.is_power_of_two() {
                    tracing::warn!(
                        limit = self.config.max_connections,
                        refused = refused_since_log,
                        "connection limit reached: closing new connections"
                    );
                }
                drop(stream);
                continue;
            };
            // And a cap per client address (reverse proxies the server trusts are not held to it).
            let place = if self.config.trusted_proxies.contains(&peer.ip()) {
                None
            } else {
                match per_address
                    .take(peer.ip(), |theirs, _| (theirs < MAX_CONNECTIONS_PER_ADDRESS).then_some(()).ok_or(()))
                {
                    Ok(place) => Some(place),
                    Err(()) => {
                        tracing::debug!(client = %peer.ip(), "connection limit per address reached: closing");
                        drop(stream);
                        continue;
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let service =
                self.router.clone().map_request(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
            let service = hyper_util::service::TowerToHyperService::new(service);
            match &tls {
                None => {
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let _slots = (slot, place);
                        // A client that connects and says nothing, or stops inside its opening, is
                        // let go: the protocol sniffing would otherwise wait for it for ever.
                        let io = opening::Opening::new(stream, FIRST_BYTE);
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let _slots = (slot, place);
                        match tokio::time::timeout(FIRST_BYTE, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => {
                                // The same bound on the opening, after the handshake.
                                let io = opening::Opening::new(tls_stream, FIRST_BYTE);
                                let conn =
                                    builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
                                if let Err(e) = watcher.watch(conn).await {
                                    tracing::debug!(error = %e, "connection ended");
                                }
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    });
                }
            }
        }
        tracing::info!("shutting down: letting in-flight calls finish");
        if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
            tracing::warn!("some calls did not finish within {DRAIN:?}");
        }
        // Shutdown never hangs on a part that does not stop: each step has its bound, then the rest
        // is aborted (frame sources kill their ffmpeg children as their handles drop).
        if tokio::time::timeout(STEP, self.frames.stop()).await.is_err() {
            tracing::warn!("frame sources did not stop within {STEP:?}: aborting them");
        }
        if let Some(m) = &self.mediamtx {
            m.stop().await;
        }
        // Events still waiting for the recorder are stored and linked, not lost with it.
        if tokio::time::timeout(STEP, self.event_log.drain()).await.is_err() {
            tracing::warn!("storing the last events did not finish within {STEP:?}");
        }
        // Write the counts of refused calls not yet summarised, then sign the head once more, so the
        // last entries are vouched for by the audit key.
        let audit = self.audit.clone();
        let last = async move {
            if let Err(e) = audit.flush_refusals(true).await {
                tracing::warn!(error = %e, "writing the summary of refused calls failed");
            }
            audit.checkpoint().await
        };
        match tokio::time::timeout(STEP, last).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "final audit checkpoint failed"),
            Err(_) => tracing::warn!("final audit checkpoint did not finish within {STEP:?}"),
            Ok(Ok(_)) => {}
        }
        self.stop();
        Ok(())
    }

    fn stop(&mut self) {
        for task in self.background.drain(..) {
            task.abort();
        }
        self.frames.abort();
        self.store.close();
        if let Some(pg) = self.embedded.take()
            && let Err(e) = pg.stop()
        {
            tracing::error!(error = %e, "stopping the embedded PostgreSQL");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long a new connection may take to say what it speaks (the HTTP/2 preface or an HTTP/1
/// request line), and a TLS handshake may take.
const FIRST_BYTE: Duration = Duration::from_secs(10);
/// Connections one client address may hold at once (a quarter of the default cap: one client
/// cannot take every connection the server serves).
const MAX_CONNECTIONS_PER_ADDRESS: usize = 1024;
/// How long a client may take to send a request's headers (slow-loris defence).
const HEADER_READ: Duration = Duration::from_secs(10);

/// HTTP/1.1 and HTTP/2 with timers that actually run: a header-read timeout, and HTTP/2 keep-alive
/// pings that drop a peer which stops answering; at most 256 concurrent streams per connection.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(256);
    builder
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let read = |p: &Path, var: &str| {
        std::fs::read(p).map_err(|e| Error::config(format!("{var}: cannot read {}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut read(cert, "OPENNVR_TLS_CERT_FILE")?.as_slice())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(format!("OPENNVR_TLS_CERT_FILE: {e}")))?;
    let key = rustls_pemfile::private_key(&mut read(key, "OPENNVR_TLS_KEY_FILE")?.as_slice())
        .map_err(|e| Error::config(format!("OPENNVR_TLS_KEY_FILE: {e}")))?
        .ok_or_else(|| Error::config("OPENNVR_TLS_KEY_FILE holds no private key"))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(Error::internal)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::config(format!("OPENNVR_TLS_CERT_FILE/OPENNVR_TLS_KEY_FILE: {e}")))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))
}

/// Maps a boot error to a process exit message.
pub fn describe(e: &Error) -> String {
    match e.kind() {
        ErrorKind::Internal => "internal error during start-up (see the log above)".to_owned(),
        _ => e.message().to_owned(),
    }
}
