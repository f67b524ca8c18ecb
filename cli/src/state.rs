//! What `doumi up` leaves for `doumi chat`: the webhook URL and the token it
//! generated, in a file only this user can read.

use std::path::PathBuf;

use anyhow::Context;

/// The local stack's address book.
#[derive(Debug, Clone)]
pub struct LocalStack {
    pub webhook: String,
    pub token: String,
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
    let text = format!("webhook={}\ntoken={}\n", stack.webhook, stack.token);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
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
    })
}
