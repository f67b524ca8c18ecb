//! The bot's settings.

use std::{net::SocketAddr, time::Duration};

use doumi_runtime::settings::Problems;

/// Command-line flags and environment variables, as clap read them.
#[derive(Debug, Clone, clap::Args)]
pub struct BotArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "DOUMI_BOT_LISTEN", default_value = "0.0.0.0:50051")]
    pub bot_listen: String,
    /// The book catalog's gRPC address.
    #[arg(
        long,
        env = "DOUMI_CATALOG_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub catalog_url: String,
    /// Upper bound on one catalog call; the caller's deadline, when shorter, rules
    /// (the gateway sends 15 s, or its delivery deadline when late replies are delivered).
    #[arg(long, env = "DOUMI_CATALOG_TIMEOUT", default_value = "60s")]
    pub catalog_timeout: String,
}

/// The bot's validated configuration.
#[derive(Debug, Clone)]
pub struct BotConfig {
    pub listen: SocketAddr,
    pub catalog_url: String,
    pub catalog_timeout: Duration,
}

impl BotArgs {
    /// Validates every setting, recording each problem in `problems`.
    pub fn config(&self, problems: &mut Problems) -> Option<BotConfig> {
        let listen = problems.socket_addr("DOUMI_BOT_LISTEN", &self.bot_listen);
        let catalog_url = problems.http_url("DOUMI_CATALOG_URL", &self.catalog_url);
        let catalog_timeout = problems.duration("DOUMI_CATALOG_TIMEOUT", &self.catalog_timeout);
        Some(BotConfig {
            listen: listen?,
            catalog_url: catalog_url?,
            catalog_timeout: catalog_timeout?,
        })
    }
}

impl BotConfig {
    /// Defaults pointed at a catalog; used by tests and `doumi up`.
    pub fn new(listen: SocketAddr, catalog_url: String) -> Self {
        Self {
            listen,
            catalog_url,
            catalog_timeout: Duration::from_secs(60),
        }
    }
}
