//! The shared cache tier in Redis, so every replica reuses what one fetched.
//!
//! Redis is an optimisation, never a dependency: it is reached through the
//! runtime's [`SharedRedis`] like every service's shared state (a short
//! timeout per command, skipped after failures in a row until a probe finds
//! it back, an outage's log lines summarised), and a failure counts as a miss.

use std::time::SystemTime;

use doumi_runtime::{breaker::BreakerState, redis::SharedRedis};
use redis::AsyncCommands;

use crate::{cache::entry::CacheEntry, key::BookKey};

/// Key prefix; the value format's version lives inside each value.
const PREFIX: &str = "doumi:catalog:v1:";

/// Redis key of a lookup, e.g. `doumi:catalog:v1:isbn:9787121139512`.
pub fn redis_key(key: &BookKey) -> String {
    format!("{PREFIX}{key}")
}

/// The Redis tier.
pub struct RedisCache {
    redis: SharedRedis,
}

impl RedisCache {
    pub fn new(redis: SharedRedis) -> Self {
        Self { redis }
    }

    /// Whether Redis is in use: not skipped after failures, nor waiting for
    /// a probe to find it back.
    pub fn is_up(&self) -> bool {
        self.redis.state() == BreakerState::Closed
    }

    /// The entry stored for `key`; `None` on a miss, an error, a timeout, an
    /// entry of another schema version, or while Redis is skipped.
    #[tracing::instrument(level = "debug", name = "redis.get", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn get(&self, key: &BookKey, now: SystemTime) -> Option<CacheEntry> {
        let redis_key = redis_key(key);
        let bytes = self
            .redis
            .call("reading a cached book", |mut c| async move {
                c.get::<_, Option<Vec<u8>>>(redis_key).await
            })
            .await??;
        CacheEntry::decode(&bytes, now)
            .inspect_err(|error| tracing::info!(%key, %error, "cache entry ignored"))
            .ok()
    }

    /// Stores `entry` until its hard TTL.
    #[tracing::instrument(level = "debug", name = "redis.set", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn put(&self, key: &BookKey, entry: &CacheEntry, now: SystemTime) {
        let ttl_ms = u64::try_from(entry.time_to_live(now).as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return;
        }
        let (redis_key, bytes) = (redis_key(key), entry.encode());
        self.redis
            .call("storing a cached book", |mut c| async move {
                c.pset_ex::<_, _, ()>(redis_key, bytes, ttl_ms).await
            })
            .await;
    }
}
