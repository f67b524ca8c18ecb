//! doumi's book catalog: ISBN rules, the Douban v2 client, the bundled sample
//! catalog and the cache, served as the `doumi.catalog.v1.BookCatalog` gRPC API.
#![forbid(unsafe_code)]

pub mod book;
pub mod books;
pub mod cache;
pub mod config;
pub mod douban;
pub mod isbn;
pub mod provider;
pub mod sample;
pub mod service;

use std::{future::Future, sync::Arc};

use doumi_proto::catalog::v1::book_catalog_server::BookCatalogServer;
use tokio::net::TcpListener;

pub use config::{CatalogArgs, CatalogConfig, Source};

use crate::{books::Books, cache::BookCache, provider::BookProvider, service::CatalogService};

/// In-process cache size: a few thousand books is a few MiB.
const MEMORY_CACHE_BOOKS: u64 = 10_000;

/// Why the catalog could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the bundled sample catalog is malformed")]
    Sample(#[from] serde_json::Error),
    #[error("building the Douban HTTP client failed")]
    HttpClient(#[from] reqwest::Error),
    #[error("setting up the Redis cache failed")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Serve(#[from] doumi_runtime::grpc::ServeError),
}

/// Runs the catalog on a pre-bound `listener` until `shutdown` resolves.
pub async fn run(
    config: CatalogConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CatalogError> {
    let provider: Arc<dyn BookProvider> = match &config.source {
        Source::Sample => {
            let sample = sample::SampleCatalog::load()?;
            tracing::info!(books = sample.len(), "serving the bundled sample catalog");
            Arc::new(sample)
        }
        Source::Douban(settings) => {
            tracing::info!(base_url = %settings.base_url, "serving from Douban");
            Arc::new(douban::DoubanClient::new(settings.clone())?)
        }
    };
    let cache = match &config.redis_url {
        Some(url) => {
            tracing::info!("caching books in Redis");
            BookCache::redis(redis::Client::open(url.as_str())?, config.cache_ttl)?
        }
        None => BookCache::memory(MEMORY_CACHE_BOOKS, config.cache_ttl),
    };
    let service = CatalogService::new(Books::new(provider, cache));
    tracing::info!(addr = ?listener.local_addr().ok(), "catalog listening");
    doumi_runtime::grpc::serve(
        BookCatalogServer::new(service),
        doumi_proto::FILE_DESCRIPTOR_SET,
        listener,
        shutdown,
    )
    .await?;
    Ok(())
}
