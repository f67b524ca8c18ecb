//! `doumi up`: the three services on this machine, each its own server
//! speaking real gRPC to the next, started by the same `run` functions the
//! binaries use.

use std::net::SocketAddr;

use anyhow::Context;
use doumi_runtime::{settings::Problems, telemetry::TelemetryArgs};
use rand::{Rng, distr::Alphanumeric};
use tokio_util::sync::CancellationToken;

use crate::{
    stand_in::{self, bind},
    state::{self, LocalStack, WechatApi},
};

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

pub async fn run(mut args: UpArgs, telemetry: &TelemetryArgs) -> anyhow::Result<()> {
    // A local stack gets its own credentials unless given some: a token for
    // plaintext mode and an AppID + EncodingAESKey so safe mode works too.
    let token = fill(&mut args.gateway.wechat_token, || random_alphanumeric(32));
    let app_id = fill(&mut args.gateway.wechat_app_id, || {
        format!("wx{:016x}", rand::rng().random::<u64>())
    });
    let aes_key = fill(&mut args.gateway.wechat_aes_key, || random_alphanumeric(43));
    // Without an AppSecret of its own, the local stack delivers late replies
    // to a stand-in for WeChat's API, where `doumi chat` picks them up.
    let stand_in = match args.gateway.api.wechat_app_secret.as_deref() {
        Some(secret) if !secret.trim().is_empty() => None,
        _ => {
            let secret = random_alphanumeric(32);
            let stop = CancellationToken::new();
            let url = stand_in::spawn(&app_id, &secret, stop.clone()).await?;
            args.gateway.api.wechat_app_secret = Some(secret.clone());
            args.gateway.api.wechat_api_base_url = url.clone();
            Some((
                WechatApi {
                    url,
                    app_secret: secret,
                },
                stop,
            ))
        }
    };
    let api_url = args.gateway.api.wechat_api_base_url.clone();

    // Validate everything first so one run reports every bad setting.
    let mut problems = Problems::new();
    let export = telemetry.trace_export(&mut problems);
    let catalog = args.catalog.config(&mut problems);
    let bot = args.bot.config(&mut problems);
    let gateway = args.gateway.config(&mut problems);
    let (mut catalog, mut bot, mut gateway) = problems
        .finish(catalog.zip(bot).zip(gateway).map(|((c, b), g)| (c, b, g)))
        .unwrap_or_else(|e| e.exit());
    let traces = doumi_runtime::telemetry::init(
        "doumi",
        telemetry.format,
        export.as_ref(),
        telemetry.service_name.as_deref(),
    )?;
    for service in ["gateway", "bot", "catalog"] {
        doumi_runtime::metrics::register_service(service);
    }
    // One process, one set of metrics: the catalog's listener (and the
    // gateway's /metrics) show all three services.
    bot.metrics_listen = None;

    let catalog_listener = bind(catalog.listen, "catalog").await?;
    let bot_listener = bind(bot.listen, "bot").await?;
    let gateway_listener = bind(gateway.listen, "gateway").await?;
    catalog.listen = catalog_listener.local_addr()?;
    bot.listen = bot_listener.local_addr()?;
    gateway.listen = gateway_listener.local_addr()?;
    // Each hop dials the address the next service really bound.
    bot.catalog = dialable(catalog.listen).into();
    gateway.bot = dialable(bot.listen).into();

    let source = catalog.source.to_string();
    let cache = if catalog.redis_url.is_some() {
        "Redis"
    } else {
        "in-process"
    };
    let webhook = format!("http://{}/wechat", dialable(gateway.listen));
    let stack = LocalStack {
        webhook: webhook.clone(),
        token: token.clone(),
        app_id: app_id.clone(),
        aes_key,
        wechat_api: stand_in.as_ref().map(|(api, _)| api.clone()),
    };
    if let Err(error) = state::save(&stack) {
        eprintln!("warning: doumi chat will need --token (and --app-id, --aes-key): {error:#}");
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
    println!("  safe mode:   AppID {app_id}, EncodingAESKey saved for doumi chat");
    match &stand_in {
        Some((api, _)) => println!(
            "  WeChat API:  a local stand-in at {} (late replies land there; doumi chat shows them)",
            api.url
        ),
        None => println!("  WeChat API:  {api_url} (late replies as customer-service messages)"),
    }
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        println!("  traces:      exported to {endpoint} (service.name doumi)");
    }
    println!("Point your official account's server URL at the webhook with that token,");
    println!(
        "or try it here:  doumi chat 9787121139512   (encrypted: doumi chat --safe-mode 9787121139512)"
    );
    println!("Ctrl-C stops everything.");

    let _stand_in = stand_in.map(|(_, stop)| stop.drop_guard());
    let result = tokio::select! {
        () = doumi_runtime::shutdown::signal() => {
            stop.cancel();
            let mut result = Ok(());
            while let Some(finished) = services.join_next().await {
                result = result.and(finished.context("a service panicked").and_then(|r| r));
            }
            result
        }
        Some(finished) = services.join_next() => {
            stop.cancel();
            finished.context("a service panicked")?.and_then(|()| anyhow::bail!("a service stopped unexpectedly"))
        }
    };
    traces.shutdown().await;
    result
}

/// The setting's value, set to `generate()` first when it is unset or empty.
fn fill(setting: &mut Option<String>, generate: impl FnOnce() -> String) -> String {
    let value = doumi_runtime::settings::non_empty(setting)
        .map(str::to_owned)
        .unwrap_or_else(generate);
    *setting = Some(value.clone());
    value
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A wildcard listen address is dialled on loopback.
fn dialable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}
