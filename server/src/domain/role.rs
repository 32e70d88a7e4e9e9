//! Roles and the fixed table of what each may do.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A user's role. The permissions of each role are fixed by [`Role::permissions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users, retention and destructive operations.
    Admin,
    /// Runs the site day to day: cameras, recordings, holds, AI routing.
    Operator,
    /// Watches live and recorded video.
    Viewer,
    /// Reads and verifies the audit trail; changes nothing.
    Auditor,
}

/// Something a role may be allowed to do. Names match the `Permission:` lines in the proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    CameraRead,
    CameraWrite,
    CameraLive,
    CameraGrant,
    RecordingRead,
    RecordingExport,
    RecordingDelete,
    RecordingHold,
    RetentionManage,
    StorageRead,
    UserRead,
    UserWrite,
    SessionManage,
    ApikeyManage,
    /// Master-key status and rotation (BYOK).
    KeyManage,
    AuditRead,
    AuditExport,
    AuditVerify,
    InferenceRead,
    InferenceWrite,
    InferenceRun,
    EventWatch,
    IdsRead,
    /// The Prometheus scrape and readiness details.
    MetricsRead,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 24] = [
        Permission::CameraRead,
        Permission::CameraWrite,
        Permission::CameraLive,
        Permission::CameraGrant,
        Permission::RecordingRead,
        Permission::RecordingExport,
        Permission::RecordingDelete,
        Permission::RecordingHold,
        Permission::RetentionManage,
        Permission::StorageRead,
        Permission::UserRead,
        Permission::UserWrite,
        Permission::SessionManage,
        Permission::ApikeyManage,
        Permission::KeyManage,
        Permission::AuditRead,
        Permission::AuditExport,
        Permission::AuditVerify,
        Permission::InferenceRead,
        Permission::InferenceWrite,
        Permission::InferenceRun,
        Permission::EventWatch,
        Permission::IdsRead,
        Permission::MetricsRead,
    ];

    /// The permission's name, as written in the proto (`camera.read`).
    pub fn name(self) -> &'static str {
        use Permission::*;
        match self {
            CameraRead => "camera.read",
            CameraWrite => "camera.write",
            CameraLive => "camera.live",
            CameraGrant => "camera.grant",
            RecordingRead => "recording.read",
            RecordingExport => "recording.export",
            RecordingDelete => "recording.delete",
            RecordingHold => "recording.hold",
            RetentionManage => "retention.manage",
            StorageRead => "storage.read",
            UserRead => "user.read",
            UserWrite => "user.write",
            SessionManage => "session.manage",
            ApikeyManage => "apikey.manage",
            KeyManage => "key.manage",
            AuditRead => "audit.read",
            AuditExport => "audit.export",
            AuditVerify => "audit.verify",
            InferenceRead => "inference.read",
            InferenceWrite => "inference.write",
            InferenceRun => "inference.run",
            EventWatch => "event.watch",
            IdsRead => "ids.read",
            MetricsRead => "metrics.read",
        }
    }
}

impl FromStr for Permission {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Permission::ALL.into_iter().find(|p| p.name() == s).ok_or(())
    }
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Auditor];

    /// The role's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
        }
    }

    /// The fixed permission table.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &Permission::ALL,
            Role::Operator => &[
                CameraRead,
                CameraWrite,
                CameraLive,
                RecordingRead,
                RecordingExport,
                RecordingHold,
                StorageRead,
                UserRead,
                InferenceRead,
                InferenceWrite,
                InferenceRun,
                EventWatch,
                IdsRead,
                MetricsRead,
            ],
            Role::Viewer => &[CameraRead, CameraLive, RecordingRead, EventWatch],
            Role::Auditor => {
                &[AuditRead, AuditExport, AuditVerify, UserRead, CameraRead, StorageRead, IdsRead, MetricsRead]
            }
        }
    }

    /// True when this role holds `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl super::StoredName for Role {
    const WHAT: &'static str = "role";
    const ALL: &'static [Role] = &Role::ALL;
    fn stored_name(self) -> &'static str {
        self.as_str()
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_admin_has_all() {
        for p in Permission::ALL {
            assert_eq!(p.name().parse::<Permission>(), Ok(p));
            assert!(Role::Admin.allows(p));
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!(!Role::Viewer.allows(Permission::UserWrite));
        assert!(!Role::Auditor.allows(Permission::CameraWrite));
    }
}
