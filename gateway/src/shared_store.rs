//! Redis as the meeting point of several gateway replicas: how many attempts
//! WeChat made for a message, who does its work (`SET NX` with a TTL), whether
//! its reply was answered in time or is to be delivered (`SET NX`: the first
//! to decide wins), and the finished reply (a short-lived cache). Every operation is best-effort: on a
//! Redis error the caller falls back to what this process knows.

use std::{sync::Arc, time::Duration};

use doumi_runtime::throttle::LogThrottle;

use doumi_proto::bot::v1::Reply;

use crate::window::Fate;
use prost::Message;
use redis::{AsyncCommands, aio::ConnectionManager, aio::ConnectionManagerConfig};

/// Finished replies outlive WeChat's retries comfortably.
const REPLY_TTL: Duration = Duration::from_secs(120);

fn key(kind: &str, message: &str) -> String {
    format!("doumi:gateway:v1:{kind}:{message}")
}

/// The Redis side of the reply window.
#[derive(Clone)]
pub struct SharedStore {
    connection: ConnectionManager,
    /// A Redis outage fails every message: its lines are summarised.
    throttle: Arc<LogThrottle>,
}

impl SharedStore {
    /// Connects lazily: the gateway answers (alone) while Redis is away.
    pub fn new(client: redis::Client) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(300)))
            .set_response_timeout(Some(Duration::from_millis(200)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            throttle: Arc::new(LogThrottle::default()),
        })
    }

    /// The value, or `None` after logging (summarised) why Redis failed.
    fn ok<T>(&self, result: redis::RedisResult<T>, what: &'static str) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                if let Some(held_back) = self.throttle.admit(what) {
                    tracing::warn!(%error, held_back, "{what}");
                }
                None
            }
        }
    }

    /// Counts this attempt; `None` when Redis is unavailable.
    pub async fn attempt(&self, message: &str) -> Option<u32> {
        let key = key("attempts", message);
        let result: redis::RedisResult<(u32, bool)> = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, REPLY_TTL.as_secs() as i64)
            .query_async(&mut self.connection.clone())
            .await;
        self.ok(result, "shared attempt count unavailable")
            .map(|(n, _)| n)
    }

    /// True when this replica won the right to do the work.
    pub async fn claim(&self, message: &str, ttl: Duration) -> Option<bool> {
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let result: redis::RedisResult<Option<String>> = self
            .connection
            .clone()
            .set_options(key("work", message), "1", options)
            .await;
        self.ok(result, "shared work claim unavailable")
            .map(|ok| ok.is_some())
    }

    /// Decides the message's fate unless it was decided already; the fate
    /// that holds, `None` when Redis is unavailable. `ttl` outlives the work,
    /// so the decision is still there when the work ends.
    pub async fn settle(&self, message: &str, fate: Fate, ttl: Duration) -> Option<Fate> {
        let key = key("fate", message);
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let result: redis::RedisResult<(Option<String>, Option<String>)> = redis::pipe()
            .atomic()
            .set_options(&key, fate.as_str(), options)
            .get(&key)
            .query_async(&mut self.connection.clone())
            .await;
        self.ok(result, "shared fate unavailable")
            .and_then(|(_, decided)| Fate::parse(decided.as_deref()?))
    }

    /// The message's fate, if one was decided.
    pub async fn fate(&self, message: &str) -> Option<Fate> {
        let result: redis::RedisResult<Option<String>> =
            self.connection.clone().get(key("fate", message)).await;
        let decided = self.ok(result, "shared fate unavailable")??;
        Fate::parse(&decided)
    }

    /// The finished reply, if some replica stored one.
    pub async fn finished(&self, message: &str) -> Option<Reply> {
        let result: redis::RedisResult<Option<Vec<u8>>> =
            self.connection.clone().get(key("reply", message)).await;
        let bytes = self.ok(result, "shared reply unavailable")??;
        Reply::decode(bytes.as_slice()).ok()
    }

    pub async fn finish(&self, message: &str, reply: &Reply) {
        let result: redis::RedisResult<()> = self
            .connection
            .clone()
            .set_ex(
                key("reply", message),
                reply.encode_to_vec(),
                REPLY_TTL.as_secs(),
            )
            .await;
        self.ok(result, "shared reply not stored");
    }
}
