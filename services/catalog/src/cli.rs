//! The `doumi-catalog` binary's command line, here rather than in `main.rs` so
//! the tests (manifests, traces, the settings table) read the very flags and
//! variables the binary parses.

use doumi_runtime::{redis::RedisArgs, settings::Problems, telemetry::TelemetryArgs};

use crate::{
    config::{CatalogArgs, CatalogConfig},
    startup,
};

/// doumi's book catalog (gRPC: doumi.catalog.v1.BookCatalog).
#[derive(Debug, clap::Parser)]
#[command(name = "doumi-catalog", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Cli {
    /// The whole life of the binary: settings, telemetry, serving until
    /// SIGTERM, the drain (see `doumi_runtime::service_main`).
    pub async fn run(self) {
        doumi_runtime::service_main(
            "catalog",
            &self.telemetry,
            |problems| self.config(problems),
            |config| config.listen,
            startup::run,
        )
        .await;
    }
}

impl Cli {
    /// The catalog's settings with Redis's, every problem recorded.
    pub fn config(&self, problems: &mut Problems) -> Option<CatalogConfig> {
        let redis = self.redis.settings(problems);
        self.catalog.config(problems, redis)
    }
}
