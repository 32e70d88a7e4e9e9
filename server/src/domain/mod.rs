//! Plain domain types and rules: roles, permissions, users, cameras. No tonic, no Diesel, no I/O.
mod audit;
pub mod camera;
pub mod event;
pub mod ids;
pub mod inference;
pub mod mfa;
pub mod motion;
pub mod recording;
mod role;
mod user;

/// A closed set of values kept under stable names (in the database, the audit trail, logs). The
/// store maps each to its column; a name read back that is not in the set is an error, never a
/// fallback.
pub trait StoredName: Copy + Sized + 'static {
    /// What a value is, for messages ("role", "export state").
    const WHAT: &'static str;
    /// Every value.
    const ALL: &'static [Self];

    /// The stored name.
    fn stored_name(self) -> &'static str;

    /// The value stored as `name`, if any.
    fn from_stored_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.stored_name() == name)
    }
}

pub use audit::{Actor, ActorType, AuditRecord, AuditResult, STATUS_CODES, action_of};
pub use role::{Permission, Role};
pub use user::{normalise_username, validate_display_name};
