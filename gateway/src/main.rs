//! The `doumi-gateway` binary: read the settings, then run the library.

use clap::Parser;
use doumi_runtime::telemetry;

/// doumi's WeChat gateway (HTTP: /wechat, /healthz, /readyz, /metrics).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    gateway: doumi_gateway::GatewayArgs,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    doumi_runtime::service_main(
        "gateway",
        &cli.telemetry,
        |problems| cli.gateway.config(problems),
        |config| config.listen,
        doumi_gateway::run,
    )
    .await;
}
