//! The gateway's settings.

use std::{net::SocketAddr, time::Duration};

use doumi_runtime::settings::Problems;
use secrecy::SecretString;

/// Command-line flags and environment variables, as clap read them.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address the HTTP server listens on (/wechat, /healthz, /readyz).
    #[arg(long, env = "DOUMI_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub gateway_listen: String,
    /// The bot's gRPC address.
    #[arg(long, env = "DOUMI_BOT_URL", default_value = "http://127.0.0.1:50051")]
    pub bot_url: String,
    /// The Token set in the official account's server configuration (required).
    #[arg(long, env = "DOUMI_WECHAT_TOKEN", hide_env_values = true)]
    pub wechat_token: Option<String>,
    /// How long WeChat may wait for a reply before the gateway answers anyway
    /// (WeChat gives up after 5 s).
    #[arg(long, env = "DOUMI_WECHAT_REPLY_BUDGET", default_value = "4.5s")]
    pub wechat_reply_budget: String,
    /// How far a request's timestamp may be from now (replay protection).
    #[arg(long, env = "DOUMI_WECHAT_TIMESTAMP_TOLERANCE", default_value = "300s")]
    pub wechat_timestamp_tolerance: String,
}

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
    pub bot_url: String,
    pub token: WechatToken,
    pub reply_budget: Duration,
    pub timestamp_tolerance: Duration,
}

impl GatewayConfig {
    /// Defaults for a gateway in front of `bot_url`; used by tests and `doumi up`.
    pub fn new(listen: SocketAddr, bot_url: String, token: WechatToken) -> Self {
        Self {
            listen,
            bot_url,
            token,
            reply_budget: Duration::from_millis(4500),
            timestamp_tolerance: Duration::from_secs(300),
        }
    }
}

impl GatewayArgs {
    /// Validates every setting, recording each problem in `problems`.
    pub fn config(&self, problems: &mut Problems) -> Option<GatewayConfig> {
        let listen = problems.socket_addr("DOUMI_GATEWAY_LISTEN", &self.gateway_listen);
        let bot_url = problems.http_url("DOUMI_BOT_URL", &self.bot_url);
        let token = match self
            .wechat_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
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
        let reply_budget =
            problems.duration("DOUMI_WECHAT_REPLY_BUDGET", &self.wechat_reply_budget);
        if reply_budget.is_some_and(|b| b.is_zero() || b.as_secs_f64() >= 5.0) {
            problems.add(
                "DOUMI_WECHAT_REPLY_BUDGET",
                "must be above 0 and under WeChat's 5 s",
            );
        }
        let timestamp_tolerance = problems.duration(
            "DOUMI_WECHAT_TIMESTAMP_TOLERANCE",
            &self.wechat_timestamp_tolerance,
        );
        Some(GatewayConfig {
            listen: listen?,
            bot_url: bot_url?,
            token: token?,
            reply_budget: reply_budget?,
            timestamp_tolerance: timestamp_tolerance?,
        })
    }
}
