//! `doumi stand-in`: the stand-in for WeChat's API that `doumi up` runs
//! inside itself, on its own, so the three binaries can run as production
//! does — with an AppSecret, late replies delivered — without an account
//! (the load test runs the gateway this way).

use std::net::SocketAddr;

use anyhow::Context;
use doumi_wechat::stand_in::StandIn;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct StandInArgs {
    /// Where it listens; keep it on loopback, it checks nothing but the
    /// AppID and AppSecret.
    #[arg(long, default_value = "127.0.0.1:18099")]
    listen: SocketAddr,
    /// The AppID it issues access tokens for.
    #[arg(long, env = "DOUMI_WECHAT_APP_ID")]
    app_id: String,
    /// The AppSecret it issues access tokens for.
    #[arg(long, env = "DOUMI_WECHAT_APP_SECRET", hide_env_values = true)]
    app_secret: String,
}

/// Serves the stand-in until Ctrl-C or SIGTERM.
pub async fn run(args: StandInArgs) -> anyhow::Result<()> {
    let listener = bind(args.listen, "the WeChat API stand-in").await?;
    println!(
        "WeChat API stand-in for AppID {} at http://{} (DOUMI_WECHAT_API_BASE_URL); \
         delivered messages: GET /stand-in/messages",
        args.app_id,
        listener.local_addr()?
    );
    let stand_in = StandIn::for_account(&args.app_id, &args.app_secret);
    axum::serve(listener, stand_in.router())
        .with_graceful_shutdown(doumi_runtime::shutdown::signal())
        .await
        .context("the WeChat API stand-in stopped")
}

/// Serves a stand-in for `accounts` (AppID, AppSecret) on a loopback port
/// in the background, until `stop`; its base URL.
pub async fn spawn(accounts: &[(&str, &str)], stop: CancellationToken) -> anyhow::Result<String> {
    let listener = bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        "the WeChat API stand-in",
    )
    .await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = StandIn::for_accounts(accounts).router();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    Ok(url)
}

pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what} cannot listen on {addr}"))
}
