//! Saved sessions, one per profile: server URL, username and tokens in
//! `<config dir>/nvrctl/session.json` for the profile `default` and `profiles/<name>.json` for the
//! others (mode 0600), refreshed by the SDK before they expire and saved again when they are. A
//! script may use an API key instead (`NVRCTL_API_KEY`), and nothing is saved.
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
    /// The profile [default: `NVRCTL_PROFILE`, else the one `nvrctl profile use` chose, else
    /// `default`].
    pub profile: Option<String>,
}

tokio::task_local! {
    static INVOCATION: Invocation;
}

impl Invocation {
    /// The invocation of the running command (defaults outside one).
    pub fn current() -> Invocation {
        INVOCATION.try_with(Clone::clone).unwrap_or(Invocation {
            page_size: 0,
            session_file: None,
            out: None,
            profile: None,
        })
    }

    /// Runs `f` as `self`.
    pub async fn scope<T>(self, f: impl std::future::Future<Output = T>) -> T {
        INVOCATION.scope(self, f).await
    }
}

/// Default server URL.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7450";

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    server: String,
    /// Who signed in (empty in files written before it was kept).
    #[serde(default)]
    username: String,
    /// The token of a TOTP enrolment started and not yet confirmed: a sign-in after a crash
    /// resumes it with the same secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_enrollment: Option<String>,
    access_token: String,
    access_token_expires: i64,
    refresh_token: String,
    refresh_token_expires: i64,
    session_id: String,
}

/// nvrctl's directory under the user's config directory.
fn config_dir() -> Result<PathBuf> {
    Ok(dirs::config_dir().ok_or_else(|| anyhow!("no config directory (set NVRCTL_SESSION_FILE)"))?.join("nvrctl"))
}

/// Profile names are file names: letters, digits, `-`, `_` and `.`, not starting with a dot.
pub fn check_profile(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(anyhow!("profile {name:?}: use letters, digits, '-', '_' or '.' (at most 64)")) }
}

/// The profile of this run: `--profile`, else `NVRCTL_PROFILE`, else the chosen default.
pub fn profile() -> Result<String> {
    let named =
        Invocation::current().profile.or_else(|| std::env::var("NVRCTL_PROFILE").ok().filter(|p| !p.is_empty()));
    let name = match named {
        Some(p) => p,
        None => default_profile()?,
    };
    check_profile(&name)?;
    Ok(name)
}

/// The profile `nvrctl profile use` chose, else `default`.
pub fn default_profile() -> Result<String> {
    match std::fs::read_to_string(config_dir()?.join("default-profile")) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Ok(DEFAULT_PROFILE.to_owned()),
    }
}

/// Makes `name` the profile used when none is named.
pub fn set_default_profile(name: &str) -> Result<()> {
    check_profile(name)?;
    let dir = config_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("default-profile"), format!("{name}\n")).context("saving the default profile")
}

/// The session file of profile `name`.
fn profile_path(name: &str) -> Result<PathBuf> {
    let dir = config_dir()?;
    Ok(if name == DEFAULT_PROFILE {
        dir.join("session.json")
    } else {
        dir.join("profiles").join(format!("{name}.json"))
    })
}

fn path() -> Result<PathBuf> {
    if let Some(p) = Invocation::current().session_file {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("NVRCTL_SESSION_FILE") {
        return Ok(PathBuf::from(p));
    }
    profile_path(&profile()?)
}

/// Every profile with a saved session: (name, server, username).
pub fn profiles() -> Result<Vec<(String, String, String)>> {
    let dir = config_dir()?;
    let mut files = vec![(DEFAULT_PROFILE.to_owned(), dir.join("session.json"))];
    if let Ok(entries) = std::fs::read_dir(dir.join("profiles")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
            {
                files.push((stem.to_owned(), p));
            }
        }
    }
    files.sort();
    Ok(files
        .into_iter()
        .filter_map(|(name, p)| {
            let saved: Saved = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
            Some((name, saved.server, saved.username))
        })
        .collect())
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
    let before = read(p);
    // A refresh names no user: the one who signed in stays, and so does a pending enrolment of
    // the same user on the same server.
    let same = |b: &Saved| b.server == server && tokens.user.as_ref().is_none_or(|u| u.username == b.username);
    let username = match &tokens.user {
        Some(u) => u.username.clone(),
        None => before.as_ref().map(|b| b.username.clone()).unwrap_or_default(),
    };
    let saved = Saved {
        server: server.to_owned(),
        username,
        pending_enrollment: before.filter(same).and_then(|b| b.pending_enrollment),
        access_token: tokens.access_token.clone(),
        access_token_expires: tokens.access_token_expire_time.as_ref().map_or(0, |t| t.seconds),
        refresh_token: tokens.refresh_token.clone(),
        refresh_token_expires: tokens.refresh_token_expire_time.as_ref().map_or(0, |t| t.seconds),
        session_id: tokens.session_id.clone(),
    };
    write(p, &saved)
}

/// The saved session in `p`, if it reads.
fn read(p: &std::path::Path) -> Option<Saved> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// Writes `saved` to `p` at once (a temporary file renamed), readable only by the user.
fn write(p: &std::path::Path, saved: &Saved) -> Result<()> {
    let tmp = p.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(saved)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// The token of this profile's TOTP enrolment waiting for its first code, if any.
pub fn pending_enrollment() -> Result<Option<String>> {
    Ok(load()?.and_then(|s| s.pending_enrollment))
}

/// Keeps (or, with `None`, forgets) the token of the TOTP enrolment under way, before its secret is
/// shown: a sign-in after a crash resumes it.
pub fn set_pending_enrollment(token: Option<&str>) -> Result<()> {
    let p = path()?;
    let Some(mut saved) = read(&p) else { return Ok(()) };
    saved.pending_enrollment = token.map(str::to_owned);
    write(&p, &saved)
}

/// Forgets the saved session.
pub fn clear() -> Result<()> {
    match std::fs::remove_file(path()?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Refuses to sign `username` in to `server` over a live session of someone else (or of another
/// server) kept in this profile: that session would be lost without a word.
pub fn check_replace(server: &str, username: &str) -> Result<()> {
    let Some(saved) = load()? else { return Ok(()) };
    let live = saved.refresh_token_expires > chrono::Utc::now().timestamp();
    let same = saved.server == server && (saved.username.is_empty() || saved.username.eq_ignore_ascii_case(username));
    if live && !same {
        let who = if saved.username.is_empty() { "someone".to_owned() } else { saved.username.clone() };
        return Err(anyhow!(
            "profile {} holds the session of {who} on {}: sign in under another profile (nvrctl --profile NAME login …) or sign out first (nvrctl logout)",
            profile()?,
            saved.server
        ));
    }
    Ok(())
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
    // A script's API key: no session, nothing saved.
    if let Ok(key) = std::env::var("NVRCTL_API_KEY")
        && !key.is_empty()
    {
        let server = flag.or_else(|| std::env::var("NVRCTL_SERVER").ok()).unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let client = connect(&server).await?;
        client.set_page_size(Invocation::current().page_size);
        client.set_api_key(&key);
        return Ok(client);
    }
    let _lock = lock()?;
    let saved = load()?.ok_or_else(|| {
        anyhow!("not signed in (profile {}): run `nvrctl login --username NAME`", profile().unwrap_or_default())
    })?;
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
            eprintln!("warning: the session was refreshed but not saved: {e:#}");
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
