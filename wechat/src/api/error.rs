//! WeChat's refusals as types: the `errcode` values doumi branches on are
//! variants, every other one is kept as its number.

use serde::Deserialize;

/// The `errcode` of a refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrCode {
    /// `-1`: system busy; the one refusal worth repeating.
    SystemBusy,
    /// `40001`: the access_token is not valid (or, when fetching one, the
    /// AppSecret is wrong).
    InvalidCredential,
    /// `40014`: not a valid access_token.
    InvalidAccessToken,
    /// `42001`: the access_token has expired.
    AccessTokenExpired,
    /// `45015`: the reader has not written for 48 hours; customer-service
    /// messages may not reach them.
    ReaderSilent,
    /// `45047`: too many customer-service messages to this reader without an
    /// answer from them.
    TooManyMessages,
    /// `48001`: the account lacks the permission for this API (unverified
    /// subscription accounts have no customer-service messages).
    Unauthorized,
    /// `40164`: the calling server's IP address is not in the account's
    /// whitelist (公众号后台 → 基本配置 → IP白名单).
    IpNotWhitelisted,
    /// `40125`: the AppSecret is wrong (or was reset in the console).
    InvalidAppSecret,
    /// `40013`: the AppID is wrong.
    InvalidAppId,
    /// `41002`: no AppID was sent.
    AppIdMissing,
    /// `41004`: no AppSecret was sent.
    AppSecretMissing,
    /// Any other code.
    Other(i64),
}

impl ErrCode {
    pub fn from_code(code: i64) -> Self {
        match code {
            -1 => Self::SystemBusy,
            40001 => Self::InvalidCredential,
            40014 => Self::InvalidAccessToken,
            42001 => Self::AccessTokenExpired,
            45015 => Self::ReaderSilent,
            45047 => Self::TooManyMessages,
            48001 => Self::Unauthorized,
            40164 => Self::IpNotWhitelisted,
            40125 => Self::InvalidAppSecret,
            40013 => Self::InvalidAppId,
            41002 => Self::AppIdMissing,
            41004 => Self::AppSecretMissing,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Self::SystemBusy => -1,
            Self::InvalidCredential => 40001,
            Self::InvalidAccessToken => 40014,
            Self::AccessTokenExpired => 42001,
            Self::ReaderSilent => 45015,
            Self::TooManyMessages => 45047,
            Self::Unauthorized => 48001,
            Self::IpNotWhitelisted => 40164,
            Self::InvalidAppSecret => 40125,
            Self::InvalidAppId => 40013,
            Self::AppIdMissing => 41002,
            Self::AppSecretMissing => 41004,
            Self::Other(code) => code,
        }
    }

    /// The token a call used is no longer good: refresh it once and retry.
    pub fn token_rejected(self) -> bool {
        matches!(
            self,
            Self::InvalidCredential | Self::InvalidAccessToken | Self::AccessTokenExpired
        )
    }

    /// The account cannot send customer-service messages now, whatever the
    /// message or the reader: until its configuration changes, a promise to
    /// deliver would be a promise broken.
    pub fn account_cannot_deliver(self) -> bool {
        matches!(
            self,
            Self::Unauthorized
                | Self::IpNotWhitelisted
                | Self::InvalidAppSecret
                | Self::InvalidAppId
                | Self::AppIdMissing
                | Self::AppSecretMissing
        )
    }

    /// What the code means, in a few words (for `/readyz` and the logs).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::SystemBusy => "WeChat is busy",
            Self::InvalidCredential | Self::InvalidAccessToken => "the access_token is not valid",
            Self::AccessTokenExpired => "the access_token expired",
            Self::ReaderSilent => "the reader has not written for 48 hours",
            Self::TooManyMessages => "too many messages to this reader without an answer",
            Self::Unauthorized => "the account lacks the permission for this API",
            Self::IpNotWhitelisted => {
                "this server's IP address is not in the account's IP whitelist"
            }
            Self::InvalidAppSecret => "the AppSecret is wrong",
            Self::InvalidAppId => "the AppID is wrong",
            Self::AppIdMissing => "no AppID was sent",
            Self::AppSecretMissing => "no AppSecret was sent",
            Self::Other(_) => "see WeChat's global return codes",
        }
    }

    /// What the operator does about it, for the log line that reports it.
    pub fn remedy(self) -> &'static str {
        match self {
            Self::Unauthorized => {
                "the account lacks the permission (unverified subscription accounts do); \
                 verify the account, or try the flow with a 测试号"
            }
            Self::IpNotWhitelisted => {
                "add the gateway's egress IP addresses to the account's IP whitelist \
                 (公众号后台 → 基本配置 → IP白名单)"
            }
            Self::InvalidAppSecret | Self::AppSecretMissing => {
                "the AppSecret configured (DOUMI_WECHAT_APP_SECRET or the account's app_secret) is \
                 not the account's: was it reset in the console?"
            }
            Self::InvalidAppId | Self::AppIdMissing => {
                "the AppID configured (DOUMI_WECHAT_APP_ID or the account's app_id) is not the \
                 account's"
            }
            _ => "see WeChat's global return codes",
        }
    }
}

impl std::fmt::Display for ErrCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Why a call to WeChat's API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("WeChat refused the call: errcode {code} ({message})")]
    Refused { code: ErrCode, message: String },
    #[error("WeChat could not be reached")]
    Transport(#[source] reqwest::Error),
    #[error("WeChat answered HTTP {0}")]
    Http(u16),
    #[error("WeChat's answer is too large")]
    TooLarge,
    #[error("WeChat's answer is not the JSON expected")]
    Decode(#[source] serde_json::Error),
    #[error("not a valid API URL")]
    Url,
    #[error("no access_token: the last request for one failed moments ago")]
    TokenUnavailable,
}

impl ApiError {
    /// Worth repeating: WeChat was busy, or the call never got an answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { code, .. } => *code == ErrCode::SystemBusy,
            Self::Transport(_) => true,
            Self::Http(status) => *status >= 500,
            _ => false,
        }
    }

    /// Surely never reached WeChat: busy, or no connection was made.
    pub fn never_arrived(&self) -> bool {
        match self {
            Self::Refused { code, .. } => *code == ErrCode::SystemBusy,
            Self::Transport(error) => error.is_connect(),
            _ => false,
        }
    }

    pub fn errcode(&self) -> Option<ErrCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A bounded label for metrics: the errcode, or the kind of failure.
    pub fn code_label(&self) -> String {
        match self {
            Self::Refused { code, .. } => code.to_string(),
            Self::Transport(_) => "transport".to_owned(),
            Self::Http(_) => "http".to_owned(),
            Self::TooLarge | Self::Decode(_) => "malformed".to_owned(),
            Self::Url => "url".to_owned(),
            Self::TokenUnavailable => "no_token".to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// A refusal when the answer carries a non-zero `errcode`.
pub(super) fn check(body: &[u8]) -> Result<(), ApiError> {
    let status: Status = serde_json::from_slice(body).map_err(ApiError::Decode)?;
    if status.errcode == 0 {
        return Ok(());
    }
    Err(ApiError::Refused {
        code: ErrCode::from_code(status.errcode),
        // WeChat's messages are short; a long one is cut so logs stay small.
        message: status.errmsg.chars().take(200).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_typed_and_success_is_not_one() {
        assert!(check(br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(check(br#"{"access_token":"t","expires_in":7200}"#).is_ok());
        let error = check(br#"{"errcode":40001,"errmsg":"invalid credential"}"#).unwrap_err();
        assert_eq!(error.errcode(), Some(ErrCode::InvalidCredential));
        assert!(error.errcode().unwrap().token_rejected() && !error.is_transient());
        let busy = check(br#"{"errcode":-1,"errmsg":"system error"}"#).unwrap_err();
        assert!(busy.is_transient());
        let other = check(br#"{"errcode":45009,"errmsg":"reach max api daily quota limit"}"#);
        assert_eq!(other.unwrap_err().errcode(), Some(ErrCode::Other(45009)));
        for code in [
            -1, 40001, 40014, 42001, 45015, 45047, 48001, 40164, 40125, 40013, 41002, 41004, 12345,
        ] {
            assert_eq!(ErrCode::from_code(code).code(), code);
        }
        for code in [48001, 40164, 40125, 40013, 41002, 41004] {
            assert!(ErrCode::from_code(code).account_cannot_deliver(), "{code}");
        }
        for code in [-1, 40001, 45015, 45047] {
            assert!(!ErrCode::from_code(code).account_cannot_deliver(), "{code}");
        }
    }
}
