//! `doumi menu`: the official account's custom menu, managed through
//! WeChat's API with the same access_token handling as the gateway. The
//! default menu gives readers the scan button (`scancode_waitmsg`: WeChat
//! scans the barcode and sends the ISBN to the account) and a help entry.

use std::path::PathBuf;

use anyhow::{Context, bail};
use doumi_gateway::accounts::{ACCOUNTS_FILE_VAR, load_file};
use doumi_runtime::settings::{Problems, non_empty};
use doumi_wechat::api::{
    ApiArgs, ApiError, Credentials, DEFAULT_BASE_URL, ErrCode, OfficialAccount,
};
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
    /// Which account: one of the accounts file's (DOUMI_WECHAT_ACCOUNTS),
    /// or of the stack `doumi up` started (its first by default).
    #[arg(long, global = true)]
    account: Option<String>,
    /// The accounts file the gateway serves, to find --account in.
    #[arg(long, env = "DOUMI_WECHAT_ACCOUNTS", global = true)]
    accounts: Option<String>,
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
    apply(&account, args.action).await.map_err(explain)
}

/// 48001 is what an unverified subscription account gets from the menu API:
/// said in a sentence, not as a bare code.
fn explain(error: anyhow::Error) -> anyhow::Error {
    let unauthorized = error
        .downcast_ref::<ApiError>()
        .and_then(ApiError::errcode)
        .is_some_and(|code| code == ErrCode::Unauthorized);
    if unauthorized {
        error.context(
            "WeChat refused (48001): this account has no permission for the menu API — \
             unverified subscription accounts do not; verify the account, or set the menu in \
             the console (自定义菜单), or try it with a 测试号",
        )
    } else {
        error
    }
}

async fn apply(account: &OfficialAccount, action: MenuAction) -> anyhow::Result<()> {
    match action {
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

/// The account from the settings — the accounts file's `--account`, or the
/// single-account AppID and AppSecret — or `doumi up`'s when none are given.
fn account(args: &MenuArgs) -> anyhow::Result<OfficialAccount> {
    if let Some(file) = non_empty(&args.accounts) {
        let name = args
            .account
            .as_deref()
            .context("--account NAME picks the account of the accounts file")?;
        let mut problems = Problems::new();
        let accounts = load_file(std::path::Path::new(file), &mut problems);
        let accounts = problems.finish(accounts)?;
        let credentials = accounts
            .iter()
            .find(|account| account.name == name)
            .with_context(|| format!("{ACCOUNTS_FILE_VAR} lists no account {name:?}"))?
            .credentials()
            .with_context(|| format!("account {name:?} has no app_id and app_secret"))?;
        let base = &args.api.wechat_api_base_url;
        let base = Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
        return Ok(OfficialAccount::new(base, credentials, None)?);
    }
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
                .clone()
                .context("the stack `doumi up` started has no WeChat API stand-in")?;
            let account = local.account(args.account.as_deref())?;
            let secret = account
                .app_secret
                .clone()
                .context("the account `doumi up` serves has an AppSecret of yours: pass it")?;
            (account.app_id.clone(), secret, api)
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
