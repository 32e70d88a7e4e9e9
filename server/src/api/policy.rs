//! The table of what every RPC requires: read once at start from the `(opennvr.v1.policy)` option
//! that every RPC declares in the proto (options.proto), so the contract and the enforcement are one
//! declaration. An RPC without a valid policy stops the server at boot.
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
    /// Reads the table from the encoded `FileDescriptorSet` of `package`, from the
    /// `(opennvr.v1.policy)` option of every RPC.
    pub fn from_descriptor(descriptor: &[u8], package: &str) -> Result<PolicyTable> {
        let set = wire::FileDescriptorSet::decode(descriptor).map_err(Error::internal)?;
        let mut table = HashMap::new();
        for file in set.file.iter().filter(|f| f.package.as_deref() == Some(package)) {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{package}.{}/{}", service.name(), method.name());
                    let option = method.options.as_ref().and_then(|o| o.policy.as_ref());
                    let mut policy = convert(option).map_err(|e| Error::internal(format!("{path}: {e}")))?;
                    policy.streaming = method.server_streaming.unwrap_or(false);
                    table.insert(path, policy);
                }
            }
        }
        if table.is_empty() {
            return Err(Error::internal(format!("no RPCs of {package} in the descriptor")));
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

/// Checks one RPC's `(opennvr.v1.policy)` option and turns it into its policy.
fn convert(option: Option<&opennvr_proto::v1::Policy>) -> std::result::Result<RpcPolicy, String> {
    use opennvr_proto::v1::policy::{Access as Who, StepUp as Step};
    let option = option.ok_or("no `option (opennvr.v1.policy)` on the RPC")?;
    let access = match &option.access {
        Some(Who::Public(true)) => Access::Public,
        Some(Who::SelfService(true)) => Access::SignedIn,
        Some(Who::Permission(name)) => {
            Access::Permission(name.parse().map_err(|_| format!("unknown permission {name:?}"))?)
        }
        Some(Who::Public(false) | Who::SelfService(false)) => {
            return Err("`public` and `self_service` can only be set to true".into());
        }
        None => return Err("the policy sets no access (permission, public or self_service)".into()),
    };
    let camera_scoped = option.camera_scoped.ok_or("the policy must set camera_scoped (true or false)")?;
    let step_up = match Step::try_from(option.step_up) {
        Ok(Step::No) => StepUp::No,
        Ok(Step::Yes) => StepUp::Yes,
        Ok(Step::Enrolled) => StepUp::Enrolled,
        Ok(Step::Unspecified) | Err(_) => {
            return Err("the policy must set step_up to STEP_UP_NO, STEP_UP_YES or STEP_UP_ENROLLED".into());
        }
    };
    Ok(RpcPolicy { access, camera_scoped, step_up, enrolment_only: option.enrolment_only_allowed, streaming: false })
}

/// Just the parts of `google/protobuf/descriptor.proto` the table needs. `prost_types` drops the
/// extensions of `MethodOptions`; these mirrors keep `(opennvr.v1.policy)` as a typed field.
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        pub package: Option<String>,
        #[prost(message, repeated, tag = "6")]
        pub service: Vec<ServiceDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServiceDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub method: Vec<MethodDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MethodDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, optional, tag = "4")]
        pub options: Option<MethodOptions>,
        #[prost(bool, optional, tag = "6")]
        pub server_streaming: Option<bool>,
    }

    /// The tag is the field number of `extend google.protobuf.MethodOptions` in options.proto
    /// (a test checks that they agree).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MethodOptions {
        #[prost(message, optional, tag = "50700")]
        pub policy: Option<opennvr_proto::v1::Policy>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opennvr_proto::v1::Policy;
    use opennvr_proto::v1::policy::{Access as Who, StepUp as Step};

    fn api() -> PolicyTable {
        PolicyTable::from_descriptor(opennvr_proto::FILE_DESCRIPTOR_SET, "opennvr.v1").unwrap()
    }

    #[test]
    fn every_rpc_of_the_api_has_a_policy() {
        let t = api();
        assert_eq!(t.get("/opennvr.v1.AuthService/Login").map(|p| p.access), Some(Access::Public));
        assert_eq!(t.get("/opennvr.v1.AuthService/WhoAmI").map(|p| p.access), Some(Access::SignedIn));
        assert_eq!(
            t.get("/opennvr.v1.UserService/CreateUser").map(|p| p.access),
            Some(Access::Permission(Permission::UserWrite))
        );
        let delete = t.get("/opennvr.v1.CameraService/DeleteCamera").unwrap();
        assert_eq!((delete.step_up, delete.camera_scoped), (StepUp::Yes, true));
        let enrol = t.get("/opennvr.v1.AuthService/StartTotpEnrollment").unwrap();
        assert_eq!((enrol.step_up, enrol.enrolment_only), (StepUp::Enrolled, true));
        assert!(!t.get("/opennvr.v1.CameraService/ListCameras").unwrap().streaming);
        assert!(t.get("/opennvr.v1.EventService/WatchEvents").unwrap().streaming);
        assert!(t.paths().len() > 50);
    }

    #[test]
    fn mirror_tag_is_the_declared_extension_number() {
        let set = prost_types::FileDescriptorSet::decode(opennvr_proto::FILE_DESCRIPTOR_SET).unwrap();
        let ext = set
            .file
            .iter()
            .flat_map(|f| f.extension.iter().map(move |e| (f.package(), e)))
            .find(|(package, e)| *package == "opennvr.v1" && e.name() == "policy")
            .map(|(_, e)| e)
            .unwrap();
        assert_eq!(ext.extendee(), ".google.protobuf.MethodOptions");
        assert_eq!(ext.number(), 50700, "keep wire::MethodOptions' tag equal to options.proto");
    }

    /// A one-RPC descriptor of package `t` whose method carries `policy` (or no option at all).
    fn one_rpc(policy: Option<Policy>) -> Vec<u8> {
        let method = wire::MethodDescriptorProto {
            name: Some("Do".into()),
            options: policy.map(|p| wire::MethodOptions { policy: Some(p) }),
            server_streaming: None,
        };
        let service = wire::ServiceDescriptorProto { name: Some("S".into()), method: vec![method] };
        let file = wire::FileDescriptorProto { package: Some("t".into()), service: vec![service] };
        wire::FileDescriptorSet { file: vec![file] }.encode_to_vec()
    }

    fn fine() -> Policy {
        Policy {
            access: Some(Who::Permission("user.read".into())),
            camera_scoped: Some(false),
            step_up: Step::Yes.into(),
            enrolment_only_allowed: false,
        }
    }

    #[test]
    fn reads_a_valid_policy() {
        let t = PolicyTable::from_descriptor(&one_rpc(Some(fine())), "t").unwrap();
        assert_eq!(
            t.get("/t.S/Do"),
            Some(&RpcPolicy {
                access: Access::Permission(Permission::UserRead),
                camera_scoped: false,
                step_up: StepUp::Yes,
                enrolment_only: false,
                streaming: false
            })
        );
    }

    #[test]
    fn refuses_a_method_without_a_valid_policy() {
        let refused = |policy: Option<Policy>| PolicyTable::from_descriptor(&one_rpc(policy), "t").is_err();
        assert!(refused(None), "no option at all");
        assert!(refused(Some(Policy { access: None, ..fine() })));
        assert!(refused(Some(Policy { access: Some(Who::Permission("users.read".into())), ..fine() })));
        assert!(refused(Some(Policy { access: Some(Who::Public(false)), ..fine() })));
        assert!(refused(Some(Policy { camera_scoped: None, ..fine() })));
        assert!(refused(Some(Policy { step_up: Step::Unspecified.into(), ..fine() })));
        assert!(refused(Some(Policy { step_up: 9, ..fine() })));
        let msg = convert(None).unwrap_err();
        assert!(msg.contains("opennvr.v1.policy"), "{msg}");
    }
}
