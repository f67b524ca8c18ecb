//! `doumi menu`: the official account's custom menu, managed through
//! WeChat's API with the same access_token handling as the gateway. The
//! default menu gives readers the scan button (`scancode_waitmsg`: WeChat
//! scans the barcode and sends the ISBN to the account) and a help entry.

use std::path::PathBuf;

use anyhow::{Context, bail};
use doumi_wechat::api::{ApiArgs, Credentials, DEFAULT_BASE_URL, OfficialAccount};
use url::Url;

use crate::state;

/// The menu `doumi menu apply` sets without a file.
const DEFAULT_MENU: &str = include_str!("../menu/default.json");

#[derive(Debug, clap::Args)]
pub struct MenuArgs {
    #[command(subcommand)]
    action: MenuAction,
    /// The official account's AppID; defaults to the one `doumi up` generated.
    #[arg(long, env = "DOUMI_WECHAT_APP_ID", global = true)]
    app_id: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Subcommand)]
enum MenuAction {
    /// Set the account's menu from FILE (WeChat's menu JSON), or the default
    /// menu: 「扫码查书」 (scan a barcode) and 「使用帮助」.
    Apply { file: Option<PathBuf> },
    /// Print the menu the account shows now.
    Show,
    /// Remove the account's custom menu.
    Delete,
}

pub async fn run(args: MenuArgs) -> anyhow::Result<()> {
    let account = account(&args)?;
    match args.action {
        MenuAction::Apply { file } => {
            let text = match &file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => DEFAULT_MENU.to_owned(),
            };
            let menu: serde_json::Value =
                serde_json::from_str(&text).context("the menu is not JSON")?;
            if !menu.get("button").is_some_and(serde_json::Value::is_array) {
                bail!("the menu needs a \"button\" list (WeChat's menu JSON)");
            }
            account.create_menu(&menu).await?;
            println!("menu applied");
        }
        MenuAction::Show => {
            let menu = account.menu().await?;
            println!("{}", serde_json::to_string_pretty(&menu)?);
        }
        MenuAction::Delete => {
            account.delete_menu().await?;
            println!("menu deleted");
        }
    }
    Ok(())
}

/// The account from the settings, or `doumi up`'s stand-in when none are given.
fn account(args: &MenuArgs) -> anyhow::Result<OfficialAccount> {
    let secret = args
        .api
        .wechat_app_secret
        .clone()
        .filter(|s| !s.trim().is_empty());
    let (app_id, secret, base) = match (secret, state::load()) {
        (Some(secret), _) => (
            args.app_id
                .clone()
                .context("DOUMI_WECHAT_APP_ID (--app-id) is required with the AppSecret")?,
            secret,
            args.api.wechat_api_base_url.clone(),
        ),
        (None, Some(local)) if args.api.wechat_api_base_url == DEFAULT_BASE_URL => {
            let api = local
                .wechat_api
                .context("the stack `doumi up` started has no WeChat API stand-in")?;
            (local.app_id, api.app_secret, api.url)
        }
        (None, _) => bail!(
            "no AppSecret: set DOUMI_WECHAT_APP_SECRET (--wechat-app-secret) and \
             DOUMI_WECHAT_APP_ID, or start a local stack with `doumi up`"
        ),
    };
    let base = Url::parse(&base).with_context(|| format!("{base:?} is not a URL"))?;
    let credentials = Credentials {
        app_id,
        app_secret: secret.into(),
    };
    Ok(OfficialAccount::new(base, credentials, None)?)
}
