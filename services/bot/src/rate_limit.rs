//! Each reader's pace: a reader sending lookup after lookup is told to slow
//! down before the catalog (and the providers' quotas behind it) see more
//! than `DOUMI_READER_RATE_LIMIT` from them; other readers are unaffected.
//!
//! The rule is GCRA, a token bucket kept as one number per reader (the time
//! at which the bucket is full again): `rate` lookups per period, with a
//! burst of `burst` at once. With Redis the number lives there and one
//! atomic script checks and updates it, so every bot replica applies the same
//! limit; without Redis (or while it fails) the process keeps it, in a
//! bounded table.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use doumi_runtime::{rate::RateLimit, redis::SharedRedis};
use tokio::time::Instant;

/// Readers whose pace this process remembers at most.
const TRACKED_READERS: usize = 100_000;

/// Decides whether a reader may look up a book now; cheap to clone.
#[derive(Clone)]
pub struct ReaderLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    limit: RateLimit,
    local: Mutex<LocalPaces>,
    shared: Option<SharedRedis>,
}

/// GCRA in Redis: the key holds the time (ms, by Redis' clock) at which the
/// reader's bucket is full again. Allowed → 1 and the time moves on;
/// refused → 0 and nothing changes.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then return 0 end
local next = tat + interval
redis.call('SET', KEYS[1], next, 'PX', math.max(next - now, 1))
return 1
";

/// The buckets this process keeps: when each reader's is full again. A
/// reader is kept only while their bucket is not full (past that a missing
/// entry says the same), so the table is swept once per interval and a
/// reader who looked up once leaves it within two (6 s at 20/min).
///
/// A map behind one lock rather than a concurrent cache: every lookup
/// passes here, and a cache's per-entry expiry bookkeeping cost ~5,000
/// instructions a message (measured) where this costs a hash and a lock.
struct LocalPaces {
    full_at: HashMap<Box<str>, Instant>,
    next_sweep: Instant,
}

impl LocalPaces {
    fn new() -> Self {
        Self {
            full_at: HashMap::new(),
            next_sweep: Instant::now(),
        }
    }

    fn allow(&mut self, limit: RateLimit, reader: &str, now: Instant) -> bool {
        if let Some(full_at) = self.full_at.get_mut(reader) {
            let Some(next) = limit.admit(*full_at, now) else {
                return false;
            };
            *full_at = next;
            return true;
        }
        // No entry: a full bucket.
        let Some(next) = limit.admit(now, now) else {
            return false;
        };
        if now >= self.next_sweep {
            self.sweep(now, limit.interval());
        }
        // Full of readers still mid-burst (at most one sweep per interval,
        // so a flood of new readers cannot make every message a sweep): a
        // new reader goes uncounted rather than freeing an abuser's bucket.
        if self.full_at.len() < TRACKED_READERS {
            self.full_at.insert(reader.into(), next);
        }
        true
    }

    /// Forgets the readers whose bucket is full again.
    fn sweep(&mut self, now: Instant, every: std::time::Duration) {
        self.full_at.retain(|_, full_at| *full_at > now);
        // A burst of readers gone: give its memory back too.
        if self.full_at.len() < self.full_at.capacity() / 4 {
            self.full_at.shrink_to(self.full_at.len() * 2);
        }
        self.next_sweep = now + every;
    }
}

impl ReaderLimiter {
    /// `shared`: share the limit across replicas; `None` = this process alone.
    pub fn new(limit: RateLimit, shared: Option<SharedRedis>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                local: Mutex::new(LocalPaces::new()),
                shared,
            }),
        }
    }

    /// True when `reader` may look up a book now (and counts it).
    pub async fn allow(&self, reader: &str) -> bool {
        // While Redis is away each replica counts on its own: a reader
        // whose messages land on several replicas may go faster meanwhile.
        let shared = match &self.inner.shared {
            Some(shared) => self.allow_shared(shared, reader).await,
            None => None,
        };
        let allowed = shared.unwrap_or_else(|| self.allow_local(reader));
        if !allowed {
            metrics::counter!(crate::metrics::RATE_LIMITED).increment(1);
        }
        allowed
    }

    /// The shared verdict; `None` when Redis cannot give one.
    async fn allow_shared(&self, shared: &SharedRedis, reader: &str) -> Option<bool> {
        let limit = &self.inner.limit;
        // Hashed once: the script is sent by its SHA1, loaded on first use.
        static PACE: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(SCRIPT));
        let mut script = PACE.prepare_invoke();
        script
            .key(format!("doumi:bot:v1:pace:{reader}"))
            .arg(limit.interval().as_millis() as u64)
            .arg(limit.tolerance().as_millis() as u64);
        let allowed: i64 = shared
            .call("counting a reader's pace", |mut c| async move {
                script.invoke_async(&mut c).await
            })
            .await?;
        Some(allowed == 1)
    }

    fn allow_local(&self, reader: &str) -> bool {
        let now = Instant::now();
        self.inner
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(self.inner.limit, reader, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_then_one_per_interval_and_readers_apart() {
        let limiter = ReaderLimiter::new(RateLimit::parse("20/min").unwrap().unwrap(), None);
        for i in 0..5 {
            assert!(limiter.allow("oFast").await, "burst lookup {i}");
        }
        assert!(
            !limiter.allow("oFast").await,
            "the sixth in a row is refused"
        );
        assert!(limiter.allow("oCalm").await, "another reader is unaffected");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_is_forgotten_once_their_bucket_is_full_again() {
        let limit = RateLimit::parse("20/min").unwrap().unwrap();
        let limiter = ReaderLimiter::new(limit, None);
        let tracked = || limiter.inner.local.lock().unwrap().full_at.len();
        assert!(limiter.allow("oOnce").await);
        for _ in 0..5 {
            assert!(limiter.allow("oBusy").await);
        }
        assert_eq!(tracked(), 2);
        // Past one interval oOnce's bucket is full; oBusy's is still booked.
        tokio::time::advance(limit.interval() * 2).await;
        assert!(limiter.allow("oNew").await, "a new reader sweeps");
        assert_eq!(tracked(), 2, "oOnce forgotten, oBusy and oNew kept");
        assert!(limiter.allow("oBusy").await, "two intervals refilled two");
        assert!(limiter.allow("oBusy").await);
        assert!(!limiter.allow("oBusy").await, "and no more");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_keeps_its_readers_and_lets_new_ones_by() {
        let limit = RateLimit::parse("20/min").unwrap().unwrap();
        let mut paces = LocalPaces::new();
        let now = Instant::now();
        for i in 0..TRACKED_READERS {
            assert!(paces.allow(limit, &format!("oReader{i}"), now));
        }
        for _ in 0..4 {
            assert!(paces.allow(limit, "oReader0", now));
        }
        assert!(
            !paces.allow(limit, "oReader0", now),
            "a tracked reader stays limited"
        );
        assert!(paces.allow(limit, "oLate", now), "a new reader is let by");
        assert_eq!(paces.full_at.len(), TRACKED_READERS, "but not kept");
    }
}
