//! The catalog's settings: flags and `DOUMI_*` variables in, typed config out.

use std::{net::SocketAddr, time::Duration};

use doumi_runtime::settings::Problems;
use secrecy::SecretString;

use crate::douban::DoubanSettings;

/// Command-line flags and environment variables, as clap read them.
#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "DOUMI_CATALOG_LISTEN", default_value = "0.0.0.0:50052")]
    pub catalog_listen: String,
    /// Redis for the shared book cache, e.g. redis://127.0.0.1:6379; unset = in-process cache.
    #[arg(long, env = "DOUMI_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Douban API v2 or a v2-compatible server; unset = the bundled sample catalog.
    #[arg(long, env = "DOUMI_DOUBAN_BASE_URL")]
    pub douban_base_url: Option<String>,
    /// Douban apikey, sent as ?apikey=; optional.
    #[arg(long, env = "DOUMI_DOUBAN_APIKEY", hide_env_values = true)]
    pub douban_apikey: Option<String>,
    /// Time allowed for one Douban request.
    #[arg(long, env = "DOUMI_DOUBAN_TIMEOUT", default_value = "8s")]
    pub douban_timeout: String,
    /// How long a fetched book stays cached.
    #[arg(long, env = "DOUMI_CACHE_TTL", default_value = "24h")]
    pub cache_ttl: String,
}

/// Where books come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The bundled sample catalog: offline, no upstream.
    Sample,
    Douban(DoubanSettings),
}

/// The catalog's validated configuration.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub listen: SocketAddr,
    pub source: Source,
    pub redis_url: Option<String>,
    pub cache_ttl: Duration,
}

impl CatalogConfig {
    /// Offline defaults: sample catalog, in-process cache. Used by tests and `doumi up`.
    pub fn offline(listen: SocketAddr) -> Self {
        Self {
            listen,
            source: Source::Sample,
            redis_url: None,
            cache_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Unset and empty mean the same thing for optional settings.
pub(crate) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl CatalogArgs {
    /// Validates every setting, recording each problem in `problems`.
    pub fn config(&self, problems: &mut Problems) -> Option<CatalogConfig> {
        let listen = problems.socket_addr("DOUMI_CATALOG_LISTEN", &self.catalog_listen);
        let timeout = problems.duration("DOUMI_DOUBAN_TIMEOUT", &self.douban_timeout);
        let cache_ttl = problems.duration("DOUMI_CACHE_TTL", &self.cache_ttl);
        let redis_url = match non_empty(&self.redis_url) {
            None => Some(None),
            Some(url) => match redis::Client::open(url) {
                Ok(_) => Some(Some(url.to_owned())),
                Err(e) => {
                    problems.add("DOUMI_REDIS_URL", format!("not a Redis URL: {e}"));
                    None
                }
            },
        };
        let base_url = non_empty(&self.douban_base_url)
            .map(|url| problems.http_url("DOUMI_DOUBAN_BASE_URL", url));
        let source = match base_url {
            None => Some(Source::Sample),
            Some(None) => None,
            Some(Some(base_url)) => timeout.map(|timeout| {
                Source::Douban(DoubanSettings {
                    base_url,
                    apikey: non_empty(&self.douban_apikey)
                        .map(|k| SecretString::from(k.to_owned())),
                    timeout,
                })
            }),
        };
        Some(CatalogConfig {
            listen: listen?,
            source: source?,
            redis_url: redis_url?,
            cache_ttl: cache_ttl?,
        })
    }
}
