//! Compiles `proto/**/*.proto` into Rust with prost, using protox so that no
//! system `protoc` is needed on a fresh machine.

use std::path::PathBuf;

const PROTO_ROOT: &str = "proto";
const FILES: &[&str] = &[
    "convene/relay/v1/common.proto",
    "convene/relay/v1/requests.proto",
    "convene/relay/v1/responses.proto",
    "convene/relay/v1/pushes.proto",
    "convene/relay/v1/envelope.proto",
    "convene/content/v1/content.proto",
    "convene/trust/v1/trust.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<PathBuf> = FILES
        .iter()
        .map(|f| PathBuf::from(PROTO_ROOT).join(f))
        .collect();
    for path in &paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let descriptors = protox::compile(&paths, [PROTO_ROOT])?;
    prost_build::Config::new()
        .bytes([".convene.relay", ".convene.content"])
        .compile_fds(descriptors)?;
    Ok(())
}
