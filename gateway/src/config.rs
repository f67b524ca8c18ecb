//! The gateway's settings.

use std::{net::SocketAddr, time::Duration};

use doumi_runtime::{
    grpc::{DialSettings, Target},
    ports,
    settings::{Problems, choice_text, duration_text, non_empty},
};
use doumi_wechat::api::{ApiArgs, Credentials};
use secrecy::SecretString;
use url::Url;

use doumi_wechat::crypto::{AesKey, MessageCrypto};

use crate::window::{WECHAT_PATIENCE, WECHAT_WINDOW, WindowSettings};

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
    /// The Token set in the official account's server configuration (required).
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
    /// Redis shared by gateway replicas so they agree on one answer per
    /// message; unset = in-process. The same variable as the catalog's cache,
    /// with its own flag so `doumi up` can carry both.
    #[arg(
        long = "gateway-redis-url",
        id = "gateway_redis_url",
        env = "DOUMI_REDIS_URL"
    )]
    pub redis_url: Option<String>,
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

/// The Token shared with WeChat: 3 to 32 letters and digits, as WeChat's
/// console requires. It never appears in logs.
#[derive(Clone)]
pub struct WechatToken(SecretString);

impl WechatToken {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if !(3..=32).contains(&value.len()) || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("must be 3 to 32 letters and digits, as in WeChat's console");
        }
        Ok(Self(SecretString::from(value.to_owned())))
    }

    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl std::fmt::Debug for WechatToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WechatToken(***)")
    }
}

/// The gateway's validated configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Every replica of the bot.
    pub bot: Target,
    pub dial: DialSettings,
    pub token: WechatToken,
    pub window: WindowSettings,
    pub timestamp_tolerance: Duration,
    /// Safe-mode credentials; `None` = plaintext mode only.
    pub crypto: Option<MessageCrypto>,
    pub require_encryption: bool,
    pub redis_url: Option<String>,
    /// Messages worked on at once before the gateway sheds load.
    pub max_in_flight: usize,
    /// Replies that miss WeChat's window are delivered through WeChat's API;
    /// `None` = the reader is asked to send again.
    pub delivery: Option<DeliverySettings>,
}

/// Where and as whom late replies are sent, and until when.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub api_base_url: Url,
    pub credentials: Credentials,
    pub deadline: Duration,
    /// How often an account WeChat refuses is checked again.
    pub probe_interval: Duration,
}

impl GatewayConfig {
    /// Defaults for a gateway in front of `bot`; used by tests and `doumi up`.
    pub fn new(listen: SocketAddr, bot: Target, token: WechatToken) -> Self {
        Self {
            listen,
            bot,
            dial: DialSettings::DEFAULT,
            token,
            window: WindowSettings::DEFAULT,
            timestamp_tolerance: DEFAULT_TIMESTAMP_TOLERANCE,
            crypto: None,
            require_encryption: false,
            redis_url: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            delivery: None,
        }
    }
}

impl GatewayArgs {
    /// Validates every setting, recording each problem in `problems`.
    pub fn config(&self, problems: &mut Problems) -> Option<GatewayConfig> {
        let listen = problems.socket_addr("DOUMI_GATEWAY_LISTEN", &self.gateway_listen);
        let bot = problems.grpc_target("DOUMI_BOT_URL", &self.bot_url);
        let dial = problems.dial(&self.resolve_interval);
        let token = match non_empty(&self.wechat_token) {
            None => {
                problems.add(
                    "DOUMI_WECHAT_TOKEN",
                    "is required (the Token from the official account's server settings)",
                );
                None
            }
            Some(token) => WechatToken::parse(token)
                .map_err(|e| problems.add("DOUMI_WECHAT_TOKEN", e))
                .ok(),
        };
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
        let require_encryption = problems.flag(
            "DOUMI_WECHAT_REQUIRE_ENCRYPTION",
            &self.wechat_require_encryption,
        );
        let crypto = self.crypto(problems);
        if require_encryption == Some(true) && matches!(crypto, Some(None)) {
            problems.add(
                "DOUMI_WECHAT_REQUIRE_ENCRYPTION",
                "needs DOUMI_WECHAT_AES_KEY and DOUMI_WECHAT_APP_ID",
            );
        }
        let redis_url = problems.redis_url("DOUMI_REDIS_URL", &self.redis_url);
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
            token: token?,
            window: WindowSettings {
                policy: policy?,
                budget: budget?,
                interim: interim?,
                capacity: capacity?,
            },
            timestamp_tolerance: timestamp_tolerance?,
            crypto: crypto?,
            require_encryption: require_encryption?,
            redis_url: redis_url?,
            delivery: delivery?,
            max_in_flight: max_in_flight?,
        })
    }

    /// Late delivery: on with an AppSecret (which needs the AppID).
    fn delivery(&self, problems: &mut Problems) -> Option<Option<DeliverySettings>> {
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
        let Some(secret) = non_empty(&self.api.wechat_app_secret) else {
            return Some(None);
        };
        let Some(app_id) = non_empty(&self.wechat_app_id) else {
            problems.add(
                "DOUMI_WECHAT_APP_ID",
                "is required when DOUMI_WECHAT_APP_SECRET is set",
            );
            return None;
        };
        Some(Some(DeliverySettings {
            api_base_url: api_base_url?,
            credentials: Credentials {
                app_id: app_id.to_owned(),
                app_secret: SecretString::from(secret.to_owned()),
            },
            deadline: deadline?,
            probe_interval: probe_interval?,
        }))
    }

    /// Safe-mode credentials: both AppID and key, or neither.
    fn crypto(&self, problems: &mut Problems) -> Option<Option<MessageCrypto>> {
        match (
            non_empty(&self.wechat_app_id),
            non_empty(&self.wechat_aes_key),
        ) {
            (_, None) => Some(None),
            (Some(app_id), Some(key)) => match AesKey::parse(key) {
                Ok(key) => Some(Some(MessageCrypto::new(key, app_id.to_owned()))),
                Err(_) => {
                    problems.add(
                        "DOUMI_WECHAT_AES_KEY",
                        "must be the 43-character EncodingAESKey from WeChat's console",
                    );
                    None
                }
            },
            (None, Some(_)) => {
                problems.add(
                    "DOUMI_WECHAT_APP_ID",
                    "is required when DOUMI_WECHAT_AES_KEY is set",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::window::{Interim, ReplyPolicy};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gateway: GatewayArgs,
    }

    fn check(args: &[&str]) -> Result<GatewayConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("gateway").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let mut problems = Problems::new();
        let config = cli.gateway.config(&mut problems);
        problems.finish(config).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_need_only_a_token() {
        let config = check(&["--wechat-token", "abc123"]).unwrap();
        assert_eq!(config.window.policy, ReplyPolicy::Hold);
        assert_eq!(config.window.budget, Duration::from_millis(4500));
        // The flags' defaults are the library's, read back through the CLI.
        let library = GatewayConfig::new(config.listen, config.bot.clone(), config.token.clone());
        assert_eq!(config.window, library.window);
        assert_eq!(config.dial, library.dial);
        assert_eq!(
            (config.max_in_flight, config.timestamp_tolerance),
            (library.max_in_flight, library.timestamp_tolerance)
        );
        assert_eq!(config.listen.port(), doumi_runtime::ports::GATEWAY);
        assert!(
            config.crypto.is_none() && !config.require_encryption && config.redis_url.is_none()
        );
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
            "--gateway-redis-url",
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
        assert!(config.crypto.is_some() && config.require_encryption);
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
}
