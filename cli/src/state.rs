//! What `doumi up` leaves for `doumi chat`: the webhook URL and the
//! credentials it generated, in a file only this user can read.

use std::path::PathBuf;

use anyhow::Context;

/// The local stack's address book.
#[derive(Debug, Clone)]
pub struct LocalStack {
    pub webhook: String,
    pub token: String,
    pub app_id: String,
    pub aes_key: String,
    /// The stand-in for WeChat's API, when `doumi up` serves one.
    pub wechat_api: Option<WechatApi>,
}

/// Where `doumi up`'s stand-in for WeChat's API is, and its AppSecret.
#[derive(Debug, Clone)]
pub struct WechatApi {
    pub url: String,
    pub app_secret: String,
}

fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(base.join("doumi").join("up"))
}

pub fn save(stack: &LocalStack) -> anyhow::Result<()> {
    let path = path().context("neither XDG_STATE_HOME nor HOME is set")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = format!(
        "webhook={}\ntoken={}\napp_id={}\naes_key={}\n",
        stack.webhook, stack.token, stack.app_id, stack.aes_key
    );
    if let Some(api) = &stack.wechat_api {
        text.push_str(&format!(
            "wechat_api={}\napp_secret={}\n",
            api.url, api.app_secret
        ));
    }
    write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes `text` to a file only this user can read, from the first byte on.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its old mode on open: tighten it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)?.write_all(text.as_bytes())
}

pub fn load() -> Option<LocalStack> {
    let text = std::fs::read_to_string(path()?).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Some(LocalStack {
        webhook: field("webhook")?,
        token: field("token")?,
        app_id: field("app_id").unwrap_or_default(),
        aes_key: field("aes_key").unwrap_or_default(),
        wechat_api: field("wechat_api")
            .zip(field("app_secret"))
            .map(|(url, app_secret)| WechatApi { url, app_secret }),
    })
}
