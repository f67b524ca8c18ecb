//! `doumi chat`: be a WeChat reader. Builds the XML WeChat would send, signs
//! it, posts it to a gateway and prints what the reader would see.

use std::{
    io::{BufRead, Write},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use doumi_wechat::{
    crypto::{AesKey, MessageCrypto},
    peer::{self, ParsedReply},
};
use rand::Rng;

use crate::state;

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// What to send; without it, an interactive session (one message per line).
    text: Option<String>,
    /// The gateway's webhook URL; defaults to the one `doumi up` started.
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
}

pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let local = state::load();
    let url = args
        .url
        .or_else(|| local.as_ref().map(|s| s.webhook.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:8080/wechat".to_owned());
    let crypto = if args.safe_mode {
        let app_id = args
            .app_id
            .or_else(|| local.as_ref().map(|s| s.app_id.clone()));
        let aes_key = args
            .aes_key
            .or_else(|| local.as_ref().map(|s| s.aes_key.clone()));
        let (Some(app_id), Some(aes_key)) = (app_id, aes_key) else {
            bail!("safe mode needs --app-id and --aes-key, or a stack started with `doumi up`");
        };
        let key = AesKey::parse(&aes_key).map_err(|e| anyhow::anyhow!("--aes-key: {e}"))?;
        Some(MessageCrypto::new(key, app_id))
    } else {
        None
    };
    let token = args.token.or_else(|| local.map(|s| s.token)).context(
        "no token: pass --token (or DOUMI_WECHAT_TOKEN), or start the stack with `doumi up`",
    )?;
    let session = Session {
        // WeChat itself gives up after 5 seconds.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?,
        url,
        token,
        reader: args.reader,
        crypto,
    };

    if args.subscribe {
        let body = peer::event_message(&session.reader, "gh_doumi", now(), "subscribe", "");
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
        let url = format!("{}?{query}", self.url);
        let response = self
            .http
            .post(&url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .with_context(|| format!("posting to {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("the gateway answered {status}: {}", text.trim());
        }
        let text = match &self.crypto {
            Some(crypto) => peer::open_reply(crypto, &self.token, &text)
                .map_err(|e| anyhow::anyhow!("the encrypted reply does not open ({e}): {text}"))?,
            None => text,
        };
        match peer::parse_reply(&text) {
            Some(ParsedReply::Text { content, .. }) => println!("{content}"),
            Some(ParsedReply::News { titles, urls, .. }) => {
                for (title, url) in titles.iter().zip(&urls) {
                    println!("[{title}] {url}");
                }
            }
            Some(ParsedReply::Nothing) => println!("(no reply)"),
            Some(ParsedReply::Other { msg_type }) => println!("({msg_type} reply)"),
            None => bail!("the gateway's reply is not XML WeChat could read: {text}"),
        }
        Ok(())
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
