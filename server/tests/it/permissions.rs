//! The permission matrix: every RPC in the proto descriptor, called by every role (and by nobody),
//! compared with the reviewed golden file `permissions.golden`. The golden file is written and
//! reviewed by people; a new RPC without a line there fails this test.
use crate::harness::TestServer;
use opennvr_sdk::pb;
use prost::Message;
use std::collections::BTreeMap;
use tonic::Code;

const GOLDEN: &str = include_str!("permissions.golden");
const CALLERS: [&str; 5] = ["anonymous", "admin", "operator", "viewer", "auditor"];

/// Every RPC of opennvr.v1: (Service.Method, server-streaming?).
pub fn rpcs() -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(opennvr_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for f in set.file.iter().filter(|f| f.package() == "opennvr.v1") {
        for s in &f.service {
            for m in &s.method {
                out.push((format!("{}.{}", s.name(), m.name()), m.server_streaming()));
            }
        }
    }
    out.sort();
    out
}

/// Calls `rpc` with an empty request: `Ok(true)` when the server let the call through its gate,
/// `Ok(false)` when it denied it, `Err` for an answer that is neither (a server fault).
pub async fn allowed(client: &opennvr_sdk::Client, rpc: &str, streaming: bool) -> Result<bool, tonic::Status> {
    let (service, method) = rpc.split_once('.').unwrap();
    let path: http::uri::PathAndQuery = format!("/opennvr.v1.{service}/{method}").parse().unwrap();
    let mut grpc = tonic::client::Grpc::new(client.channel());
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(());
    if let Some(secret) = client.credential() {
        req.metadata_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let result = if streaming {
        // Response headers mean the gate let the call through; a live stream need not be read.
        grpc.server_streaming(req, path, codec).await.map(|_| ())
    } else {
        grpc.unary(req, path, codec).await.map(|_| ())
    };
    match result {
        Ok(()) => Ok(true),
        Err(s) => match s.code() {
            Code::PermissionDenied | Code::Unauthenticated => Ok(false),
            // The call passed the gate and the handler judged the (empty) request.
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::Unimplemented => Ok(true),
            _ => Err(s),
        },
    }
}

fn parse_golden() -> BTreeMap<String, Vec<String>> {
    let mut header_seen = false;
    let mut out = BTreeMap::new();
    for line in GOLDEN.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !header_seen {
            assert_eq!(&cols[1..], &CALLERS, "golden header");
            header_seen = true;
            continue;
        }
        assert_eq!(cols.len(), 1 + CALLERS.len(), "golden line {line:?}");
        for c in &cols[1..] {
            assert!(*c == "allow" || *c == "deny", "golden line {line:?}");
        }
        assert!(
            out.insert(cols[0].to_owned(), cols[1..].iter().map(|s| s.to_string()).collect()).is_none(),
            "duplicate {line}"
        );
    }
    out
}

#[tokio::test]
async fn every_rpc_answers_every_role_as_the_golden_file_says() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let mut clients = vec![s.client().await, admin.clone()];
    for (name, role) in [("olga", pb::Role::Operator), ("vic", pb::Role::Viewer), ("aud", pb::Role::Auditor)] {
        clients.push(s.user(&admin, name, role).await);
    }
    let golden = parse_golden();
    let rpcs = rpcs();
    let mut problems = Vec::new();
    for (rpc, _) in &rpcs {
        if !golden.contains_key(rpc) {
            problems.push(format!("{rpc}: no line in permissions.golden (add one, reviewed)"));
        }
    }
    for name in golden.keys() {
        if !rpcs.iter().any(|(r, _)| r == name) {
            problems.push(format!("{name}: in permissions.golden but not in the proto"));
        }
    }
    // Logout ends the caller's session: call it last.
    let mut order: Vec<&(String, bool)> = rpcs.iter().filter(|(r, _)| r != "AuthService.Logout").collect();
    order.extend(rpcs.iter().filter(|(r, _)| r == "AuthService.Logout"));
    let mut table = String::new();
    for (rpc, streaming) in order {
        let mut row = Vec::new();
        for (caller, client) in CALLERS.iter().zip(&clients) {
            match allowed(client, rpc, *streaming).await {
                Ok(true) => row.push("allow".to_owned()),
                Ok(false) => row.push("deny".to_owned()),
                Err(st) => {
                    problems.push(format!("{rpc} as {caller}: unexpected {st:?}"));
                    row.push("error".to_owned());
                }
            }
        }
        table.push_str(&format!("{rpc:<48} {}\n", row.join(" ")));
        if let Some(expected) = golden.get(rpc)
            && *expected != row
        {
            problems.push(format!("{rpc}: golden {expected:?}, server {row:?}"));
        }
    }
    assert!(problems.is_empty(), "permission matrix differs:\n{}\n\nserver's matrix:\n{table}", problems.join("\n"));
}
