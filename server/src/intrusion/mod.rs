//! Network intrusion detection: alerts read from Suricata's EVE log, stored and linked to the cameras
//! they concern. Suricata runs beside the server; this module only follows what it writes.
pub mod eve;

pub use eve::{EveFollower, ROTATION_GRACE};
