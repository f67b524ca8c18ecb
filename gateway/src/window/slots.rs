//! The window's memory of messages: message key → its [`Slot`], bounded in
//! time and in size.
//!
//! Entries live in arrival order, so the oldest is always at the front:
//! expiring and evicting are pops from the front, and every message costs
//! O(1) work. At the size bound the oldest message is forgotten early — a
//! retry of it then starts the work again and may be answered twice, but is
//! never lost (a late reply in flight keeps its slot alive on its own).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::time::Instant;

use super::Slot;

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
