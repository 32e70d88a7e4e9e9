//! OpenNVR's versioned wire contract: generated `opennvr.v1` messages, servers and clients. No logic.

/// Everything in the `opennvr.v1` protobuf package.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("opennvr.v1");
}

/// Encoded `FileDescriptorSet` of `opennvr.v1`, for gRPC reflection and descriptor walks.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("opennvr_v1_descriptor");
