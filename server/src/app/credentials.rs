//! The second factors a user enrols and manages, as use cases of the identity app: TOTP enrolment,
//! passkey registration, recovery codes, and listing, renaming and deleting credentials (deleting
//! one ends the sessions it signed in or stepped up).
use super::auth::AuthApp;
use super::mfa::{
    PASSKEY, PASSKEY_REGISTRATION, PasskeyRegistration, TOTP, TOTP_ENROLLMENT, TotpEnrollment, enrolled,
    new_recovery_codes, new_ticket, open_ceremony, pending_totp_owner, ticket_hash, totp_owner,
};
use super::{Call, PageRequest, Principal, parse_id};
use crate::domain::mfa::CredentialKind;
use crate::domain::mfa::{self, CEREMONY_MAX_FAILURES, CEREMONY_SECS};
use crate::domain::{Permission, StoredName};
use crate::error::{Error, ErrorKind, Result};
use crate::security::seal::Sealed;
use crate::security::totp::TotpSeed;
use crate::store::ceremonies::CeremonyRow;
use crate::store::credentials::{CredentialRow, RecoveryCodeRow};
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;
use chrono::Duration;
use uuid::Uuid;

impl AuthApp {
    /// Starts a TOTP enrolment in a pending ceremony of the caller's session: with `resume` (the
    /// token of the caller's own enrolment still waiting for its first code, started in another
    /// session or before a crash) the same secret for the time it had left, else a fresh one.
    pub async fn start_totp_enrollment(&self, call: &Call, resume: &str) -> Result<TotpEnrollment> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let settings = self.mfa.clone();
        let now = self.clock.now();
        let (token, hash) = new_ticket();
        let resume_hash = (!resume.is_empty()).then(|| ticket_hash("resume_enrollment_token", resume)).transpose()?;
        let (user, session, account) = (who.user_id, who.session_id, who.username.clone());
        let (seed, expires_at) = self
            .store
            .transaction(move |c| {
                if !CredentialRow::of_user(c, user, Some(TOTP), false)?.is_empty() {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        "TOTP is already enrolled: delete that credential first to enrol another",
                    ));
                }
                // Only the holder of the earlier token resumes: the password alone never shows the
                // secret someone else is about to confirm.
                let pending = match &resume_hash {
                    Some(h) => CeremonyRow::find_for_update(c, h, TOTP_ENROLLMENT)?.filter(|r| {
                        r.user_id == Some(user) && r.expires_at > now && r.failures < CEREMONY_MAX_FAILURES
                    }),
                    None => None,
                };
                let resumed = pending.as_ref().and_then(|old| {
                    let sealed = Sealed { kek_id: old.kek_id.clone()?, blob: old.secret_sealed.clone()? };
                    let seed = settings.master.open(&pending_totp_owner(old.id), &sealed).ok()?;
                    Some((seed, old.failures, old.expires_at))
                });
                let (seed, failures, expires_at) = match resumed {
                    Some(r) => r,
                    None => (
                        TotpSeed::generate(&settings.issuer, &account)?.0,
                        0,
                        now + Duration::seconds(mfa::TOTP_ENROLLMENT_SECS),
                    ),
                };
                CeremonyRow::delete_of_user(c, user, TOTP_ENROLLMENT)?;
                let mut row =
                    CeremonyRow::open(TOTP_ENROLLMENT, Some(user), Some(session), None, hash, now, expires_at);
                let sealed = settings.master.seal(&pending_totp_owner(row.id), &seed)?;
                (row.secret_sealed, row.kek_id) = (Some(sealed.blob), Some(sealed.kek_id));
                // Wrong codes count across resumptions; the time left does not grow.
                row.failures = failures;
                row.insert(c)?;
                Ok((seed, expires_at))
            })
            .await?;
        let totp = TotpSeed::new(&seed, &self.mfa.issuer, &who.username)?;
        Ok(TotpEnrollment { token, uri: totp.uri()?, secret: totp.base32(), expires_at })
    }

    /// Activates a pending TOTP seed with a current code; the session counts as stepped up. Returns
    /// the credential and, for a first factor, ten recovery codes.
    pub async fn finish_totp_enrollment(
        &self,
        call: &Call,
        token: &str,
        code: &str,
        name: &str,
    ) -> Result<(CredentialRow, Vec<String>)> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let hash = ticket_hash("enrollment_token", token)?;
        if code.trim().is_empty() {
            return Err(Error::invalid("code", "code is required"));
        }
        let name = mfa::credential_name("name", name, "TOTP")?;
        let (settings, now, code) = (self.mfa.clone(), self.clock.now(), code.to_owned());
        let id = Uuid::new_v4();
        let mut record = call.record("credential", &id.to_string()).detail("type", TOTP.stored_name());
        record.details.insert("name".into(), name.clone());
        let outcome = call
            .audited_outcome(&self.store, now, record, move |c, record| {
                let expired = || {
                    Error::new(
                        ErrorKind::FailedPrecondition,
                        "the enrollment token is unknown, used or of another session: start again",
                    )
                };
                // One enrolment of a user at a time: a first factor gets recovery codes only once.
                UserRow::find_for_update(c, who.user_id)?;
                let row = CeremonyRow::find_for_update(c, &hash, TOTP_ENROLLMENT)?
                    .filter(|r| r.session_id == Some(who.session_id));
                let row = open_ceremony(row, now, expired)?;
                let sealed = Sealed {
                    kek_id: row.kek_id.clone().ok_or_else(expired)?,
                    blob: row.secret_sealed.clone().ok_or_else(expired)?,
                };
                let seed = settings.master.open(&pending_totp_owner(row.id), &sealed)?;
                let Some(step) = TotpSeed::new(&seed, &settings.issuer, &who.username)?.verify(&code, now) else {
                    if CeremonyRow::count_failure(c, row.id)? >= CEREMONY_MAX_FAILURES {
                        CeremonyRow::delete(c, row.id)?;
                    }
                    return Ok(Err(Error::invalid(
                        "code",
                        "the code does not match the new secret (check the phone's clock)",
                    )));
                };
                CeremonyRow::delete(c, row.id)?;
                let first = CredentialRow::count_of_user(c, who.user_id)? == 0;
                let sealed = settings.master.seal(&totp_owner(id), &seed)?;
                let cred = CredentialRow {
                    id,
                    user_id: who.user_id,
                    kind: CredentialKind::Totp,
                    name,
                    totp_secret_sealed: Some(sealed.blob),
                    totp_kek_id: Some(sealed.kek_id),
                    totp_last_step: Some(step),
                    passkey_credential_id: None,
                    passkey: None,
                    created_at: now,
                    last_used_at: Some(now),
                };
                cred.insert(c).map_err(|e| match e.kind() {
                    ErrorKind::AlreadyExists => Error::new(ErrorKind::AlreadyExists, "TOTP is already enrolled"),
                    _ => e,
                })?;
                let codes = enrolled(c, &who, &cred, first, now, record)?;
                Ok(Ok((cred, codes)))
            })
            .await?;
        Ok(outcome)
    }

    /// Starts registering a passkey for the caller.
    pub async fn start_passkey_registration(&self, call: &Call) -> Result<PasskeyRegistration> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let ceremonies = self.mfa.passkeys()?.clone();
        let now = self.clock.now();
        let (token, hash) = new_ticket();
        let expires_at = now + Duration::seconds(CEREMONY_SECS);
        self.store
            .transaction(move |c| {
                let user = UserRow::find(c, who.user_id)?
                    .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "the user no longer exists"))?;
                let existing: Vec<serde_json::Value> = CredentialRow::of_user(c, user.id, Some(PASSKEY), false)?
                    .into_iter()
                    .filter_map(|r| r.passkey)
                    .collect();
                let (options, state) =
                    ceremonies.start_registration(user.id, &user.username, &user.display_name, &existing)?;
                CeremonyRow::open(
                    PASSKEY_REGISTRATION,
                    Some(user.id),
                    Some(who.session_id),
                    Some(state),
                    hash,
                    now,
                    expires_at,
                )
                .insert(c)?;
                Ok(PasskeyRegistration { token, options, expires_at })
            })
            .await
    }

    /// Verifies and stores a new passkey; the session counts as stepped up. Returns the credential
    /// and, for a first factor, ten recovery codes.
    pub async fn finish_passkey_registration(
        &self,
        call: &Call,
        token: &str,
        credential_json: &str,
        name: &str,
    ) -> Result<(CredentialRow, Vec<String>)> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let hash = ticket_hash("registration_token", token)?;
        let name = mfa::credential_name("name", name, "Passkey")?;
        let ceremonies = self.mfa.passkeys()?.clone();
        let (now, json) = (self.clock.now(), credential_json.to_owned());
        let id = Uuid::new_v4();
        let mut record = call.record("credential", &id.to_string()).detail("type", PASSKEY.stored_name());
        record.details.insert("name".into(), name.clone());
        let outcome = call
            .audited_outcome(&self.store, now, record, move |c, record| {
                // One enrolment of a user at a time: a first factor gets recovery codes only once.
                UserRow::find_for_update(c, who.user_id)?;
                let row = CeremonyRow::find_for_update(c, &hash, PASSKEY_REGISTRATION)?
                    .filter(|r| r.session_id == Some(who.session_id));
                let row = open_ceremony(row, now, || {
                    Error::new(
                        ErrorKind::FailedPrecondition,
                        "the registration token is unknown, used or of another session: start again",
                    )
                })?;
                // Single use, whatever the outcome.
                CeremonyRow::delete(c, row.id)?;
                let state = row.passkey_state.ok_or_else(|| Error::internal("registration without state"))?;
                let (cred_id, passkey) = match ceremonies.finish_registration(&json, state) {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(e)),
                };
                if CredentialRow::passkey_for_update(c, &cred_id)?.is_some() {
                    return Ok(Err(Error::new(ErrorKind::AlreadyExists, "this authenticator is already registered")));
                }
                let first = CredentialRow::count_of_user(c, who.user_id)? == 0;
                let cred = CredentialRow {
                    id,
                    user_id: who.user_id,
                    kind: CredentialKind::Passkey,
                    name,
                    totp_secret_sealed: None,
                    totp_kek_id: None,
                    totp_last_step: None,
                    passkey_credential_id: Some(cred_id),
                    passkey: Some(passkey),
                    created_at: now,
                    last_used_at: Some(now),
                };
                cred.insert(c)?;
                let codes = enrolled(c, &who, &cred, first, now, record)?;
                Ok(Ok((cred, codes)))
            })
            .await?;
        Ok(outcome)
    }

    /// Replaces the caller's recovery codes.
    pub async fn regenerate_recovery_codes(&self, call: &Call) -> Result<Vec<String>> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let now = self.clock.now();
        let record = call.record("user", &who.user_id.to_string());
        let (codes, hashes) = new_recovery_codes();
        call.audited(&self.store, now, record, move |c, _| {
            if CredentialRow::count_of_user(c, who.user_id)? == 0 {
                return Err(Error::new(
                    ErrorKind::FailedPrecondition,
                    "recovery codes back up a second factor: enrol one first",
                ));
            }
            RecoveryCodeRow::replace_all(c, who.user_id, &hashes, now)?;
            Ok(())
        })
        .await?;
        Ok(codes)
    }

    /// A page of a user's credentials (empty `user_id`: the caller's; another user's needs user.read).
    pub async fn list_credentials(
        &self,
        who: &Principal,
        user_id: &str,
        page: PageRequest,
    ) -> Result<(Vec<CredentialRow>, String)> {
        who.require_user()?;
        let target = if user_id.is_empty() { who.user_id } else { parse_id("user_id", user_id)? };
        if target != who.user_id {
            who.require(Permission::UserRead)?;
        }
        let (after, limit) = (page.after_time_and_id()?, page.size);
        let rows = self.store.run(move |c| CredentialRow::page(c, target, after, limit)).await?;
        let last = rows.last().map(|r| super::time_and_id(r.created_at, r.id));
        let next = page.next_token(rows.len(), last.as_deref());
        Ok((rows, next))
    }

    /// Renames one of the caller's credentials.
    pub async fn rename_credential(&self, call: &Call, id: &str, name: &str) -> Result<CredentialRow> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let id = parse_id("credential_id", id)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid("name", "name is required"));
        }
        let name = mfa::credential_name("name", name, "")?;
        let now = self.clock.now();
        let record = call.record("credential", &id.to_string()).detail("name", name.clone());
        let row = call
            .audited(&self.store, now, record, move |c, _| {
                let row = CredentialRow::rename(c, id, who.user_id, &name)?
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("credential {id} not found")))?;
                Ok(row)
            })
            .await?;
        Ok(row)
    }

    /// Removes a credential (one's own, or anyone's with user.write): the sessions it signed in or
    /// stepped up end; a user's last factor takes their recovery codes with it.
    pub async fn delete_credential(&self, call: &Call, id: &str) -> Result<()> {
        let who = call.principal()?.clone();
        who.require_user()?;
        let id = parse_id("credential_id", id)?;
        let now = self.clock.now();
        let record = call.record("credential", &id.to_string());
        let revoked = call
            .audited(&self.store, now, record, move |c, record| {
                let not_found = || Error::new(ErrorKind::NotFound, format!("credential {id} not found"));
                let owner = CredentialRow::owner_of(c, id)?.ok_or_else(not_found)?;
                if owner != who.user_id {
                    // Another user's credentials stay hidden from who may not manage users.
                    who.require(Permission::UserWrite).map_err(|_| not_found())?;
                }
                // Locks in the order enrolments and step-ups take them: the user, the credential,
                // recovery codes, then sessions.
                UserRow::find_for_update(c, owner)?;
                let cred = CredentialRow::find_for_update(c, id)?.ok_or_else(not_found)?;
                CredentialRow::delete(c, id)?;
                if CredentialRow::count_of_user(c, cred.user_id)? == 0 {
                    RecoveryCodeRow::delete_all(c, cred.user_id)?;
                }
                let revoked = SessionRow::revoke_by_credential(c, id, now)?;
                record.note("type", cred.kind.stored_name());
                record.details.insert("user_id".into(), cred.user_id.to_string());
                record.details.insert("sessions_revoked".into(), revoked.len().to_string());
                Ok(revoked)
            })
            .await?;
        self.revocations.insert(&revoked);
        Ok(())
    }
}
