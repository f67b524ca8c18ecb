//! The calls doumi makes on behalf of the official account: customer-service
//! messages (a reply delivered after WeChat's window), the typing indicator,
//! and the custom menu. Each carries the shared access_token; a token WeChat
//! rejects is refreshed once and the call made once more — never a loop.

use serde::{Serialize, de::DeserializeOwned};
use url::Url;

use super::{
    client::{ApiClient, Credentials},
    custom::CustomMessage,
    error::ApiError,
    token::{AccessToken, TokenManager},
};

/// The account's API, authorised with its access_token; cheap to clone.
#[derive(Clone)]
pub struct OfficialAccount {
    api: ApiClient,
    tokens: TokenManager,
}

#[derive(Serialize)]
struct Typing<'a> {
    touser: &'a str,
    command: &'static str,
}

/// The answer of calls that return only `errcode`/`errmsg`.
#[derive(serde::Deserialize)]
struct Done {}

impl OfficialAccount {
    /// The account at `base` (WeChat's API or a stand-in); `redis` shares
    /// the access_token with the other replicas.
    pub fn new(
        base: Url,
        credentials: Credentials,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Result<Self, AccountError> {
        let api = ApiClient::new(base)?;
        let tokens = TokenManager::new(api.clone(), credentials, redis);
        Ok(Self { api, tokens })
    }

    /// Sends `message` to its reader.
    pub async fn send(&self, message: &CustomMessage) -> Result<(), ApiError> {
        self.post::<_, Done>("custom_send", "/cgi-bin/message/custom/send", message)
            .await
            .map(drop)
    }

    /// Shows the reader that the account is typing (WeChat shows it for up
    /// to 15 s, or until the next message).
    pub async fn typing(&self, reader: &str) -> Result<(), ApiError> {
        let typing = Typing {
            touser: reader,
            command: "Typing",
        };
        self.post::<_, Done>("custom_typing", "/cgi-bin/message/custom/typing", &typing)
            .await
            .map(drop)
    }

    /// Whether WeChat accepts this server calling as the account: a token
    /// (the AppID and AppSecret), then a call with it (the IP whitelist),
    /// without sending anyone anything. The customer-service permission
    /// (48001) shows only when a message is sent.
    pub async fn check(&self) -> Result<(), ApiError> {
        self.get::<serde_json::Value>("domain_ip", "/cgi-bin/get_api_domain_ip")
            .await
            .map(drop)
    }

    /// Replaces the account's custom menu with `menu` (WeChat's menu JSON).
    pub async fn create_menu(&self, menu: &serde_json::Value) -> Result<(), ApiError> {
        self.post::<_, Done>("menu_create", "/cgi-bin/menu/create", menu)
            .await
            .map(drop)
    }

    /// The menu as the account shows it now.
    pub async fn menu(&self) -> Result<serde_json::Value, ApiError> {
        self.get("menu_get", "/cgi-bin/get_current_selfmenu_info")
            .await
    }

    /// Removes the custom menu.
    pub async fn delete_menu(&self) -> Result<(), ApiError> {
        self.get::<Done>("menu_delete", "/cgi-bin/menu/delete")
            .await
            .map(drop)
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.authorised(|token| async move {
            self.api
                .post(api, path, &[("access_token", token.expose())], body)
                .await
        })
        .await
    }

    async fn get<T: DeserializeOwned>(&self, api: &'static str, path: &str) -> Result<T, ApiError> {
        self.authorised(|token| async move {
            self.api
                .get(api, path, &[("access_token", token.expose())])
                .await
        })
        .await
    }

    /// `call` with the current token; once more with a fresh one when
    /// WeChat says the token is invalid or expired.
    async fn authorised<T, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.tokens.get().await?;
        match call(token.clone()).await {
            Err(error) if error.errcode().is_some_and(|code| code.token_rejected()) => {
                tracing::info!(%error, "access_token rejected, refreshing it once");
                let fresh = self.tokens.refresh(&token).await?;
                call(fresh).await
            }
            other => other,
        }
    }
}

/// Why the account's API could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("setting up the HTTP client failed")]
    Api(#[from] ApiError),
}
