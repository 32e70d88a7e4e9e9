//! Second factors: MFA at login (ticket + TOTP, recovery code or passkey), passwordless passkey
//! login, step-up on a live session, TOTP and passkey enrolment, recovery codes, and the
//! credentials themselves. Wrong factors count toward a per-user lockout; every ceremony is
//! single-use, short-lived and kept in the database.
use super::auth::{AuthApp, IssuedTokens, SignedIn, next_failure, refuse_while_blocked, user_actor};
use super::{Call, Principal};
use crate::domain::mfa::{
    self, AuthMethod, CEREMONY_MAX_FAILURES, CEREMONY_SECS, MfaPolicy, RECOVERY_CODES, SECOND_FACTOR_SCOPE,
};
use crate::domain::mfa::{CeremonyKind, CredentialKind};
use crate::error::{Error, ErrorKind, Result, reason};
use crate::security::seal::{MasterKey, Sealed};
use crate::security::totp::TotpSeed;
use crate::security::webauthn::{PasskeyCeremonies, StoredPasskey};
use crate::store::ceremonies::CeremonyRow;
use crate::store::credentials::{CredentialRow, RecoveryCodeRow};
use crate::store::sessions::SessionRow;
use crate::store::throttle::LoginFailureRow;
use crate::store::users::UserRow;
use chrono::{DateTime, Duration, Utc};
use diesel::PgConnection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What strong authentication is configured with.
#[derive(Clone, Debug)]
pub struct MfaSettings {
    pub policy: MfaPolicy,
    /// `None` when no relying party is configured (sites reached by IP address use TOTP).
    pub passkeys: Option<PasskeyCeremonies>,
    /// How long a step-up lets STEP_UP_YES RPCs through.
    pub step_up_window: Duration,
    /// Seals TOTP seeds.
    pub master: MasterKey,
    /// The issuer authenticator apps show next to the code.
    pub issuer: String,
}

/// A second factor as presented.
#[derive(Debug, Clone)]
pub enum Factor {
    Totp(String),
    Passkey(String),
    RecoveryCode(String),
}

/// Kinds of second factor a user may present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    Totp,
    Passkey,
    RecoveryCode,
}

/// A challenge for a second factor: the ticket to send back, the methods that complete it, and
/// WebAuthn request options when a passkey can.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    pub ticket: String,
    pub methods: Vec<FactorKind>,
    pub passkey_options: String,
    pub expires_at: DateTime<Utc>,
}

/// The answer to a password login.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    SignedIn(IssuedTokens),
    MfaRequired(MfaChallenge),
}

/// A started TOTP enrolment (the secret is shown once).
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    pub token: String,
    pub uri: String,
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

/// A started passkey registration.
#[derive(Debug, Clone)]
pub struct PasskeyRegistration {
    pub token: String,
    pub options: String,
    pub expires_at: DateTime<Utc>,
}

/// A factor that verified: how, and with which stored credential.
#[derive(Debug, Clone, Copy)]
struct Verified {
    method: AuthMethod,
    credential: Option<Uuid>,
}

const LOGIN_MFA: CeremonyKind = CeremonyKind::LoginMfa;
const PASSKEY_LOGIN: CeremonyKind = CeremonyKind::PasskeyLogin;
const STEP_UP: CeremonyKind = CeremonyKind::StepUp;
pub(super) const PASSKEY_REGISTRATION: CeremonyKind = CeremonyKind::PasskeyRegistration;
pub(super) const TOTP_ENROLLMENT: CeremonyKind = CeremonyKind::TotpEnrollment;
pub(super) const TOTP: CredentialKind = CredentialKind::Totp;
pub(super) const PASSKEY: CredentialKind = CredentialKind::Passkey;

/// A new single-use ceremony token and its hash.
pub(super) fn new_ticket() -> (String, Vec<u8>) {
    use base64::Engine;
    let token = format!(
        "nvr_mfa_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::security::secret::random_bytes::<32>())
    );
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    (token, hash)
}

pub(super) fn ticket_hash(field: &'static str, ticket: &str) -> Result<Vec<u8>> {
    if ticket.is_empty() {
        return Err(Error::invalid(field, format!("{field} is required")));
    }
    Ok(Sha256::digest(ticket.as_bytes()).to_vec())
}

pub(super) fn totp_owner(credential: Uuid) -> String {
    format!("credentials/{credential}/totp")
}

pub(super) fn pending_totp_owner(ceremony: Uuid) -> String {
    format!("auth_ceremonies/{ceremony}/totp")
}

fn wrong_factor(message: &str) -> Error {
    Error::new(ErrorKind::Unauthenticated, message.to_owned()).with_reason(reason::INVALID_CREDENTIALS)
}

fn bad_ticket(what: &str) -> Error {
    wrong_factor(&format!("the {what} is unknown or already used; start again"))
}

/// The ceremony `row` if it is still open; otherwise the error of `unknown` (unknown or used) or,
/// for one that expired, the same kind of error saying so.
pub(super) fn open_ceremony(
    row: Option<CeremonyRow>,
    now: DateTime<Utc>,
    unknown: impl Fn() -> Error,
) -> Result<CeremonyRow> {
    let row = row.ok_or_else(&unknown)?;
    if row.expires_at <= now {
        let e = unknown();
        let expired = format!("it expired (ceremonies last {} s); start again", CEREMONY_SECS);
        return Err(match e.reason() {
            Some(r) => Error::new(e.kind(), expired).with_reason(r),
            None => Error::new(e.kind(), expired),
        });
    }
    Ok(row)
}

/// The most live passwordless logins at once (each holds a row until it expires), in all and from
/// one client address.
const MAX_PASSKEY_LOGINS: i64 = 10_000;
const MAX_PASSKEY_LOGINS_PER_CLIENT: i64 = 20;

fn no_passkeys_configured() -> Error {
    Error::new(
        ErrorKind::FailedPrecondition,
        "passkeys are not configured on this server (OPENNVR_WEBAUTHN_RP_ID: WebAuthn needs a domain name); use TOTP",
    )
}

/// Ten fresh recovery codes and their hashes.
pub(super) fn new_recovery_codes() -> (Vec<String>, Vec<Vec<u8>>) {
    let codes: Vec<String> =
        (0..RECOVERY_CODES).map(|_| mfa::recovery_code(&crate::security::secret::random_bytes::<10>())).collect();
    let hashes = codes
        .iter()
        .filter_map(|c| mfa::normalise_recovery_code(c))
        .map(|c| Sha256::digest(c.as_bytes()).to_vec())
        .collect();
    (codes, hashes)
}

fn stored_passkeys(rows: &[CredentialRow]) -> Vec<StoredPasskey> {
    rows.iter().filter_map(|r| Some(StoredPasskey { credential_id: r.id, passkey: r.passkey.clone()? })).collect()
}

/// The second factors of a user as a challenge offers them.
struct Factors {
    /// The methods that can complete a challenge here.
    methods: Vec<FactorKind>,
    passkeys: Vec<CredentialRow>,
    /// Whether the user has any second factor at all (usable here or not).
    any: bool,
}

/// The methods `user` can complete a challenge with (locked rows are not needed: a hint only). A
/// passkey counts as a factor even where passkeys are off: it is then simply not offered.
fn methods_of(c: &mut PgConnection, user: Uuid, passkeys_on: bool) -> Result<Factors> {
    let creds = CredentialRow::of_user(c, user, None, false)?;
    let any = !creds.is_empty();
    let mut methods = Vec::new();
    if creds.iter().any(|r| r.kind == TOTP) {
        methods.push(FactorKind::Totp);
    }
    let passkeys: Vec<CredentialRow> = creds.into_iter().filter(|r| r.kind == PASSKEY).collect();
    if passkeys_on && !passkeys.is_empty() {
        methods.push(FactorKind::Passkey);
    }
    if any && RecoveryCodeRow::unused(c, user)? > 0 {
        methods.push(FactorKind::RecoveryCode);
    }
    Ok(Factors { methods, passkeys, any })
}

impl MfaSettings {
    pub(super) fn passkeys(&self) -> Result<&PasskeyCeremonies> {
        self.passkeys.as_ref().ok_or_else(no_passkeys_configured)
    }

    /// Checks `factor` for `user` (inside the caller's transaction). `Ok(Err(_))` is a wrong factor,
    /// to be counted and committed; `Err(_)` a request that cannot be judged. A TOTP code and a
    /// recovery code work once; a passkey's counter must move forward.
    fn verify(
        &self,
        c: &mut PgConnection,
        user: Uuid,
        factor: &Factor,
        passkey_state: Option<serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Verified, Error>> {
        match factor {
            Factor::Totp(code) => {
                let code = code.trim();
                if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::invalid("factor.totp_code", "factor.totp_code must be 6 digits"));
                }
                let Some(cred) = CredentialRow::of_user(c, user, Some(TOTP), true)?.into_iter().next() else {
                    return Ok(Err(wrong_factor("wrong second factor: no TOTP is enrolled")));
                };
                let sealed = Sealed {
                    kek_id: cred.totp_kek_id.clone().unwrap_or_default(),
                    blob: cred.totp_secret_sealed.clone().unwrap_or_default(),
                };
                let seed = self.master.open(&totp_owner(cred.id), &sealed)?;
                let Some(step) = TotpSeed::new(&seed, &self.issuer, "")?.verify(code, now) else {
                    return Ok(Err(wrong_factor("wrong second factor: the TOTP code does not match")));
                };
                if !CredentialRow::use_totp_step(c, cred.id, step, now)? {
                    return Ok(Err(wrong_factor(
                        "wrong second factor: this TOTP code was already used; wait for the next one",
                    )));
                }
                Ok(Ok(Verified { method: AuthMethod::Totp, credential: Some(cred.id) }))
            }
            Factor::RecoveryCode(code) => {
                let Some(code) = mfa::normalise_recovery_code(code) else {
                    return Err(Error::invalid(
                        "factor.recovery_code",
                        "factor.recovery_code must be 16 letters and digits (as printed, dashes optional)",
                    ));
                };
                let hash = Sha256::digest(code.as_bytes()).to_vec();
                if !RecoveryCodeRow::spend(c, user, &hash, now)? {
                    return Ok(Err(wrong_factor("wrong second factor: unknown or already used recovery code")));
                }
                Ok(Ok(Verified { method: AuthMethod::RecoveryCode, credential: None }))
            }
            Factor::Passkey(json) => {
                let ceremonies = self.passkeys()?;
                let state = passkey_state.ok_or_else(|| {
                    Error::new(
                        ErrorKind::FailedPrecondition,
                        "no passkey challenge is open on this ticket (each works once): ask for a new one",
                    )
                })?;
                let rows = CredentialRow::of_user(c, user, Some(PASSKEY), true)?;
                match ceremonies.finish_authentication(
                    "factor.passkey_assertion_json",
                    json,
                    state,
                    &stored_passkeys(&rows),
                ) {
                    Ok(v) => {
                        CredentialRow::use_passkey(c, v.credential_id, v.passkey, now)?;
                        Ok(Ok(Verified { method: AuthMethod::Passkey, credential: Some(v.credential_id) }))
                    }
                    Err(e) if e.kind() == ErrorKind::Unauthenticated => Ok(Err(e)),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// Opens a challenge of `kind` for `user` (of `session`, for a step-up): a ticket, the methods the
/// user has, and a passkey challenge if they have passkeys. `None` when the user has no factor.
fn open_challenge(
    c: &mut PgConnection,
    settings: &MfaSettings,
    kind: CeremonyKind,
    user: Uuid,
    session: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<MfaChallenge>> {
    let Factors { methods, passkeys, any } = methods_of(c, user, settings.passkeys.is_some())?;
    if !any {
        return Ok(None);
    }
    if methods.is_empty() {
        // Fail closed: a passkey on a server whose passkeys are off does not vanish as a factor.
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            "this account's second factor is a passkey, and passkeys are not configured on this server (OPENNVR_WEBAUTHN_RP_ID); an administrator must restore them or remove the passkey",
        ));
    }
    let (ticket, hash) = new_ticket();
    let (options, state) = match (&settings.passkeys, passkeys.is_empty()) {
        (Some(p), false) => {
            let (o, s) = p.start_authentication(&stored_passkeys(&passkeys))?;
            (o, Some(s))
        }
        _ => (String::new(), None),
    };
    let expires_at = now + Duration::seconds(CEREMONY_SECS);
    CeremonyRow::open(kind, Some(user), session, state, hash, now, expires_at).insert(c)?;
    Ok(Some(MfaChallenge { ticket, methods, passkey_options: options, expires_at }))
}

/// Takes `username`'s turn at second factors: their throttling record stays locked until the
/// transaction ends, so parallel attempts are judged one after another. Fails with
/// RESOURCE_EXHAUSTED while the user is locked out.
fn check_lockout(c: &mut PgConnection, username: &str, now: DateTime<Utc>) -> Result<LoginFailureRow> {
    let record = LoginFailureRow::lock(c, username, SECOND_FACTOR_SCOPE, now)?;
    refuse_while_blocked(Some(&record), now, "wrong second factors")?;
    Ok(record)
}

/// Counts a wrong second factor of the user whose turn `record` is (every address counts: whoever
/// presents one knows the password or holds a session already).
fn count_wrong_factor(c: &mut PgConnection, record: LoginFailureRow, now: DateTime<Utc>) -> Result<()> {
    let (user, scope) = (record.username.clone(), record.client_address.clone());
    next_failure(Some(record), user, scope, now).upsert(c)
}

impl AuthApp {
    /// After a correct password: an MFA challenge when `user` has a second factor, else `None`.
    pub(super) async fn login_challenge(&self, user: &UserRow, call: &Call) -> Result<Option<MfaChallenge>> {
        let (settings, user_id, now) = (self.mfa.clone(), user.id, self.clock.now());
        let mut record = call.record("user", &user.id.to_string()).detail("second_factor", "required");
        record.actor = user_actor(user, None);
        // No second factor, no challenge: the call goes on to open a session, which records it.
        call.audited_if(&self.store, now, move |c| {
            let challenge = open_challenge(c, &settings, LOGIN_MFA, user_id, None, now)?;
            let entry = challenge.is_some().then_some(record);
            Ok((challenge, entry))
        })
        .await
    }

    /// Renews the passkey challenge of a login ticket.
    pub async fn start_mfa(&self, ticket: &str) -> Result<MfaChallenge> {
        let hash = ticket_hash("ticket", ticket)?;
        let (settings, now) = (self.mfa.clone(), self.clock.now());
        settings.passkeys()?;
        self.store
            .transaction(move |c| {
                let row = CeremonyRow::find_for_update(c, &hash, LOGIN_MFA)?;
                let row = open_ceremony(row, now, || bad_ticket("ticket"))?;
                let user = row.user_id.ok_or_else(|| bad_ticket("ticket"))?;
                let ceremonies = settings.passkeys()?;
                let Factors { methods, passkeys, .. } = methods_of(c, user, true)?;
                if passkeys.is_empty() {
                    return Err(Error::new(ErrorKind::FailedPrecondition, "the user has no passkey"));
                }
                let (options, state) = ceremonies.start_authentication(&stored_passkeys(&passkeys))?;
                CeremonyRow::set_passkey_state(c, row.id, Some(state))?;
                Ok(MfaChallenge {
                    ticket: String::new(),
                    methods,
                    passkey_options: options,
                    expires_at: row.expires_at,
                })
            })
            .await
            .map(|mut challenge| {
                challenge.ticket = ticket.to_owned();
                challenge
            })
    }

    /// Redeems a login ticket with a second factor: a session, stepped up from the start.
    pub async fn finish_mfa(&self, ticket: &str, factor: Option<Factor>, call: &Call) -> Result<IssuedTokens> {
        let hash = ticket_hash("ticket", ticket)?;
        let factor = factor.ok_or_else(|| Error::invalid("factor", "factor is required"))?;
        let (settings, now) = (self.mfa.clone(), self.clock.now());
        let noted = call.clone();
        let verified = self
            .store
            .transaction(move |c| {
                let row = CeremonyRow::find_for_update(c, &hash, LOGIN_MFA)?;
                let row = open_ceremony(row, now, || bad_ticket("ticket"))?;
                let user_id = row.user_id.ok_or_else(|| bad_ticket("ticket"))?;
                let user = UserRow::find(c, user_id)?.ok_or_else(|| bad_ticket("ticket"))?;
                noted.about("user", &user.id.to_string(), "");
                let turn = check_lockout(c, &user.username, now)?;
                if matches!(factor, Factor::Passkey(_)) {
                    // A passkey challenge works once, whatever the outcome.
                    CeremonyRow::set_passkey_state(c, row.id, None)?;
                }
                match settings.verify(c, user.id, &factor, row.passkey_state.clone(), now)? {
                    Ok(v) => {
                        CeremonyRow::delete(c, row.id)?;
                        LoginFailureRow::clear(c, &user.username, SECOND_FACTOR_SCOPE)?;
                        Ok(Ok((user, v)))
                    }
                    Err(wrong) => {
                        count_wrong_factor(c, turn, now)?;
                        if CeremonyRow::count_failure(c, row.id)? >= CEREMONY_MAX_FAILURES {
                            CeremonyRow::delete(c, row.id)?;
                        }
                        Ok(Err(wrong))
                    }
                }
            })
            .await??;
        let (user, v) = verified;
        if user.disabled {
            return Err(wrong_factor("wrong username or password"));
        }
        let mut record = call.record("user", &user.id.to_string()).detail("method", v.method.as_str());
        record.actor = user_actor(&user, None);
        let signed_in =
            SignedIn { methods: vec![AuthMethod::Password, v.method], credential: v.credential, stepped_up: true };
        let tokens = self.open_session(user, call, record, None, signed_in).await?;
        Ok(tokens)
    }

    /// Starts a passwordless login with a discoverable passkey.
    pub async fn start_passkey_login(&self, call: &Call) -> Result<MfaChallenge> {
        let ceremonies = self.mfa.passkeys()?.clone();
        let now = self.clock.now();
        let (options, state) = ceremonies.start_discoverable()?;
        let (ticket, hash) = new_ticket();
        let expires_at = now + Duration::seconds(CEREMONY_SECS);
        let mut row = CeremonyRow::open(PASSKEY_LOGIN, None, None, Some(state), hash, now, expires_at);
        row.client_address = call.client.throttle_key();
        // Anyone may start one: their number is bounded, in all and per client, so nobody can fill
        // the database or crowd out the others.
        self.store
            .transaction(move |c| {
                let (all, theirs) = CeremonyRow::prune_and_count(c, PASSKEY_LOGIN, &row.client_address, now)?;
                if all >= MAX_PASSKEY_LOGINS || theirs >= MAX_PASSKEY_LOGINS_PER_CLIENT {
                    return Err(Error::new(
                        ErrorKind::ResourceExhausted,
                        "too many passwordless logins in progress; retry in a minute",
                    )
                    .with_retry_after(std::time::Duration::from_secs(60))
                    .with_reason(reason::RATE_LIMITED));
                }
                row.insert(c)
            })
            .await?;
        Ok(MfaChallenge { ticket, methods: vec![FactorKind::Passkey], passkey_options: options, expires_at })
    }

    /// Finishes a passwordless login: the passkey names its user (the user handle) and proves both
    /// factors at once.
    pub async fn finish_passkey_login(&self, ticket: &str, assertion: &str, call: &Call) -> Result<IssuedTokens> {
        const FIELD: &str = "passkey_assertion_json";
        let hash = ticket_hash("ticket", ticket)?;
        let ceremonies = self.mfa.passkeys()?.clone();
        let (user_handle, cred_id) = ceremonies.identify(FIELD, assertion)?;
        let (assertion, now, noted) = (assertion.to_owned(), self.clock.now(), call.clone());
        let verified = self
            .store
            .transaction(move |c| {
                let row = CeremonyRow::find_for_update(c, &hash, PASSKEY_LOGIN)?;
                let row = open_ceremony(row, now, || bad_ticket("ticket"))?;
                // Single use, whatever the outcome (the refusals below commit that).
                CeremonyRow::delete(c, row.id)?;
                let state = row.passkey_state.ok_or_else(|| bad_ticket("ticket"))?;
                let unknown = || wrong_factor("passkey refused: the credential is not registered");
                let Some(cred) = CredentialRow::passkey_for_update(c, &cred_id)? else { return Ok(Err(unknown())) };
                let (Some(passkey), true) = (cred.passkey.clone(), cred.user_id == user_handle) else {
                    return Ok(Err(unknown()));
                };
                let Some(user) = UserRow::find(c, cred.user_id)? else { return Ok(Err(unknown())) };
                noted.about("user", &user.id.to_string(), "");
                // A passkey cannot be guessed: failures here are not counted toward the user's
                // lockout (which anyone knowing a credential id could otherwise trigger).
                let stored = StoredPasskey { credential_id: cred.id, passkey };
                match ceremonies.finish_discoverable(FIELD, &assertion, state, &stored) {
                    Ok(v) => {
                        CredentialRow::use_passkey(c, v.credential_id, v.passkey, now)?;
                        Ok(Ok((user, cred.id)))
                    }
                    Err(e) if e.kind() == ErrorKind::Unauthenticated => Ok(Err(e)),
                    Err(e) => Err(e),
                }
            })
            .await??;
        let (user, credential) = verified;
        if user.disabled {
            return Err(wrong_factor("passkey refused: the account is disabled"));
        }
        let mut record = call.record("user", &user.id.to_string()).detail("method", AuthMethod::Passkey.as_str());
        record.actor = user_actor(&user, None);
        let signed_in = SignedIn { methods: vec![AuthMethod::Passkey], credential: Some(credential), stepped_up: true };
        let tokens = self.open_session(user, call, record, None, signed_in).await?;
        Ok(tokens)
    }

    /// Starts a step-up of the caller's session: the methods it can use, with passkey options.
    pub async fn start_step_up(&self, call: &Call) -> Result<MfaChallenge> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let (settings, now) = (self.mfa.clone(), self.clock.now());
        self.store
            .transaction(move |c| {
                open_challenge(c, &settings, STEP_UP, who.user_id, Some(who.session_id), now)?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::FailedPrecondition,
                        "you have no second factor: enrol one (StartTotpEnrollment or StartPasskeyRegistration)",
                    )
                })
            })
            .await
    }

    /// Presents a second factor on the caller's session: its step-up time becomes now. Returns the
    /// session and until when step-up RPCs pass.
    pub async fn step_up(
        &self,
        call: &Call,
        ticket: &str,
        factor: Option<Factor>,
    ) -> Result<(SessionRow, DateTime<Utc>)> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let factor = factor.ok_or_else(|| Error::invalid("factor", "factor is required"))?;
        let hash = if ticket.is_empty() { None } else { Some(ticket_hash("ticket", ticket)?) };
        if hash.is_none() && matches!(factor, Factor::Passkey(_)) {
            return Err(Error::invalid("ticket", "a passkey step-up needs the ticket of StartStepUp"));
        }
        let (settings, now) = (self.mfa.clone(), self.clock.now());
        let record = call.record("session", &who.session_id.to_string());
        let window = self.mfa.step_up_window;
        let outcome = call
            .audited_outcome(&self.store, now, record, move |c, record| {
                let mut state = None;
                if let Some(hash) = &hash {
                    let row = CeremonyRow::find_for_update(c, hash, STEP_UP)?
                        .filter(|r| r.session_id == Some(who.session_id));
                    let row = open_ceremony(row, now, || bad_ticket("ticket"))?;
                    state = row.passkey_state.clone();
                    CeremonyRow::delete(c, row.id)?;
                }
                if CredentialRow::count_of_user(c, who.user_id)? == 0 {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        "you have no second factor: enrol one (StartTotpEnrollment or StartPasskeyRegistration)",
                    ));
                }
                let turn = check_lockout(c, &who.username, now)?;
                match settings.verify(c, who.user_id, &factor, state, now)? {
                    Ok(v) => {
                        LoginFailureRow::clear(c, &who.username, SECOND_FACTOR_SCOPE)?;
                        SessionRow::step_up(c, who.session_id, now, v.credential)?;
                        record.note("method", v.method.as_str());
                        let session = SessionRow::find(c, who.session_id)?
                            .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "the session has ended"))?;
                        Ok(Ok(session))
                    }
                    Err(wrong) => {
                        count_wrong_factor(c, turn, now)?;
                        Ok(Err(wrong))
                    }
                }
            })
            .await?;
        Ok((outcome, now + window))
    }
}

/// After a factor is enrolled on the caller's session: the session is stepped up with it, a first
/// factor gets recovery codes, and the entry is written. Returns the codes (empty if not first).
pub(super) fn enrolled(
    c: &mut PgConnection,
    who: &Principal,
    cred: &CredentialRow,
    first: bool,
    now: DateTime<Utc>,
    record: &mut crate::domain::AuditRecord,
) -> Result<Vec<String>> {
    let codes = if first {
        let (codes, hashes) = new_recovery_codes();
        RecoveryCodeRow::replace_all(c, who.user_id, &hashes, now)?;
        codes
    } else {
        Vec::new()
    };
    SessionRow::step_up(c, who.session_id, now, Some(cred.id))?;
    record.note("recovery_codes", if first { "issued" } else { "kept" });
    Ok(codes)
}

/// Enforces step-up: a STEP_UP_YES RPC needs the calling session to have presented a second
/// factor within the window; an API key needs the RPC among its step-up methods (it cannot step up).
#[derive(Clone)]
pub struct StepUpGuard {
    pub store: crate::store::Store,
    pub clock: crate::clock::SharedClock,
    pub window: Duration,
}

impl StepUpGuard {
    /// Passes `p` for `method` ("Service.Method"), or says why not. With `once_enrolled`, a user
    /// without any second factor passes (they could not step up; they are enrolling one).
    pub async fn check(&self, p: &Principal, method: &str, once_enrolled: bool) -> Result<()> {
        if let Some(key) = &p.api_key {
            if key.step_up_methods.iter().any(|m| m == method) {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{method} needs a step-up, which API keys cannot do: create a key with it in step_up_methods"),
            ));
        }
        let (session, user, now) = (p.session_id, p.user_id, self.clock.now());
        let (stepped_up, factors) = self
            .store
            .run(move |c| Ok((SessionRow::step_up_time(c, session)?, CredentialRow::count_of_user(c, user)?)))
            .await?;
        if factors == 0 {
            if once_enrolled {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{method} needs a recent second factor and you have none: enrol one (TOTP or a passkey) first"),
            )
            .with_reason(reason::STEP_UP_REQUIRED));
        }
        match stepped_up {
            Some(at) if at + self.window > now && at <= now + Duration::seconds(5) => Ok(()),
            _ => Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{method} needs a second factor presented within the last {} s: call StartStepUp and StepUp, then retry",
                    self.window.num_seconds()
                ),
            )
            .with_reason(reason::STEP_UP_REQUIRED)),
        }
    }
}
