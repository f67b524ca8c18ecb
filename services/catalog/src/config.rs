//! The catalog's settings: flags and `DOUMI_*` variables in, typed config out.

use std::{fmt, net::SocketAddr, time::Duration};

use doumi_runtime::{
    ports,
    rate::RateLimit,
    redis::RedisSettings,
    settings::{Problems, duration_text, non_empty},
};
use secrecy::SecretString;

use crate::{
    cache::CachePolicy,
    providers::{DoubanSettings, ProviderKind, UpstreamPolicy},
};
use doumi_runtime::breaker::BreakerSettings;

/// Command-line flags and environment variables, as clap read them.
#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "DOUMI_CATALOG_LISTEN", default_value_t = ports::listen_on(ports::CATALOG))]
    pub catalog_listen: String,
    /// Address of the Prometheus `/metrics` HTTP listener; `off` = none.
    #[arg(
        long,
        env = "DOUMI_CATALOG_METRICS_LISTEN",
        default_value_t = ports::listen_on(ports::METRICS)
    )]
    pub catalog_metrics_listen: String,
    /// Book providers in the order they are asked, from douban, openlibrary,
    /// googlebooks, sample. Default: douban,openlibrary,googlebooks when a
    /// Douban base URL is set, else sample (the bundled sample catalog).
    #[arg(long, env = "DOUMI_PROVIDERS")]
    pub providers: Option<String>,
    /// Douban API v2 or a v2-compatible server; unset = the bundled sample catalog.
    #[arg(long, env = "DOUMI_DOUBAN_BASE_URL")]
    pub douban_base_url: Option<String>,
    /// Douban apikey, sent as ?apikey=; optional.
    #[arg(long, env = "DOUMI_DOUBAN_APIKEY", hide_env_values = true)]
    pub douban_apikey: Option<String>,
    /// Time allowed for one Douban request (see `DoubanSettings::DEFAULT_TIMEOUT`);
    /// empty: the upstream timeout every provider gets.
    #[arg(long, env = "DOUMI_DOUBAN_TIMEOUT", default_value_t = duration_text(DoubanSettings::DEFAULT_TIMEOUT))]
    pub douban_timeout: String,
    /// Open Library, asked after Douban for ISBN lookups and keyword search.
    #[arg(
        long,
        env = "DOUMI_OPENLIBRARY_BASE_URL",
        default_value = "https://openlibrary.org"
    )]
    pub openlibrary_base_url: String,
    /// Google Books, asked after Open Library for ISBN lookups and keyword search.
    #[arg(
        long,
        env = "DOUMI_GOOGLEBOOKS_BASE_URL",
        default_value = "https://www.googleapis.com"
    )]
    pub googlebooks_base_url: String,
    /// Google Books API key, sent as &key=; optional (anonymous calls share a small quota).
    #[arg(long, env = "DOUMI_GOOGLEBOOKS_APIKEY", hide_env_values = true)]
    pub googlebooks_apikey: Option<String>,
    /// Who to contact about doumi's requests (an e-mail address or a URL),
    /// sent in the User-Agent: Open Library asks identified callers to say
    /// so, and holds anonymous ones to a lower rate.
    #[arg(long, env = "DOUMI_UPSTREAM_CONTACT")]
    pub upstream_contact: Option<String>,
    /// At most this many Douban requests (e.g. 100/min, a quarter at once);
    /// over it a lookup goes to the next provider. `off` = no cap.
    #[arg(long, env = "DOUMI_DOUBAN_RATE", default_value = "off")]
    pub douban_rate: String,
    /// At most this many Open Library requests, as DOUMI_DOUBAN_RATE.
    #[arg(long, env = "DOUMI_OPENLIBRARY_RATE", default_value = "off")]
    pub openlibrary_rate: String,
    /// At most this many Google Books requests, as DOUMI_DOUBAN_RATE.
    #[arg(long, env = "DOUMI_GOOGLEBOOKS_RATE", default_value = "off")]
    pub googlebooks_rate: String,
    /// Time allowed for one request to a provider.
    #[arg(long, env = "DOUMI_UPSTREAM_TIMEOUT", default_value_t = duration_text(UpstreamPolicy::DEFAULT.timeout))]
    pub upstream_timeout: String,
    /// Retries after a transient provider failure (5xx, timeout, connection).
    #[arg(long, env = "DOUMI_UPSTREAM_RETRIES", default_value_t = UpstreamPolicy::DEFAULT.retries.to_string())]
    pub upstream_retries: String,
    /// Wait before the first retry; doubled for each next one.
    #[arg(long, env = "DOUMI_UPSTREAM_BACKOFF", default_value_t = duration_text(UpstreamPolicy::DEFAULT.backoff))]
    pub upstream_backoff: String,
    /// Requests in flight to one provider at most.
    #[arg(long, env = "DOUMI_UPSTREAM_CONCURRENCY", default_value_t = UpstreamPolicy::DEFAULT.concurrency.to_string())]
    pub upstream_concurrency: String,
    /// Failed calls in a row that open a provider's circuit.
    #[arg(long, env = "DOUMI_CIRCUIT_FAILURES", default_value_t = UpstreamPolicy::DEFAULT.breaker.failure_threshold.to_string())]
    pub circuit_failures: String,
    /// How long an open circuit refuses calls before one probe.
    #[arg(long, env = "DOUMI_CIRCUIT_COOLDOWN", default_value_t = duration_text(UpstreamPolicy::DEFAULT.breaker.cooldown))]
    pub circuit_cooldown: String,
    /// How long a fetched book is fresh (soft TTL); after that it is served
    /// stale and refreshed in the background.
    #[arg(long, env = "DOUMI_CACHE_TTL", default_value_t = duration_text(CachePolicy::DEFAULT.soft_ttl))]
    pub cache_ttl: String,
    /// How long a book may be served at all (hard TTL), e.g. while providers are down.
    #[arg(long, env = "DOUMI_CACHE_HARD_TTL", default_value_t = duration_text(CachePolicy::DEFAULT.hard_ttl))]
    pub cache_hard_ttl: String,
    /// How long "no such book" is remembered.
    #[arg(long, env = "DOUMI_CACHE_NEGATIVE_TTL", default_value_t = duration_text(CachePolicy::DEFAULT.negative_ttl))]
    pub cache_negative_ttl: String,
}

/// One book provider and where to reach it.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    Douban(DoubanSettings),
    OpenLibrary {
        base_url: String,
    },
    GoogleBooks {
        base_url: String,
        apikey: Option<SecretString>,
    },
    /// The bundled sample catalog: offline, no upstream.
    Sample,
}

impl ProviderSettings {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::Douban(_) => ProviderKind::Douban,
            Self::OpenLibrary { .. } => ProviderKind::OpenLibrary,
            Self::GoogleBooks { .. } => ProviderKind::GoogleBooks,
            Self::Sample => ProviderKind::Sample,
        }
    }
}

/// Where books come from: providers in the order they are asked.
#[derive(Debug, Clone)]
pub struct Source {
    pub providers: Vec<ProviderSettings>,
    /// Who the providers may contact about doumi's requests.
    pub contact: Option<String>,
    /// The request rate each capped provider is held to.
    pub caps: Vec<(ProviderKind, RateLimit)>,
}

impl Source {
    /// The bundled sample catalog alone: the offline default.
    pub fn sample() -> Self {
        Self {
            providers: vec![ProviderSettings::Sample],
            contact: None,
            caps: Vec::new(),
        }
    }

    /// What every request to a provider says it is: doumi and its version,
    /// and the operator's contact when there is one.
    pub fn user_agent(&self) -> String {
        let doumi = concat!("doumi/", env!("CARGO_PKG_VERSION"));
        match &self.contact {
            Some(contact) => format!("{doumi} (+{contact})"),
            None => doumi.to_owned(),
        }
    }

    /// Douban (or a v2-compatible server) alone, without fallbacks, each
    /// request allowed `timeout` (the operators' default is
    /// [`DoubanSettings::DEFAULT_TIMEOUT`]).
    pub fn douban_only(base_url: String, timeout: Duration) -> Self {
        Self {
            providers: vec![ProviderSettings::Douban(DoubanSettings {
                base_url,
                apikey: None,
                timeout: Some(timeout),
            })],
            contact: None,
            caps: Vec::new(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let described: Vec<String> = self
            .providers
            .iter()
            .map(|p| match p {
                ProviderSettings::Douban(d) => format!("Douban at {}", d.base_url),
                ProviderSettings::OpenLibrary { base_url } => {
                    format!("Open Library at {base_url}")
                }
                ProviderSettings::GoogleBooks { base_url, .. } => {
                    format!("Google Books at {base_url}")
                }
                ProviderSettings::Sample => "bundled sample catalog".to_owned(),
            })
            .collect();
        f.write_str(&described.join(", then "))
    }
}

/// The catalog's validated configuration.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub listen: SocketAddr,
    /// `None` = no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    pub source: Source,
    /// Redis for the shared book cache (the in-process tier stays in front).
    pub redis: RedisSettings,
    pub cache: CachePolicy,
    pub upstream: UpstreamPolicy,
}

impl CatalogConfig {
    /// Offline defaults: sample catalog, in-process cache, no metrics
    /// listener. Used by tests and as a base to adjust.
    pub fn offline(listen: SocketAddr) -> Self {
        Self {
            listen,
            metrics_listen: None,
            source: Source::sample(),
            redis: RedisSettings::default(),
            cache: CachePolicy::DEFAULT,
            upstream: UpstreamPolicy::DEFAULT,
        }
    }
}

impl CatalogArgs {
    /// Validates every setting, recording each problem in `problems`.
    /// `redis` is the binary's Redis settings, validated on their own.
    pub fn config(
        &self,
        problems: &mut Problems,
        redis: Option<RedisSettings>,
    ) -> Option<CatalogConfig> {
        let listen = problems.socket_addr("DOUMI_CATALOG_LISTEN", &self.catalog_listen);
        let metrics_listen =
            problems.listen_or_off("DOUMI_CATALOG_METRICS_LISTEN", &self.catalog_metrics_listen);
        let cache = self.cache_policy(problems);
        let upstream = self.upstream_policy(problems);
        let source = self.source(problems);
        Some(CatalogConfig {
            listen: listen?,
            metrics_listen: metrics_listen?,
            source: source?,
            redis: redis?,
            cache: cache?,
            upstream: upstream?,
        })
    }

    fn cache_policy(&self, problems: &mut Problems) -> Option<CachePolicy> {
        let soft_ttl = problems.duration("DOUMI_CACHE_TTL", &self.cache_ttl);
        let hard_ttl = problems.duration("DOUMI_CACHE_HARD_TTL", &self.cache_hard_ttl);
        let negative_ttl = problems.duration("DOUMI_CACHE_NEGATIVE_TTL", &self.cache_negative_ttl);
        if let (Some(soft), Some(hard)) = (soft_ttl, hard_ttl)
            && hard < soft
        {
            problems.add(
                "DOUMI_CACHE_HARD_TTL",
                format!("{hard:?} is shorter than DOUMI_CACHE_TTL ({soft:?})"),
            );
            return None;
        }
        Some(CachePolicy {
            soft_ttl: soft_ttl?,
            hard_ttl: hard_ttl?,
            negative_ttl: negative_ttl?,
            ..CachePolicy::DEFAULT
        })
    }

    fn upstream_policy(&self, problems: &mut Problems) -> Option<UpstreamPolicy> {
        let timeout = problems.duration("DOUMI_UPSTREAM_TIMEOUT", &self.upstream_timeout);
        let retries = problems.number("DOUMI_UPSTREAM_RETRIES", &self.upstream_retries, 0..=10);
        let backoff = problems.duration("DOUMI_UPSTREAM_BACKOFF", &self.upstream_backoff);
        let concurrency = problems.number(
            "DOUMI_UPSTREAM_CONCURRENCY",
            &self.upstream_concurrency,
            1..=10_000,
        );
        let failures = problems.number("DOUMI_CIRCUIT_FAILURES", &self.circuit_failures, 1..=1000);
        let cooldown = problems.duration("DOUMI_CIRCUIT_COOLDOWN", &self.circuit_cooldown);
        Some(UpstreamPolicy {
            timeout: timeout?,
            retries: retries?,
            backoff: backoff?,
            concurrency: concurrency?,
            breaker: BreakerSettings {
                failure_threshold: failures?,
                cooldown: cooldown?,
            },
        })
    }

    fn source(&self, problems: &mut Problems) -> Option<Source> {
        let douban_url = non_empty(&self.douban_base_url)
            .map(|url| problems.http_url("DOUMI_DOUBAN_BASE_URL", url));
        let douban_timeout = Some(self.douban_timeout.trim())
            .filter(|t| !t.is_empty())
            .map(|t| problems.duration("DOUMI_DOUBAN_TIMEOUT", t));
        let mut ok = true;
        let kinds: Vec<ProviderKind> = match non_empty(&self.providers) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .filter_map(|name| {
                    let kind = ProviderKind::from_name(name);
                    if kind.is_none() {
                        let known: Vec<&str> = ProviderKind::ALL.map(ProviderKind::name).to_vec();
                        problems.add(
                            "DOUMI_PROVIDERS",
                            format!("unknown provider {name:?} ({})", known.join(", ")),
                        );
                        ok = false;
                    }
                    kind
                })
                .collect(),
            None if douban_url.is_some() => ProviderKind::FULL_CHAIN.to_vec(),
            None => vec![ProviderKind::Sample],
        };
        if kinds.is_empty() {
            if ok {
                problems.add("DOUMI_PROVIDERS", "names no provider");
            }
            return None;
        }
        let mut providers = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            if kinds[..i].contains(kind) {
                problems.add("DOUMI_PROVIDERS", format!("{kind} is listed twice"));
                ok = false;
                continue;
            }
            let provider = match kind {
                ProviderKind::Douban => match &douban_url {
                    Some(Some(base_url)) => Some(ProviderSettings::Douban(DoubanSettings {
                        base_url: base_url.clone(),
                        apikey: non_empty(&self.douban_apikey)
                            .map(|k| SecretString::from(k.to_owned())),
                        timeout: douban_timeout.flatten(),
                    })),
                    // Already reported as a bad DOUMI_DOUBAN_BASE_URL.
                    Some(None) => None,
                    None => {
                        problems.add(
                            "DOUMI_PROVIDERS",
                            "douban is listed but DOUMI_DOUBAN_BASE_URL is unset",
                        );
                        None
                    }
                },
                ProviderKind::OpenLibrary => problems
                    .http_url("DOUMI_OPENLIBRARY_BASE_URL", &self.openlibrary_base_url)
                    .map(|base_url| ProviderSettings::OpenLibrary { base_url }),
                ProviderKind::GoogleBooks => problems
                    .http_url("DOUMI_GOOGLEBOOKS_BASE_URL", &self.googlebooks_base_url)
                    .map(|base_url| ProviderSettings::GoogleBooks {
                        base_url,
                        apikey: non_empty(&self.googlebooks_apikey)
                            .map(|k| SecretString::from(k.to_owned())),
                    }),
                ProviderKind::Sample => Some(ProviderSettings::Sample),
            };
            match provider {
                Some(p) => providers.push(p),
                None => ok = false,
            }
        }
        if matches!(douban_timeout, Some(None)) {
            ok = false;
        }
        let contact = non_empty(&self.upstream_contact).map(str::to_owned);
        if contact.as_deref().is_some_and(|c| {
            c.len() > 200
                || !c.chars().all(|ch| ch.is_ascii_graphic())
                || !(c.contains('@') || c.starts_with("https://") || c.starts_with("http://"))
        }) {
            problems.add(
                "DOUMI_UPSTREAM_CONTACT",
                "must be an e-mail address or an http(s) URL, without spaces",
            );
            ok = false;
        }
        let mut caps = Vec::new();
        for (kind, name, value) in [
            (ProviderKind::Douban, "DOUMI_DOUBAN_RATE", &self.douban_rate),
            (
                ProviderKind::OpenLibrary,
                "DOUMI_OPENLIBRARY_RATE",
                &self.openlibrary_rate,
            ),
            (
                ProviderKind::GoogleBooks,
                "DOUMI_GOOGLEBOOKS_RATE",
                &self.googlebooks_rate,
            ),
        ] {
            match RateLimit::parse(value) {
                Ok(Some(cap)) => caps.push((kind, cap)),
                Ok(None) => {}
                Err(problem) => {
                    problems.add(name, problem);
                    ok = false;
                }
            }
        }
        ok.then_some(Source {
            providers,
            contact,
            caps,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(args: &[&str]) -> Result<CatalogConfig, String> {
        let cli =
            crate::Cli::try_parse_from(std::iter::once("catalog").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        let mut problems = Problems::new();
        let config = cli.config(&mut problems);
        problems.finish(config).map_err(|e| e.to_string())
    }

    fn names(config: &CatalogConfig) -> Vec<&'static str> {
        config
            .source
            .providers
            .iter()
            .map(|p| p.kind().name())
            .collect()
    }

    #[test]
    fn offline_by_default_and_the_full_chain_with_a_douban_url() {
        let offline = config(&[]).unwrap();
        assert_eq!(names(&offline), ["sample"]);
        assert_eq!(
            offline.metrics_listen,
            Some("0.0.0.0:9090".parse().unwrap())
        );
        let online = config(&["--douban-base-url", "https://douban.example/"]).unwrap();
        assert_eq!(names(&online), ["douban", "openlibrary", "googlebooks"]);
        assert_eq!(
            online.source.to_string(),
            "Douban at https://douban.example, then Open Library at https://openlibrary.org, \
             then Google Books at https://www.googleapis.com"
        );
    }

    #[test]
    fn the_flags_defaults_are_the_librarys() {
        let parsed = config(&[]).unwrap();
        let library = CatalogConfig::offline(parsed.listen);
        assert_eq!(
            (parsed.redis.policy, parsed.cache, parsed.upstream),
            (library.redis.policy, library.cache, library.upstream)
        );
        assert_eq!(parsed.listen.port(), ports::CATALOG);
    }

    #[test]
    fn providers_in_the_order_given() {
        let c = config(&["--providers", "googlebooks, OpenLibrary"]).unwrap();
        assert_eq!(names(&c), ["googlebooks", "openlibrary"]);
        let metrics_off = config(&["--catalog-metrics-listen", "off"]).unwrap();
        assert_eq!(metrics_off.metrics_listen, None);
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let error = config(&[
            "--providers",
            "douban,goodreads,sample,sample",
            "--upstream-retries",
            "many",
            "--cache-ttl",
            "48h",
            "--cache-hard-ttl",
            "24h",
            "--redis-timeout",
            "soon",
        ])
        .unwrap_err();
        for part in [
            "DOUMI_DOUBAN_BASE_URL is unset",
            "unknown provider \"goodreads\"",
            "sample is listed twice",
            "DOUMI_UPSTREAM_RETRIES",
            "DOUMI_CACHE_HARD_TTL",
            "DOUMI_REDIS_TIMEOUT",
        ] {
            assert!(error.contains(part), "{part:?} missing in {error}");
        }
    }

    #[test]
    fn apikeys_never_print() {
        let c = config(&[
            "--douban-base-url",
            "https://d.example",
            "--douban-apikey",
            "0df993c66c0c636e29ecbb5344252a4a",
            "--googlebooks-apikey",
            "AIzaSecret",
        ])
        .unwrap();
        let printed = format!("{c:?} {}", c.source);
        assert!(
            !printed.contains("0df993c6") && !printed.contains("AIzaSecret"),
            "{printed}"
        );
    }

    #[test]
    fn the_operator_s_contact_goes_into_the_user_agent() {
        let anonymous = config(&[]).unwrap();
        assert_eq!(
            anonymous.source.user_agent(),
            concat!("doumi/", env!("CARGO_PKG_VERSION"))
        );
        let named = config(&["--upstream-contact", "books-ops@example.org"]).unwrap();
        assert!(
            named
                .source
                .user_agent()
                .ends_with(" (+books-ops@example.org)"),
            "{}",
            named.source.user_agent()
        );
        for bad in ["nobody", "ops@example.org\r\nX-Evil: 1", "a b@c"] {
            let error = config(&["--upstream-contact", bad]).unwrap_err();
            assert!(error.contains("DOUMI_UPSTREAM_CONTACT"), "{bad}: {error}");
        }
    }
}
