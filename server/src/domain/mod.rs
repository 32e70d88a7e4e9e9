//! Plain domain types and rules: roles, permissions, users, cameras. No tonic, no Diesel, no I/O.
mod audit;
pub mod camera;
pub mod event;
pub mod ids;
pub mod inference;
pub mod mfa;
pub mod recording;
mod role;
mod user;

pub use audit::{Actor, ActorType, AuditRecord, AuditResult, STATUS_CODES, action_of};
pub use role::{Permission, Role};
pub use user::{normalise_username, validate_display_name};
