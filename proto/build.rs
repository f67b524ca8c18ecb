//! Generates the gRPC code from `doumi/**/*.proto` with protox, so a fresh
//! machine needs no system `protoc`.

use std::{env, fs, path::PathBuf};

/// Each service's proto and the file its reflection descriptors go to: a
/// service lists only its own API (plus what it imports), not its neighbours'.
const SERVICES: &[(&str, &str)] = &[
    ("doumi/catalog/v1/catalog.proto", "catalog_descriptor.bin"),
    ("doumi/bot/v1/bot.proto", "bot_descriptor.bin"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=doumi");
    println!("cargo:rerun-if-changed=google");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut all = protox::Compiler::new(["."])?;
    all.include_source_info(true).include_imports(true);
    for (proto, descriptor) in SERVICES {
        all.open_file(proto)?;
        // compile_fds ignores file_descriptor_set_path, so reflection's
        // descriptor sets are written by hand.
        let mut one = protox::Compiler::new(["."])?;
        one.include_source_info(true).include_imports(true);
        one.open_file(proto)?;
        fs::write(out_dir.join(descriptor), one.encode_file_descriptor_set())?;
    }

    // google.rpc.Status is tonic-types' own generated type, so the details
    // helpers (StatusExt, ErrorDetails) work on what the catalog sends.
    tonic_prost_build::configure()
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(all.file_descriptor_set())?;
    Ok(())
}
