//! The bot assembled from its settings and served: its metrics listener,
//! the catalog's channel, Redis when replicas share one, each reader's pace
//! and conversation, the barcode reader, the gRPC server.

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;

use crate::{barcode, config::BotConfig, conversation, metrics, rate_limit, service};

/// Why the bot could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("setting up Redis (readers' pace and conversations) failed")]
    Redis(#[source] redis::RedisError),
    #[error(transparent)]
    MetricsListen(#[from] doumi_runtime::metrics::ListenError),
    #[error("building the HTTP client for barcode photos failed")]
    ImageClient(#[source] reqwest::Error),
    #[error(transparent)]
    Serve(#[from] doumi_runtime::grpc::ServeError),
}

/// Runs the bot on a pre-bound `listener` until `shutdown` resolves.
pub async fn run(
    config: BotConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BotError> {
    metrics::install();
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let _stop_metrics_on_return = metrics_stop.clone().drop_guard();
    if let Some(addr) = config.metrics_listen {
        let listener = doumi_runtime::metrics::bind(addr).await?;
        doumi_runtime::metrics::spawn(listener, metrics_stop.cancelled_owned());
    }
    let channel = doumi_runtime::grpc::channel(&config.catalog, config.dial);
    let redis = config
        .redis
        .target
        .as_ref()
        .map(|target| {
            doumi_runtime::redis::SharedRedis::connect(target, config.redis.policy, "bot")
        })
        .transpose()
        .map_err(BotError::Redis)?;
    let limiter = config
        .rate_limit
        .map(|limit| rate_limit::ReaderLimiter::new(limit, redis.clone()));
    let conversations = conversation::Conversations::new(redis);
    let barcodes =
        barcode::BarcodeReader::new(config.image_hosts.clone()).map_err(BotError::ImageClient)?;
    let service = service::BotService::new(
        channel,
        config.catalog_timeout,
        limiter,
        conversations,
        barcodes,
        config.book_reply,
    );
    tracing::info!(addr = ?listener.local_addr().ok(), catalog = %config.catalog, "bot listening");
    doumi_runtime::grpc::serve(
        Arc::new(service),
        doumi_proto::bot::v1::FILE_DESCRIPTOR_SET,
        listener,
        shutdown,
        doumi_runtime::grpc::HealthReporter::new(),
    )
    .await?;
    Ok(())
}
