//! Rules of multi-factor authentication: which roles must have a second factor, how a session
//! signed in, recovery-code format, credential names. No I/O.
use super::Role;
use crate::error::{Error, Result};

/// How long an MFA ticket, a step-up challenge or an enrolment stays open.
pub const CEREMONY_SECS: i64 = 300;
/// How long a TOTP secret waits for its first code: a start again within it with the enrolment's
/// token (another session, after a crash midway) resumes the same secret, which the authenticator
/// app may already hold.
pub const TOTP_ENROLLMENT_SECS: i64 = 3600;
/// Wrong factors one login ticket (or enrolment) takes before it dies.
pub const CEREMONY_MAX_FAILURES: i32 = 5;
/// How many recovery codes a user holds.
pub const RECOVERY_CODES: usize = 10;
/// The throttling scope of wrong second factors: counted per user, from every address (whoever
/// presents them already knows the password).
pub const SECOND_FACTOR_SCOPE: &str = "second factor";

/// The roles whose users must have a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaPolicy {
    required: Vec<Role>,
}

impl Default for MfaPolicy {
    /// Administrators must have a second factor.
    fn default() -> Self {
        MfaPolicy { required: vec![Role::Admin] }
    }
}

impl MfaPolicy {
    /// Parses `admin,operator` (or `none`).
    pub fn parse(text: &str) -> std::result::Result<MfaPolicy, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") || text.is_empty() {
            return Ok(MfaPolicy { required: Vec::new() });
        }
        let mut required = Vec::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let role = name
                .parse::<Role>()
                .map_err(|_| format!("unknown role {name:?} (roles: admin, operator, viewer, auditor; or none)"))?;
            if !required.contains(&role) {
                required.push(role);
            }
        }
        Ok(MfaPolicy { required })
    }

    /// Whether users of `role` must have a second factor.
    pub fn requires(&self, role: Role) -> bool {
        self.required.contains(&role)
    }

    /// The roles, for display.
    pub fn roles(&self) -> &[Role] {
        &self.required
    }
}

/// A way a session proved who it is, as recorded on the session (`amr`-like values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Totp,
    RecoveryCode,
    Passkey,
}

impl AuthMethod {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Totp => "otp",
            AuthMethod::RecoveryCode => "rec",
            AuthMethod::Passkey => "hwk",
        }
    }
}

/// Checks a credential label: 1–64 printable characters; empty takes `default`.
pub fn credential_name(field: &'static str, name: &str, default: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(default.to_owned());
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("{field} must be at most 64 printable characters")));
    }
    Ok(name.to_owned())
}

/// Letters of recovery codes: Crockford's base32 (no I, L, O, U: nothing to misread).
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A recovery code from 10 random bytes: 16 letters (80 bits) in groups of four.
pub fn recovery_code(random: &[u8; 10]) -> String {
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(*b);
    }
    let letters: Vec<char> =
        (0..16).rev().map(|i| RECOVERY_ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect();
    letters.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The canonical form of a typed recovery code (upper case, without separators, common misreads
/// mapped), or `None` when it cannot be one.
pub fn normalise_recovery_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    (code.len() == 16 && code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parses_roles_and_none() {
        assert!(MfaPolicy::default().requires(Role::Admin));
        assert!(!MfaPolicy::default().requires(Role::Viewer));
        let p = MfaPolicy::parse("admin, operator").unwrap();
        assert!(p.requires(Role::Operator) && !p.requires(Role::Auditor));
        assert!(MfaPolicy::parse("none").unwrap().roles().is_empty());
        assert!(MfaPolicy::parse("admins").is_err());
    }

    #[test]
    fn recovery_codes_round_trip_through_typing() {
        let code = recovery_code(&[0xff, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]);
        assert_eq!(code.len(), 19);
        assert_eq!(code.matches('-').count(), 3);
        let canonical = normalise_recovery_code(&code).unwrap();
        assert_eq!(normalise_recovery_code(&code.to_lowercase().replace('-', " ")).as_deref(), Some(&*canonical));
        assert_ne!(recovery_code(&[0; 10]), recovery_code(&[1; 10]));
        assert_eq!(normalise_recovery_code("too-short"), None);
        assert_eq!(normalise_recovery_code("UUUU-UUUU-UUUU-UUUU"), None, "U is not in the alphabet");
    }
}

/// A kind of second factor a user enrols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Totp,
    Passkey,
}

impl super::StoredName for CredentialKind {
    const WHAT: &'static str = "credential kind";
    const ALL: &'static [CredentialKind] = &[CredentialKind::Totp, CredentialKind::Passkey];
    fn stored_name(self) -> &'static str {
        match self {
            CredentialKind::Totp => "totp",
            CredentialKind::Passkey => "passkey",
        }
    }
}

/// A ceremony kept between its start and its finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// A login ticket waiting for its second factor.
    LoginMfa,
    /// A passwordless passkey login.
    PasskeyLogin,
    /// A step-up of a signed-in session.
    StepUp,
    PasskeyRegistration,
    TotpEnrollment,
}

impl super::StoredName for CeremonyKind {
    const WHAT: &'static str = "ceremony kind";
    const ALL: &'static [CeremonyKind] = &[
        CeremonyKind::LoginMfa,
        CeremonyKind::PasskeyLogin,
        CeremonyKind::StepUp,
        CeremonyKind::PasskeyRegistration,
        CeremonyKind::TotpEnrollment,
    ];
    fn stored_name(self) -> &'static str {
        match self {
            CeremonyKind::LoginMfa => "login_mfa",
            CeremonyKind::PasskeyLogin => "passkey_login",
            CeremonyKind::StepUp => "step_up",
            CeremonyKind::PasskeyRegistration => "passkey_registration",
            CeremonyKind::TotpEnrollment => "totp_enrollment",
        }
    }
}
