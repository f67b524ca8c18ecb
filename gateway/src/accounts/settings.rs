//! The official accounts a gateway serves, as configured: the single-account
//! variables (one account, served at `/wechat`), or the accounts file that
//! `DOUMI_WECHAT_ACCOUNTS` names (each account at `/wechat/NAME`). Each
//! account is its own trust domain — its Token, its keys, its AppSecret — and
//! a file with any bad entry is refused whole, every problem named.

use std::{collections::HashSet, io::Read, path::Path};

use doumi_runtime::settings::{Problems, non_empty};
use doumi_wechat::{
    api::Credentials,
    crypto::{AesKey, KeyRing, MessageCrypto},
    envelope::WechatToken,
};
use secrecy::SecretString;
use serde::Deserialize;

/// The variable naming the accounts file.
pub const ACCOUNTS_FILE_VAR: &str = "DOUMI_WECHAT_ACCOUNTS";
/// The name the single-account variables' account goes by in labels, logs
/// and the bot.
pub const SINGLE_ACCOUNT: &str = "default";
/// Accounts one gateway serves at most: each has its own token manager,
/// sweep and series.
const MAX_ACCOUNTS: usize = 64;
/// An account takes a few hundred bytes; a larger file is not an accounts file.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// One official account, validated.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// How the account is served (`/wechat/NAME`), labelled and logged.
    pub name: String,
    pub token: WechatToken,
    pub app_id: Option<String>,
    /// Safe-mode keys (with the AppID); `None` = plaintext mode only.
    pub keys: Option<KeyRing>,
    pub require_encryption: bool,
    /// With the AppID: WeChat's API (late replies, the menu).
    pub app_secret: Option<SecretString>,
}

impl AccountSettings {
    /// A plaintext-mode account without WeChat's API.
    pub fn new(name: &str, token: WechatToken) -> Self {
        Self {
            name: name.to_owned(),
            token,
            app_id: None,
            keys: None,
            require_encryption: false,
            app_secret: None,
        }
    }

    /// The AppID and AppSecret WeChat's API takes, when both are set.
    pub fn credentials(&self) -> Option<Credentials> {
        Some(Credentials {
            app_id: self.app_id.clone()?,
            app_secret: self.app_secret.clone()?,
        })
    }
}

/// Every account a gateway serves.
#[derive(Debug, Clone)]
pub enum Accounts {
    /// From the single-account variables: served at `/wechat`.
    Single(AccountSettings),
    /// From the accounts file: each served at `/wechat/NAME`.
    Named(Vec<AccountSettings>),
}

impl Accounts {
    pub fn iter(&self) -> impl Iterator<Item = &AccountSettings> {
        match self {
            Self::Single(account) => std::slice::from_ref(account).iter(),
            Self::Named(accounts) => accounts.iter(),
        }
    }

    /// The account called `name`.
    pub fn get(&self, name: &str) -> Option<&AccountSettings> {
        self.iter().find(|account| account.name == name)
    }
}

/// One account's fields as written, in the file or the variables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    #[serde(default)]
    pub name: String,
    pub token: Option<String>,
    pub app_id: Option<String>,
    pub aes_key: Option<String>,
    pub aes_key_previous: Option<String>,
    pub app_secret: Option<String>,
    #[serde(default)]
    pub require_encryption: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    #[serde(default)]
    account: Vec<RawAccount>,
}

/// Where an account's fields were written, so a problem names the place an
/// operator edits.
#[derive(Clone, Copy)]
pub enum Origin<'a> {
    /// The single-account variables.
    Variables,
    /// The accounts file, the account with this name (or position).
    File(&'a str),
}

impl Origin<'_> {
    fn field(self, field: &str) -> String {
        match self {
            Self::Variables => format!("DOUMI_WECHAT_{}", field.to_ascii_uppercase()),
            Self::File(account) => format!("{ACCOUNTS_FILE_VAR} (account {account}) {field}"),
        }
    }
}

impl RawAccount {
    /// Validates every field, recording each problem in `problems`.
    pub fn validate(&self, origin: Origin<'_>, problems: &mut Problems) -> Option<AccountSettings> {
        let field = |name: &str| origin.field(name);
        let token = match non_empty(&self.token) {
            None => {
                problems.add(
                    &field("token"),
                    "is required (the Token from the official account's server settings)",
                );
                None
            }
            Some(token) => WechatToken::parse(token)
                .map_err(|e| problems.add(&field("token"), e))
                .ok(),
        };
        let app_id = non_empty(&self.app_id).map(str::to_owned);
        let key = |name: &str, value: &Option<String>, problems: &mut Problems| {
            let value = non_empty(value)?;
            let parsed = AesKey::parse(value).map_err(|_| {
                problems.add(
                    &field(name),
                    "must be the 43-character EncodingAESKey from WeChat's console",
                )
            });
            Some(parsed)
        };
        let current = key("aes_key", &self.aes_key, problems);
        let previous = key("aes_key_previous", &self.aes_key_previous, problems);
        let keys = match (&app_id, current, previous) {
            (_, None, None) => Some(None),
            (_, None, Some(_)) => {
                problems.add(
                    &field("aes_key_previous"),
                    format!("needs the current key in {} beside it", field("aes_key")),
                );
                None
            }
            (None, Some(_), _) => {
                problems.add(
                    &field("app_id"),
                    format!("is required when {} is set", field("aes_key")),
                );
                None
            }
            (Some(app_id), Some(current), previous) => {
                let crypto = |key: AesKey| MessageCrypto::new(key, app_id.clone());
                match (current, previous.transpose()) {
                    (Ok(current), Ok(previous)) => {
                        Some(Some(KeyRing::new(crypto(current), previous.map(crypto))))
                    }
                    _ => None,
                }
            }
        };
        if self.require_encryption && matches!(keys, Some(None)) {
            problems.add(
                &field("require_encryption"),
                format!("needs {} and {}", field("aes_key"), field("app_id")),
            );
        }
        let app_secret = non_empty(&self.app_secret).map(|s| SecretString::from(s.to_owned()));
        if app_secret.is_some() && app_id.is_none() {
            problems.add(
                &field("app_id"),
                format!("is required when {} is set", field("app_secret")),
            );
        }
        Some(AccountSettings {
            name: self.name.clone(),
            token: token?,
            app_id,
            keys: keys?,
            require_encryption: self.require_encryption,
            app_secret,
        })
    }
}

/// Reads and validates the accounts file at `path`, recording each problem
/// (all of them, not the first) in `problems`; `None` when any was found.
pub fn load_file(path: &Path, problems: &mut Problems) -> Option<Vec<AccountSettings>> {
    let text = match read_bounded(path) {
        Ok(text) => text,
        Err(error) => {
            problems.add(
                ACCOUNTS_FILE_VAR,
                format!("cannot read {}: {error}", path.display()),
            );
            return None;
        }
    };
    let file: AccountsFile = match toml::from_str(&text) {
        Ok(file) => file,
        Err(error) => {
            // Only the message and the line: the snippet toml would quote
            // may hold a secret.
            let line = error
                .span()
                .map_or(1, |span| text[..span.start].matches('\n').count() + 1);
            problems.add(
                ACCOUNTS_FILE_VAR,
                format!(
                    "{} line {line}: {}",
                    path.display(),
                    error.message().trim_end()
                ),
            );
            return None;
        }
    };
    if file.account.is_empty() {
        problems.add(
            ACCOUNTS_FILE_VAR,
            format!("{} lists no [[account]]", path.display()),
        );
        return None;
    }
    if file.account.len() > MAX_ACCOUNTS {
        problems.add(
            ACCOUNTS_FILE_VAR,
            format!("lists more than {MAX_ACCOUNTS} accounts"),
        );
        return None;
    }
    let mut seen = HashSet::new();
    let mut accounts = Vec::with_capacity(file.account.len());
    let mut complete = true;
    for (index, raw) in file.account.iter().enumerate() {
        let position = format!("#{}", index + 1);
        let label = if raw.name.is_empty() {
            position
        } else {
            format!("\"{}\"", raw.name)
        };
        let origin = Origin::File(&label);
        if let Err(problem) = check_name(&raw.name) {
            problems.add(&origin.field("name"), problem);
            complete = false;
        } else if !seen.insert(raw.name.as_str()) {
            problems.add(&origin.field("name"), "is used by an earlier account");
            complete = false;
        }
        match raw.validate(origin, problems) {
            Some(account) => accounts.push(account),
            None => complete = false,
        }
    }
    complete.then_some(accounts)
}

/// Account names are path segments, label values and Redis key parts.
fn check_name(name: &str) -> Result<(), &'static str> {
    let valid = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err("is required: 1 to 32 lowercase letters, digits and '-' (it is the path /wechat/NAME)")
    }
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn load(text: &str) -> Result<Vec<AccountSettings>, String> {
        let dir = std::env::temp_dir().join(format!("doumi-accounts-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("accounts.toml");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let mut problems = Problems::new();
        let accounts = load_file(&path, &mut problems);
        let _ = std::fs::remove_dir_all(&dir);
        problems.finish(accounts).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_file_gives_every_account() {
        let accounts = load(&format!(
            r#"
            [[account]]
            name = "books"
            token = "booksToken1"
            app_id = "wx1111111111111111"
            aes_key = "{KEY}"
            aes_key_previous = "{KEY}"
            app_secret = "secret-1"
            require_encryption = true

            [[account]]
            name = "branch-2"
            token = "branchToken2"
            "#
        ))
        .unwrap();
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[0].name, "books");
        assert!(accounts[0].keys.is_some() && accounts[0].require_encryption);
        assert!(accounts[0].credentials().is_some());
        assert!(accounts[1].keys.is_none() && accounts[1].credentials().is_none());
    }

    #[test]
    fn every_bad_entry_is_named_and_nothing_is_loaded() {
        let error = load(
            r#"
            [[account]]
            name = "Books!"
            token = "x"

            [[account]]
            name = "ok"
            token = "goodToken1"
            aes_key = "short"

            [[account]]
            name = "ok"
            token = "goodToken2"
            app_secret = "s"

            [[account]]
            token = "goodToken3"
            require_encryption = true
            "#,
        )
        .unwrap_err();
        for expected in [
            "(account \"Books!\") name",
            "(account \"Books!\") token",
            "(account \"ok\") aes_key: must be the 43-character",
            "(account \"ok\") name: is used by an earlier account",
            "(account \"ok\") app_id: is required when DOUMI_WECHAT_ACCOUNTS (account \"ok\") app_secret is set",
            "(account #4) name: is required",
            "(account #4) require_encryption",
        ] {
            assert!(
                error.contains(expected),
                "{expected:?} missing from {error}"
            );
        }
        assert!(!error.contains("goodToken"), "a token leaked: {error}");
    }

    #[test]
    fn a_file_that_is_not_toml_names_the_line_without_quoting_it() {
        let error = load("[[account]]\nname = \"a\"\ntoken = secretToken9\n").unwrap_err();
        assert!(error.contains("line 3"), "{error}");
        assert!(!error.contains("secretToken9"), "{error}");
        let error =
            load("[[account]]\nname = \"a\"\ntoken = \"abc123\"\ncolour = 1\n").unwrap_err();
        assert!(error.contains("colour"), "{error}");
        let error = load("").unwrap_err();
        assert!(error.contains("no [[account]]"), "{error}");
    }
}
