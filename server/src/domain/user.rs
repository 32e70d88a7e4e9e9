//! Rules for user names and display names.
use crate::error::{Error, Result};

/// Lower-cases and checks a username: 1–64 of `a-z 0-9 . _ @ -`, starting with a letter or digit.
pub fn normalise_username(field: &'static str, raw: &str) -> Result<String> {
    let name = raw.trim().to_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._@-".contains(c));
    if !valid {
        return Err(Error::invalid(
            field,
            "username must be 1-64 characters of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit",
        ));
    }
    Ok(name)
}

/// Checks a display name: at most 128 characters, no control characters.
pub fn validate_display_name(field: &'static str, name: &str) -> Result<()> {
    if name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(Error::invalid(field, "display name must be at most 128 printable characters"));
    }
    Ok(())
}
