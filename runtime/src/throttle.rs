//! Log lines for repeated failures, summarised: the first of a kind is
//! written at once, the rest at most once per interval with a count, so an
//! outage of a dependency cannot flood the logs.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Decides which occurrences of a repeated failure are logged.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    /// Per kind: when a line was last written, and how many were held back since.
    kinds: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Default for LogThrottle {
    /// A line per kind of failure per minute: an outage shows in the logs at
    /// once and then as a running count, never as a flood.
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

impl LogThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(held_back)` when this occurrence of `kind` should be logged,
    /// with the number not logged since the previous line; `None` otherwise.
    pub fn admit(&self, kind: &'static str) -> Option<u64> {
        let mut kinds = self
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match kinds.get_mut(kind) {
            None => {
                kinds.insert(kind, (now, 0));
                Some(0)
            }
            Some((last, held_back)) if now.duration_since(*last) >= self.interval => {
                let count = std::mem::take(held_back);
                *last = now;
                Some(count)
            }
            Some((_, held_back)) => {
                *held_back += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_logged_then_a_count_per_interval() {
        let throttle = LogThrottle::new(Duration::from_millis(50));
        assert_eq!(throttle.admit("a"), Some(0));
        assert_eq!(throttle.admit("a"), None);
        assert_eq!(throttle.admit("a"), None);
        assert_eq!(throttle.admit("b"), Some(0), "kinds are counted apart");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.admit("a"), Some(2));
    }
}
