//! The three doumi services on ephemeral loopback ports, wired to each other
//! over real gRPC, stopped when the [`TestStack`] is dropped.

use std::{net::SocketAddr, time::Duration};

use doumi_bot::BotConfig;
use doumi_catalog::{CatalogConfig, Source, douban::DoubanSettings};
use doumi_gateway::{GatewayConfig, WechatToken};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::wechat::WechatClient;

/// The token the test stack's gateway shares with its WeChat client.
pub const TOKEN: &str = "doumiTestToken42";

/// Where the catalog gets books and keeps them.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// A Douban base URL (a [`crate::FakeDouban`]); `None` = bundled sample catalog.
    pub douban_url: Option<String>,
    /// A Redis URL (a [`crate::RedisServer`]); `None` = in-process cache.
    pub redis_url: Option<String>,
}

/// A running gateway → bot → catalog stack.
pub struct TestStack {
    pub gateway: SocketAddr,
    pub bot: SocketAddr,
    pub catalog: SocketAddr,
    stop: CancellationToken,
}

async fn ephemeral() -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

impl TestStack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let (catalog_listener, catalog) = ephemeral().await?;
        let (bot_listener, bot) = ephemeral().await?;
        let (gateway_listener, gateway) = ephemeral().await?;

        let mut catalog_config = CatalogConfig::offline(catalog);
        catalog_config.redis_url = options.redis_url;
        if let Some(base_url) = options.douban_url {
            catalog_config.source = Source::Douban(DoubanSettings {
                base_url,
                apikey: None,
                timeout: Duration::from_secs(3),
            });
        }
        let bot_config = BotConfig::new(bot, format!("http://{catalog}"));
        let token = WechatToken::parse(TOKEN).map_err(anyhow::Error::msg)?;
        let gateway_config = GatewayConfig::new(gateway, format!("http://{bot}"), token);

        tokio::spawn(doumi_catalog::run(
            catalog_config,
            catalog_listener,
            stop.clone().cancelled_owned(),
        ));
        tokio::spawn(doumi_bot::run(
            bot_config,
            bot_listener,
            stop.clone().cancelled_owned(),
        ));
        tokio::spawn(doumi_gateway::run(
            gateway_config,
            gateway_listener,
            stop.clone().cancelled_owned(),
        ));
        Ok(Self {
            gateway,
            bot,
            catalog,
            stop,
        })
    }

    /// A client that talks to this stack's gateway as WeChat does.
    pub fn wechat(&self) -> WechatClient {
        WechatClient::new(format!("http://{}/wechat", self.gateway), TOKEN)
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
