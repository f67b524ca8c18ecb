//! The gateway's settings.

use std::{net::SocketAddr, time::Duration};

use doumi_runtime::{
    grpc::{DialSettings, Target},
    ports,
    redis::RedisSettings,
    settings::{Problems, choice_text, duration_text, non_empty},
};
use doumi_wechat::api::ApiArgs;
use url::Url;

use crate::{
    accounts::{
        ACCOUNTS_FILE_VAR, AccountSettings, Accounts, Origin, RawAccount, SINGLE_ACCOUNT,
        WechatToken, load_file,
    },
    window::{WECHAT_PATIENCE, WECHAT_WINDOW, WindowSettings},
};

/// Command-line flags and environment variables, as clap read them.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address the HTTP server listens on (/wechat, /healthz, /readyz).
    #[arg(long, env = "DOUMI_GATEWAY_LISTEN", default_value_t = ports::listen_on(ports::GATEWAY))]
    pub gateway_listen: String,
    /// Where the bot's replicas are: `dns:///host:port` (every address the
    /// name resolves to), `ipv4:addr:port,addr:port` or `http://host:port`.
    #[arg(long, env = "DOUMI_BOT_URL", default_value_t = ports::local_url(ports::BOT))]
    pub bot_url: String,
    /// How often the bot's name is resolved again (new replicas, replicas gone).
    #[arg(
        long = "gateway-resolve-interval",
        id = "gateway_resolve_interval",
        env = "DOUMI_RESOLVE_INTERVAL",
        default_value_t = duration_text(DialSettings::DEFAULT.resolve_interval)
    )]
    pub resolve_interval: String,
    /// A TOML file listing the official accounts to serve, each at
    /// /wechat/NAME; instead of the single-account settings (Token, AppID,
    /// keys, AppSecret), which serve one account at /wechat.
    #[arg(long, env = "DOUMI_WECHAT_ACCOUNTS")]
    pub wechat_accounts: Option<String>,
    /// The Token set in the official account's server configuration
    /// (required without an accounts file).
    #[arg(long, env = "DOUMI_WECHAT_TOKEN", hide_env_values = true)]
    pub wechat_token: Option<String>,
    /// How long WeChat may wait for a reply before the gateway answers anyway
    /// (WeChat gives up after 5 s).
    #[arg(long, env = "DOUMI_WECHAT_REPLY_BUDGET", default_value_t = duration_text(WindowSettings::DEFAULT.budget))]
    pub wechat_reply_budget: String,
    /// How far a request's timestamp may be from now (replay protection).
    #[arg(long, env = "DOUMI_WECHAT_TIMESTAMP_TOLERANCE", default_value_t = duration_text(DEFAULT_TIMESTAMP_TOLERANCE))]
    pub wechat_timestamp_tolerance: String,
    /// The official account's AppID (needed for safe and compatible mode).
    #[arg(long, env = "DOUMI_WECHAT_APP_ID")]
    pub wechat_app_id: Option<String>,
    /// The 43-character EncodingAESKey; unset = plaintext mode only.
    #[arg(long, env = "DOUMI_WECHAT_AES_KEY", hide_env_values = true)]
    pub wechat_aes_key: Option<String>,
    /// During a key rotation, the EncodingAESKey just replaced: messages the
    /// current key cannot open are tried with it (and answered with it).
    #[arg(long, env = "DOUMI_WECHAT_AES_KEY_PREVIOUS", hide_env_values = true)]
    pub wechat_aes_key_previous: Option<String>,
    /// Refuse plaintext messages (for accounts in safe mode: no downgrade).
    #[arg(long, env = "DOUMI_WECHAT_REQUIRE_ENCRYPTION", default_value = "false")]
    pub wechat_require_encryption: String,
    /// `hold`: early attempts wait for the real reply, the last is answered in
    /// its budget; `immediate`: every attempt is answered in its budget.
    #[arg(long, env = "DOUMI_WECHAT_REPLY_POLICY", default_value_t = choice_text(WindowSettings::DEFAULT.policy))]
    pub wechat_reply_policy: String,
    /// What an attempt answers when the real reply is not ready: `text` or `success`.
    #[arg(long, env = "DOUMI_WECHAT_INTERIM", default_value_t = choice_text(WindowSettings::DEFAULT.interim))]
    pub wechat_interim: String,
    /// How many messages the reply window remembers for WeChat's retries;
    /// past it the oldest are forgotten (a retry of one may be answered
    /// twice, never lost).
    #[arg(long, env = "DOUMI_GATEWAY_WINDOW_CAPACITY", default_value_t = WindowSettings::DEFAULT.capacity.to_string())]
    pub gateway_window_capacity: String,
    /// Messages worked on at once (a late reply's included, until delivered);
    /// past it a new message is answered at once with a "busy, send again"
    /// text, so WeChat never sees an error or a hang.
    #[arg(long, env = "DOUMI_GATEWAY_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT.to_string())]
    pub gateway_max_in_flight: String,
    #[command(flatten)]
    pub api: ApiArgs,
    /// With DOUMI_WECHAT_APP_SECRET: how long after a message arrives its
    /// reply may still be delivered as a customer-service message.
    #[arg(long, env = "DOUMI_WECHAT_DELIVERY_DEADLINE", default_value_t = duration_text(DEFAULT_DELIVERY_DEADLINE))]
    pub wechat_delivery_deadline: String,
    /// With DOUMI_WECHAT_APP_SECRET: while WeChat refuses the account
    /// (48001, 40164, 40125…), how often it is checked again before late
    /// replies are promised again.
    #[arg(long, env = "DOUMI_WECHAT_PROBE_INTERVAL", default_value_t = duration_text(DEFAULT_PROBE_INTERVAL))]
    pub wechat_probe_interval: String,
}

/// Messages worked on at once, by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// How far a request's timestamp may be from now, by default: WeChat signs
/// each request when it sends it, and five minutes covers any clock skew.
pub const DEFAULT_TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(300);

/// How long after a message arrives a late reply may still be delivered, by
/// default.
pub const DEFAULT_DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// How often an account WeChat refuses is checked again, by default.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(300);

/// The longest a reader is kept waiting for a late reply.
const MAX_DELIVERY_DEADLINE: Duration = Duration::from_secs(600);

/// The gateway's validated configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Every replica of the bot.
    pub bot: Target,
    pub dial: DialSettings,
    /// The official accounts served.
    pub accounts: Accounts,
    pub window: WindowSettings,
    pub timestamp_tolerance: Duration,
    /// Redis, shared by the replicas so they agree on one answer per
    /// message, on promises and on one access_token.
    pub redis: RedisSettings,
    /// Messages worked on at once before the gateway sheds load.
    pub max_in_flight: usize,
    /// How replies that miss WeChat's window are delivered, for the accounts
    /// with an AppSecret; the readers of the others are asked to send again.
    pub delivery: DeliverySettings,
}

/// Where late replies are sent, and until when.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub api_base_url: Url,
    pub deadline: Duration,
    /// How often an account WeChat refuses is checked again.
    pub probe_interval: Duration,
}

impl GatewayConfig {
    /// Defaults for a gateway in front of `bot`, serving one plaintext
    /// account with `token`; used by tests and `doumi up`.
    pub fn new(listen: SocketAddr, bot: Target, token: WechatToken) -> Self {
        Self {
            listen,
            bot,
            dial: DialSettings::DEFAULT,
            accounts: Accounts::Single(AccountSettings::new(SINGLE_ACCOUNT, token)),
            window: WindowSettings::DEFAULT,
            timestamp_tolerance: DEFAULT_TIMESTAMP_TOLERANCE,
            redis: RedisSettings::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            delivery: DeliverySettings::default(),
        }
    }
}

impl Default for DeliverySettings {
    /// WeChat's own API, the default deadline and probe interval.
    fn default() -> Self {
        Self {
            #[allow(clippy::expect_used)]
            api_base_url: Url::parse(doumi_wechat::api::DEFAULT_BASE_URL)
                .expect("WeChat's API URL is a constant that parses"),
            deadline: DEFAULT_DELIVERY_DEADLINE,
            probe_interval: DEFAULT_PROBE_INTERVAL,
        }
    }
}

impl GatewayArgs {
    /// Validates every setting, recording each problem in `problems`;
    /// `redis` is the binary's Redis settings, validated on their own.
    pub fn config(
        &self,
        problems: &mut Problems,
        redis: Option<RedisSettings>,
    ) -> Option<GatewayConfig> {
        let listen = problems.socket_addr("DOUMI_GATEWAY_LISTEN", &self.gateway_listen);
        let bot = problems.grpc_target("DOUMI_BOT_URL", &self.bot_url);
        let dial = problems.dial(&self.resolve_interval);
        let accounts = self.accounts(problems);
        let budget = problems.duration("DOUMI_WECHAT_REPLY_BUDGET", &self.wechat_reply_budget);
        if budget.is_some_and(|b| b.is_zero() || b >= WECHAT_WINDOW) {
            problems.add(
                "DOUMI_WECHAT_REPLY_BUDGET",
                "must be above 0 and under WeChat's 5 s",
            );
        }
        let timestamp_tolerance = problems.duration(
            "DOUMI_WECHAT_TIMESTAMP_TOLERANCE",
            &self.wechat_timestamp_tolerance,
        );
        let policy = problems.choice("DOUMI_WECHAT_REPLY_POLICY", &self.wechat_reply_policy);
        let interim = problems.choice("DOUMI_WECHAT_INTERIM", &self.wechat_interim);
        let delivery = self.delivery(problems);
        let capacity = problems.number(
            "DOUMI_GATEWAY_WINDOW_CAPACITY",
            &self.gateway_window_capacity,
            1..=10_000_000,
        );
        let max_in_flight = problems.number(
            "DOUMI_GATEWAY_MAX_IN_FLIGHT",
            &self.gateway_max_in_flight,
            1..=1_000_000,
        );
        Some(GatewayConfig {
            listen: listen?,
            bot: bot?,
            dial: dial?,
            accounts: accounts?,
            window: WindowSettings {
                policy: policy?,
                budget: budget?,
                interim: interim?,
                capacity: capacity?,
            },
            timestamp_tolerance: timestamp_tolerance?,
            redis: redis?,
            delivery: delivery?,
            max_in_flight: max_in_flight?,
        })
    }

    /// The accounts: from the accounts file when one is named, from the
    /// single-account settings otherwise — never both.
    fn accounts(&self, problems: &mut Problems) -> Option<Accounts> {
        let require_encryption = problems.flag(
            "DOUMI_WECHAT_REQUIRE_ENCRYPTION",
            &self.wechat_require_encryption,
        )?;
        let single = RawAccount {
            name: SINGLE_ACCOUNT.to_owned(),
            token: self.wechat_token.clone(),
            app_id: self.wechat_app_id.clone(),
            aes_key: self.wechat_aes_key.clone(),
            aes_key_previous: self.wechat_aes_key_previous.clone(),
            app_secret: self.api.wechat_app_secret.clone(),
            require_encryption,
        };
        let Some(file) = non_empty(&self.wechat_accounts) else {
            return single
                .validate(Origin::Variables, problems)
                .map(Accounts::Single);
        };
        let set: Vec<&str> = [
            ("DOUMI_WECHAT_TOKEN", &single.token),
            ("DOUMI_WECHAT_APP_ID", &single.app_id),
            ("DOUMI_WECHAT_AES_KEY", &single.aes_key),
            ("DOUMI_WECHAT_AES_KEY_PREVIOUS", &single.aes_key_previous),
            ("DOUMI_WECHAT_APP_SECRET", &single.app_secret),
        ]
        .into_iter()
        .filter(|(_, value)| non_empty(value).is_some())
        .map(|(name, _)| name)
        .chain(require_encryption.then_some("DOUMI_WECHAT_REQUIRE_ENCRYPTION"))
        .collect();
        if !set.is_empty() {
            problems.add(
                ACCOUNTS_FILE_VAR,
                format!(
                    "serves the accounts its file lists; {} would configure another: move it \
                     into the file as an [[account]] or unset it",
                    set.join(", ")
                ),
            );
        }
        let accounts = load_file(std::path::Path::new(file), problems)?;
        set.is_empty().then_some(Accounts::Named(accounts))
    }

    /// Where and until when late replies are delivered (for the accounts
    /// with an AppSecret).
    fn delivery(&self, problems: &mut Problems) -> Option<DeliverySettings> {
        let api_base_url = problems
            .http_url("DOUMI_WECHAT_API_BASE_URL", &self.api.wechat_api_base_url)
            .and_then(|url| {
                Url::parse(&url)
                    .map_err(|e| problems.add("DOUMI_WECHAT_API_BASE_URL", e.to_string()))
                    .ok()
            });
        let deadline = problems.duration(
            "DOUMI_WECHAT_DELIVERY_DEADLINE",
            &self.wechat_delivery_deadline,
        );
        let probe_interval =
            problems.duration("DOUMI_WECHAT_PROBE_INTERVAL", &self.wechat_probe_interval);
        if probe_interval.is_some_and(|p| p < Duration::from_secs(1)) {
            problems.add("DOUMI_WECHAT_PROBE_INTERVAL", "must be at least 1s");
        }
        if deadline.is_some_and(|d| d < WECHAT_PATIENCE || d > MAX_DELIVERY_DEADLINE) {
            problems.add(
                "DOUMI_WECHAT_DELIVERY_DEADLINE",
                "must be between 15s (WeChat's three attempts) and 10m",
            );
        }
        Some(DeliverySettings {
            api_base_url: api_base_url?,
            deadline: deadline?,
            probe_interval: probe_interval?,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::window::{Interim, ReplyPolicy};

    fn check(args: &[&str]) -> Result<GatewayConfig, String> {
        let cli =
            crate::Cli::try_parse_from(std::iter::once("gateway").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        let mut problems = Problems::new();
        let config = cli.config(&mut problems);
        problems.finish(config).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_need_only_a_token() {
        let config = check(&["--wechat-token", "abc123"]).unwrap();
        assert_eq!(config.window.policy, ReplyPolicy::Hold);
        assert_eq!(config.window.budget, Duration::from_millis(4500));
        // The flags' defaults are the library's, read back through the CLI.
        let library = GatewayConfig::new(
            config.listen,
            config.bot.clone(),
            WechatToken::parse("abc123").unwrap(),
        );
        assert_eq!(config.window, library.window);
        assert_eq!(config.dial, library.dial);
        assert_eq!(
            (config.max_in_flight, config.timestamp_tolerance),
            (library.max_in_flight, library.timestamp_tolerance)
        );
        assert_eq!(config.listen.port(), doumi_runtime::ports::GATEWAY);
        let Accounts::Single(account) = &config.accounts else {
            panic!("one account without a file");
        };
        assert!(account.keys.is_none() && !account.require_encryption);
        assert!(config.redis.target.is_none());
    }

    #[test]
    fn every_bad_setting_is_named_at_once() {
        let error = check(&[
            "--wechat-reply-budget",
            "6s",
            "--wechat-reply-policy",
            "later",
            "--wechat-aes-key",
            "tooshort",
            "--wechat-app-id",
            "wx1",
            "--redis-url",
            "http://nope",
        ])
        .unwrap_err();
        for name in [
            "DOUMI_WECHAT_TOKEN",
            "DOUMI_WECHAT_REPLY_BUDGET",
            "DOUMI_WECHAT_REPLY_POLICY",
            "DOUMI_WECHAT_AES_KEY",
            "DOUMI_REDIS_URL",
        ] {
            assert!(error.contains(name), "{name} missing from {error}");
        }
    }

    #[test]
    fn safe_mode_settings() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let config = check(&[
            "--wechat-token",
            "abc123",
            "--wechat-app-id",
            "wx2c2769f8efd9abc2",
            "--wechat-aes-key",
            key,
            "--wechat-require-encryption",
            "true",
            "--wechat-reply-policy",
            "immediate",
            "--wechat-interim",
            "success",
        ])
        .unwrap();
        let account = config.accounts.get(SINGLE_ACCOUNT).unwrap();
        assert!(account.keys.is_some() && account.require_encryption);
        assert_eq!(
            (config.window.policy, config.window.interim),
            (ReplyPolicy::Immediate, Interim::Success)
        );
        let error = check(&[
            "--wechat-token",
            "abc123",
            "--wechat-require-encryption",
            "true",
        ])
        .unwrap_err();
        assert!(error.contains("needs DOUMI_WECHAT_AES_KEY"), "{error}");
    }

    #[test]
    fn an_accounts_file_is_never_mixed_with_the_single_account_settings() {
        let dir = std::env::temp_dir().join(format!("doumi-config-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("accounts.toml");
        std::fs::write(
            &file,
            "[[account]]\nname = \"books\"\ntoken = \"booksToken1\"\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config = check(&["--wechat-accounts", file]).unwrap();
        assert!(matches!(&config.accounts, Accounts::Named(list) if list[0].name == "books"));
        let error = check(&["--wechat-accounts", file, "--wechat-token", "abc123"]).unwrap_err();
        assert!(
            error.contains("DOUMI_WECHAT_ACCOUNTS") && error.contains("DOUMI_WECHAT_TOKEN"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
