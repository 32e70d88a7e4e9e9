//! The saved session: server URL and tokens in `<config dir>/nvrctl/session.json` (mode 0600),
//! refreshed by the SDK before it expires and saved again when it is.
use anyhow::{Context, Result, anyhow};
use opennvr_sdk::{Client, pb};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// How this run of nvrctl was started: the page size of listings, and, when a caller runs
/// commands in process, the session file and where output goes.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Rows asked for per page of a listing.
    pub page_size: i32,
    /// The session file [default: `NVRCTL_SESSION_FILE`, else in the config directory].
    pub session_file: Option<PathBuf>,
    /// Where output goes [default: standard output].
    pub out: Option<crate::output::Sink>,
}

tokio::task_local! {
    static INVOCATION: Invocation;
}

impl Invocation {
    /// The invocation of the running command (defaults outside one).
    pub fn current() -> Invocation {
        INVOCATION.try_with(Clone::clone).unwrap_or(Invocation { page_size: 0, session_file: None, out: None })
    }

    /// Runs `f` as `self`.
    pub async fn scope<T>(self, f: impl std::future::Future<Output = T>) -> T {
        INVOCATION.scope(self, f).await
    }
}

/// Default server URL.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7450";

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    server: String,
    access_token: String,
    access_token_expires: i64,
    refresh_token: String,
    refresh_token_expires: i64,
    session_id: String,
}

fn path() -> Result<PathBuf> {
    if let Some(p) = Invocation::current().session_file {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("NVRCTL_SESSION_FILE") {
        return Ok(PathBuf::from(p));
    }
    let dir = dirs::config_dir().ok_or_else(|| anyhow!("no config directory (set NVRCTL_SESSION_FILE)"))?;
    Ok(dir.join("nvrctl").join("session.json"))
}

fn load() -> Result<Option<Saved>> {
    let p = path()?;
    match std::fs::read(&p) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {}", p.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Saves `tokens` for `server`, readable only by the user.
pub fn save(server: &str, tokens: &pb::Tokens) -> Result<()> {
    save_to(&path()?, server, tokens)
}

/// Saves `tokens` for `server` in the session file `p`, readable only by the user.
pub fn save_to(p: &std::path::Path, server: &str, tokens: &pb::Tokens) -> Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let saved = Saved {
        server: server.to_owned(),
        access_token: tokens.access_token.clone(),
        access_token_expires: tokens.access_token_expire_time.as_ref().map_or(0, |t| t.seconds),
        refresh_token: tokens.refresh_token.clone(),
        refresh_token_expires: tokens.refresh_token_expire_time.as_ref().map_or(0, |t| t.seconds),
        session_id: tokens.session_id.clone(),
    };
    let tmp = p.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(&saved)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// Forgets the saved session.
pub fn clear() -> Result<()> {
    match std::fs::remove_file(path()?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// The server to talk to: the flag, else the saved session's, else the default.
pub fn server_url(flag: Option<String>) -> Result<String> {
    Ok(match flag {
        Some(s) => s,
        None => load()?.map(|s| s.server).unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
    })
}

/// Connects, trusting the CA in `NVRCTL_CA_FILE` for `https://` servers when it is set.
async fn connect(server: &str) -> Result<Client> {
    let ca = match std::env::var_os("NVRCTL_CA_FILE") {
        Some(p) => Some(std::fs::read(&p).with_context(|| format!("reading NVRCTL_CA_FILE {}", p.to_string_lossy()))?),
        None => None,
    };
    Ok(Client::connect_with_ca(server, ca.as_deref()).await?)
}

/// A client without a session.
pub async fn anonymous(server: &str) -> Result<Client> {
    connect(server).await
}

/// An exclusive lock on the saved session, so two nvrctl runs never refresh the same token at once
/// (the loser's rotated token would look like a stolen one to the server).
fn lock() -> Result<std::fs::File> {
    let p = path()?.with_extension("lock");
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    f.lock().with_context(|| format!("locking {}", p.display()))?;
    Ok(f)
}

/// A client with the saved session. The SDK refreshes the session whenever a call finds it about
/// to expire, and the rotated tokens are saved; the first refresh happens here, under the lock.
pub async fn signed_in(flag: Option<String>) -> Result<Client> {
    let _lock = lock()?;
    let saved = load()?.ok_or_else(|| anyhow!("not signed in: run `nvrctl login`"))?;
    let server = flag.unwrap_or(saved.server.clone());
    if server != saved.server {
        return Err(anyhow!("signed in to {}, not {server}: run `nvrctl login --server {server}`", saved.server));
    }
    let client = connect(&server).await?;
    client.set_page_size(Invocation::current().page_size);
    client.set_tokens(Some(pb::Tokens {
        access_token: saved.access_token,
        access_token_expire_time: Some(prost_types::Timestamp { seconds: saved.access_token_expires, nanos: 0 }),
        refresh_token: saved.refresh_token,
        refresh_token_expire_time: Some(prost_types::Timestamp { seconds: saved.refresh_token_expires, nanos: 0 }),
        session_id: saved.session_id,
        user: None,
        mfa_enrolment_required: false,
    }));
    let file = path()?;
    client.on_refresh(move |tokens| {
        if let Err(e) = save_to(&file, &server, tokens) {
            eprintln!("nvrctl: the session was refreshed but not saved: {e:#}");
        }
    });
    client.ensure_fresh().await.context("the session has ended: run `nvrctl login`")?;
    Ok(client)
}

/// The next message of a watch. When the server ends the watch because the access token expired,
/// the session is refreshed and the watch reopened with `reopen` (which knows where to go on from),
/// so that a watch outlives its tokens.
pub async fn next_watched<T, F, Fut>(
    client: &Client,
    stream: &mut tonic::Streaming<T>,
    mut reopen: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
{
    loop {
        match stream.message().await {
            Ok(message) => return Ok(message),
            Err(status) if token_expired(&status) => {
                client.refresh().await?;
                *stream = reopen().await?.into_inner();
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// Whether a call (or a stream) ended because the access token expired: refreshing mends it.
fn token_expired(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unauthenticated
        && opennvr_sdk::error_reason(status).as_deref() == Some("ERROR_REASON_TOKEN_EXPIRED")
}
