//! The one error type of the server. Its kinds are the gRPC codes; `api::status` turns it into a
//! `tonic::Status` in exactly one place, so domain and app code never import tonic.
use std::fmt;

/// What went wrong, in the vocabulary of gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request field is invalid (see [`Error::field`]).
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// The state of the system forbids the operation (e.g. last admin, used setup token).
    FailedPrecondition,
    /// An optimistic-concurrency check failed.
    Aborted,
    /// No valid credentials.
    Unauthenticated,
    /// Credentials are valid but lack the permission.
    PermissionDenied,
    /// Too many attempts; retry later.
    ResourceExhausted,
    /// A dependency (database, MediaMTX) is not reachable.
    Unavailable,
    /// The capability is not built yet.
    Unimplemented,
    /// A position (page, resume point) outside what is kept.
    OutOfRange,
    /// A dependency (an inference adapter) did not answer in time, or a request needed more
    /// database time than the statement timeout allows.
    DeadlineExceeded,
    /// A bug or an unexpected failure; details are logged, never returned.
    Internal,
}

impl ErrorKind {
    /// The gRPC code's name (`INVALID_ARGUMENT`), as the audit trail records outcomes.
    pub fn code_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorKind::Aborted => "ABORTED",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::Unimplemented => "UNIMPLEMENTED",
            ErrorKind::OutOfRange => "OUT_OF_RANGE",
            ErrorKind::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorKind::Internal => "INTERNAL",
        }
    }
}

/// An error with a kind, a message safe to show to the caller, and optionally the request field at fault.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    field: Option<&'static str>,
    retry_after: Option<std::time::Duration>,
    reason: Option<&'static str>,
}

/// Stable machine-readable reasons, sent as `google.rpc.ErrorInfo.reason` (the `ErrorReason` names of
/// `common.proto`).
pub mod reason {
    pub const INVALID_CREDENTIALS: &str = "ERROR_REASON_INVALID_CREDENTIALS";
    pub const TOKEN_EXPIRED: &str = "ERROR_REASON_TOKEN_EXPIRED";
    pub const CREDENTIAL_REVOKED: &str = "ERROR_REASON_CREDENTIAL_REVOKED";
    pub const RATE_LIMITED: &str = "ERROR_REASON_RATE_LIMITED";
    pub const ALREADY_BOOTSTRAPPED: &str = "ERROR_REASON_ALREADY_BOOTSTRAPPED";
    pub const LAST_ADMIN: &str = "ERROR_REASON_LAST_ADMIN";
    pub const ETAG_MISMATCH: &str = "ERROR_REASON_ETAG_MISMATCH";
    pub const RESUME_POINT_EXPIRED: &str = "ERROR_REASON_RESUME_POINT_EXPIRED";
    pub const UNDER_HOLD: &str = "ERROR_REASON_UNDER_HOLD";
    pub const STEP_UP_REQUIRED: &str = "ERROR_REASON_STEP_UP_REQUIRED";
    pub const MFA_ENROLMENT_REQUIRED: &str = "ERROR_REASON_MFA_ENROLMENT_REQUIRED";
    pub const ADAPTER_OVERLOADED: &str = "ERROR_REASON_ADAPTER_OVERLOADED";
    pub const ADAPTER_CIRCUIT_OPEN: &str = "ERROR_REASON_ADAPTER_CIRCUIT_OPEN";
}

/// Result alias used throughout the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a caller-safe `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), field: None, retry_after: None, reason: None }
    }

    /// An invalid-argument error naming the request `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidArgument,
            message: message.into(),
            field: Some(field),
            retry_after: None,
            reason: None,
        }
    }

    /// A configuration error that stops the boot: `message` names the setting and what is wrong.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }

    /// An internal error: `detail` is logged here and never returned to the caller.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorKind::Internal, "internal error")
    }

    /// Attaches a retry delay (for throttling).
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Attaches a stable machine-readable reason (`ERROR_REASON_...`, sent as `google.rpc.ErrorInfo`).
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The machine-readable reason, if any.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The caller-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message as the caller reads it: prefixed with the field at fault unless it names it.
    pub fn caller_message(&self) -> String {
        match self.field {
            Some(field) if !self.message.contains(field) => format!("{field}: {}", self.message),
            _ => self.message.clone(),
        }
    }

    /// The request field at fault, for invalid-argument errors.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    /// How long to wait before retrying, for throttling errors.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{:?}: {}: {}", self.kind, field, self.message),
            None => write!(f, "{:?}: {}", self.kind, self.message),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand: `bail!(NotFound, "user {id} not found")`.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)+) => {
        return Err($crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)+)))
    };
}

thread_local! {
    /// Set when work on this thread saw its database connection lost (see [`connection_lost`]).
    static CONNECTION_LOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether work on this thread saw its database connection lost since the last call (and
/// forgets it): the pool then drops that connection instead of handing it out again.
pub fn connection_lost() -> bool {
    CONNECTION_LOST.with(|l| l.replace(false))
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as D};
        if matches!(
            e,
            D::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
        ) {
            CONNECTION_LOST.with(|l| l.set(true));
        }
        match e {
            D::NotFound => Error::new(ErrorKind::NotFound, "not found"),
            D::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Error::new(ErrorKind::AlreadyExists, "already exists")
            }
            D::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                Error::new(ErrorKind::Aborted, "concurrent update, retry")
            }
            D::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                Error::new(ErrorKind::Unavailable, "database unavailable")
            }
            // The statement timeout bounds every request's work in the database: a request that hits
            // it asked for too much, and is told so.
            D::DatabaseError(_, ref info) if info.message().contains("statement timeout") => Error::new(
                ErrorKind::DeadlineExceeded,
                "the request needs more database time than the statement timeout allows: ask for less (fewer \
                 cameras, a shorter range)",
            ),
            other => Error::internal(other),
        }
    }
}

impl From<deadpool_diesel::PoolError> for Error {
    fn from(e: deadpool_diesel::PoolError) -> Self {
        tracing::warn!(error = %e, "database pool");
        Error::new(ErrorKind::Unavailable, "database unavailable")
    }
}

impl From<deadpool_diesel::InteractError> for Error {
    fn from(e: deadpool_diesel::InteractError) -> Self {
        Error::internal(e)
    }
}
