//! doumi's gateway: the only part on the public internet. It speaks WeChat's
//! official-account protocol (signatures, XML, the 5-second reply window) and
//! nothing about books; every message goes to the bot over gRPC.
#![forbid(unsafe_code)]

pub mod bot_link;
pub mod client;
pub mod crypto;
pub mod config;
pub mod error;
pub mod inbound;
pub mod outbound;
pub mod routes;
pub mod signature;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::net::TcpListener;
use tonic::transport::Endpoint;

pub use config::{GatewayArgs, GatewayConfig, WechatToken};

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid bot URL")]
    BotUrl(#[from] tonic::transport::Error),
    #[error("the HTTP server failed")]
    Serve(#[from] std::io::Error),
}

/// Runs the gateway on a pre-bound `listener` until `shutdown` resolves, then
/// finishes the requests in flight.
pub async fn run(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    // Lazy: the gateway starts (and apologises) even while the bot is down.
    let channel = Endpoint::from_shared(config.bot_url.clone())?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let ready = Arc::new(AtomicBool::new(true));
    let state = routes::AppState {
        token: config.token,
        bot: bot_link::BotLink::new(channel, config.reply_budget),
        timestamp_tolerance: config.timestamp_tolerance,
        ready: ready.clone(),
    };
    tracing::info!(addr = ?listener.local_addr().ok(), bot = %config.bot_url, "gateway listening");
    axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            ready.store(false, Ordering::Relaxed);
        })
        .await?;
    Ok(())
}
