//! doumi as a fleet: several replicas of each service, each on a loopback
//! address of its own and a tokio runtime of its own, so that one can be
//! stopped as Kubernetes stops a pod (SIGTERM: stop taking calls, finish
//! those in flight) or killed (SIGKILL: every task and connection gone at
//! once) and started again on the same address while the others serve.

use std::{future::Future, net::SocketAddr, time::Duration};

use doumi_bot::BotConfig;
use doumi_catalog::{CatalogConfig, Source};
use doumi_gateway::{GatewayConfig, WechatToken};
use doumi_runtime::{grpc::Target, redis::RedisTarget};
use tokio_util::sync::CancellationToken;

use crate::{
    stack::{self, TOKEN},
    wechat::WechatClient,
};

/// How many replicas of each service, and what they share.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    pub gateways: usize,
    pub bots: usize,
    pub catalogs: usize,
    /// Redis shared by every replica; `None` = each in-process.
    pub redis: Option<RedisTarget>,
    /// A Douban base URL (a [`crate::FakeDouban`]); `None` = the bundled
    /// sample catalog.
    pub douban_url: Option<String>,
    /// WeChat's API (a [`crate::FakeWechatApi`]): the gateways deliver
    /// replies that miss WeChat's window there; `None` = no delivery.
    pub wechat_api_url: Option<String>,
}

/// One replica of a service.
pub struct Replica {
    pub addr: SocketAddr,
    stop: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    /// Starts `serve` on `addr` (port 0: a free one) in a runtime of its own.
    fn start<F, Fut>(addr: SocketAddr, serve: F) -> anyhow::Result<Self>
    where
        F: FnOnce(tokio::net::TcpListener, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            serve(listener, token).await
        });
        Ok(Self {
            addr,
            stop,
            runtime: Some(runtime),
        })
    }

    /// SIGTERM: the replica stops taking calls and finishes those in flight.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(runtime) = self.runtime.take() {
            let _ = tokio::task::spawn_blocking(move || {
                runtime.shutdown_timeout(Duration::from_secs(10))
            })
            .await;
        }
    }

    /// SIGKILL: every task and connection of the replica gone at once.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Gateways, bots and catalogs, each tier dialling every replica of the
/// next by an `ipv4:` list, sharing one Redis when given.
pub struct Fleet {
    pub gateways: Vec<Replica>,
    pub bots: Vec<Replica>,
    pub catalogs: Vec<Replica>,
    options: FleetOptions,
    bot_target: Target,
    catalog_target: Target,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn free_addrs(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    // Held together so that no two are the same port.
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind(loopback()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(std::net::TcpListener::local_addr)
        .collect::<Result<_, _>>()?)
}

impl Fleet {
    /// The replicas `options` asks for, each tier dialling every replica of
    /// the next.
    pub fn start(options: FleetOptions) -> anyhow::Result<Self> {
        let catalog_addrs = free_addrs(options.catalogs)?;
        let bot_addrs = free_addrs(options.bots)?;
        let gateways = options.gateways;
        let mut fleet = Self {
            gateways: Vec::new(),
            bots: Vec::new(),
            catalogs: Vec::new(),
            options,
            bot_target: Target::Fixed(bot_addrs.clone()),
            catalog_target: Target::Fixed(catalog_addrs.clone()),
        };
        for addr in catalog_addrs {
            let catalog = fleet.catalog(addr)?;
            fleet.catalogs.push(catalog);
        }
        for addr in bot_addrs {
            let bot = fleet.bot(addr)?;
            fleet.bots.push(bot);
        }
        for _ in 0..gateways {
            let gateway = fleet.gateway(loopback())?;
            fleet.gateways.push(gateway);
        }
        Ok(fleet)
    }

    /// A catalog replica on `addr`.
    pub fn catalog(&self, addr: SocketAddr) -> anyhow::Result<Replica> {
        let mut config = CatalogConfig::offline(addr);
        config.redis.target = self.options.redis.clone();
        if let Some(base_url) = &self.options.douban_url {
            // Longer than any delay the tests give the fake Douban.
            let patient = Duration::from_secs(60);
            config.source = Source::douban_only(base_url.clone(), patient);
            config.upstream.timeout = patient;
        }
        Replica::start(addr, move |listener, stop| async move {
            Ok(doumi_catalog::run(config, listener, stop.cancelled_owned()).await?)
        })
    }

    /// A bot replica on `addr`, dialling every catalog.
    pub fn bot(&self, addr: SocketAddr) -> anyhow::Result<Replica> {
        let mut config = BotConfig::new(addr, self.catalog_target.clone());
        config.redis.target = self.options.redis.clone();
        Replica::start(addr, move |listener, stop| async move {
            Ok(doumi_bot::run(config, listener, stop.cancelled_owned()).await?)
        })
    }

    /// A gateway replica on `addr`, dialling every bot.
    pub fn gateway(&self, addr: SocketAddr) -> anyhow::Result<Replica> {
        let token = WechatToken::parse(TOKEN).map_err(anyhow::Error::msg)?;
        let mut config = GatewayConfig::new(addr, self.bot_target.clone(), token);
        config.redis.target = self.options.redis.clone();
        if let Some(url) = &self.options.wechat_api_url {
            stack::deliver_through(&mut config, url)?;
        }
        Replica::start(addr, move |listener, stop| async move {
            Ok(doumi_gateway::run(config, listener, stop.cancelled_owned()).await?)
        })
    }

    /// A client that talks to gateway `i` as WeChat does.
    pub fn wechat(&self, i: usize) -> WechatClient {
        let addr = self.gateways.get(i).map_or_else(loopback, |g| g.addr);
        WechatClient::new(format!("http://{addr}/wechat"), TOKEN)
    }
}
