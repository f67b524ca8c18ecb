//! Redis as the meeting point of several gateway replicas: how many attempts
//! WeChat made for a message, who does its work (a lease: `SET NX` with a
//! short TTL its owner renews, so that work whose replica died is taken over),
//! whether its reply was answered in time or is to be delivered (`SET NX`: the
//! first to decide wins), the finished reply (a short-lived cache), and every
//! reply promised for delivery and not yet sent (`pending`, indexed by
//! deadline), so that a promise outlives the replica that made it. Every
//! operation is best-effort: on a Redis error the caller falls back to what
//! this process knows.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use doumi_runtime::throttle::LogThrottle;

use doumi_proto::bot::v1::{InboundMessage, Reply};

use crate::window::Fate;
use prost::Message;
use redis::{AsyncCommands, aio::ConnectionManager, aio::ConnectionManagerConfig};

/// Finished replies outlive WeChat's retries comfortably.
const REPLY_TTL: Duration = Duration::from_secs(120);
/// The promises to look at in one sweep, soonest deadline first.
const SWEEP_BATCH: isize = 256;
/// The index of pending promises: message keys scored by their deadline.
/// An account of an accounts file has its own (each account's sweep
/// delivers with that account's token).
const PENDING_INDEX: &str = "doumi:gateway:v1:pending-by-deadline";

/// Extends a lease only while this replica holds it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";
/// Gives a lease up only while this replica holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

fn key(kind: &str, message: &str) -> String {
    format!("doumi:gateway:v1:{kind}:{message}")
}

/// A reply promised for delivery, as the replica that promised it recorded
/// it: enough for any replica to do the work again and deliver it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub message: InboundMessage,
    /// Until when the reply may still be delivered.
    pub deadline: SystemTime,
}

/// The Redis side of the reply window.
#[derive(Clone)]
pub struct SharedStore {
    connection: ConnectionManager,
    /// Who holds a lease: this replica's name among the others.
    replica: Arc<str>,
    /// This account's index of pending promises.
    pending_index: Arc<str>,
    /// A Redis outage fails every message: its lines are summarised.
    throttle: Arc<LogThrottle>,
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
            replica: format!("{:016x}", rand::random::<u64>()).into(),
            pending_index: PENDING_INDEX.into(),
            throttle: Arc::new(LogThrottle::default()),
        })
    }

    /// The same store for the named account of an accounts file: its own
    /// index of promises (message keys carry the account already).
    pub fn for_account(&self, name: &str) -> Self {
        Self {
            pending_index: format!("{PENDING_INDEX}:{name}").into(),
            ..self.clone()
        }
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

    /// True when this replica won the lease on the work: nobody holds it,
    /// or its holder stopped renewing it for `lease`.
    pub async fn claim(&self, message: &str, lease: Duration) -> Option<bool> {
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(lease.as_millis() as u64));
        let result: redis::RedisResult<Option<String>> = self
            .connection
            .clone()
            .set_options(key("work", message), &*self.replica, options)
            .await;
        self.ok(result, "shared work claim unavailable")
            .map(|ok| ok.is_some())
    }

    /// Keeps the lease for another `lease`; `Some(false)` when this replica
    /// no longer holds it.
    pub async fn renew(&self, message: &str, lease: Duration) -> Option<bool> {
        let result: redis::RedisResult<i64> = redis::Script::new(RENEW)
            .key(key("work", message))
            .arg(&*self.replica)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.connection.clone())
            .await;
        self.ok(result, "shared work lease not renewed")
            .map(|n| n == 1)
    }

    /// Gives the lease up, so that another replica takes the work over at
    /// once instead of when the lease runs out.
    pub async fn release(&self, message: &str) {
        let result: redis::RedisResult<i64> = redis::Script::new(RELEASE)
            .key(key("work", message))
            .arg(&*self.replica)
            .invoke_async(&mut self.connection.clone())
            .await;
        self.ok(result, "shared work lease not released");
    }

    /// Records a reply promised for delivery until it is sent ([`Self::sent`])
    /// or its deadline passes.
    pub async fn promise(&self, message: &str, pending: &Pending) {
        let deadline = unix_millis(pending.deadline);
        let ttl = deadline
            .saturating_sub(unix_millis(SystemTime::now()))
            .max(1);
        let record = key("pending", message);
        let result: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .hset(&record, "message", pending.message.encode_to_vec())
            .ignore()
            .hset(&record, "deadline", deadline)
            .ignore()
            .pexpire(&record, ttl as i64)
            .ignore()
            .zadd(&*self.pending_index, message, deadline)
            .ignore()
            .query_async(&mut self.connection.clone())
            .await;
        self.ok(result, "shared promise not recorded");
    }

    /// The promise recorded for `message`, if it is still pending.
    pub async fn pending(&self, message: &str) -> Option<Pending> {
        let result: redis::RedisResult<(Option<Vec<u8>>, Option<u64>)> = redis::pipe()
            .hget(key("pending", message), "message")
            .hget(key("pending", message), "deadline")
            .query_async(&mut self.connection.clone())
            .await;
        let (bytes, deadline) = self.ok(result, "shared promise unavailable")?;
        Some(Pending {
            message: InboundMessage::decode(bytes?.as_slice()).ok()?,
            deadline: UNIX_EPOCH + Duration::from_millis(deadline?),
        })
    }

    /// Messages promised for delivery whose deadline is still ahead, the
    /// soonest first; promises past their deadline are dropped from the
    /// index (their count returned), as nobody may deliver them any more.
    pub async fn due(&self) -> Option<(Vec<String>, u64)> {
        let now = unix_millis(SystemTime::now());
        let result: redis::RedisResult<(u64, Vec<String>)> = redis::pipe()
            .zrembyscore(&*self.pending_index, "-inf", now)
            .zrangebyscore_limit(&*self.pending_index, now, "+inf", 0, SWEEP_BATCH)
            .query_async(&mut self.connection.clone())
            .await;
        self.ok(result, "shared promises unavailable")
            .map(|(expired, due)| (due, expired))
    }

    /// Claims the one delivery of `message`'s reply; false when some
    /// replica sent it already, so nobody sends it twice.
    pub async fn sent(&self, message: &str, ttl: Duration) -> Option<bool> {
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let result: redis::RedisResult<(Option<String>, (), ())> = redis::pipe()
            .set_options(key("sent", message), &*self.replica, options)
            .del(key("pending", message))
            .zrem(&*self.pending_index, message)
            .query_async(&mut self.connection.clone())
            .await;
        self.ok(result, "shared delivery claim unavailable")
            .map(|(claimed, (), ())| claimed.is_some())
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
