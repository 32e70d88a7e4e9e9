//! The one mapping from the server's [`Error`] to a gRPC `Status`, with `google.rpc` details
//! (field violations for bad input, retry delay for throttling).
use crate::error::{Error, ErrorKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Domain of `google.rpc.ErrorInfo` details this server sends.
pub const ERROR_DOMAIN: &str = "opennvr.dev";

/// Converts an error into the status a client sees. Internal details never leave the server.
pub fn to_status(e: Error) -> Status {
    let code = match e.kind() {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Aborted => Code::Aborted,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::OutOfRange => Code::OutOfRange,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Internal => Code::Internal,
    };
    let mut details = ErrorDetails::new();
    if let Some(field) = e.field() {
        details.add_bad_request_violation(field, e.message());
    }
    if let Some(after) = e.retry_after() {
        details.set_retry_info(Some(after));
    }
    if let Some(reason) = e.reason() {
        details.set_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new());
    }
    Status::with_error_details(code, e.caller_message(), details)
}

/// `Result` in handlers.
pub type ApiResult<T> = Result<tonic::Response<T>, Status>;

/// Wraps an app result into a gRPC response.
pub fn respond<T>(r: crate::error::Result<T>) -> ApiResult<T> {
    r.map(tonic::Response::new).map_err(to_status)
}
