//! The catalog assembled from its settings and served: the provider chain
//! in the configured order, the cache (with Redis when replicas share one),
//! the metrics listener, health, the gRPC server.

use std::{future::Future, sync::Arc};

use doumi_runtime::redis::SharedRedis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    api::{self, CatalogService},
    cache::{Books, RedisCache},
    config::{CatalogConfig, ProviderSettings, Source},
    metrics,
    providers::{self, BookProvider, ProviderChain, Upstream, UpstreamPolicy},
};

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
        Arc::new(service),
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
