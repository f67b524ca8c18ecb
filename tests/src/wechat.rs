//! A client that behaves like WeChat's servers towards the gateway: signed
//! query, XML body, and reading the reply the way WeChat reads it.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use doumi_gateway::client::{self, ParsedReply};

/// The reader every test message comes from.
pub const READER: &str = "oTestReaderOpenId";
/// The official account every test message goes to.
pub const ACCOUNT: &str = "gh_doumi_test";

static NEXT_MSG_ID: AtomicI64 = AtomicI64::new(6_054_768_590_064_713_728);

/// What the gateway answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The text the reader sees; panics (failing the test) on anything else.
    pub fn text(&self) -> String {
        assert_eq!(
            self.status, 200,
            "gateway answered {}: {}",
            self.status, self.body
        );
        match client::parse_reply(&self.body) {
            Some(ParsedReply::Text { to, from, content }) => {
                assert_eq!(
                    (to.as_str(), from.as_str()),
                    (READER, ACCOUNT),
                    "users not swapped"
                );
                content
            }
            other => panic!("expected a text reply, got {other:?} from {}", self.body),
        }
    }
}

pub struct WechatClient {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl WechatClient {
    pub fn new(url: String, token: &str) -> Self {
        // WeChat drops the connection after 5 seconds.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            http,
            url,
            token: token.to_owned(),
        }
    }

    pub fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    /// A text message with a fresh MsgId.
    pub async fn send_text(&self, content: &str) -> Answer {
        let msg_id = NEXT_MSG_ID.fetch_add(1, Ordering::SeqCst);
        self.post_signed(client::text_message(
            READER,
            ACCOUNT,
            Self::now(),
            msg_id,
            content,
        ))
        .await
    }

    pub async fn send_event(&self, event: &str, key: &str) -> Answer {
        self.post_signed(client::event_message(
            READER,
            ACCOUNT,
            Self::now(),
            event,
            key,
        ))
        .await
    }

    /// Posts `body` with a valid signature.
    pub async fn post_signed(&self, body: impl Into<reqwest::Body>) -> Answer {
        let query = client::signed_query(&self.token, Self::now(), "20261126");
        self.post(&query, body).await
    }

    /// Posts `body` with the given raw query string.
    pub async fn post(&self, query: &str, body: impl Into<reqwest::Body>) -> Answer {
        let url = format!("{}?{query}", self.url);
        match self
            .http
            .post(url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
        {
            Ok(response) => Answer {
                status: response.status().as_u16(),
                body: response.text().await.unwrap_or_default(),
            },
            Err(error) => panic!("the gateway did not answer: {error}"),
        }
    }

    /// WeChat's server verification request.
    pub async fn verify(&self, signature: Option<&str>, echostr: &str) -> Answer {
        let timestamp = Self::now().to_string();
        let nonce = "1320562132";
        let signature = signature.map(str::to_owned).unwrap_or_else(|| {
            doumi_gateway::signature::compute(&[&self.token, &timestamp, nonce])
        });
        let url = format!(
            "{}?signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr={echostr}",
            self.url
        );
        match self.http.get(url).send().await {
            Ok(response) => Answer {
                status: response.status().as_u16(),
                body: response.text().await.unwrap_or_default(),
            },
            Err(error) => panic!("the gateway did not answer: {error}"),
        }
    }
}
