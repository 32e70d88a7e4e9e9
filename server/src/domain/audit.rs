//! What an audit entry says: who did what to which thing, with what result. Plain data.
use std::collections::BTreeMap;

/// Kind of principal behind an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorType {
    User,
    ApiKey,
    System,
    Anonymous,
}

impl ActorType {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::ApiKey => "api_key",
            ActorType::System => "system",
            ActorType::Anonymous => "anonymous",
        }
    }
}

/// Outcome of an audited call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditResult {
    Success,
    /// Refused by authentication or authorization.
    Denied,
    /// Authorized but failed.
    Failed,
}

impl AuditResult {
    /// How a call that ended with gRPC status `code` (its name, e.g. `PERMISSION_DENIED`) counts.
    pub fn of_code(code: &str) -> AuditResult {
        match code {
            "OK" => AuditResult::Success,
            "UNAUTHENTICATED" | "PERMISSION_DENIED" => AuditResult::Denied,
            _ => AuditResult::Failed,
        }
    }

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Denied => "denied",
            AuditResult::Failed => "failed",
        }
    }
}

/// gRPC status code names, indexed by code number.
pub const STATUS_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorType,
    pub user_id: String,
    /// Username at the time (the attempted one for a failed login).
    pub username: String,
    pub api_key_id: String,
    pub session_id: String,
}

impl Actor {
    /// The server itself.
    pub fn system() -> Actor {
        Actor {
            kind: ActorType::System,
            user_id: String::new(),
            username: String::new(),
            api_key_id: String::new(),
            session_id: String::new(),
        }
    }

    /// Nobody with a valid credential; `attempted` is the username they gave, if any.
    pub fn anonymous(attempted: &str) -> Actor {
        Actor { kind: ActorType::Anonymous, username: attempted.to_owned(), ..Actor::system() }
    }
}

/// One entry to append to the trail. Never holds secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub actor: Actor,
    pub client_address: String,
    pub user_agent: String,
    /// `<noun>.<verb>`, e.g. `user.create`, `auth.login`.
    pub action: String,
    /// Full gRPC method, empty for system actions.
    pub method: String,
    pub target_type: String,
    pub target_id: String,
    pub camera_id: String,
    pub result: AuditResult,
    /// gRPC status code name the call ended with: `OK`, or why it was refused or failed.
    pub code: String,
    pub reason: String,
    pub details: BTreeMap<String, String>,
    pub request_id: String,
}

impl AuditRecord {
    /// A system action (key rotation, retention pass).
    pub fn system(action: &str, target_type: &str, target_id: &str) -> AuditRecord {
        AuditRecord {
            actor: Actor::system(),
            client_address: String::new(),
            user_agent: String::new(),
            action: action.to_owned(),
            method: String::new(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_owned(),
            camera_id: String::new(),
            result: AuditResult::Success,
            code: "OK".to_owned(),
            reason: String::new(),
            details: BTreeMap::new(),
            request_id: String::new(),
        }
    }

    /// Marks the entry as a call that ended with gRPC status `code` (its name) and `message`.
    pub fn ended(mut self, code: &str, message: &str) -> AuditRecord {
        self.result = AuditResult::of_code(code);
        self.code = code.to_owned();
        self.reason = message.to_owned();
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> AuditRecord {
        self.note(key, value);
        self
    }

    /// Adds a detail in place (to an entry being written with its change).
    pub fn note(&mut self, key: &str, value: impl Into<String>) {
        self.details.insert(key.to_owned(), value.into());
    }
}

/// The action name of an RPC: `<noun>.<verb>` from its method name (`CreateUser` → `user.create`,
/// `ListAuditEvents` → `audit_events.list`); one-word methods take the service's noun
/// (`AuthService/Login` → `auth.login`). Methods whose names are not a verb and a noun are named
/// by hand (`WhoAmI` → `session.whoami`, `StepUp` → `session.step_up`).
pub fn action_of(service: &str, method: &str) -> String {
    match method {
        "WhoAmI" => return "session.whoami".to_owned(),
        "StepUp" => return "session.step_up".to_owned(),
        _ => {}
    }
    let mut words: Vec<String> = Vec::new();
    for c in method.chars() {
        if c.is_ascii_uppercase() || words.is_empty() {
            words.push(c.to_ascii_lowercase().to_string());
        } else if let Some(w) = words.last_mut() {
            w.push(c);
        }
    }
    let noun = service.trim_end_matches("Service").to_ascii_lowercase();
    match words.split_first() {
        Some((verb, rest)) if !rest.is_empty() => format!("{}.{verb}", rest.join("_")),
        Some((verb, _)) => format!("{noun}.{verb}"),
        None => format!("{noun}.call"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names() {
        assert_eq!(action_of("AuthService", "CreateUser"), "user.create");
        assert_eq!(action_of("AuthService", "Login"), "auth.login");
        assert_eq!(action_of("AuditService", "ListAuditEvents"), "audit_events.list");
        assert_eq!(action_of("AuthService", "WhoAmI"), "session.whoami");
        assert_eq!(action_of("AuthService", "StepUp"), "session.step_up");
        assert_eq!(action_of("CameraService", "CreateCamera"), "camera.create");
    }
}
