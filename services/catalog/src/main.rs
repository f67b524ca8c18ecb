//! The `doumi-catalog` binary: parse the command line, then run the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    doumi_catalog::Cli::parse().run().await;
}
