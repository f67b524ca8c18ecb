//! The `doumi-catalog` binary: parse the command line, then run the library.

use clap::Parser;

/// The binary allocates through jemalloc: a message's trip through the
/// services is dozens of small, short-lived allocations, which its
/// per-thread caches serve faster than glibc, at a small, steady footprint.
/// Chosen here, by the binary, not by a library its tests also link.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    doumi_catalog::Cli::parse().run().await;
}
