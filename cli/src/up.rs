//! `doumi up`: the three services on this machine, each its own server
//! speaking real gRPC to the next, started by the same `run` functions the
//! binaries use.

use std::net::SocketAddr;

use anyhow::Context;
use doumi_runtime::settings::Problems;
use rand::{Rng, distr::Alphanumeric};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::{self, LocalStack};

/// `doumi up` reads the same settings as the three binaries.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    gateway: doumi_gateway::GatewayArgs,
    #[command(flatten)]
    bot: doumi_bot::BotArgs,
    #[command(flatten)]
    catalog: doumi_catalog::CatalogArgs,
}

pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    let token = match args
        .gateway
        .wechat_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(token) => token.to_owned(),
        None => rand::rng()
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect(),
    };
    args.gateway.wechat_token = Some(token.clone());

    // Validate everything first so one run reports every bad setting.
    let mut problems = Problems::new();
    let catalog = args.catalog.config(&mut problems);
    let bot = args.bot.config(&mut problems);
    let gateway = args.gateway.config(&mut problems);
    let (mut catalog, mut bot, mut gateway) = problems
        .finish(catalog.zip(bot).zip(gateway).map(|((c, b), g)| (c, b, g)))
        .unwrap_or_else(|e| e.exit());

    let catalog_listener = bind(catalog.listen, "catalog").await?;
    let bot_listener = bind(bot.listen, "bot").await?;
    let gateway_listener = bind(gateway.listen, "gateway").await?;
    catalog.listen = catalog_listener.local_addr()?;
    bot.listen = bot_listener.local_addr()?;
    gateway.listen = gateway_listener.local_addr()?;
    // Each hop dials the address the next service really bound.
    bot.catalog_url = format!("http://{}", dialable(catalog.listen));
    gateway.bot_url = format!("http://{}", dialable(bot.listen));

    let source = match &catalog.source {
        doumi_catalog::Source::Sample => "bundled sample catalog".to_owned(),
        doumi_catalog::Source::Douban(douban) => format!("Douban at {}", douban.base_url),
    };
    let cache = if catalog.redis_url.is_some() {
        "Redis"
    } else {
        "in-process"
    };
    let webhook = format!("http://{}/wechat", dialable(gateway.listen));
    let stack = LocalStack {
        webhook: webhook.clone(),
        token: token.clone(),
    };
    if let Err(error) = state::save(&stack) {
        eprintln!("warning: doumi chat will need --token: {error:#}");
    }

    let stop = CancellationToken::new();
    let mut services = tokio::task::JoinSet::new();
    let shutdown = |stop: &CancellationToken| stop.clone().cancelled_owned();
    services.spawn({
        let shutdown = shutdown(&stop);
        async move {
            doumi_catalog::run(catalog, catalog_listener, shutdown)
                .await
                .map_err(anyhow::Error::from)
                .context("catalog")
        }
    });
    services.spawn({
        let shutdown = shutdown(&stop);
        async move {
            doumi_bot::run(bot, bot_listener, shutdown)
                .await
                .map_err(anyhow::Error::from)
                .context("bot")
        }
    });
    services.spawn({
        let shutdown = shutdown(&stop);
        async move {
            doumi_gateway::run(gateway, gateway_listener, shutdown)
                .await
                .map_err(anyhow::Error::from)
                .context("gateway")
        }
    });

    println!("doumi is up ({source}, {cache} cache).");
    println!("  webhook URL: {webhook}");
    println!("  token:       {token}");
    println!("Point your official account's server URL at the webhook with that token,");
    println!("or try it here:  doumi chat 9787121139512");
    println!("Ctrl-C stops everything.");

    tokio::select! {
        () = doumi_runtime::shutdown::signal() => {}
        Some(finished) = services.join_next() => {
            stop.cancel();
            return finished.context("a service panicked")?.and_then(|()| anyhow::bail!("a service stopped unexpectedly"));
        }
    }
    stop.cancel();
    while let Some(finished) = services.join_next().await {
        finished.context("a service panicked")??;
    }
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what} cannot listen on {addr}"))
}

/// A wildcard listen address is dialled on loopback.
fn dialable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}
