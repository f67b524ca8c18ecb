//! `doumi up`: the three services on this machine, each its own server
//! speaking real gRPC to the next, started by the same `run` functions the
//! binaries use.

use std::net::SocketAddr;

use anyhow::Context;
use doumi_runtime::{settings::Problems, telemetry::TelemetryArgs};
use rand::{Rng, distr::Alphanumeric};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use doumi_gateway::{Accounts, accounts::SINGLE_ACCOUNT};
use doumi_runtime::settings::non_empty;

use crate::{
    stand_in::{self, bind},
    state::{self, LocalAccount, LocalStack},
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
    /// One Redis for the three, as in a deployment.
    #[command(flatten)]
    redis: doumi_runtime::redis::RedisArgs,
}

/// The accounts `doumi up` serves when given none: two, as one deployment
/// serving a library and its branch would, each with its own Token, AppID,
/// EncodingAESKey and AppSecret (known to its stand-in for WeChat's API).
const LOCAL_ACCOUNTS: [&str; 2] = ["books", "branch"];

impl UpArgs {
    /// Where the gateway will listen.
    #[cfg(test)]
    pub fn gateway_listen(&self) -> &str {
        &self.gateway.gateway_listen
    }

    /// Every listener whose address `defaulted(id)` says was not given moves
    /// from the binaries' all-interfaces default to 127.0.0.1: a stack for
    /// trying doumi out is not served to the network unless asked to be.
    pub fn listen_on_loopback(&mut self, defaulted: impl Fn(&str) -> bool) {
        for (id, address) in [
            ("gateway_listen", &mut self.gateway.gateway_listen),
            ("bot_listen", &mut self.bot.bot_listen),
            ("bot_metrics_listen", &mut self.bot.bot_metrics_listen),
            ("catalog_listen", &mut self.catalog.catalog_listen),
            (
                "catalog_metrics_listen",
                &mut self.catalog.catalog_metrics_listen,
            ),
        ] {
            if defaulted(id)
                && let Some(port) = address.strip_prefix("0.0.0.0:")
            {
                *address = format!("127.0.0.1:{port}");
            }
        }
    }
}

pub async fn run(mut args: UpArgs, telemetry: &TelemetryArgs) -> anyhow::Result<()> {
    let mut local = accounts_to_serve(&mut args)?;
    let stop_stand_in = CancellationToken::new();
    stand_in_where_made_up(&mut args, &mut local, &stop_stand_in).await?;

    // Validate everything first so one run reports every bad setting.
    let mut problems = Problems::new();
    let export = telemetry.trace_export(&mut problems);
    let redis = args.redis.settings(&mut problems);
    let catalog = args.catalog.config(&mut problems, redis.clone());
    let bot = args.bot.config(&mut problems, redis.clone());
    let gateway = args.gateway.config(&mut problems, redis);
    let (catalog, mut bot, gateway) = problems
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

    let stack = Bound::bind(catalog, bot, gateway).await?;
    let base = format!("http://{}/wechat", dialable(stack.gateway.listen));
    for account in &mut local.accounts {
        account.webhook = match stack.gateway.accounts {
            Accounts::Single(_) => base.clone(),
            Accounts::Named(_) => format!("{base}/{}", account.name),
        };
    }
    if let Err(error) = state::save(&local) {
        eprintln!("warning: doumi chat will need --url and --token: {error:#}");
    }
    let started = Started::describe(&stack, &local, &args, telemetry);
    let stop = CancellationToken::new();
    let mut services = stack.spawn(&stop);
    started.print();

    let _stand_in = stop_stand_in.drop_guard();
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

/// The accounts `doumi up` serves: with nothing given, two of its own
/// (written to an accounts file); with a Token, that one account with what
/// is missing generated, so that safe mode works too; with an accounts
/// file, the file's (none of them made up here).
fn accounts_to_serve(args: &mut UpArgs) -> anyhow::Result<LocalStack> {
    let mut local = LocalStack::default();
    let given_file = non_empty(&args.gateway.wechat_accounts).is_some();
    let given_token = non_empty(&args.gateway.wechat_token).is_some();
    if !given_file && !given_token {
        // Late replies go to a stand-in for WeChat's API, where `doumi chat`
        // picks them up.
        for name in LOCAL_ACCOUNTS {
            local.accounts.push(LocalAccount {
                name: name.to_owned(),
                webhook: String::new(),
                token: random_alphanumeric(32),
                app_id: random_app_id(),
                aes_key: random_alphanumeric(43),
                app_secret: Some(random_alphanumeric(32)),
            });
        }
        let path = state::dir()
            .context("neither XDG_STATE_HOME nor HOME is set")?
            .join("accounts.toml");
        state::write_private(&path, &accounts_file(&local.accounts)?)?;
        args.gateway.wechat_accounts = Some(path.display().to_string());
    } else if !given_file {
        let token = fill(&mut args.gateway.wechat_token, || random_alphanumeric(32));
        let app_id = fill(&mut args.gateway.wechat_app_id, random_app_id);
        let aes_key = fill(&mut args.gateway.wechat_aes_key, || random_alphanumeric(43));
        let app_secret = match non_empty(&args.gateway.api.wechat_app_secret) {
            Some(_) => None,
            None => Some(fill(&mut args.gateway.api.wechat_app_secret, || {
                random_alphanumeric(32)
            })),
        };
        local.accounts.push(LocalAccount {
            name: SINGLE_ACCOUNT.to_owned(),
            webhook: String::new(),
            token,
            app_id,
            aes_key,
            app_secret,
        });
    }
    Ok(local)
}

/// Accounts whose AppSecret doumi made up are served a stand-in for
/// WeChat's API (until `stop`), and the gateway is pointed at it.
async fn stand_in_where_made_up(
    args: &mut UpArgs,
    local: &mut LocalStack,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let stood_in: Vec<(&str, &str)> = local
        .accounts
        .iter()
        .filter_map(|a| Some((a.app_id.as_str(), a.app_secret.as_deref()?)))
        .collect();
    if !stood_in.is_empty() {
        let url = stand_in::spawn(&stood_in, stop.clone()).await?;
        args.gateway.api.wechat_api_base_url = url.clone();
        local.wechat_api = Some(url);
    }
    Ok(())
}

/// The three services' settings with their listeners bound, each hop
/// pointed at the address the next service really bound.
struct Bound {
    catalog: doumi_catalog::CatalogConfig,
    catalog_listener: TcpListener,
    bot: doumi_bot::BotConfig,
    bot_listener: TcpListener,
    gateway: doumi_gateway::GatewayConfig,
    gateway_listener: TcpListener,
}

impl Bound {
    async fn bind(
        mut catalog: doumi_catalog::CatalogConfig,
        mut bot: doumi_bot::BotConfig,
        mut gateway: doumi_gateway::GatewayConfig,
    ) -> anyhow::Result<Self> {
        let catalog_listener = bind(catalog.listen, "catalog").await?;
        let bot_listener = bind(bot.listen, "bot").await?;
        let gateway_listener = bind(gateway.listen, "gateway").await?;
        catalog.listen = catalog_listener.local_addr()?;
        bot.listen = bot_listener.local_addr()?;
        gateway.listen = gateway_listener.local_addr()?;
        bot.catalog = dialable(catalog.listen).into();
        gateway.bot = dialable(bot.listen).into();
        Ok(Self {
            catalog,
            catalog_listener,
            bot,
            bot_listener,
            gateway,
            gateway_listener,
        })
    }

    /// Runs the three services until `stop`; each ends its task with why.
    fn spawn(self, stop: &CancellationToken) -> tokio::task::JoinSet<anyhow::Result<()>> {
        let mut services = tokio::task::JoinSet::new();
        let shutdown = || stop.clone().cancelled_owned();
        let (catalog, listener) = (self.catalog, self.catalog_listener);
        let stopped = shutdown();
        services.spawn(async move {
            doumi_catalog::run(catalog, listener, stopped)
                .await
                .map_err(anyhow::Error::from)
                .context("catalog")
        });
        let (bot, listener) = (self.bot, self.bot_listener);
        let stopped = shutdown();
        services.spawn(async move {
            doumi_bot::run(bot, listener, stopped)
                .await
                .map_err(anyhow::Error::from)
                .context("bot")
        });
        let (gateway, listener) = (self.gateway, self.gateway_listener);
        let stopped = shutdown();
        services.spawn(async move {
            doumi_gateway::run(gateway, listener, stopped)
                .await
                .map_err(anyhow::Error::from)
                .context("gateway")
        });
        services
    }
}

/// What `doumi up` tells the person who started it.
struct Started(String);

impl Started {
    fn describe(
        stack: &Bound,
        local: &LocalStack,
        args: &UpArgs,
        telemetry: &TelemetryArgs,
    ) -> Self {
        use std::fmt::Write as _;
        let mut out = String::new();
        let cache = if stack.catalog.redis.target.is_some() {
            "Redis"
        } else {
            "in-process"
        };
        let _ = writeln!(
            out,
            "doumi is up ({}, {cache} cache).",
            stack.catalog.source
        );
        for account in &local.accounts {
            let _ = writeln!(out, "  account {}:", account.name);
            let _ = writeln!(out, "    webhook URL: {}", account.webhook);
            let _ = writeln!(out, "    token:       {}", account.token);
            let _ = writeln!(
                out,
                "    safe mode:   AppID {}, EncodingAESKey saved for doumi chat",
                account.app_id
            );
        }
        if local.accounts.is_empty() {
            let _ = writeln!(
                out,
                "  accounts:    as listed in {}",
                args.gateway.wechat_accounts.as_deref().unwrap_or_default()
            );
        }
        let _ = match &local.wechat_api {
            Some(url) => writeln!(
                out,
                "  WeChat API:  a local stand-in at {url} (late replies land there; doumi chat shows them)"
            ),
            None => writeln!(
                out,
                "  WeChat API:  {} (late replies as customer-service messages)",
                args.gateway.api.wechat_api_base_url
            ),
        };
        if let Some(endpoint) = &telemetry.otlp_endpoint {
            let _ = writeln!(
                out,
                "  traces:      exported to {endpoint} (service.name doumi)"
            );
        }
        out.push_str("Point your official account's server URL at a webhook with its token,\n");
        out.push_str(
            "or try it here:  doumi chat 9787121139512   (encrypted: doumi chat --safe-mode 9787121139512;\n",
        );
        out.push_str(
            "                 another account: doumi chat --account branch --safe-mode 三体)\n",
        );
        out.push_str("Ctrl-C stops everything.");
        Self(out)
    }

    fn print(&self) {
        println!("{}", self.0);
    }
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

fn random_app_id() -> String {
    format!("wx{:016x}", rand::rng().random::<u64>())
}

/// The accounts file (the gateway's format) for the accounts `doumi up`
/// made up.
fn accounts_file(accounts: &[LocalAccount]) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        account: Vec<Entry<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        name: &'a str,
        token: &'a str,
        app_id: &'a str,
        aes_key: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        app_secret: Option<&'a str>,
    }
    let file = File {
        account: accounts
            .iter()
            .map(|a| Entry {
                name: &a.name,
                token: &a.token,
                app_id: &a.app_id,
                aes_key: &a.aes_key,
                app_secret: a.app_secret.as_deref(),
            })
            .collect(),
    };
    Ok(toml::to_string(&file)?)
}

/// A wildcard listen address is dialled on loopback.
fn dialable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}
