//! Generates the inter-node gRPC service (proto/peer.proto) with tonic; needs `protoc`
//! (scripts/setup.sh installs protobuf-compiler).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/peer.proto");
    tonic_prost_build::configure().compile_protos(&["proto/peer.proto"], &["proto"])?;
    Ok(())
}
