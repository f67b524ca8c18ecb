//! Generates the gRPC code from `doumi/**/*.proto` with protox, so a fresh
//! machine needs no system `protoc`.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &["doumi/catalog/v1/catalog.proto", "doumi/bot/v1/bot.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=doumi");

    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;

    // compile_fds ignores file_descriptor_set_path, so reflection's descriptor
    // set is written by hand.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("doumi_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure().compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
