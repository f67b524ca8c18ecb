//! The bot's settings.

use std::{net::SocketAddr, time::Duration};

use doumi_runtime::{
    grpc::{DialSettings, Target},
    ports,
    redis::RedisSettings,
    settings::{Problems, duration_text},
};

use doumi_runtime::rate::RateLimit;

/// Upper bound on one catalog call, by default: above any deadline the
/// gateway sends, so the caller's deadline rules.
pub const DEFAULT_CATALOG_TIMEOUT: Duration = Duration::from_secs(60);

/// Lookups one reader may make, by default.
pub const DEFAULT_READER_RATE_LIMIT: &str = "20/min";

/// Where readers' photos may be fetched from, by default: WeChat's image CDN,
/// the host of every `PicUrl` WeChat sends.
pub const DEFAULT_IMAGE_HOSTS: &str = "mmbiz.qpic.cn";

/// Command-line flags and environment variables, as clap read them.
#[derive(Debug, Clone, clap::Args)]
pub struct BotArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "DOUMI_BOT_LISTEN", default_value_t = ports::listen_on(ports::BOT))]
    pub bot_listen: String,
    /// Address of the Prometheus `/metrics` HTTP listener; `off` = none.
    #[arg(long, env = "DOUMI_BOT_METRICS_LISTEN", default_value_t = ports::listen_on(ports::METRICS))]
    pub bot_metrics_listen: String,
    /// Where the catalog's replicas are: `dns:///host:port` (every address
    /// the name resolves to), `ipv4:addr:port,addr:port` or `http://host:port`.
    #[arg(
        long,
        env = "DOUMI_CATALOG_URL",
        default_value_t = ports::local_url(ports::CATALOG)
    )]
    pub catalog_url: String,
    /// How often the catalog's name is resolved again (new replicas, replicas gone).
    #[arg(
        long = "bot-resolve-interval",
        id = "bot_resolve_interval",
        env = "DOUMI_RESOLVE_INTERVAL",
        default_value_t = duration_text(DialSettings::DEFAULT.resolve_interval)
    )]
    pub resolve_interval: String,
    /// Upper bound on one catalog call; the caller's deadline, when shorter, rules
    /// (the gateway sends 15 s, or its delivery deadline when late replies are delivered).
    #[arg(long, env = "DOUMI_CATALOG_TIMEOUT", default_value_t = duration_text(DEFAULT_CATALOG_TIMEOUT))]
    pub catalog_timeout: String,
    /// Hosts whose images the bot may fetch to read a barcode in a photo,
    /// comma-separated; subdomains of a listed host count. The photo's URL
    /// comes from the message, so only hosts trusted to serve photos belong here.
    #[arg(long, env = "DOUMI_BOT_IMAGE_HOSTS", default_value = DEFAULT_IMAGE_HOSTS)]
    pub bot_image_hosts: String,
    /// Lookups one reader may make: `20/min` (per s, min or h; a quarter of
    /// it at once), or `off`.
    #[arg(long, env = "DOUMI_READER_RATE_LIMIT", default_value = DEFAULT_READER_RATE_LIMIT)]
    pub reader_rate_limit: String,
    /// How a single book is answered: `card` (a news card with the cover,
    /// text when the book has no cover or page) or `text`.
    #[arg(long, env = "DOUMI_BOT_BOOK_REPLY", value_enum, default_value_t)]
    pub bot_book_reply: BookReply,
}

/// The bot's validated configuration.
#[derive(Debug, Clone)]
pub struct BotConfig {
    pub listen: SocketAddr,
    /// `None` = no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Every replica of the catalog.
    pub catalog: Target,
    pub dial: DialSettings,
    pub catalog_timeout: Duration,
    /// Hosts photos may be fetched from (lowercase names or IP addresses).
    pub image_hosts: Vec<String>,
    /// Each reader's pace; `None` = no limit.
    pub rate_limit: Option<RateLimit>,
    pub book_reply: BookReply,
    /// Redis, shared by the replicas so each reader's pace is counted once
    /// and any replica continues a reader's search.
    pub redis: RedisSettings,
}

/// How a single book is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BookReply {
    /// A news card: the cover, title, authors, publisher and rating.
    #[default]
    Card,
    /// Plain text.
    Text,
}

impl BotArgs {
    /// Validates every setting, recording each problem in `problems`.
    /// `redis` is the binary's Redis settings, validated on their own.
    pub fn config(
        &self,
        problems: &mut Problems,
        redis: Option<RedisSettings>,
    ) -> Option<BotConfig> {
        let listen = problems.socket_addr("DOUMI_BOT_LISTEN", &self.bot_listen);
        let metrics_listen =
            problems.listen_or_off("DOUMI_BOT_METRICS_LISTEN", &self.bot_metrics_listen);
        let catalog = problems.grpc_target("DOUMI_CATALOG_URL", &self.catalog_url);
        let dial = problems.dial(&self.resolve_interval);
        let catalog_timeout = problems.duration("DOUMI_CATALOG_TIMEOUT", &self.catalog_timeout);
        let image_hosts = crate::barcode::parse_hosts(&self.bot_image_hosts)
            .map_err(|e| problems.add("DOUMI_BOT_IMAGE_HOSTS", e))
            .ok();
        let rate_limit = RateLimit::parse(&self.reader_rate_limit)
            .map_err(|e| problems.add("DOUMI_READER_RATE_LIMIT", e))
            .ok();
        Some(BotConfig {
            listen: listen?,
            metrics_listen: metrics_listen?,
            catalog: catalog?,
            dial: dial?,
            catalog_timeout: catalog_timeout?,
            image_hosts: image_hosts?,
            rate_limit: rate_limit?,
            book_reply: self.bot_book_reply,
            redis: redis?,
        })
    }
}

impl BotConfig {
    /// Defaults pointed at a catalog, without a metrics listener; used by
    /// tests and `doumi up`.
    pub fn new(listen: SocketAddr, catalog: Target) -> Self {
        Self {
            listen,
            metrics_listen: None,
            catalog,
            dial: DialSettings::DEFAULT,
            catalog_timeout: DEFAULT_CATALOG_TIMEOUT,
            image_hosts: crate::barcode::parse_hosts(DEFAULT_IMAGE_HOSTS).unwrap_or_default(),
            rate_limit: RateLimit::parse(DEFAULT_READER_RATE_LIMIT).ok().flatten(),
            book_reply: BookReply::default(),
            redis: RedisSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_flags_defaults_are_the_librarys() {
        let cli = crate::Cli::try_parse_from(["bot"]).unwrap();
        let mut problems = Problems::new();
        let config = cli.config(&mut problems);
        let parsed = problems.finish(config).unwrap();
        let library = BotConfig::new(parsed.listen, parsed.catalog.clone());
        assert_eq!(
            (
                parsed.dial,
                parsed.catalog_timeout,
                &parsed.image_hosts,
                parsed.rate_limit,
                parsed.book_reply
            ),
            (
                library.dial,
                library.catalog_timeout,
                &library.image_hosts,
                library.rate_limit,
                library.book_reply
            )
        );
        assert_eq!(
            Ok(parsed.catalog),
            ports::local_url(ports::CATALOG).parse::<Target>()
        );
        assert_eq!(parsed.listen.port(), ports::BOT);
    }
}
