//! The shared cache tier in Redis, so every replica reuses what one fetched.
//!
//! Redis is an optimisation, never a dependency: every command has a short
//! timeout, a failure counts as a miss, and after a few failures in a row
//! Redis is skipped altogether (a circuit breaker) so a dead or slow Redis
//! costs nothing until a probe finds it back. The connection manager
//! reconnects on its own.

use std::time::{Duration, SystemTime};

use redis::{
    AsyncCommands,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::{cache::entry::CacheEntry, key::BookKey, metrics as m};
use doumi_runtime::{
    breaker::{BreakerSettings, BreakerState, CircuitBreaker},
    redis::RedisPolicy,
};

/// Key prefix; the value format's version lives inside each value.
const PREFIX: &str = "doumi:catalog:v1:";

/// Redis key of a lookup, e.g. `doumi:catalog:v1:isbn:9787121139512`.
pub fn redis_key(key: &BookKey) -> String {
    format!("{PREFIX}{key}")
}

/// The Redis tier.
pub struct RedisCache {
    connection: ConnectionManager,
    policy: RedisPolicy,
    breaker: CircuitBreaker,
}

impl RedisCache {
    /// Connects lazily, so the catalog starts (and answers) while Redis is
    /// still coming up.
    pub fn new(client: redis::Client, policy: RedisPolicy) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(policy.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(policy.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            policy,
            breaker: CircuitBreaker::new(BreakerSettings {
                failure_threshold: doumi_runtime::redis::FAILURES_TO_SKIP,
                cooldown: policy.cooldown,
            }),
        })
    }

    /// Whether Redis is in use: not skipped after failures, nor waiting for
    /// a probe to find it back.
    pub fn is_up(&self) -> bool {
        let up = self.breaker.state() == BreakerState::Closed;
        metrics::gauge!(m::REDIS_UP).set(if up { 1.0 } else { 0.0 });
        up
    }

    /// The entry stored for `key`; `None` on a miss, an error, a timeout, an
    /// entry of another schema version, or while Redis is skipped.
    #[tracing::instrument(level = "debug", name = "redis.get", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn get(&self, key: &BookKey, now: SystemTime) -> Option<CacheEntry> {
        if !self.breaker.allow() {
            return None;
        }
        let mut connection = self.connection.clone();
        let read = tokio::time::timeout(
            self.policy.timeout,
            connection.get::<_, Option<Vec<u8>>>(redis_key(key)),
        )
        .await;
        let bytes = match read {
            Ok(Ok(bytes)) => {
                self.breaker.succeeded();
                bytes?
            }
            Ok(Err(error)) => {
                self.failed("get", key, &error);
                return None;
            }
            Err(_) => {
                self.failed("get", key, &"timed out");
                return None;
            }
        };
        CacheEntry::decode(&bytes, now)
            .inspect_err(|error| tracing::info!(%key, %error, "cache entry ignored"))
            .ok()
    }

    /// Stores `entry` until its hard TTL.
    #[tracing::instrument(level = "debug", name = "redis.set", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn put(&self, key: &BookKey, entry: &CacheEntry, now: SystemTime) {
        let ttl_ms = u64::try_from(entry.time_to_live(now).as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 || !self.breaker.allow() {
            return;
        }
        let mut connection = self.connection.clone();
        let write = tokio::time::timeout(
            self.policy.timeout,
            connection.pset_ex::<_, _, ()>(redis_key(key), entry.encode(), ttl_ms),
        )
        .await;
        match write {
            Ok(Ok(())) => self.breaker.succeeded(),
            Ok(Err(error)) => self.failed("put", key, &error),
            Err(_) => self.failed("put", key, &"timed out"),
        }
    }

    fn failed(&self, op: &'static str, key: &BookKey, error: &dyn std::fmt::Display) {
        metrics::counter!(m::REDIS_ERRORS, "operation" => op).increment(1);
        tracing::warn!(%key, %error, operation = op, "redis failed; answering without it");
        self.breaker.failed();
        self.is_up();
    }
}
