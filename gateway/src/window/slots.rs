//! The window's memory of messages: each message's key, and key → its
//! [`Slot`] (its work, its reply, its [`Fate`]), bounded in time and in size.
//!
//! Entries live in arrival order, so the oldest is always at the front:
//! expiring and evicting are pops from the front, and every message costs
//! O(1) work. At the size bound the oldest message is forgotten early — a
//! retry of it then starts the work again and may be answered twice, but is
//! never lost (a late reply in flight keeps its slot alive on its own).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU32},
    },
    time::Duration,
};

use doumi_proto::bot::v1::{InboundMessage, Reply};
use prost::Message;
use sha1::{Digest, Sha1};
use tokio::{sync::watch, time::Instant};

/// How a message's reply reaches the reader, decided once: by an attempt
/// giving it (answered passively), or by an attempt giving up on it or the
/// end of WeChat's attempts (promised, then delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// An attempt gives the reply passively.
    Answered,
    /// The reply is to be delivered.
    Late,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Late => "late",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "answered" => Some(Self::Answered),
            "late" => Some(Self::Late),
            _ => None,
        }
    }
}

/// One message's work and result, shared by all its attempts in this process.
pub(super) struct Slot {
    pub(super) attempts: AtomicU32,
    pub(super) started: AtomicBool,
    /// The work runs on another replica: poll the shared store for its reply.
    pub(super) remote: AtomicBool,
    pub(super) reply: watch::Sender<Option<Reply>>,
    /// The [`Fate`] as this process knows it; `None` while undecided.
    pub(super) fate: watch::Sender<Option<Fate>>,
    /// When this process first saw the message: WeChat's attempts end
    /// [`super::WECHAT_PATIENCE`] after that.
    pub(super) first_seen: Instant,
}

impl Slot {
    pub(super) fn new() -> Self {
        Self {
            attempts: AtomicU32::new(0),
            started: AtomicBool::new(false),
            remote: AtomicBool::new(false),
            reply: watch::Sender::new(None),
            fate: watch::Sender::new(None),
            first_seen: Instant::now(),
        }
    }

    /// Decides the fate here, unless it was decided already; the winner.
    pub(super) fn settle(&self, fate: Fate) -> Fate {
        let mut winner = fate;
        self.fate.send_if_modified(|decided| match decided {
            Some(earlier) => {
                winner = *earlier;
                false
            }
            None => {
                *decided = Some(fate);
                true
            }
        });
        winner
    }

    pub(super) fn finished(&self) -> Option<Reply> {
        self.reply.borrow().clone()
    }
}

/// Every message WeChat may still retry, up to a bound.
pub(super) struct Slots {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<Arc<str>, Arc<Slot>>,
    /// The same keys, oldest first, with when each arrived.
    arrivals: VecDeque<(Instant, Arc<str>)>,
}

impl Slots {
    /// Remembers a message for `ttl`, and at most `capacity` messages.
    pub(super) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The slot of the message `key`, made when it is new.
    pub(super) fn get_or_insert(&self, key: &str) -> Arc<Slot> {
        let now = Instant::now();
        let mut inner = self.lock();
        while let Some((arrived, _)) = inner.arrivals.front()
            && now.duration_since(*arrived) >= self.ttl
        {
            inner.forget_oldest();
        }
        if let Some(slot) = inner.by_key.get(key) {
            return slot.clone();
        }
        while inner.by_key.len() >= self.capacity {
            inner.forget_oldest();
            metrics::counter!(crate::metrics::WINDOW_EVICTIONS).increment(1);
        }
        let key: Arc<str> = Arc::from(key);
        let slot = Arc::new(Slot::new());
        inner.by_key.insert(key.clone(), slot.clone());
        inner.arrivals.push_back((now, key));
        slot
    }

    /// Messages remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.arrivals.pop_front() {
            self.by_key.remove(&key);
        }
    }
}

/// How a message appears in every service's logs: its MsgId, which WeChat
/// keeps across retries and which says nothing about the reader; for events
/// (no MsgId) a digest of their key.
pub fn message_tag(message: &InboundMessage) -> String {
    if message.msg_id != 0 {
        return message.msg_id.to_string();
    }
    let digest = Sha1::digest(message_key(message));
    format!("event-{}", hex::encode(&digest[..6]))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_distinct_messages_stays_within_the_bound() {
        let slots = Slots::new(1000, Duration::from_secs(30));
        for i in 0..50_000 {
            slots.get_or_insert(&format!("reader:{i}"));
            assert!(slots.len() <= 1000);
        }
        let recent = slots.get_or_insert("reader:49999");
        assert!(Arc::ptr_eq(&recent, &slots.get_or_insert("reader:49999")));
        assert_eq!(slots.len(), 1000, "the newest are kept");
    }

    #[test]
    fn a_retry_finds_its_slot_until_it_expires() {
        let slots = Slots::new(10, Duration::from_millis(50));
        let first = slots.get_or_insert("a");
        assert!(Arc::ptr_eq(&first, &slots.get_or_insert("a")));
        std::thread::sleep(Duration::from_millis(60));
        let later = slots.get_or_insert("b");
        assert_eq!(slots.len(), 1, "a expired when b came");
        assert!(!Arc::ptr_eq(&first, &slots.get_or_insert("a")));
        drop(later);
    }
}
