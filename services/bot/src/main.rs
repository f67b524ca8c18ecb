//! The `doumi-bot` binary: read the settings, then run the library.

use clap::Parser;
use doumi_runtime::telemetry;

/// doumi's bot (gRPC: doumi.bot.v1.Bot).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    bot: doumi_bot::BotArgs,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    doumi_runtime::service_main(
        "bot",
        &cli.telemetry,
        |problems| cli.bot.config(problems),
        |config| config.listen,
        doumi_bot::run,
    )
    .await;
}
