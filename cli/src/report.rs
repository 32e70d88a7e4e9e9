//! How a failed command is told to a person: once, as `error: <message>`, in the server's words
//! (not the gRPC status's debug form), with the next step on a second line where there is one.
use std::error::Error as StdError;

/// The gRPC status inside one link of an error chain, if it is one.
fn status_of<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a tonic::Status> {
    e.downcast_ref::<tonic::Status>().or_else(|| match e.downcast_ref::<opennvr_sdk::Error>() {
        Some(opennvr_sdk::Error::Status(s)) => Some(s),
        _ => None,
    })
}

/// What a failed connection comes down to, in words: the innermost I/O error, else the innermost
/// message.
fn connection_failure(e: &(dyn StdError + 'static)) -> String {
    let mut innermost = e.to_string();
    let mut io = None;
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(link) = next {
        if let Some(err) = link.downcast_ref::<std::io::Error>() {
            io = Some(err.kind());
        }
        innermost = link.to_string();
        next = link.source();
    }
    match io {
        Some(std::io::ErrorKind::ConnectionRefused) => "nothing listens there (connection refused)".into(),
        Some(std::io::ErrorKind::TimedOut) => "it did not answer in time".into(),
        Some(std::io::ErrorKind::NotFound) => "the host name is unknown".into(),
        _ => innermost,
    }
}

/// Whether the failure is not reaching the server at all.
fn unreachable(e: &anyhow::Error) -> Option<String> {
    for link in e.chain() {
        if let Some(opennvr_sdk::Error::Connect { source, .. }) = link.downcast_ref::<opennvr_sdk::Error>() {
            return Some(connection_failure(source));
        }
        if let Some(s) = status_of(link)
            && s.code() == tonic::Code::Unavailable
            && s.source().is_some()
        {
            return Some(s.source().map(connection_failure).unwrap_or_else(|| s.message().to_owned()));
        }
    }
    None
}

/// The next step for a refusal, by its kind.
fn next_step(status: &tonic::Status) -> Option<&'static str> {
    match opennvr_sdk::error_reason(status).as_deref() {
        Some("ERROR_REASON_MFA_ENROLMENT_REQUIRED") => {
            return Some("enrol a second factor first: nvrctl mfa totp enrol");
        }
        Some("ERROR_REASON_STEP_UP_REQUIRED") => return Some("present a second factor: nvrctl mfa step-up"),
        // A sign-in that failed needs no advice to sign in.
        Some("ERROR_REASON_INVALID_CREDENTIALS" | "ERROR_REASON_RATE_LIMITED") => return None,
        _ => {}
    }
    match status.code() {
        tonic::Code::Unauthenticated => Some("sign in again: nvrctl login --username NAME"),
        tonic::Code::PermissionDenied => Some("ask an administrator (nvrctl whoami lists your permissions)"),
        _ => None,
    }
}

/// `e` as a person reads it, for a command that talked (or tried to talk) to `server`.
pub fn error_text(e: &anyhow::Error, server: &str) -> String {
    if let Some(why) = unreachable(e) {
        return format!(
            "error: cannot reach the server at {server}: {why}\nnext: start it, or name the right one with --server URL (or NVRCTL_SERVER)"
        );
    }
    let mut parts: Vec<String> = Vec::new();
    let mut step = None;
    for link in e.chain() {
        let (text, last) = match status_of(link) {
            Some(s) => {
                step = next_step(s);
                (s.message().to_owned(), true)
            }
            None => (link.to_string(), false),
        };
        // Layers that repeat what they wrap (`transport error: transport error`) are said once.
        if !text.is_empty() && !parts.last().is_some_and(|p| p.ends_with(&text) || p == &text) {
            parts.push(text);
        }
        if last {
            break;
        }
    }
    // A context that already quotes its cause in full (`a: b` above `b`) keeps one copy.
    let mut message = String::new();
    for p in parts {
        if message.contains(&p) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&p);
    }
    match step {
        Some(next) if !message.contains(next) => format!("error: {message}\nnext: {next}"),
        _ => format!("error: {message}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_said_in_the_servers_words_once_with_the_next_step() {
        let e = anyhow::Error::from(tonic::Status::unauthenticated("the session has ended"));
        assert_eq!(
            error_text(&e, "http://nvr:7450"),
            "error: the session has ended\nnext: sign in again: nvrctl login --username NAME"
        );
        let e = anyhow::Error::from(tonic::Status::invalid_argument("camera.name: must not be empty"))
            .context("adding camera Dock");
        assert_eq!(error_text(&e, "http://nvr:7450"), "error: adding camera Dock: camera.name: must not be empty");
    }

    #[test]
    fn repeated_layers_are_said_once() {
        let e = anyhow::anyhow!("transport error").context("transport error").context("listing cameras");
        assert_eq!(error_text(&e, "http://nvr:7450"), "error: listing cameras: transport error");
    }
}
