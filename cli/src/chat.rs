//! `doumi chat`: be a WeChat reader. Builds the XML WeChat would send, signs
//! it, posts it to a gateway as WeChat does (an attempt given up after 5 s of
//! silence, the identical request sent again, three attempts in all) and
//! prints what the reader would see — including a reply delivered later as a
//! customer-service message, picked up from `doumi up`'s WeChat API stand-in.

use std::{
    io::{BufRead, Write},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use doumi_gateway::window::{INTERIM_DELIVERY_TEXT, WECHAT_ATTEMPTS, WECHAT_WINDOW};
use doumi_wechat::{
    crypto::{AesKey, MessageCrypto},
    peer::{self, ParsedReply},
};
use rand::Rng;

use crate::state;

/// What WeChat shows a reader when no attempt was answered.
const WECHAT_GAVE_UP: &str = "该公众号暂时无法提供服务，请稍后再试";
/// How long to wait for a late reply: the gateway's longest delivery
/// deadline, and some.
const LATE_REPLY_PATIENCE: Duration = Duration::from_secs(11 * 60);
const LATE_REPLY_POLL: Duration = Duration::from_millis(300);

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// What to send; without it, an interactive session (one message per line).
    text: Option<String>,
    /// Which of `doumi up`'s accounts to write to; defaults to its first.
    #[arg(long)]
    account: Option<String>,
    /// The gateway's webhook URL; defaults to the account's `doumi up` started.
    #[arg(long, env = "DOUMI_GATEWAY_URL")]
    url: Option<String>,
    /// The WeChat token; defaults to the one `doumi up` generated.
    #[arg(long, env = "DOUMI_WECHAT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The reader's OpenID.
    #[arg(long, default_value = "doumi-chat-reader")]
    reader: String,
    /// Send a `subscribe` event (a new follower) instead of text.
    #[arg(long, conflicts_with = "text")]
    subscribe: bool,
    /// Send a photo instead of text: the URL WeChat's image CDN would give
    /// (the bot fetches it only from `DOUMI_BOT_IMAGE_HOSTS`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["text", "subscribe"])]
    image: Option<String>,
    /// Speak safe mode: encrypt each message and open the encrypted reply.
    #[arg(long)]
    safe_mode: bool,
    /// The account's AppID for safe mode; defaults to the one `doumi up` generated.
    #[arg(long, env = "DOUMI_WECHAT_APP_ID")]
    app_id: Option<String>,
    /// The EncodingAESKey for safe mode; defaults to the one `doumi up` generated.
    #[arg(long, env = "DOUMI_WECHAT_AES_KEY", hide_env_values = true)]
    aes_key: Option<String>,
}

struct Session {
    http: reqwest::Client,
    url: String,
    token: String,
    reader: String,
    /// Set in safe mode.
    crypto: Option<MessageCrypto>,
    /// Where late replies can be read (`doumi up`'s stand-in).
    wechat_api: Option<String>,
}

pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let stack = state::load();
    let local = match (&stack, &args.account) {
        (Some(stack), account) => Some(stack.account(account.as_deref())?),
        (None, Some(_)) => bail!("--account needs a stack started with `doumi up`"),
        (None, None) => None,
    };
    let url = args
        .url
        .or_else(|| local.map(|s| s.webhook.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:8080/wechat".to_owned());
    let crypto = if args.safe_mode {
        let app_id = args.app_id.or_else(|| local.map(|s| s.app_id.clone()));
        let aes_key = args.aes_key.or_else(|| local.map(|s| s.aes_key.clone()));
        let (Some(app_id), Some(aes_key)) = (app_id, aes_key) else {
            bail!("safe mode needs --app-id and --aes-key, or a stack started with `doumi up`");
        };
        let key = AesKey::parse(&aes_key).map_err(|e| anyhow::anyhow!("--aes-key: {e}"))?;
        Some(MessageCrypto::new(key, app_id))
    } else {
        None
    };
    let wechat_api = stack.as_ref().and_then(|s| s.wechat_api.clone());
    let token = args
        .token
        .or_else(|| local.map(|s| s.token.clone()))
        .context(
            "no token: pass --token (or DOUMI_WECHAT_TOKEN), or start the stack with `doumi up`",
        )?;
    let session = Session {
        // WeChat gives up on an attempt after 5 seconds without an answer.
        http: reqwest::Client::builder()
            .read_timeout(WECHAT_WINDOW)
            .build()?,
        url,
        token,
        reader: args.reader,
        crypto,
        wechat_api,
    };

    if args.subscribe {
        let body = peer::event_message(&session.reader, "gh_doumi", now(), "subscribe", "");
        return session.send(body).await;
    }
    if let Some(pic_url) = args.image {
        let msg_id: i64 = rand::rng().random_range(1..i64::MAX);
        let body = peer::image_message(&session.reader, "gh_doumi", now(), msg_id, &pic_url);
        return session.send(body).await;
    }
    if let Some(text) = args.text {
        return session.send_text(&text).await;
    }
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        if !line.trim().is_empty()
            && let Err(error) = session.send_text(line.trim()).await
        {
            eprintln!("error: {error:#}");
        }
    }
}

impl Session {
    async fn send_text(&self, text: &str) -> anyhow::Result<()> {
        let msg_id: i64 = rand::rng().random_range(1..i64::MAX);
        self.send(peer::text_message(
            &self.reader,
            "gh_doumi",
            now(),
            msg_id,
            text,
        ))
        .await
    }

    async fn send(&self, xml: String) -> anyhow::Result<()> {
        let nonce = rand::rng().random::<u32>().to_string();
        let (query, body) = match &self.crypto {
            Some(crypto) => {
                peer::sealed_message(crypto, &self.token, now(), &nonce, "gh_doumi", &xml)
            }
            None => (peer::signed_query(&self.token, now(), &nonce), xml),
        };
        let seen = self.delivered_count().await;
        let url = format!("{}?{query}", self.url);
        for _ in 0..WECHAT_ATTEMPTS {
            let Some(text) = self.attempt(&url, body.clone()).await? else {
                println!("(no answer within 5 s: WeChat sends the message again)");
                continue;
            };
            let reply = match &self.crypto {
                Some(crypto) => peer::open_reply(crypto, &self.token, &text).map_err(|e| {
                    anyhow::anyhow!("the encrypted reply does not open ({e}): {text}")
                })?,
                None => text,
            };
            let parsed = peer::parse_reply(&reply).with_context(|| {
                format!("the gateway's reply is not XML WeChat could read: {reply}")
            })?;
            print_reply(&parsed);
            if is_promise(&parsed) {
                self.wait_for_late_reply(seen).await?;
            }
            return Ok(());
        }
        println!("{WECHAT_GAVE_UP}");
        Ok(())
    }

    /// One attempt; `None` when WeChat would have given up on it.
    async fn attempt(&self, url: &str, body: String) -> anyhow::Result<Option<String>> {
        let response = match self
            .http
            .post(url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("posting to {}", self.url));
            }
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            // Held until WeChat hung up, then closed without an answer.
            Err(error) if error.is_timeout() || error.is_body() || error.is_decode() => {
                return Ok(None);
            }
            Err(error) => return Err(error.into()),
        };
        if !status.is_success() {
            bail!("the gateway answered {status}: {}", text.trim());
        }
        Ok(Some(text))
    }

    /// How many customer-service messages the reader has had so far.
    async fn delivered_count(&self) -> usize {
        match self.late_messages(0).await {
            Ok((_, next)) => next,
            Err(_) => 0,
        }
    }

    async fn late_messages(&self, after: usize) -> anyhow::Result<(Vec<serde_json::Value>, usize)> {
        let Some(api) = &self.wechat_api else {
            bail!("no WeChat API stand-in");
        };
        let answer: serde_json::Value = self
            .http
            .get(format!("{api}/stand-in/messages"))
            .query(&[
                ("touser", self.reader.as_str()),
                ("after", &after.to_string()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let messages = answer["messages"].as_array().cloned().unwrap_or_default();
        let next = answer["next"].as_u64().unwrap_or_default() as usize;
        Ok((messages, next))
    }

    /// After the gateway promised the reply for later, waits for it to be
    /// delivered and prints it, as WeChat shows it a moment later.
    async fn wait_for_late_reply(&self, seen: usize) -> anyhow::Result<()> {
        if self.wechat_api.is_none() {
            eprintln!("(the reply goes out through WeChat's API, which this chat cannot see)");
            return Ok(());
        }
        let give_up = tokio::time::Instant::now() + LATE_REPLY_PATIENCE;
        while tokio::time::Instant::now() < give_up {
            let (messages, _) = self.late_messages(seen).await?;
            if !messages.is_empty() {
                for message in &messages {
                    print_delivered(message);
                }
                return Ok(());
            }
            tokio::time::sleep(LATE_REPLY_POLL).await;
        }
        eprintln!("(no reply was delivered)");
        Ok(())
    }
}

/// The gateway's answer when the reply is to be delivered later.
fn is_promise(reply: &ParsedReply) -> bool {
    match reply {
        ParsedReply::Text { content, .. } => content == INTERIM_DELIVERY_TEXT,
        _ => false,
    }
}

fn print_reply(reply: &ParsedReply) {
    match reply {
        ParsedReply::Text { content, .. } => println!("{content}"),
        ParsedReply::News { articles, .. } => {
            for article in articles {
                println!("┌ {}", article.title);
                for line in article.description.lines() {
                    println!("│ {line}");
                }
                println!("│ 封面 {}", article.pic_url);
                println!("└ {}", article.url);
            }
        }
        ParsedReply::Nothing => println!("(no reply)"),
        ParsedReply::Other { msg_type } => println!("({msg_type} reply)"),
    }
}

/// A customer-service message as the reader sees it.
fn print_delivered(message: &serde_json::Value) {
    let field = |pointer: &str| {
        message
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    match field("/msgtype") {
        "text" => println!("{}", field("/text/content")),
        "news" => {
            for article in message
                .pointer("/news/articles")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
            {
                let title = article["title"].as_str().unwrap_or_default();
                let url = article["url"].as_str().unwrap_or_default();
                println!("[{title}] {url}");
            }
        }
        other => println!("({other} message)"),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
