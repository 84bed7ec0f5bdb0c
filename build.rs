//! Compiles the contract without a system `protoc`: `protox` parses the proto files into a descriptor set,
//! which is written to `OUT_DIR` for server reflection and handed to `tonic-prost-build` for code generation.
//!
//! `google/rpc/status.proto` is vendored under `proto/` (the contract's batch answers carry a `google.rpc.Status`);
//! its Rust type is `tonic_types::pb::Status`, the one tonic's rich error details already use, so there is one
//! `Status` type and no second copy is generated.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &["proto/kgen/session/v1/session.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, [PROTO_ROOT])?;
    fs::write(
        out_dir.join("kgen_session_v1_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // The response carries access and refresh tokens: its `Debug` is written by hand, redacted.
        .skip_debug(["kgen.session.v1.CreateSessionResponse"])
        .extern_path(".google.rpc", "::tonic_types::pb")
        // Every RPC gets a default implementation answering UNIMPLEMENTED, so the contract can grow (new RPCs)
        // without breaking other implementations of the service trait, such as the benchmarks' echo server.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
