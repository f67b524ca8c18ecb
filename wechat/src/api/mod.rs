//! The server-to-WeChat API (`https://api.weixin.qq.com`): one HTTP client
//! with timeouts and bounded retries, WeChat's `errcode`/`errmsg` as typed
//! errors, the deployment's one `access_token` ([`TokenManager`]) and the
//! calls doumi makes with it ([`OfficialAccount`]).
//!
//! WeChat answers almost everything with HTTP 200 and a JSON body; a refusal
//! is a non-zero `errcode` in that body. Only `-1` ("system busy") and
//! transport failures are worth repeating — and for a call that changes
//! something (a message sent), only failures that prove it did not reach
//! WeChat, or the reader would get it twice. Every other refusal is final,
//! and repeating it would only spend the account's daily quota.

mod account;
mod client;
mod custom;
mod error;
mod series;
mod token;

pub use account::{AccountError, OfficialAccount};
pub use client::{ApiArgs, ApiClient, Credentials, DEFAULT_BASE_URL};
pub use custom::CustomMessage;
pub use error::{ApiError, ErrCode};
pub use series::{API_ERRORS, METRIC_NAMES, TOKEN_REQUESTS, describe_metrics};
pub use token::{AccessToken, TokenManager};
