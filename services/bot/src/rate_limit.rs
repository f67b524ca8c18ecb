//! Each reader's pace: a reader sending lookup after lookup is told to slow
//! down before the catalog (and the providers' quotas behind it) see more
//! than `DOUMI_READER_RATE_LIMIT` from them; other readers are unaffected.
//!
//! The rule is GCRA, a token bucket kept as one number per reader (the time
//! at which the bucket is full again): `rate` lookups per period, with a
//! burst of `burst` at once. With Redis the number lives there and one
//! atomic script checks and updates it, so every bot replica applies the same
//! limit; without Redis (or while it fails) the process keeps it, in a
//! bounded cache.

use std::sync::Arc;

use doumi_runtime::{rate::RateLimit, redis::SharedRedis};
use tokio::time::Instant;

/// Readers whose pace this process remembers at most.
const TRACKED_READERS: u64 = 100_000;

/// Decides whether a reader may look up a book now; cheap to clone.
#[derive(Clone)]
pub struct ReaderLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    limit: RateLimit,
    local: moka::sync::Cache<String, Instant>,
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

/// A reader's entry lives until their bucket is full again, and not a
/// moment longer: past that a missing entry says the same (a full bucket),
/// so a reader who looked up once takes a slot for one interval (3 s at
/// 20/min), not for a whole burst's worth.
struct UntilFull;

impl moka::Expiry<String, Instant> for UntilFull {
    fn expire_after_create(
        &self,
        _reader: &String,
        full_at: &Instant,
        _created_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        Some(full_at.saturating_duration_since(Instant::now()))
    }

    fn expire_after_update(
        &self,
        _reader: &String,
        full_at: &Instant,
        _updated_at: std::time::Instant,
        _left: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        Some(full_at.saturating_duration_since(Instant::now()))
    }
}

impl ReaderLimiter {
    /// `shared`: share the limit across replicas; `None` = this process alone.
    pub fn new(limit: RateLimit, shared: Option<SharedRedis>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                local: moka::sync::Cache::builder()
                    .max_capacity(TRACKED_READERS)
                    .expire_after(UntilFull)
                    .build(),
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
        let limit = self.inner.limit;
        let now = Instant::now();
        let mut allowed = false;
        self.inner
            .local
            .entry_by_ref(reader)
            .and_compute_with(|entry| {
                let tat = entry.map_or(now, |e| (*e.value()).max(now));
                if tat.duration_since(now) > limit.tolerance() {
                    return moka::ops::compute::Op::Nop;
                }
                allowed = true;
                moka::ops::compute::Op::Put(tat + limit.interval())
            });
        allowed
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
}
