//! The `doumi-bot` binary: parse the command line, then run the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    doumi_bot::Cli::parse().run().await;
}
