//! The gateway assembled from its settings and served: Redis when replicas
//! share one, the bot's channel, each account with its window and courier,
//! the HTTP routes; then, at shutdown, the work in flight handed over.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::ServiceExt;
use doumi_runtime::redis::SharedRedis;
use tokio::net::TcpListener;

use crate::{
    accounts::{self, AccountSettings, Accounts},
    bot_link,
    config::{DeliverySettings, GatewayConfig},
    delivery, metrics, routes, window,
};

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("setting up Redis (the shared reply store, WeChat's access_token) failed")]
    Redis(#[source] redis::RedisError),
    #[error("setting up WeChat's API failed")]
    WechatApi(#[from] doumi_wechat::api::AccountError),
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Runs the gateway on a pre-bound `listener` until `shutdown` resolves, then
/// finishes the requests in flight.
pub async fn run(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let channel = doumi_runtime::grpc::channel(&config.bot, config.dial);
    let shared = config
        .redis
        .target
        .as_ref()
        .map(|target| SharedRedis::connect(target, config.redis.policy, "gateway"))
        .transpose()
        .map_err(GatewayError::Redis)?
        .map(window::SharedStore::new);
    let shared_redis = shared.as_ref().map(|store| store.redis().clone());
    let window = window::ReplyWindow::new(
        config.window,
        config.max_in_flight,
        bot_link::BotLink::new(channel),
        shared,
    );
    // Each account gets its own window (sharing the gateway's memory and
    // limit) and courier; an account of a file keeps its messages apart.
    let live = |settings: &AccountSettings, scoped: bool| {
        let redis = shared_redis.as_ref().map(SharedRedis::connection);
        let courier = courier(settings, &config.delivery, redis)?;
        let window = window.for_account(&settings.name, scoped, courier.clone());
        Ok::<_, GatewayError>(accounts::Account::new(settings.clone(), window, courier))
    };
    let directory = match &config.accounts {
        Accounts::Single(settings) => accounts::Directory::single(live(settings, false)?),
        Accounts::Named(list) => accounts::Directory::named(
            list.iter()
                .map(|settings| live(settings, true))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let ready = Arc::new(AtomicBool::new(true));
    let state = routes::AppState {
        accounts: directory,
        redis: shared_redis,
        timestamp_tolerance: config.timestamp_tolerance,
        ready: ready.clone(),
    };
    metrics::install();
    tracing::info!(addr = ?listener.local_addr().ok(), bot = %config.bot, "gateway listening");
    axum::serve(listener, routes::router(state).into_make_service())
        .with_graceful_shutdown(async move {
            shutdown.await;
            ready.store(false, Ordering::Relaxed);
        })
        .await
        .map_err(GatewayError::Serve)?;
    // Every attempt is answered: what is still being worked on goes to the
    // other replicas (with Redis) or is finished here.
    window.stop().await;
    Ok(())
}

/// The courier of an account with an AppSecret, checking its credentials in
/// the background; `None` for an account without one.
fn courier(
    account: &AccountSettings,
    delivery: &DeliverySettings,
    redis: Option<redis::aio::ConnectionManager>,
) -> Result<Option<delivery::Courier>, GatewayError> {
    let Some(credentials) = account.credentials() else {
        return Ok(None);
    };
    let api =
        doumi_wechat::api::OfficialAccount::new(delivery.api_base_url.clone(), credentials, redis)?;
    tracing::info!(
        account = %account.name,
        api = %delivery.api_base_url,
        deadline = ?delivery.deadline,
        "late replies are delivered as customer-service messages"
    );
    let courier = delivery::Courier::new(
        &account.name,
        api,
        delivery.deadline,
        delivery.probe_interval,
    );
    tokio::spawn({
        let courier = courier.clone();
        async move { courier.check_at_start().await }
    });
    Ok(Some(courier))
}
