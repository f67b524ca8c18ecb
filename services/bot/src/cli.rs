//! The `doumi-bot` binary's command line, here rather than in `main.rs` so
//! the tests (manifests, traces, the settings table) read the very flags and
//! variables the binary parses.

use doumi_runtime::{redis::RedisArgs, settings::Problems, telemetry::TelemetryArgs};

use crate::{
    config::{BotArgs, BotConfig},
    startup,
};

/// doumi's bot (gRPC: doumi.bot.v1.Bot).
#[derive(Debug, clap::Parser)]
#[command(name = "doumi-bot", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub bot: BotArgs,
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
            "bot",
            &self.telemetry,
            |problems| self.config(problems),
            |config| config.listen,
            startup::run,
        )
        .await;
    }
}

impl Cli {
    /// The bot's settings with Redis's, every problem recorded.
    pub fn config(&self, problems: &mut Problems) -> Option<BotConfig> {
        let redis = self.redis.settings(problems);
        self.bot.config(problems, redis)
    }
}
