//! The `doumi-catalog` binary: read the settings, then run the library.

use clap::Parser;
use doumi_runtime::telemetry;

/// doumi's book catalog (gRPC: doumi.catalog.v1.BookCatalog).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    catalog: doumi_catalog::CatalogArgs,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    doumi_runtime::service_main(
        "catalog",
        &cli.telemetry,
        |problems| cli.catalog.config(problems),
        |config| config.listen,
        doumi_catalog::run,
    )
    .await;
}
