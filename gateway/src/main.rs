//! The `doumi-gateway` binary: parse the command line, then run the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    doumi_gateway::Cli::parse().run().await;
}
