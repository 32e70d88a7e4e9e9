//! The table of what every RPC requires: read once at start from the `Permission:`, `Camera-scoped:`
//! and `Step-up:` lines that document each RPC in the proto, so the contract and the enforcement are
//! one declaration. An RPC without them stops the server at boot.
use crate::domain::Permission;
use crate::error::{Error, Result};
use prost::Message;
use std::collections::HashMap;

/// Who may call an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed.
    Public,
    /// Any signed-in user, acting on their own account.
    SignedIn,
    /// A role holding this permission.
    Permission(Permission),
}

/// Whether an RPC needs a recent second factor on the calling session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUp {
    No,
    Yes,
    /// Once the user has a second factor (so that a first one can be enrolled at all).
    Enrolled,
}

/// The requirements of one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcPolicy {
    pub access: Access,
    /// Whether the answer depends on which camera is touched (checked by the app's authorizer).
    pub camera_scoped: bool,
    /// Whether a recent second factor is required.
    pub step_up: StepUp,
    /// Whether an enrolment-only session (MFA required, none enrolled yet) may call it.
    pub enrolment_only: bool,
    /// Whether the server answers with a stream (its status comes at the end, in trailers).
    pub streaming: bool,
}

/// RPC path (`/opennvr.v1.AuthService/Login`) → policy.
#[derive(Debug, Clone, Default)]
pub struct PolicyTable(HashMap<String, RpcPolicy>);

impl PolicyTable {
    /// Reads the table from the encoded `FileDescriptorSet` (with source info) of `package`.
    pub fn from_descriptor(descriptor: &[u8], package: &str) -> Result<PolicyTable> {
        let set = prost_types::FileDescriptorSet::decode(descriptor).map_err(Error::internal)?;
        let mut table = HashMap::new();
        for file in set.file.iter().filter(|f| f.package() == package) {
            let comments: HashMap<Vec<i32>, &str> = file
                .source_code_info
                .iter()
                .flat_map(|s| s.location.iter())
                .filter_map(|l| Some((l.path.clone(), l.leading_comments.as_deref()?)))
                .collect();
            for (si, service) in file.service.iter().enumerate() {
                for (mi, method) in service.method.iter().enumerate() {
                    let path = format!("/{package}.{}/{}", service.name(), method.name());
                    let comment = comments.get(&vec![6, si as i32, 2, mi as i32]).copied().unwrap_or("");
                    let mut policy = parse(comment).map_err(|e| Error::internal(format!("{path}: {e}")))?;
                    policy.streaming = method.server_streaming();
                    table.insert(path, policy);
                }
            }
        }
        if table.is_empty() {
            return Err(Error::internal(format!("no RPCs of {package} in the descriptor (missing source info?)")));
        }
        Ok(PolicyTable(table))
    }

    /// The policy of `path`, if it is an RPC of the package.
    pub fn get(&self, path: &str) -> Option<&RpcPolicy> {
        self.0.get(path)
    }

    /// The RPCs that need a step-up, as `Service.Method`, with the permission each needs (`None`
    /// for those acting on one's own account).
    pub fn step_up_catalog(&self) -> crate::app::api_keys::StepUpCatalog {
        let mut out = std::collections::BTreeMap::new();
        for (path, policy) in &self.0 {
            if policy.step_up == StepUp::No {
                continue;
            }
            let name = path.trim_start_matches('/').trim_start_matches("opennvr.v1.").replace('/', ".");
            let permission = match policy.access {
                Access::Permission(p) => Some(p),
                Access::Public | Access::SignedIn => None,
            };
            out.insert(name, permission);
        }
        crate::app::api_keys::StepUpCatalog(out)
    }

    /// Every RPC path, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.0.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

fn parse(comment: &str) -> std::result::Result<RpcPolicy, String> {
    let field = |name: &str| -> std::result::Result<&str, String> {
        comment
            .lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':').map(str::trim))
            .ok_or_else(|| format!("missing `{name}:` line in the RPC comment"))
    };
    let yes_no = |name: &str| -> std::result::Result<bool, String> {
        match field(name)? {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(format!("`{name}: {other}` must be yes or no")),
        }
    };
    let access = match field("Permission")? {
        "public" => Access::Public,
        "self" => Access::SignedIn,
        name => Access::Permission(name.parse().map_err(|_| format!("unknown permission {name:?}"))?),
    };
    let step_up = match field("Step-up")? {
        "yes" => StepUp::Yes,
        "no" => StepUp::No,
        "enrolled" => StepUp::Enrolled,
        other => return Err(format!("`Step-up: {other}` must be yes, no or enrolled")),
    };
    let enrolment_only = match field("Enrolment-only") {
        Err(_) => false,
        Ok("allowed") => true,
        Ok(other) => return Err(format!("`Enrolment-only: {other}` must be allowed (or the line left out)")),
    };
    Ok(RpcPolicy { access, camera_scoped: yes_no("Camera-scoped")?, step_up, enrolment_only, streaming: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trailer_and_rejects_unknown_permission() {
        let p = parse(" Lists users.\n Permission: user.read\n Camera-scoped: no\n Step-up: yes\n").unwrap();
        assert_eq!(
            p,
            RpcPolicy {
                access: Access::Permission(Permission::UserRead),
                camera_scoped: false,
                step_up: StepUp::Yes,
                enrolment_only: false,
                streaming: false
            }
        );
        let p = parse(" Permission: self\n Camera-scoped: no\n Step-up: enrolled\n Enrolment-only: allowed").unwrap();
        assert_eq!((p.step_up, p.enrolment_only), (StepUp::Enrolled, true));
        assert!(parse(" Permission: self\n Camera-scoped: no\n Step-up: no\n Enrolment-only: yes").is_err());
        assert!(parse(" Permission: users.read\n Camera-scoped: no\n Step-up: no").is_err());
        assert!(parse(" Permission: self\n Step-up: no").is_err());
    }

    #[test]
    fn every_rpc_of_the_api_has_a_policy() {
        let t = PolicyTable::from_descriptor(opennvr_proto::FILE_DESCRIPTOR_SET, "opennvr.v1").unwrap();
        assert_eq!(t.get("/opennvr.v1.AuthService/Login").map(|p| p.access), Some(Access::Public));
        let enrol = t.get("/opennvr.v1.AuthService/StartTotpEnrollment").unwrap();
        assert_eq!((enrol.step_up, enrol.enrolment_only), (StepUp::Enrolled, true));
        assert_eq!(t.get("/opennvr.v1.CameraService/DeleteCamera").map(|p| p.step_up), Some(StepUp::Yes));
        assert!(t.paths().len() > 50);
    }
}
