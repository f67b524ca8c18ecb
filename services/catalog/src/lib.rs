//! doumi's book catalog: ISBN rules, a provider chain (Douban v2 first, Open
//! Library and Google Books as fallbacks, or the bundled sample catalog), and
//! a two-tier cache that keeps answering through faults — served as the
//! `doumi.catalog.v1.BookCatalog` gRPC API, with Prometheus metrics beside it.
#![forbid(unsafe_code)]

pub mod book;
pub mod books;
pub mod breaker;
pub mod chain;
mod cli;
pub mod config;
pub mod deadline;
pub mod douban;
pub mod entry;
pub mod errors;
pub mod googlebooks;
pub mod health;
pub mod http;
pub mod isbn;
pub mod key;
pub mod metrics;
pub mod openlibrary;
pub mod provider;
pub mod read_mask;
pub mod redis_cache;
pub mod sample;
pub mod search_cache;
pub mod service;
pub mod upstream;

use std::{future::Future, sync::Arc};

use doumi_proto::catalog::v1::book_catalog_server::BookCatalogServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cli::Cli;
pub use config::{CatalogArgs, CatalogConfig, ProviderSettings, Source};

use crate::{
    books::Books,
    chain::ProviderChain,
    http::HttpClient,
    provider::BookProvider,
    redis_cache::RedisCache,
    service::CatalogService,
    upstream::{Upstream, UpstreamPolicy},
};

/// Why the catalog could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the bundled sample catalog is malformed")]
    Sample(#[from] serde_json::Error),
    #[error("building an HTTP client for the providers failed")]
    HttpClient(#[from] reqwest::Error),
    #[error("setting up the Redis cache failed")]
    Redis(#[from] redis::RedisError),
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
) -> Result<(), CatalogError> {
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
) -> Result<(), CatalogError> {
    let chain = provider_chain(&config.source, config.upstream)?;
    tracing::info!(source = %config.source, "book providers");
    let redis = match &config.redis_url {
        Some(url) => {
            tracing::info!("caching books in Redis, with an in-process tier in front");
            Some(RedisCache::new(
                redis::Client::open(url.as_str())?,
                config.redis,
            )?)
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
    tokio::spawn(health::report(
        books.clone(),
        reporter.clone(),
        stop.clone(),
    ));

    let service = CatalogService::new(books);
    tracing::info!(addr = ?listeners.grpc.local_addr().ok(), "catalog listening");
    doumi_runtime::grpc::serve_with_health(
        BookCatalogServer::new(service),
        doumi_proto::catalog::v1::FILE_DESCRIPTOR_SET,
        listeners.grpc,
        shutdown,
        reporter,
    )
    .await?;
    Ok(())
}

/// The configured providers, each behind the upstream policy.
fn provider_chain(source: &Source, policy: UpstreamPolicy) -> Result<ProviderChain, CatalogError> {
    let mut upstreams = Vec::with_capacity(source.providers.len());
    for settings in &source.providers {
        let name = settings.name();
        let (provider, policy): (Arc<dyn BookProvider>, UpstreamPolicy) = match settings {
            ProviderSettings::Douban(douban) => {
                let policy = UpstreamPolicy {
                    timeout: douban.timeout.unwrap_or(policy.timeout),
                    ..policy
                };
                let http = HttpClient::new(name, policy.timeout)?;
                (
                    Arc::new(douban::DoubanClient::new(douban.clone(), http)),
                    policy,
                )
            }
            ProviderSettings::OpenLibrary { base_url } => {
                let http = HttpClient::new(name, policy.timeout)?;
                (
                    Arc::new(openlibrary::OpenLibraryClient::new(base_url.clone(), http)),
                    policy,
                )
            }
            ProviderSettings::GoogleBooks { base_url, apikey } => {
                let http = HttpClient::new(name, policy.timeout)?;
                (
                    Arc::new(googlebooks::GoogleBooksClient::new(
                        base_url.clone(),
                        apikey.clone(),
                        http,
                    )),
                    policy,
                )
            }
            ProviderSettings::Sample => {
                let sample = sample::SampleCatalog::load()?;
                tracing::info!(books = sample.len(), "serving the bundled sample catalog");
                (Arc::new(sample), policy)
            }
        };
        upstreams.push(Upstream::new(provider, policy));
    }
    Ok(ProviderChain::new(upstreams))
}
