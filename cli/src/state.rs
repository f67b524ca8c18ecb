//! What `doumi up` leaves for `doumi chat` and `doumi menu`: each account it
//! serves (webhook URL and the credentials it generated) and its stand-in for
//! WeChat's API, in a file only this user can read.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The local stack's address book.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocalStack {
    /// The stand-in for WeChat's API, when `doumi up` serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_api: Option<String>,
    /// The accounts served, the one `doumi chat` talks to by default first.
    #[serde(default, rename = "account")]
    pub accounts: Vec<LocalAccount>,
}

/// One account of the local stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalAccount {
    pub name: String,
    pub webhook: String,
    pub token: String,
    pub app_id: String,
    pub aes_key: String,
    /// Known to the stand-in for WeChat's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
}

impl LocalStack {
    /// The account called `name`, or the first one.
    pub fn account(&self, name: Option<&str>) -> anyhow::Result<&LocalAccount> {
        match name {
            None => self
                .accounts
                .first()
                .context("the stack `doumi up` started serves no account"),
            Some(name) => self
                .accounts
                .iter()
                .find(|account| account.name == name)
                .with_context(|| {
                    let names: Vec<&str> = self.accounts.iter().map(|a| a.name.as_str()).collect();
                    format!(
                        "the stack `doumi up` started has no account {name:?} (it has {})",
                        names.join(", ")
                    )
                }),
        }
    }
}

/// The directory `doumi up` keeps its files in.
pub fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(base.join("doumi"))
}

pub fn save(stack: &LocalStack) -> anyhow::Result<()> {
    let dir = dir().context("neither XDG_STATE_HOME nor HOME is set")?;
    let text = toml::to_string(stack).context("writing the local stack's state")?;
    write_private(&dir.join("up.toml"), &text)
}

/// Writes `text` to a file only this user can read, from the first byte on,
/// creating its directory.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its old mode on open: tighten it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("protecting {}", path.display()))?;
        }
    }
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

pub fn load() -> Option<LocalStack> {
    let text = std::fs::read_to_string(dir()?.join("up.toml")).ok()?;
    toml::from_str(&text).ok()
}
