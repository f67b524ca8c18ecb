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
use doumi_runtime::metrics::Counters;
use prost::Message;
use sha1::{Digest, Sha1};
use tokio::{sync::Notify, time::Instant};

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
    pub(super) reply: Published<Reply>,
    /// The [`Fate`] as this process knows it; unset while undecided.
    pub(super) fate: Published<Fate>,
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
            reply: Published::new(),
            fate: Published::new(),
            first_seen: Instant::now(),
        }
    }

    /// Decides the fate here, unless it was decided already; the winner.
    pub(super) fn settle(&self, fate: Fate) -> Fate {
        self.fate.publish_first(fate)
    }

    pub(super) fn finished(&self) -> Option<Reply> {
        self.reply.get()
    }
}

/// A value a message's attempts wait for: published by the work (a reply)
/// or by whichever attempt decides first (a fate), read by every attempt.
/// A watch channel would do the same, but carries eight wakers for
/// contention one message never has (about 500 bytes each); a slot holds two,
/// and the window up to 20,000 slots.
pub(super) struct Published<T> {
    value: Mutex<Option<T>>,
    published: Notify,
}

impl<T: Clone> Published<T> {
    fn new() -> Self {
        Self {
            value: Mutex::new(None),
            published: Notify::new(),
        }
    }

    pub(super) fn get(&self) -> Option<T> {
        self.lock().clone()
    }

    /// Sets (or replaces) the value and wakes every waiter.
    pub(super) fn publish(&self, value: T) {
        *self.lock() = Some(value);
        self.published.notify_waiters();
    }

    /// Sets the value unless one is set already; the value that stands.
    fn publish_first(&self, value: T) -> T {
        let mut current = self.lock();
        if let Some(earlier) = &*current {
            return earlier.clone();
        }
        *current = Some(value.clone());
        drop(current);
        self.published.notify_waiters();
        value
    }

    /// The value, once there is one.
    pub(super) async fn wait(&self) -> T {
        loop {
            let notified = self.published.notified();
            tokio::pin!(notified);
            // Registered before looking, so a value published in between
            // still wakes this waiter.
            notified.as_mut().enable();
            if let Some(value) = self.get() {
                return value;
            }
            notified.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        self.value
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every message WeChat may still retry, up to a bound.
pub(super) struct Slots {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
    /// Kept: a full window forgets a message for every new one, so under
    /// load this counts on every message.
    evictions: Counters<0>,
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
            evictions: Counters::new(crate::metrics::WINDOW_EVICTIONS, [], Vec::new()),
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
            self.evictions.increment([]);
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

    #[tokio::test]
    async fn every_waiter_gets_the_reply_and_the_first_fate_stands() {
        let slot = Arc::new(Slot::new());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let slot = slot.clone();
                tokio::spawn(async move { slot.reply.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        slot.reply.publish(Reply::text("《浪潮之巅》"));
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Reply::text("《浪潮之巅》"));
        }
        assert_eq!(slot.finished(), Some(Reply::text("《浪潮之巅》")));

        assert_eq!(slot.settle(Fate::Late), Fate::Late);
        assert_eq!(slot.settle(Fate::Answered), Fate::Late, "decided once");
        assert_eq!(slot.fate.wait().await, Fate::Late);
    }

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
