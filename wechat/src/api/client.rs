//! One HTTP client for WeChat's API: timeouts, bounded retries of what is
//! safe to repeat, and WeChat's `errcode`/`errmsg` read into [`ApiError`].

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use url::Url;

use super::{
    error::{self, ApiError},
    series::API_ERRORS,
};

/// Where WeChat's API lives; `DOUMI_WECHAT_API_BASE_URL` points elsewhere
/// (a stand-in, a proxy).
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";
/// One call to WeChat, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call when WeChat is busy or unreachable.
const ATTEMPTS: u32 = 3;
/// The pause before the second attempt; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// WeChat's answers are small JSON documents; anything larger is not WeChat.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The account's credentials for the API: its AppID and AppSecret.
#[derive(Clone)]
pub struct Credentials {
    pub app_id: String,
    pub app_secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("app_id", &self.app_id)
            .field("app_secret", &"***")
            .finish()
    }
}

/// The settings every user of WeChat's API shares (the gateway, `doumi menu`).
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The account's AppSecret: enables WeChat's API (access_token, replies
    /// delivered after WeChat's 5-second window, `doumi menu`). A secret.
    #[arg(long, env = "DOUMI_WECHAT_APP_SECRET", hide_env_values = true)]
    pub wechat_app_secret: Option<String>,
    /// Where WeChat's API is.
    #[arg(long, env = "DOUMI_WECHAT_API_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub wechat_api_base_url: String,
}

/// A plain HTTP client for WeChat's API: no token logic, just one call made
/// well (timeouts, bounded retries, typed refusals).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
}

/// A call's HTTP method and body.
enum Call<'a, B> {
    Get,
    /// A POST whose repetition is harmless (a token request).
    Idempotent(&'a B),
    /// A POST that acts (a message sent): repeated only when it surely did
    /// not reach WeChat.
    Acting(&'a B),
}

impl<B> Call<'_, B> {
    fn may_repeat_after(&self, error: &ApiError) -> bool {
        match self {
            Self::Get | Self::Idempotent(_) => error.is_transient(),
            Self::Acting(_) => error.never_arrived(),
        }
    }
}

impl ApiClient {
    pub fn new(base: Url) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            .build()
            .map_err(ApiError::Transport)?;
        Ok(Self { http, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET path?query`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        self.call::<(), T>(api, path, query, Call::Get).await
    }

    /// `POST path?query` with a JSON body, for a call that acts (sends a
    /// message, changes the menu): never repeated once it may have landed.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, ApiError> {
        self.call(api, path, query, Call::Acting(body)).await
    }

    /// `POST path?query` for a call that may safely be made twice.
    pub async fn post_idempotent<B: Serialize, T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, ApiError> {
        self.call(api, path, query, Call::Idempotent(body)).await
    }

    /// One call, repeated while WeChat is busy or unreachable, at most
    /// [`ATTEMPTS`] times. `api` names the call in metrics, logs and traces.
    #[tracing::instrument(
        name = "wechat.api",
        level = "debug",
        skip_all,
        fields(otel.kind = "client", api)
    )]
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        query: &[(&str, &str)],
        call: Call<'_, B>,
    ) -> Result<T, ApiError> {
        let mut url = self.base.join(path).map_err(|_| ApiError::Url)?;
        url.query_pairs_mut().extend_pairs(query);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = self.once(&url, &call).await;
            match &result {
                Err(error) if call.may_repeat_after(error) && attempt < ATTEMPTS => {
                    tracing::debug!(api, attempt, %error, "wechat api busy, trying again");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(error) => {
                    metrics::counter!(API_ERRORS, "api" => api, "code" => error.code_label())
                        .increment(1);
                    return result;
                }
                Ok(_) => return result,
            }
        }
    }

    async fn once<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &Url,
        call: &Call<'_, B>,
    ) -> Result<T, ApiError> {
        let request = match call {
            Call::Get => self.http.get(url.clone()),
            Call::Idempotent(body) | Call::Acting(body) => self.http.post(url.clone()).json(body),
        };
        // The URL carries the access_token: it must not reach an error message.
        let transport = |error: reqwest::Error| ApiError::Transport(error.without_url());
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Http(status.as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ApiError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        error::check(&body)?;
        serde_json::from_slice(&body).map_err(ApiError::Decode)
    }
}

/// The AppSecret's text, for the one request body that carries it.
pub(super) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}
