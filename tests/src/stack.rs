//! The three doumi services on ephemeral loopback ports, wired to each other
//! over real gRPC, stopped when the [`TestStack`] is dropped.

use std::{net::SocketAddr, time::Duration};

use doumi_bot::{BookReply, BotConfig};
use doumi_catalog::{CatalogConfig, Source};
use doumi_gateway::{
    AccountSettings, Accounts, DeliverySettings, GatewayConfig, WechatToken, window::WindowSettings,
};
use doumi_runtime::redis::RedisTarget;
use doumi_wechat::crypto::{AesKey, KeyRing, MessageCrypto};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::wechat::WechatClient;

/// How long a late reply may still be delivered, as in production.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// How often an account WeChat refuses is checked again: short, so that a
/// test sees promises resume, and longer than a promised message takes
/// (its lookup plus the reply budget), so that one sees them stopped.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// The token the test stack's gateway shares with its WeChat client.
pub const TOKEN: &str = "doumiTestToken42";

/// The safe-mode credentials of the test account (Tencent's sample key).
pub const APP_ID: &str = "wx2c2769f8efd9abc2";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
/// The test account's AppSecret, known to the fake of WeChat's API.
pub const APP_SECRET: &str = "doumiTestAppSecret0123456789abcd";

/// A second account for the tests of several accounts on one gateway.
pub const BRANCH_TOKEN: &str = "doumiBranchToken7";
pub const BRANCH_APP_ID: &str = "wx0b1c2d3e4f506172";
pub const BRANCH_AES_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
pub const BRANCH_APP_SECRET: &str = "doumiBranchAppSecret0123456789ab";

/// The second account's safe-mode crypto, as WeChat holds it.
pub fn branch_crypto() -> MessageCrypto {
    let key = AesKey::parse(BRANCH_AES_KEY).unwrap_or_else(|e| panic!("test AES key: {e}"));
    MessageCrypto::new(key, BRANCH_APP_ID.to_owned())
}

/// Two accounts as an accounts file lists them, both with an AppSecret:
/// `books` (the test account, plaintext) and `branch` (its own Token, AppID
/// and key, safe mode only).
pub fn two_accounts() -> Accounts {
    let token = |token| WechatToken::parse(token).unwrap_or_else(|e| panic!("test token: {e}"));
    let mut books = AccountSettings::new("books", token(TOKEN));
    books.app_id = Some(APP_ID.to_owned());
    books.app_secret = Some(APP_SECRET.to_owned().into());
    let mut branch = AccountSettings::new("branch", token(BRANCH_TOKEN));
    branch.app_id = Some(BRANCH_APP_ID.to_owned());
    branch.keys = Some(KeyRing::new(branch_crypto(), None));
    branch.require_encryption = true;
    branch.app_secret = Some(BRANCH_APP_SECRET.to_owned().into());
    Accounts::Named(vec![books, branch])
}

/// Late replies delivered through WeChat's API at `url`, by every account
/// with an AppSecret; the single account gets the test account's.
pub fn deliver_through(config: &mut GatewayConfig, url: &str) -> anyhow::Result<()> {
    config.delivery = DeliverySettings {
        api_base_url: url.parse()?,
        deadline: DELIVERY_DEADLINE,
        probe_interval: PROBE_INTERVAL,
    };
    if let Accounts::Single(account) = &mut config.accounts {
        account.app_id = Some(APP_ID.to_owned());
        account.app_secret = Some(APP_SECRET.to_owned().into());
    }
    Ok(())
}

/// The test account's safe-mode crypto, as WeChat holds it.
pub fn account_crypto() -> MessageCrypto {
    let key = AesKey::parse(AES_KEY).unwrap_or_else(|e| panic!("test AES key: {e}"));
    MessageCrypto::new(key, APP_ID.to_owned())
}

/// The test account in safe mode, with `token`.
pub fn safe_mode_account(name: &str, token: &str) -> AccountSettings {
    let token = WechatToken::parse(token).unwrap_or_else(|e| panic!("test token: {e}"));
    let mut account = AccountSettings::new(name, token);
    account.app_id = Some(APP_ID.to_owned());
    account.keys = Some(KeyRing::new(account_crypto(), None));
    account
}

/// How the gateway is set up.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Configure the AppID and EncodingAESKey (safe and compatible mode).
    pub safe_mode: bool,
    /// Refuse plaintext messages.
    pub require_encryption: bool,
    /// Reply policy, budget and interim; `None` = the defaults.
    pub window: Option<WindowSettings>,
    /// Redis shared by gateway replicas; `None` = in-process.
    pub redis: Option<RedisTarget>,
    /// Messages the gateway handles at once; `None` = the default.
    pub max_in_flight: Option<usize>,
    /// WeChat's API (a [`crate::FakeWechatApi`]) for replies that miss the
    /// window, with the test account's AppSecret; `None` = no delivery.
    pub wechat_api_url: Option<String>,
    /// The accounts served instead of the test account at `/wechat`.
    pub accounts: Option<Accounts>,
}

/// Where the catalog gets books and keeps them, and how the gateway is set up.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// A Douban base URL (a [`crate::FakeDouban`]); `None` = bundled sample catalog.
    pub douban_url: Option<String>,
    /// A Redis URL (a [`crate::RedisServer`]) for the catalog's cache and
    /// the bot's reader pace; `None` = in-process.
    pub redis: Option<RedisTarget>,
    /// Longest each service's Redis calls (and connecting) may take; `None`
    /// = the services' default (100 ms).
    pub redis_timeout: Option<Duration>,
    /// How the bot answers a single book; `None` = the default (a card).
    pub book_reply: Option<BookReply>,
    /// Hosts the bot may fetch photos from; `None` = the default (WeChat's CDN).
    pub image_hosts: Option<Vec<String>>,
    pub gateway: GatewayOptions,
}

/// A running gateway → bot → catalog stack.
pub struct TestStack {
    pub gateway: SocketAddr,
    pub bot: SocketAddr,
    pub catalog: SocketAddr,
    gateway_config: GatewayConfig,
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
        catalog_config.redis.target = options.redis.clone();
        let redis_timeout = options.redis_timeout;
        if let Some(timeout) = redis_timeout {
            catalog_config.redis.policy.timeout = timeout;
        }
        if let Some(base_url) = options.douban_url {
            // Longer than any delay the tests give the fake Douban: the
            // deadlines down the chain are what must cut a slow lookup.
            let patient = Duration::from_secs(30);
            catalog_config.source = Source::douban_only(base_url, patient);
            catalog_config.upstream.timeout = patient;
        }
        let mut bot_config = BotConfig::new(bot, catalog.into());
        bot_config.redis.target = options.redis.clone();
        if let Some(timeout) = redis_timeout {
            bot_config.redis.policy.timeout = timeout;
        }
        bot_config.book_reply = options.book_reply.unwrap_or(bot_config.book_reply);
        if let Some(hosts) = options.image_hosts {
            bot_config.image_hosts = hosts;
        }
        let token = WechatToken::parse(TOKEN).map_err(anyhow::Error::msg)?;
        let mut gateway_config = GatewayConfig::new(gateway, bot.into(), token);
        let options = options.gateway;
        if options.safe_mode {
            gateway_config.accounts = Accounts::Single(safe_mode_account(
                doumi_gateway::accounts::SINGLE_ACCOUNT,
                TOKEN,
            ));
        }
        if let Accounts::Single(account) = &mut gateway_config.accounts {
            account.require_encryption = options.require_encryption;
        }
        gateway_config.window = options.window.unwrap_or(gateway_config.window);
        gateway_config.redis.target = options.redis.clone();
        if let Some(timeout) = redis_timeout {
            gateway_config.redis.policy.timeout = timeout;
        }
        gateway_config.max_in_flight = options
            .max_in_flight
            .unwrap_or(gateway_config.max_in_flight);
        if let Some(url) = options.wechat_api_url {
            deliver_through(&mut gateway_config, &url)?;
        }
        if let Some(accounts) = options.accounts {
            gateway_config.accounts = accounts;
        }

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
            gateway_config.clone(),
            gateway_listener,
            stop.clone().cancelled_owned(),
        ));
        Ok(Self {
            gateway,
            bot,
            catalog,
            gateway_config,
            stop,
        })
    }

    /// Another gateway replica in front of the same bot, configured alike.
    pub async fn gateway_replica(&self) -> anyhow::Result<SocketAddr> {
        let (listener, addr) = ephemeral().await?;
        let mut config = self.gateway_config.clone();
        config.listen = addr;
        tokio::spawn(doumi_gateway::run(
            config,
            listener,
            self.stop.clone().cancelled_owned(),
        ));
        Ok(addr)
    }

    /// The gateway's `/readyz` page.
    pub async fn gateway_readiness(&self) -> String {
        let response = reqwest::get(format!("http://{}/readyz", self.gateway)).await;
        match response {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(error) => panic!("the gateway's /readyz did not answer: {error}"),
        }
    }

    /// The gateway's `/metrics` page.
    pub async fn gateway_metrics(&self) -> String {
        let response = reqwest::get(format!("http://{}/metrics", self.gateway)).await;
        match response {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(error) => panic!("the gateway's /metrics did not answer: {error}"),
        }
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
