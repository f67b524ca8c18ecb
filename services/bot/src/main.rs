//! The `doumi-bot` binary: settings, telemetry, listener, run.

use clap::Parser;
use doumi_runtime::{settings::Problems, telemetry};

/// doumi's bot (gRPC: doumi.bot.v1.Bot).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    bot: doumi_bot::BotArgs,
    #[command(flatten)]
    log: telemetry::LogArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    telemetry::init(cli.log.format);
    let mut problems = Problems::new();
    let config = cli.bot.config(&mut problems);
    let config = problems.finish(config).unwrap_or_else(|e| e.exit());
    let listener = doumi_runtime::bind_or_exit(config.listen).await;
    if let Err(error) = doumi_bot::run(config, listener, doumi_runtime::shutdown::signal()).await {
        tracing::error!(error = %error, "bot stopped");
        std::process::exit(1);
    }
}
