//! doumi's book catalog: ISBN rules, a provider chain (Douban v2 first, Open
//! Library and Google Books as fallbacks, or the bundled sample catalog), and
//! a two-tier cache that keeps answering through faults — served as the
//! `doumi.catalog.v1.BookCatalog` gRPC API, with Prometheus metrics beside it.
//!
//! A request flows top to bottom through the tree:
//!
//! - `api/`: the gRPC face — request checks, page tokens, field masks, the
//!   one mapping of errors to statuses (with `google.rpc` details), health.
//! - `cache/`: the core ([`Books`]) — memory tier, Redis tier, search pages,
//!   stale-while-refresh and coalesced fetches.
//! - `providers/`: where books come from — one module per provider, the
//!   chain that asks them in order, and the manners each call keeps
//!   (timeouts, retries, concurrency, circuit breaker).
//! - beside them, what all three share: ISBNs, lookup keys, settings and
//!   metrics (the caller's deadline and the circuit breaker come from
//!   `doumi_runtime`).
#![forbid(unsafe_code)]

mod api;
mod cache;
mod cli;
mod config;
pub mod isbn;
mod key;
pub mod metrics;
mod providers;

use std::{future::Future, sync::Arc};

use doumi_proto::catalog::v1::book_catalog_server::BookCatalogServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cache::{Books, CachePolicy, RedisPolicy};
pub use cli::Cli;
pub use config::{CatalogArgs, CatalogConfig, ProviderSettings, Source};
pub use doumi_runtime::breaker::BreakerSettings;
pub use doumi_runtime::deadline::Deadline;
pub use providers::{
    BookProvider, DoubanSettings, ProviderChain, ProviderError, ProviderKind, SearchPage, Upstream,
    UpstreamPolicy,
};

use doumi_runtime::redis::SharedRedis;

use crate::{api::CatalogService, cache::RedisCache};

/// Why the catalog could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the bundled sample catalog is malformed")]
    Sample(#[source] serde_json::Error),
    #[error("building an HTTP client for the providers failed")]
    HttpClient(#[source] reqwest::Error),
    #[error("setting up the Redis cache failed")]
    Redis(#[source] redis::RedisError),
    #[error(transparent)]
    MetricsListen(#[from] doumi_runtime::metrics::ListenError),
    #[error(transparent)]
    Serve(#[from] doumi_runtime::grpc::ServeError),
}

/// The listeners the catalog serves on, bound by the caller.
pub struct Listeners {
    pub grpc: TcpListener,
    /// `None` = no metrics endpoint.
    pub metrics: Option<TcpListener>,
}

/// Runs the catalog on a pre-bound gRPC `listener` (binding the metrics
/// listener from the config, if any) until `shutdown` resolves.
pub async fn run(
    config: CatalogConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let metrics = match config.metrics_listen {
        Some(addr) => Some(doumi_runtime::metrics::bind(addr).await?),
        None => None,
    };
    serve(
        config,
        Listeners {
            grpc: listener,
            metrics,
        },
        shutdown,
    )
    .await
}

/// Runs the catalog on pre-bound listeners until `shutdown` resolves.
pub async fn serve(
    config: CatalogConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let chain = provider_chain(&config.source, config.upstream)?;
    tracing::info!(source = %config.source, "book providers");
    let redis = match &config.redis.target {
        Some(url) => {
            tracing::info!("caching books in Redis, with an in-process tier in front");
            let shared = SharedRedis::connect(url, config.redis.policy, "catalog")
                .map_err(StartError::Redis)?;
            Some(RedisCache::new(shared))
        }
        None => None,
    };
    let books = Books::new(chain, redis, config.cache);

    // Everything beside the gRPC server stops with it.
    let stop = CancellationToken::new();
    let _stop_on_return = stop.clone().drop_guard();
    metrics::install();
    if let Some(listener) = listeners.metrics {
        doumi_runtime::metrics::spawn(listener, stop.clone().cancelled_owned());
    }
    let reporter = tonic_health::server::HealthReporter::new();
    tokio::spawn(api::health::report(
        books.clone(),
        reporter.clone(),
        stop.clone(),
    ));

    let service = CatalogService::new(books);
    tracing::info!(addr = ?listeners.grpc.local_addr().ok(), "catalog listening");
    doumi_runtime::grpc::serve(
        BookCatalogServer::new(service),
        doumi_proto::catalog::v1::FILE_DESCRIPTOR_SET,
        listeners.grpc,
        shutdown,
        reporter,
    )
    .await?;
    Ok(())
}

/// The configured providers in their order, each behind the upstream policy.
fn provider_chain(source: &Source, policy: UpstreamPolicy) -> Result<ProviderChain, StartError> {
    let mut upstreams = Vec::with_capacity(source.providers.len());
    let user_agent = source.user_agent();
    for settings in &source.providers {
        let name = settings.kind().name();
        let http = |timeout| {
            providers::HttpClient::new(name, &user_agent, timeout).map_err(StartError::HttpClient)
        };
        let (provider, policy): (Arc<dyn BookProvider>, UpstreamPolicy) = match settings {
            ProviderSettings::Douban(douban) => {
                let policy = UpstreamPolicy {
                    timeout: douban.timeout.unwrap_or(policy.timeout),
                    ..policy
                };
                let client = providers::DoubanClient::new(douban.clone(), http(policy.timeout)?);
                (Arc::new(client), policy)
            }
            ProviderSettings::OpenLibrary { base_url } => {
                let client =
                    providers::OpenLibraryClient::new(base_url.clone(), http(policy.timeout)?);
                (Arc::new(client), policy)
            }
            ProviderSettings::GoogleBooks { base_url, apikey } => {
                let client = providers::GoogleBooksClient::new(
                    base_url.clone(),
                    apikey.clone(),
                    http(policy.timeout)?,
                );
                (Arc::new(client), policy)
            }
            ProviderSettings::Sample => {
                let sample = providers::SampleCatalog::load().map_err(StartError::Sample)?;
                tracing::info!(books = sample.len(), "serving the bundled sample catalog");
                (Arc::new(sample), policy)
            }
        };
        let cap = source
            .caps
            .iter()
            .find(|(kind, _)| *kind == settings.kind())
            .map(|(_, cap)| *cap);
        upstreams.push(Upstream::new(provider, policy, cap));
    }
    Ok(ProviderChain::new(upstreams))
}
