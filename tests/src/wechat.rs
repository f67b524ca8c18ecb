//! A client that behaves like WeChat's servers towards the gateway: signed
//! query, XML body (sealed in safe mode), an attempt given up after WeChat's
//! 5 seconds and the identical request again, and reading the reply the way
//! WeChat reads it.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use doumi_wechat::{
    crypto::MessageCrypto,
    peer::{self, ParsedReply},
};

/// The reader every test message comes from.
pub const READER: &str = "oTestReaderOpenId";
/// The official account every test message goes to.
pub const ACCOUNT: &str = "gh_doumi_test";
/// WeChat drops the connection after this long.
pub const WECHAT_TIMEOUT: Duration = Duration::from_secs(5);
/// A little network slack a real attempt may show on our side.
pub const NETWORK_SLACK: Duration = Duration::from_millis(300);

/// When an attempt gives up. WeChat's clock starts before the request
/// reaches the gateway and the network adds its own, so the gateway must be
/// right whichever way the 5 seconds fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// After 5 s in which nothing arrived.
    Silence,
    /// After 5.3 s in all: WeChat's 5 s plus network slack.
    Slack,
}

impl Patience {
    pub const ALL: [Self; 2] = [Self::Silence, Self::Slack];
}

static NEXT_MSG_ID: AtomicI64 = AtomicI64::new(6_054_768_590_064_713_728);

/// What the gateway answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The reply as the reader's WeChat reads it: already opened in safe mode.
    pub body: String,
    /// The body on the wire.
    pub raw: String,
}

impl Answer {
    /// The text the reader sees (a card's title and description); panics
    /// (failing the test) on anything else.
    pub fn text(&self) -> String {
        assert_eq!(
            self.status, 200,
            "gateway answered {}: {}",
            self.status, self.body
        );
        match peer::parse_reply(&self.body) {
            Some(ParsedReply::Text { to, from, content }) => {
                assert_eq!(
                    (to.as_str(), from.as_str()),
                    (READER, ACCOUNT),
                    "users not swapped"
                );
                content
            }
            // A book card: what the reader reads on it.
            Some(ParsedReply::News { to, from, articles }) => {
                assert_eq!(
                    (to.as_str(), from.as_str()),
                    (READER, ACCOUNT),
                    "users not swapped"
                );
                articles
                    .iter()
                    .map(|a| format!("{}\n{}", a.title, a.description))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            other => panic!("expected a text reply, got {other:?} from {}", self.body),
        }
    }
}

/// One of WeChat's attempts at delivering a message.
#[derive(Debug, Clone)]
pub enum Attempt {
    Answered(Answer),
    /// No answer within WeChat's 5 seconds: WeChat hangs up and tries again.
    TimedOut,
}

#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    patience: Patience,
    url: String,
    token: String,
    /// Set: messages go out encrypted (safe mode) and replies are opened.
    crypto: Option<MessageCrypto>,
}

impl WechatClient {
    pub fn new(url: String, token: &str) -> Self {
        Self {
            http: Self::http(Patience::Silence),
            patience: Patience::Silence,
            url,
            token: token.to_owned(),
            crypto: None,
        }
    }

    fn http(patience: Patience) -> reqwest::Client {
        let builder = reqwest::Client::builder();
        let builder = match patience {
            Patience::Silence => builder.read_timeout(WECHAT_TIMEOUT),
            Patience::Slack => builder.timeout(WECHAT_TIMEOUT + NETWORK_SLACK),
        };
        builder.build().unwrap_or_default()
    }

    /// The same client, giving up on an attempt as `patience` says.
    pub fn with_patience(mut self, patience: Patience) -> Self {
        self.http = Self::http(patience);
        self.patience = patience;
        self
    }

    pub fn patience(&self) -> Patience {
        self.patience
    }

    /// The same client speaking safe mode.
    pub fn safe_mode(mut self, crypto: MessageCrypto) -> Self {
        self.crypto = Some(crypto);
        self
    }

    pub fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    /// A fresh WeChat MsgId.
    pub fn next_msg_id() -> i64 {
        NEXT_MSG_ID.fetch_add(1, Ordering::SeqCst)
    }

    /// The XML of a text message from `reader`, with a fresh MsgId.
    pub fn text_from(reader: &str, content: &str) -> String {
        peer::text_message(reader, ACCOUNT, Self::now(), Self::next_msg_id(), content)
    }

    /// A text message with a fresh MsgId.
    pub async fn send_text(&self, content: &str) -> Answer {
        self.post_signed(&Self::text_from(READER, content)).await
    }

    pub async fn send_event(&self, event: &str, key: &str) -> Answer {
        self.post_signed(&peer::event_message(
            READER,
            ACCOUNT,
            Self::now(),
            event,
            key,
        ))
        .await
    }

    /// Delivers `xml` the way WeChat does: the identical request (same
    /// timestamp, nonce and signature) up to three times, each attempt given
    /// up as [`Patience`] says, until one is answered.
    pub async fn deliver_like_wechat(&self, xml: &str) -> Vec<Attempt> {
        let (query, body) = self.prepare(xml, Self::now(), "20261126");
        let mut attempts = Vec::new();
        for _ in 0..3 {
            match self.try_post(&query, body.clone()).await {
                Some(answer) => {
                    attempts.push(Attempt::Answered(answer));
                    break;
                }
                None => attempts.push(Attempt::TimedOut),
            }
        }
        attempts
    }

    /// The query and body for `xml` at `timestamp`, sealed in safe mode.
    pub fn prepare(&self, xml: &str, timestamp: i64, nonce: &str) -> (String, String) {
        match &self.crypto {
            Some(crypto) => {
                peer::sealed_message(crypto, &self.token, timestamp, nonce, ACCOUNT, xml)
            }
            None => (
                peer::signed_query(&self.token, timestamp, nonce),
                xml.to_owned(),
            ),
        }
    }

    /// Posts the message `xml` with a valid signature (sealed in safe mode).
    pub async fn post_signed(&self, xml: &str) -> Answer {
        let (query, body) = self.prepare(xml, Self::now(), "20261126");
        self.post(&query, body).await
    }

    /// Posts `body` with the given raw query string.
    pub async fn post(&self, query: &str, body: impl Into<reqwest::Body>) -> Answer {
        match self.try_post(query, body).await {
            Some(answer) => answer,
            None => panic!("the gateway did not answer within WeChat's 5 seconds"),
        }
    }

    /// Posts, or `None` when no answer came within WeChat's 5 seconds.
    pub async fn try_post(&self, query: &str, body: impl Into<reqwest::Body>) -> Option<Answer> {
        let url = format!("{}?{query}", self.url);
        let response = match self
            .http
            .post(url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return None,
            Err(error) => panic!("the gateway did not answer: {error:?}"),
        };
        let status = response.status().as_u16();
        let raw = match response.text().await {
            Ok(raw) => raw,
            Err(error) if error.is_timeout() => return None,
            Err(error) => panic!("reading the gateway's answer failed: {error}"),
        };
        let body = match (&self.crypto, status) {
            (Some(crypto), 200) => peer::open_reply(crypto, &self.token, &raw)
                .unwrap_or_else(|e| panic!("WeChat could not open the reply ({e}): {raw}")),
            _ => raw.clone(),
        };
        Some(Answer { status, body, raw })
    }

    /// WeChat's server verification request.
    pub async fn verify(&self, signature: Option<&str>, echostr: &str) -> Answer {
        let timestamp = Self::now().to_string();
        let nonce = "1320562132";
        let signature = signature
            .map(str::to_owned)
            .unwrap_or_else(|| doumi_wechat::signature::compute(&[&self.token, &timestamp, nonce]));
        let url = format!(
            "{}?signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr={echostr}",
            self.url
        );
        match self.http.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let raw = response.text().await.unwrap_or_default();
                Answer {
                    status,
                    body: raw.clone(),
                    raw,
                }
            }
            Err(error) => panic!("the gateway did not answer: {error}"),
        }
    }
}
