//! Compiles every .proto under proto/ with protox (pure Rust, no system protoc) and generates
//! prost messages plus tonic clients and servers. The encoded descriptor set is kept for
//! server reflection, so grpcurl works without .proto files.

use std::{env, fs, io, path::PathBuf};

use protox::prost::Message;

const PROTOS: &[&str] = &[
    "orderly/common/v1/common.proto",
    "orderly/order/v1/order.proto",
    "orderly/inventory/v1/inventory.proto",
    "orderly/payment/v1/payment.proto",
    "orderly/notification/v1/notification.proto",
    "orderly/saga/v1/saga.proto",
    "orderly/events/v1/events.proto",
    "orderly/query/v1/query.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("orderly_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)
        .map_err(|error: io::Error| error.into())
}
