//! Identity use cases: bootstrap, login with throttling, refresh-token rotation with reuse detection,
//! sessions, users and the last-admin rule.
use super::mfa::LoginOutcome;
use super::setup::SetupToken;
use super::{Call, PageRequest, Principal};
use crate::clock::SharedClock;
use crate::domain::mfa::AuthMethod;
use crate::domain::{Actor, ActorType, AuditRecord};
use crate::domain::{Permission, Role, normalise_username, validate_display_name};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::security::password::{PasswordHasherPool, check_policy};
use crate::security::revocation::RevocationCache;
use crate::security::token::TokenIssuer;
use crate::store::Store;
use crate::store::api_keys::ApiKeyRow;
use crate::store::ceremonies::CeremonyRow;
use crate::store::credentials::{CredentialRow, FactorSummary};
use crate::store::recent::Account;
use crate::store::sessions::{RefreshTokenRow, SessionRow};
use crate::store::throttle::LoginFailureRow;
use crate::store::users::{UserChanges, UserRow};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Failures allowed from one address before back-off starts.
const FREE_FAILURES: i32 = 3;
/// Longest back-off.
const MAX_BACKOFF_SECS: i64 = 15 * 60;
/// Failures older than this are forgotten.
const FAILURE_WINDOW_SECS: i64 = 60 * 60;
/// A rotated refresh token presented again within this grace is a client retry, not theft.
pub const REFRESH_REUSE_GRACE_SECS: i64 = 10;

/// Tokens handed to a client after login, bootstrap or refresh.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub session_id: Uuid,
    pub user: UserRow,
    /// The session may only enrol a second factor until the user has one.
    pub mfa_enrolment_required: bool,
}

/// How a new session proved who it is.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub methods: Vec<AuthMethod>,
    /// The second factor used, if a stored one.
    pub credential: Option<Uuid>,
    /// A second factor was presented: the session starts stepped up.
    pub stepped_up: bool,
}

impl SignedIn {
    /// A password alone (the user has no second factor).
    pub fn password() -> SignedIn {
        SignedIn { methods: vec![AuthMethod::Password], credential: None, stepped_up: false }
    }
}

/// The identity service.
#[derive(Clone)]
pub struct AuthApp {
    pub store: Store,
    pub clock: SharedClock,
    pub hasher: PasswordHasherPool,
    pub tokens: TokenIssuer,
    pub revocations: RevocationCache,
    pub setup: SetupToken,
    pub session_ttl: Duration,
    pub attempts: AttemptQueue,
    /// Password checks allowed per client address and per account.
    pub password_checks: PasswordBudgets,
    /// Told when a user's rights shrink, so that their open viewing sessions are ended at once.
    pub media: crate::media::plane::MediaPlane,
    /// Second factors and the MFA policy.
    pub mfa: super::mfa::MfaSettings,
    /// Told when the keys a user created are revoked with their rights.
    pub api_keys: crate::security::api_keys::ApiKeyCache,
    /// Set once a user exists (the site is set up for good).
    pub set_up: Arc<std::sync::atomic::AtomicBool>,
}

/// What a sign-in page can offer before anyone signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInOptions {
    /// No user exists yet.
    pub setup_required: bool,
    /// The WebAuthn relying party id; `None`: passkeys are off.
    pub passkeys_rp_id: Option<String>,
}

/// Budgets of failed password checks, kept apart from the per-(user, address) lockout: per client
/// address across usernames (ever-new names from one address cannot keep every hashing worker
/// busy), and per account across addresses (many addresses cannot guess one password quickly). A
/// check reserves a unit of both before it hashes, so checks running at once cannot overdraw them,
/// and gives both back when the password was right: only failures spend them.
#[derive(Clone)]
pub struct PasswordBudgets {
    pub per_address: crate::security::budget::Budget,
    pub per_account: crate::security::budget::Budget,
}

impl Default for PasswordBudgets {
    fn default() -> Self {
        use crate::security::budget::{Budget, Rate};
        PasswordBudgets {
            per_address: Budget::new(Rate::per_minute(30)),
            per_account: Budget::new(Rate::per_minute(20)),
        }
    }
}

impl PasswordBudgets {
    /// Reserves a unit of both budgets for one check; RESOURCE_EXHAUSTED, saying which budget is
    /// spent and when to retry, when one has none.
    fn reserve(&self, username: &str, address: &str) -> Result<()> {
        let refuse = |wait: std::time::Duration, whose: &str| {
            Error::new(
                ErrorKind::ResourceExhausted,
                format!("too many password checks {whose}, failed or under way; retry in {} s", wait.as_secs().max(1)),
            )
            .with_retry_after(wait)
            .with_reason(reason::RATE_LIMITED)
        };
        self.per_address.spend(address).map_err(|wait| refuse(wait, "from this address"))?;
        self.per_account.spend(username).map_err(|wait| {
            self.per_address.refund(address);
            refuse(wait, "for this account")
        })
    }

    /// Gives back the reservation of a check that did not fail (the password was right, or the
    /// check could not run).
    fn release(&self, username: &str, address: &str) {
        self.per_address.refund(address);
        self.per_account.refund(username);
    }
}

/// One queue per (username, client address): password checks of a pair run one at a time, so
/// parallel guesses are judged in order and correct parallel logins are not mistaken for guessing.
#[derive(Clone, Default)]
pub struct AttemptQueue(Arc<std::sync::Mutex<HashMap<(String, String), Lane>>>);

/// The queue of one (username, client address).
type Lane = Arc<tokio::sync::Mutex<()>>;

/// The turn of one password check; the queue entry goes when nobody else waits.
pub struct AttemptTurn {
    queue: AttemptQueue,
    key: (String, String),
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl AttemptQueue {
    /// Waits for the turn of (`username`, `address`).
    pub async fn enter(&self, username: &str, address: &str) -> AttemptTurn {
        let key = (username.to_owned(), address.to_owned());
        let lane = self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        AttemptTurn { queue: self.clone(), key, guard: Some(lane.lock_owned().await) }
    }
}

impl Drop for AttemptTurn {
    fn drop(&mut self) {
        self.guard.take();
        let mut lanes = self.queue.0.lock().unwrap_or_else(|e| e.into_inner());
        if lanes.get(&self.key).is_some_and(|lane| Arc::strong_count(lane) == 1) {
            lanes.remove(&self.key);
        }
    }
}

fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_refresh_token() -> String {
    format!(
        "nvr_rt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::security::secret::random_bytes::<32>())
    )
}

/// Seconds of back-off after `failures` failed attempts: none for the first few, then doubling.
fn backoff_secs(failures: i32) -> i64 {
    if failures > FREE_FAILURES { (1i64 << (failures - FREE_FAILURES - 1).min(20)).min(MAX_BACKOFF_SECS) } else { 0 }
}

/// RESOURCE_EXHAUSTED (with the wait) while `record` blocks attempts; `what` names them.
pub(super) fn refuse_while_blocked(record: Option<&LoginFailureRow>, now: DateTime<Utc>, what: &str) -> Result<()> {
    if let Some(r) = record
        && r.blocked_until > now
    {
        let wait = (r.blocked_until - now).to_std().unwrap_or_default();
        return Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!("too many {what}; retry in {} s", wait.as_secs().max(1)),
        )
        .with_retry_after(wait)
        .with_reason(reason::RATE_LIMITED));
    }
    Ok(())
}

/// The throttling record after one more failure of (`username`, `scope`) at `now`, given the last
/// one: failures within the window add up and back off, doubling.
pub(super) fn next_failure(
    record: Option<LoginFailureRow>,
    username: String,
    scope: String,
    now: DateTime<Utc>,
) -> LoginFailureRow {
    let failures = match record {
        Some(r) if (now - r.last_failure_at).num_seconds() < FAILURE_WINDOW_SECS => r.failures + 1,
        _ => 1,
    };
    LoginFailureRow {
        username,
        client_address: scope,
        failures,
        last_failure_at: now,
        // No back-off yet: blocked until long ago (a queued attempt with an earlier clock reading
        // must not see a block that was never imposed).
        blocked_until: match backoff_secs(failures) {
            0 => DateTime::UNIX_EPOCH,
            secs => now + Duration::seconds(secs),
        },
    }
}

/// The answer to Bootstrap once a user exists.
pub fn already_bootstrapped() -> Error {
    Error::new(ErrorKind::FailedPrecondition, "the server is already set up").with_reason(reason::ALREADY_BOOTSTRAPPED)
}

fn wrong_credentials() -> Error {
    Error::new(ErrorKind::Unauthenticated, "wrong username or password").with_reason(reason::INVALID_CREDENTIALS)
}

/// The actor of entries about `user` acting (in `session`, if any).
pub(super) fn user_actor(user: &UserRow, session: Option<Uuid>) -> Actor {
    Actor {
        kind: ActorType::User,
        user_id: user.id.to_string(),
        username: user.username.clone(),
        api_key_id: String::new(),
        session_id: session.map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// Work run at the start of a session's transaction.
type Prelude = Box<dyn FnOnce(&mut diesel::PgConnection) -> Result<()> + Send>;

impl AuthApp {
    /// What the sign-in page offers: whether the first administrator is still to be created, and the
    /// relying party of passkeys when they are configured.
    pub async fn sign_in_options(&self) -> Result<SignInOptions> {
        // A site once set up stays so (the last administrator cannot be deleted): from then on the
        // answer costs no database read, whoever asks.
        let setup_required = if self.set_up.load(std::sync::atomic::Ordering::Relaxed) {
            false
        } else {
            let none = self.store.run(|c| Ok(UserRow::count(c)? == 0)).await?;
            if !none {
                self.set_up.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            none
        };
        let passkeys_rp_id = self.mfa.passkeys.as_ref().map(|p| p.rp_id().to_owned());
        Ok(SignInOptions { setup_required, passkeys_rp_id })
    }

    /// Creates the first administrator with the setup token. Works once, even when calls race.
    pub async fn bootstrap(
        &self,
        setup_token: &str,
        username: &str,
        password: &str,
        display_name: &str,
        call: &Call,
    ) -> Result<IssuedTokens> {
        if setup_token.is_empty() {
            return Err(Error::invalid("setup_token", "setup_token is required"));
        }
        let username = normalise_username("username", username)?;
        check_policy("password", &username, password)?;
        validate_display_name("display_name", display_name)?;
        self.setup.check(setup_token)?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        let now = self.clock.now();
        let user = UserRow {
            id: Uuid::new_v4(),
            username,
            display_name: display_name.to_owned(),
            password_hash: hash,
            role: Role::Admin,
            disabled: false,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let row = user.clone();
        let mut record = call.record("user", &user.id.to_string()).detail("role", "admin");
        record.actor = user_actor(&user, None);
        // The administrator, the first session and the entry commit together.
        let create: Prelude = Box::new(move |c| {
            UserRow::lock_table(c)?;
            if UserRow::count(c)? > 0 {
                return Err(already_bootstrapped());
            }
            row.insert(c)
        });
        let username = user.username.clone();
        let tokens = self.open_session(user, call, record, Some(create), SignedIn::password()).await?;
        self.setup.consume();
        tracing::info!(user = %username, "first administrator created");
        Ok(tokens)
    }

    /// Checks a password and opens a session — or, for a user with a second factor, answers an MFA
    /// challenge. Attempts are throttled per user and client address.
    pub async fn login(&self, username: &str, password: &str, call: &Call) -> Result<LoginOutcome> {
        let client = &call.client;
        if username.is_empty() {
            return Err(Error::invalid("username", "username is required"));
        }
        if password.is_empty() {
            return Err(Error::invalid("password", "password is required"));
        }
        let username = username.trim().to_lowercase();
        let entry = |code: &str, reason: &str| {
            let mut r = call.record("user", "").ended(code, reason);
            r.actor = Actor::anonymous(&username.chars().take(64).collect::<String>());
            r
        };
        let denied = |reason: &str| entry("UNAUTHENTICATED", reason);
        if username.chars().count() > 64 {
            // No such user can exist, and the limit is public: answer like any wrong credential at
            // once, without hashing (nothing to hide by timing) and without keeping the name — the
            // layer around the services counts it with the other anonymous refusals.
            return Err(wrong_credentials());
        }
        let address = client.throttle_key();
        let name = username.clone();
        let user = self.store.run(move |c| UserRow::by_username(c, &name)).await?;
        // An unknown user costs one argon2 verification too, so timing does not reveal who exists.
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        // A throttled attempt is a refusal like any other of an anonymous caller: the layer around
        // the services records it (counted per address and minute, not one entry each).
        let ok = self.check_password_throttled(&username, &address, password, phc).await?;
        match user {
            Some(u) if ok && !u.disabled => {
                if let Some(challenge) = self.login_challenge(&u, call).await? {
                    return Ok(LoginOutcome::MfaRequired(challenge));
                }
                let mut record = call.record("user", &u.id.to_string());
                record.actor = user_actor(&u, None);
                let tokens = self.open_session(u, call, record, None, SignedIn::password()).await?;
                Ok(LoginOutcome::SignedIn(tokens))
            }
            known => {
                let who = if known.is_some() { username.as_str() } else { "(unknown user)" };
                tracing::warn!(user = who, client = %address, "failed login");
                let mut record = denied("wrong username or password");
                if let Some(u) = known {
                    record.target_id = u.id.to_string();
                }
                self.record_alone(call, record).await?;
                Err(wrong_credentials())
            }
        }
    }

    /// Verifies `password` against `phc` (the decoy when `None`), throttled per username and client
    /// address: checks of one pair run one after another, each seeing the outcome of the last, and
    /// failures beyond the free few back off, doubling each time.
    async fn check_password_throttled(
        &self,
        username: &str,
        address: &str,
        password: &str,
        phc: Option<String>,
    ) -> Result<bool> {
        let _turn = self.attempts.enter(username, address).await;
        let (name, addr) = (username.to_owned(), address.to_owned());
        let record = self.store.run(move |c| LoginFailureRow::find(c, &name, &addr)).await?;
        refuse_while_blocked(record.as_ref(), self.clock.now(), "failed attempts")?;
        self.password_checks.reserve(username, address)?;
        let ok = match self.hasher.verify(password.to_owned(), phc).await {
            Ok(ok) => ok,
            Err(e) => {
                self.password_checks.release(username, address);
                return Err(e);
            }
        };
        let (name, addr) = (username.to_owned(), address.to_owned());
        if ok {
            self.password_checks.release(username, address);
            if record.is_some() {
                self.store.run(move |c| LoginFailureRow::clear(c, &name, &addr)).await?;
            }
            return Ok(true);
        }
        let row = next_failure(record, name, addr, self.clock.now());
        self.store.run(move |c| row.upsert(c)).await?;
        Ok(false)
    }

    /// Forgets throttling records and sessions that no longer matter.
    pub async fn housekeeping(&self) -> Result<()> {
        let now = self.clock.now();
        let keep = Duration::days(1);
        self.store
            .run(move |c| {
                LoginFailureRow::purge(c, now - Duration::seconds(FAILURE_WINDOW_SECS))?;
                SessionRow::purge_ended(c, now - keep)?;
                CeremonyRow::purge(c, now)?;
                Ok(())
            })
            .await
    }

    /// Writes one entry in a transaction of its own (an outcome the use case records itself).
    async fn record_alone(&self, call: &Call, record: AuditRecord) -> Result<()> {
        call.record_alone(&self.store, self.clock.now(), record).await
    }

    /// Opens a session for `user`, signed in as `signed_in` says; `prelude` (work the session
    /// depends on) runs first and `record` (the entry of the call) last, all in one transaction. The
    /// access token is signed before that transaction, so nothing is committed for a session that
    /// could not be handed out. A password-only session of a user whose role requires MFA is
    /// enrolment-only (such a session is only opened for users without a second factor).
    pub(super) async fn open_session(
        &self,
        user: UserRow,
        call: &Call,
        record: AuditRecord,
        prelude: Option<Prelude>,
        signed_in: SignedIn,
    ) -> Result<IssuedTokens> {
        let client = &call.client;
        let now = self.clock.now();
        let role = user.role;
        let enrol = !signed_in.stepped_up && self.mfa.policy.requires(role);
        let session = SessionRow {
            id: Uuid::new_v4(),
            user_id: Some(user.id),
            created_at: now,
            last_refresh_at: now,
            expires_at: now + self.session_ttl,
            revoked_at: None,
            revoked_reason: None,
            client_address: client.address_text(),
            user_agent: client.user_agent.chars().take(256).collect(),
            step_up_at: signed_in.stepped_up.then_some(now),
            auth_methods: signed_in.methods.iter().map(|m| m.as_str().to_owned()).collect(),
            credential_id: signed_in.credential,
            step_up_credential_id: signed_in.credential,
        };
        let refresh = new_refresh_token();
        let token_row = RefreshTokenRow {
            token_hash: refresh_hash(&refresh),
            session_id: session.id,
            created_at: now,
            used_at: None,
        };
        let (session_id, expires_at) = (session.id, session.expires_at);
        let (access_token, access_expires_at) = self.tokens.issue(user.id, session_id, role, &user.username, enrol)?;
        call.audited(&self.store, now, record, move |c, record| {
            if let Some(prelude) = prelude {
                prelude(c)?;
            }
            session.insert(c)?;
            token_row.insert(c)?;
            record.actor.session_id = session.id.to_string();
            record.note("session_id", session.id.to_string());
            Ok(())
        })
        .await?;
        Ok(IssuedTokens {
            access_token,
            access_expires_at,
            refresh_token: refresh,
            refresh_expires_at: expires_at,
            session_id,
            user,
            mfa_enrolment_required: enrol,
        })
    }

    /// Exchanges a refresh token for new tokens. A token already used (past a short retry grace)
    /// means it was stolen: the whole session is revoked.
    pub async fn refresh(&self, refresh_token: &str, call: &Call) -> Result<IssuedTokens> {
        if refresh_token.is_empty() {
            return Err(Error::invalid("refresh_token", "refresh_token is required"));
        }
        let hash = refresh_hash(refresh_token);
        let now = self.clock.now();
        let next = new_refresh_token();
        let next_row_hash = refresh_hash(&next);
        let base = call.record("session", "");
        let policy = self.mfa.policy.clone();
        let outcome = call
            .audited(&self.store, now, base, move |c, record| {
                let invalid = || Error::new(ErrorKind::Unauthenticated, "refresh token is invalid or expired");
                let revoked = || {
                    Error::new(ErrorKind::Unauthenticated, "the session has ended")
                        .with_reason(reason::CREDENTIAL_REVOKED)
                };
                // Lock the session first, then the token: every rotation of a session takes its locks
                // in this order, so concurrent refreshes of one session queue instead of deadlocking.
                let session_id = RefreshTokenRow::session_of(c, &hash)?.ok_or_else(invalid)?;
                let session = SessionRow::find_for_update(c, session_id)?.ok_or_else(invalid)?;
                let token = RefreshTokenRow::find_for_update(c, &hash)?.ok_or_else(invalid)?;
                if session.revoked_at.is_some() {
                    return Err(revoked());
                }
                if session.expires_at <= now {
                    return Err(invalid());
                }
                if let Some(used_at) = token.used_at
                    && (now - used_at).num_seconds() > REFRESH_REUSE_GRACE_SECS
                {
                    SessionRow::revoke(c, session.id, now, "refresh token reuse")?;
                    // The revocation commits, and the entry records the refusal it leads to.
                    *record = record.clone().ended("UNAUTHENTICATED", "refresh token reused; session revoked");
                    record.target_id = session.id.to_string();
                    if let Some(u) = session.user_id.map(|id| UserRow::find(c, id)).transpose()?.flatten() {
                        record.actor = user_actor(&u, Some(session.id));
                    }
                    return Ok(Err(session.id));
                }
                let user = UserRow::find(c, session.user_id.ok_or_else(revoked)?)?.ok_or_else(revoked)?;
                if user.disabled {
                    return Err(revoked());
                }
                // Enrolment-only, if the role requires a second factor, until the user has one and this
                // session has presented one (at login, enrolling it, or with StepUp): another
                // enrolment-only session does not become a full one because the user enrolled.
                let enrol = policy.requires(user.role)
                    && (session.step_up_at.is_none() || CredentialRow::count_of_user(c, user.id)? == 0);
                RefreshTokenRow::supersede_unused(c, session.id, now)?;
                RefreshTokenRow { token_hash: next_row_hash, session_id: session.id, created_at: now, used_at: None }
                    .insert(c)?;
                SessionRow::touch(c, session.id, now)?;
                record.actor = user_actor(&user, Some(session.id));
                record.target_id = session.id.to_string();
                Ok(Ok((session, user, enrol)))
            })
            .await?;
        match outcome {
            Ok((session, user, enrol)) => {
                let (access_token, access_expires_at) =
                    self.tokens.issue(user.id, session.id, user.role, &user.username, enrol)?;
                Ok(IssuedTokens {
                    access_token,
                    access_expires_at,
                    refresh_token: next,
                    refresh_expires_at: session.expires_at,
                    session_id: session.id,
                    user,
                    mfa_enrolment_required: enrol,
                })
            }
            Err(revoked) => {
                self.revocations.insert(&[revoked]);
                tracing::warn!(session = %revoked, "refresh token reused: session revoked");
                Err(Error::new(
                    ErrorKind::Unauthenticated,
                    "refresh token was already used; the session has been revoked",
                )
                .with_reason(reason::CREDENTIAL_REVOKED))
            }
        }
    }

    /// Ends the caller's session.
    pub async fn logout(&self, call: &Call) -> Result<()> {
        let session = call.principal()?.session_id;
        self.revoke_audited(call, session, "logout").await
    }

    /// Revokes `session`, recording the call's entry in the same transaction.
    async fn revoke_audited(&self, call: &Call, session: Uuid, reason: &'static str) -> Result<()> {
        let now = self.clock.now();
        let record = call.record("session", &session.to_string());
        call.audited(&self.store, now, record, move |c, _| {
            SessionRow::revoke(c, session, now, reason)?;
            Ok(())
        })
        .await?;
        self.revocations.insert(&[session]);
        Ok(())
    }

    /// The caller's user, session and factors as WhoAmI shows them: remembered for up to a second
    /// (`store::recent`), so that asking again and again costs no trip to the database.
    pub async fn account(&self, who: &Principal) -> Result<Arc<Account>> {
        who.require_user()?;
        let recent = self.store.recent();
        if let Some(account) = recent.account(who.session_id).filter(|a| a.0.id == who.user_id) {
            return Ok(account);
        }
        let stamp = recent.stamp();
        let account = Arc::new(self.who_am_i(who).await?);
        recent.remember_account(who.session_id, account.clone(), stamp);
        Ok(account)
    }

    /// The caller's user and session, read now.
    pub async fn who_am_i(&self, who: &Principal) -> Result<(UserRow, SessionRow, FactorSummary)> {
        who.require_user()?;
        let (user_id, session_id) = (who.user_id, who.session_id);
        // One trip to the database for all of it.
        self.store
            .run(move |c| {
                let gone = |what: &str| {
                    Error::new(ErrorKind::Unauthenticated, format!("{what} no longer exists"))
                        .with_reason(reason::CREDENTIAL_REVOKED)
                };
                let user = UserRow::find(c, user_id)?.ok_or_else(|| gone("user"))?;
                let session = SessionRow::find(c, session_id)?.ok_or_else(|| gone("session"))?;
                let factors = FactorSummary::of_users(c, &[user_id])?.remove(&user_id).unwrap_or_default();
                Ok((user, session, factors))
            })
            .await
    }

    /// The calling API key and the user who created it (gone once deleted).
    pub async fn who_am_i_key(&self, who: &Principal) -> Result<(Option<(UserRow, FactorSummary)>, ApiKeyRow)> {
        let key = who.api_key.as_ref().map(|k| k.id).ok_or_else(|| Error::internal("not an API key"))?;
        let user_id = who.user_id;
        self.store
            .run(move |c| {
                let row = ApiKeyRow::find(c, key)?.ok_or_else(|| {
                    Error::new(ErrorKind::Unauthenticated, "the API key no longer exists")
                        .with_reason(reason::CREDENTIAL_REVOKED)
                })?;
                let user = match UserRow::find(c, user_id)? {
                    Some(u) => {
                        let factors = FactorSummary::of_users(c, &[user_id])?.remove(&user_id).unwrap_or_default();
                        Some((u, factors))
                    }
                    None => None,
                };
                Ok((user, row))
            })
            .await
    }

    /// Changes the caller's password after checking the current one; other sessions are revoked
    /// unless `keep_other_sessions`.
    pub async fn change_password(
        &self,
        call: &Call,
        current: &str,
        new: &str,
        keep_other_sessions: bool,
    ) -> Result<()> {
        if current.is_empty() {
            return Err(Error::invalid("current_password", "current_password is required"));
        }
        let who = call.principal()?;
        let (user, _, _) = self.who_am_i(who).await?;
        check_policy("new_password", &user.username, new)?;
        // Guessing the current password with a stolen access token is throttled like a login.
        let phc = Some(user.password_hash.clone());
        if !self.check_password_throttled(&user.username, &call.client.throttle_key(), current, phc).await? {
            let record =
                call.record("user", &user.id.to_string()).ended("UNAUTHENTICATED", "current_password is wrong");
            self.record_alone(call, record).await?;
            return Err(Error::new(ErrorKind::Unauthenticated, "current_password is wrong")
                .with_reason(reason::INVALID_CREDENTIALS));
        }
        let hash = self.hasher.hash(new.to_owned()).await?;
        let (user_id, keep, now) = (user.id, who.session_id, self.clock.now());
        let record = call
            .record("user", &user.id.to_string())
            .detail("other_sessions", if keep_other_sessions { "kept" } else { "revoked" });
        let revoked = call
            .audited(&self.store, now, record, move |c, _| {
                UserRow::update(c, user_id, &UserChanges { password_hash: Some(hash), ..Default::default() }, now)?;
                let revoked = if keep_other_sessions {
                    Vec::new()
                } else {
                    SessionRow::revoke_all_of_user(c, user_id, Some(keep), now, "password changed")?
                };
                Ok(revoked)
            })
            .await?;
        self.revocations.insert(&revoked);
        Ok(())
    }

    /// Live sessions of `user_id` (empty: the caller). Other users' sessions need `session.manage`.
    pub async fn list_sessions(
        &self,
        who: &Principal,
        user_id: &str,
        page: PageRequest,
    ) -> Result<(Vec<SessionRow>, String)> {
        let target = if user_id.is_empty() { who.user_id } else { super::parse_id("user_id", user_id)? };
        if target != who.user_id {
            who.require(Permission::SessionManage)?;
        }
        let (now, after, limit) = (self.clock.now(), page.after_time_and_id()?, page.size);
        let rows = self.store.run(move |c| SessionRow::live_of_user(c, target, now, after, limit)).await?;
        let last = rows.last().map(|r| super::time_and_id(r.created_at, r.id));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// Revokes a session: the caller's own, or anyone's with `session.manage`.
    pub async fn revoke_session(&self, call: &Call, session_id: &str) -> Result<()> {
        let who = call.principal()?;
        let id = super::parse_id("session_id", session_id)?;
        let session = self
            .store
            .run(move |c| SessionRow::find(c, id))
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("session {id} not found")))?;
        if session.user_id != Some(who.user_id) {
            // Do not reveal other users' sessions to someone who may not manage them.
            who.require(Permission::SessionManage)
                .map_err(|_| Error::new(ErrorKind::NotFound, format!("session {id} not found")))?;
        }
        self.revoke_audited(call, id, "revoked").await
    }
}
