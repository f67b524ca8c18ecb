//! The `doumi-catalog` binary: settings, telemetry, listener, run.

use clap::Parser;
use doumi_runtime::{settings::Problems, telemetry};

/// doumi's book catalog (gRPC: doumi.catalog.v1.BookCatalog).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    catalog: doumi_catalog::CatalogArgs,
    #[command(flatten)]
    log: telemetry::LogArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    telemetry::init(cli.log.format);
    let mut problems = Problems::new();
    let config = cli.catalog.config(&mut problems);
    let config = problems.finish(config).unwrap_or_else(|e| e.exit());
    let listener = doumi_runtime::bind_or_exit(config.listen).await;
    if let Err(error) =
        doumi_catalog::run(config, listener, doumi_runtime::shutdown::signal()).await
    {
        tracing::error!(error = %error, "catalog stopped");
        std::process::exit(1);
    }
}
