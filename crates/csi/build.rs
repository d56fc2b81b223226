//! Generates the CSI v1 messages and the Identity, Controller and Node services (clients and
//! servers) from `proto/csi.proto` with protoc.

fn main() -> std::io::Result<()> {
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_protos(&["proto/csi.proto"], &["proto"])
}
