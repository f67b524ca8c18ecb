//! doumi's gateway: the only part on the public internet. It speaks WeChat's
//! official-account protocol (signatures, XML, the 5-second reply window) and
//! nothing about books; every message goes to the bot over gRPC.
//!
//! A message flows top to bottom through the tree:
//!
//! - `routes`: `POST /wechat` — signature, decryption, parsing (the protocol
//!   itself lives in `doumi-wechat`), health and `/metrics`; `error` is the
//!   one mapping of what goes wrong to an HTTP answer.
//! - `window/`: WeChat's 5-second window — one piece of work per message
//!   whatever the retries, each attempt answered in its budget (`slots`
//!   remembers the messages), `shared_store` when replicas share Redis.
//! - `bot_link`: the gRPC call to the bot, and the sentences a reader sees
//!   when the bot cannot answer.
//! - `delivery`: a reply that missed the window, sent as a customer-service
//!   message through WeChat's API.
//! - beside them: `config` and `cli` (settings), `metrics`.
#![forbid(unsafe_code)]

mod bot_link;
mod cli;
mod config;
mod delivery;
mod error;
pub mod metrics;
mod routes;
mod shared_store;
pub mod window;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::net::TcpListener;

pub use bot_link::BOT_UNAVAILABLE;
pub use cli::Cli;
pub use config::{DeliverySettings, GatewayArgs, GatewayConfig, WechatToken};

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
    let redis = config
        .redis_url
        .as_deref()
        .map(redis::Client::open)
        .transpose()
        .map_err(GatewayError::Redis)?;
    let shared = redis
        .clone()
        .map(shared_store::SharedStore::new)
        .transpose()
        .map_err(GatewayError::Redis)?;
    let courier = match config.delivery {
        Some(delivery) => {
            let account = doumi_wechat::api::OfficialAccount::new(
                delivery.api_base_url.clone(),
                delivery.credentials,
                redis,
            )?;
            tracing::info!(api = %delivery.api_base_url, deadline = ?delivery.deadline, "late replies are delivered as customer-service messages");
            let courier =
                delivery::Courier::new(account, delivery.deadline, delivery.probe_interval);
            tokio::spawn({
                let courier = courier.clone();
                async move { courier.check_at_start().await }
            });
            Some(courier)
        }
        None => None,
    };
    let window = window::ReplyWindow::new(
        config.window,
        config.max_in_flight,
        bot_link::BotLink::new(channel),
        shared,
        courier,
    );
    let ready = Arc::new(AtomicBool::new(true));
    let state = routes::AppState {
        token: config.token,
        window: window.clone(),
        timestamp_tolerance: config.timestamp_tolerance,
        crypto: config.crypto,
        require_encryption: config.require_encryption,
        ready: ready.clone(),
    };
    metrics::install();
    tracing::info!(addr = ?listener.local_addr().ok(), bot = %config.bot, "gateway listening");
    axum::serve(listener, routes::router(state))
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
