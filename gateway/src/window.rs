//! WeChat's 5-second window and its retries, used together.
//!
//! WeChat waits 5 s for a reply, drops the connection and sends the *same*
//! request again — three attempts in all. doumi turns that into a ~14 s budget
//! for slow lookups: the work for a message starts once, runs to the end even
//! when WeChat hangs up (it is spawned, not tied to the request), and every
//! retry **joins** it instead of asking the bot again. Early attempts hold for
//! the real reply; the last one is answered inside its budget, with the real
//! reply if ready and an interim answer otherwise. Once the real reply exists,
//! every later attempt gets exactly that reply.
//!
//! With Redis configured, attempts, the claim on the work and the finished
//! reply live there too, so several gateway replicas agree on one answer.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use doumi_proto::bot::v1::{InboundMessage, Reply, TextReply, reply};
use prost::Message;
use sha1::{Digest, Sha1};
use tokio::{sync::watch, time::Instant};

use crate::{bot_link::BotLink, shared_store::SharedStore};

/// WeChat gives up on an attempt after this long.
pub const WECHAT_WINDOW: Duration = Duration::from_secs(5);
/// WeChat sends a message at most this many times.
pub const WECHAT_ATTEMPTS: u32 = 3;
/// How long finished replies and attempt counts are remembered locally.
const MEMORY: Duration = Duration::from_secs(120);
/// How often a replica that does not own the work looks for its reply.
const SHARED_POLL: Duration = Duration::from_millis(100);

/// What the reader sees when the real reply is not ready in time.
pub const INTERIM_TEXT: &str = "正在查询，请稍后再发一次…";

/// When attempts are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplyPolicy {
    /// Early attempts wait for the real reply; the last is answered in its budget.
    Hold,
    /// Every attempt is answered within its budget.
    Immediate,
}

/// What an attempt answers when the real reply is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Interim {
    /// A short "still looking" text.
    Text,
    /// `success`: WeChat shows nothing.
    Success,
}

/// The window's settings.
#[derive(Debug, Clone, Copy)]
pub struct WindowSettings {
    pub policy: ReplyPolicy,
    /// How long an attempt that must be answered may take.
    pub budget: Duration,
    pub interim: Interim,
}

impl WindowSettings {
    /// The whole time WeChat gives a message: three attempts of 5 s. The bot's
    /// work is cut off then, after the last attempt has been answered (in its
    /// budget), so a failure deep in the chain never pre-empts the interim answer.
    pub fn work_deadline(&self) -> Duration {
        WECHAT_WINDOW * WECHAT_ATTEMPTS
    }
}

/// How an attempt was answered (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This attempt started the work and got its reply.
    Fresh,
    /// A retry joined work in flight and got its reply.
    Joined,
    /// The reply already existed.
    Replayed,
    /// The real reply was not ready within the attempt's budget.
    Interim,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Joined => "joined",
            Self::Replayed => "replayed",
            Self::Interim => "interim",
        }
    }
}

/// One message's work and result, shared by all its attempts in this process.
struct Slot {
    attempts: AtomicU32,
    started: AtomicBool,
    /// The work runs on another replica: poll the shared store for its reply.
    remote: AtomicBool,
    reply: watch::Sender<Option<Reply>>,
}

impl Slot {
    fn new() -> Self {
        Self {
            attempts: AtomicU32::new(0),
            started: AtomicBool::new(false),
            remote: AtomicBool::new(false),
            reply: watch::Sender::new(None),
        }
    }

    fn finished(&self) -> Option<Reply> {
        self.reply.borrow().clone()
    }
}

/// De-duplicates WeChat's attempts and decides when each is answered.
#[derive(Clone)]
pub struct ReplyWindow {
    settings: WindowSettings,
    bot: BotLink,
    slots: moka::sync::Cache<String, Arc<Slot>>,
    shared: Option<SharedStore>,
}

impl ReplyWindow {
    pub fn new(settings: WindowSettings, bot: BotLink, shared: Option<SharedStore>) -> Self {
        Self {
            settings,
            bot,
            slots: moka::sync::Cache::builder().time_to_live(MEMORY).build(),
            shared,
        }
    }

    /// The answer to one attempt at `message`, which reached the gateway at `arrived`.
    pub async fn answer(&self, message: InboundMessage, arrived: Instant) -> (Reply, Outcome) {
        let key = message_key(&message);
        let slot = self.slots.get_with(key.clone(), || Arc::new(Slot::new()));
        let local_attempt = slot.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let attempt = match &self.shared {
            Some(shared) => shared.attempt(&key).await.unwrap_or(local_attempt),
            None => local_attempt,
        };

        if let Some(reply) = self.finished(&slot, &key).await {
            return (reply, Outcome::Replayed);
        }

        let owner = !slot.started.swap(true, Ordering::SeqCst) && self.claim(&slot, &key).await;
        if owner {
            self.spawn_work(message, key.clone(), slot.clone());
        }

        let last = attempt >= WECHAT_ATTEMPTS || self.settings.policy == ReplyPolicy::Immediate;
        let wait = if last {
            self.settings.budget
        } else {
            WECHAT_WINDOW
        };
        match self.wait(&slot, &key, arrived + wait).await {
            Some(reply) if owner && attempt == 1 => (reply, Outcome::Fresh),
            Some(reply) => (reply, Outcome::Joined),
            None => (self.interim(), Outcome::Interim),
        }
    }

    /// The finished reply, from this process or the shared store.
    async fn finished(&self, slot: &Slot, key: &str) -> Option<Reply> {
        if let Some(reply) = slot.finished() {
            return Some(reply);
        }
        let reply = self.shared.as_ref()?.finished(key).await?;
        slot.reply.send_replace(Some(reply.clone()));
        Some(reply)
    }

    /// Claims the work across replicas; without a shared store (or when it is
    /// down) this process simply does the work.
    async fn claim(&self, slot: &Slot, key: &str) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let claimed = shared
            .claim(key, self.settings.work_deadline())
            .await
            .unwrap_or(true);
        slot.remote.store(!claimed, Ordering::SeqCst);
        claimed
    }

    fn spawn_work(&self, message: InboundMessage, key: String, slot: Arc<Slot>) {
        let (bot, shared, deadline) = (
            self.bot.clone(),
            self.shared.clone(),
            self.settings.work_deadline(),
        );
        // Spawned so that it runs to the end even when WeChat drops the
        // connection of the attempt that started it.
        tokio::spawn(async move {
            let reply = bot.reply(message, deadline).await;
            if let Some(shared) = &shared {
                shared.finish(&key, &reply).await;
            }
            slot.reply.send_replace(Some(reply));
        });
    }

    /// Waits until the reply exists or `deadline` passes.
    async fn wait(&self, slot: &Slot, key: &str, deadline: Instant) -> Option<Reply> {
        let mut local = slot.reply.subscribe();
        let from_local = async {
            local
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|reply| reply.clone())
        };
        let from_shared = async {
            loop {
                if slot.remote.load(Ordering::SeqCst)
                    && let Some(reply) = self.finished(slot, key).await
                {
                    return Some(reply);
                }
                tokio::time::sleep(SHARED_POLL).await;
            }
        };
        tokio::select! {
            reply = from_local => reply,
            reply = from_shared => reply,
            () = tokio::time::sleep_until(deadline) => None,
        }
    }

    fn interim(&self) -> Reply {
        match self.settings.interim {
            Interim::Text => Reply {
                kind: Some(reply::Kind::Text(TextReply {
                    content: INTERIM_TEXT.to_owned(),
                })),
            },
            Interim::Success => Reply {
                kind: Some(reply::Kind::None(Default::default())),
            },
        }
    }
}

/// One message across its retries: MsgId with the sender for messages;
/// for events (no MsgId) the sender, CreateTime and the whole event, which
/// covers WeChat's advice of FromUserName + CreateTime + Event + EventKey.
pub fn message_key(message: &InboundMessage) -> String {
    if message.msg_id != 0 {
        return format!("{}:{}", message.from_user, message.msg_id);
    }
    let digest = Sha1::digest(message.encode_to_vec());
    format!(
        "{}:{}:{}",
        message.from_user,
        message.create_time,
        hex::encode(digest)
    )
}
