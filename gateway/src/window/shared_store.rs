//! Redis as the meeting point of several gateway replicas: how many attempts
//! WeChat made for a message, who does its work (a lease: `SET NX` with a
//! short TTL its owner renews, so that work whose replica died is taken over),
//! whether its reply was answered in time or is to be delivered (`SET NX`: the
//! first to decide wins), the finished reply (a short-lived cache), and every
//! reply promised for delivery and not yet sent (`pending`, indexed by
//! deadline), so that a promise outlives the replica that made it. Every
//! operation is best-effort: on a Redis error, a timeout, or while Redis is
//! skipped after repeated failures, the caller falls back to what this
//! process knows (for as long as Redis is away: WeChat's retries that land on
//! another replica may be answered twice, promises live with the replica
//! that made them, as without Redis).

use std::{
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use doumi_runtime::redis::SharedRedis;

use doumi_proto::bot::v1::{InboundMessage, Reply};

use super::slots::Fate;
use prost::Message;
use redis::AsyncCommands;

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
    /// Skipped at once after repeated failures: the window then works as it
    /// does without Redis.
    redis: SharedRedis,
    /// Who holds a lease: this replica's name among the others.
    replica: Arc<str>,
    /// This account's index of pending promises.
    pending_index: Arc<str>,
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Hashed once: scripts are sent by their SHA1, loaded on first use.
static RENEW_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RENEW));
static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE));

impl SharedStore {
    pub fn new(redis: SharedRedis) -> Self {
        Self {
            redis,
            replica: format!("{:016x}", rand::random::<u64>()).into(),
            pending_index: PENDING_INDEX.into(),
        }
    }

    /// The same store for the named account of an accounts file: its own
    /// index of promises (message keys carry the account already).
    pub fn for_account(&self, name: &str) -> Self {
        Self {
            pending_index: format!("{PENDING_INDEX}:{name}").into(),
            ..self.clone()
        }
    }

    /// Counts this attempt; `None` when Redis is unavailable.
    pub async fn attempt(&self, message: &str) -> Option<u32> {
        let key = key("attempts", message);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(&key, 1)
            .expire(&key, REPLY_TTL.as_secs() as i64);
        let counted: (u32, bool) = self
            .redis
            .call("shared attempt count unavailable", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Some(counted.0)
    }

    /// True when this replica won the lease on the work: nobody holds it,
    /// or its holder stopped renewing it for `lease`.
    pub async fn claim(&self, message: &str, lease: Duration) -> Option<bool> {
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(lease.as_millis() as u64));
        let (key, replica) = (key("work", message), self.replica.clone());
        let won: Option<String> = self
            .redis
            .call("shared work claim unavailable", |mut c| async move {
                c.set_options(key, &*replica, options).await
            })
            .await?;
        Some(won.is_some())
    }

    /// Keeps the lease for another `lease`; `Some(false)` when this replica
    /// no longer holds it.
    pub async fn renew(&self, message: &str, lease: Duration) -> Option<bool> {
        let mut script = RENEW_SCRIPT.prepare_invoke();
        script
            .key(key("work", message))
            .arg(&*self.replica)
            .arg(lease.as_millis() as u64);
        let renewed: i64 = self
            .redis
            .call("shared work lease not renewed", |mut c| async move {
                script.invoke_async(&mut c).await
            })
            .await?;
        Some(renewed == 1)
    }

    /// Gives the lease up, so that another replica takes the work over at
    /// once instead of when the lease runs out.
    pub async fn release(&self, message: &str) {
        let mut script = RELEASE_SCRIPT.prepare_invoke();
        script.key(key("work", message)).arg(&*self.replica);
        let _: Option<i64> = self
            .redis
            .call("shared work lease not released", |mut c| async move {
                script.invoke_async(&mut c).await
            })
            .await;
    }

    /// Records a reply promised for delivery until it is sent ([`Self::sent`])
    /// or its deadline passes.
    pub async fn promise(&self, message: &str, pending: &Pending) {
        let deadline = unix_millis(pending.deadline);
        let ttl = deadline
            .saturating_sub(unix_millis(SystemTime::now()))
            .max(1);
        let record = key("pending", message);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&record, "message", pending.message.encode_to_vec())
            .ignore()
            .hset(&record, "deadline", deadline)
            .ignore()
            .pexpire(&record, ttl as i64)
            .ignore()
            .zadd(&*self.pending_index, message, deadline)
            .ignore();
        let _: Option<()> = self
            .redis
            .call("shared promise not recorded", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await;
    }

    /// The promise recorded for `message`, if it is still pending.
    pub async fn pending(&self, message: &str) -> Option<Pending> {
        let mut pipe = redis::pipe();
        pipe.hget(key("pending", message), "message")
            .hget(key("pending", message), "deadline");
        let (bytes, deadline): (Option<Vec<u8>>, Option<u64>) = self
            .redis
            .call("shared promise unavailable", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
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
        let mut pipe = redis::pipe();
        pipe.zrembyscore(&*self.pending_index, "-inf", now)
            .zrangebyscore_limit(&*self.pending_index, now, "+inf", 0, SWEEP_BATCH);
        let (expired, due): (u64, Vec<String>) = self
            .redis
            .call("shared promises unavailable", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Some((due, expired))
    }

    /// Claims the one delivery of `message`'s reply; false when some
    /// replica sent it already, so nobody sends it twice.
    pub async fn sent(&self, message: &str, ttl: Duration) -> Option<bool> {
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let mut pipe = redis::pipe();
        pipe.set_options(key("sent", message), &*self.replica, options)
            .del(key("pending", message))
            .zrem(&*self.pending_index, message);
        let (claimed, (), ()): (Option<String>, (), ()) = self
            .redis
            .call("shared delivery claim unavailable", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Some(claimed.is_some())
    }

    /// Decides the message's fate unless it was decided already; the fate
    /// that holds, `None` when Redis is unavailable. `ttl` outlives the work,
    /// so the decision is still there when the work ends.
    pub async fn settle(&self, message: &str, fate: Fate, ttl: Duration) -> Option<Fate> {
        let key = key("fate", message);
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_options(&key, fate.as_str(), options)
            .get(&key);
        let (_, decided): (Option<String>, Option<String>) = self
            .redis
            .call("shared fate unavailable", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Fate::parse(decided.as_deref()?)
    }

    /// The message's fate, if one was decided.
    pub async fn fate(&self, message: &str) -> Option<Fate> {
        let key = key("fate", message);
        let decided: Option<String> = self
            .redis
            .call("shared fate unavailable", |mut c| async move {
                c.get(key).await
            })
            .await?;
        Fate::parse(&decided?)
    }

    /// The finished reply, if some replica stored one.
    pub async fn finished(&self, message: &str) -> Option<Reply> {
        let key = key("reply", message);
        let bytes: Option<Vec<u8>> = self
            .redis
            .call("shared reply unavailable", |mut c| async move {
                c.get(key).await
            })
            .await?;
        Reply::decode(bytes?.as_slice()).ok()
    }

    pub async fn finish(&self, message: &str, reply: &Reply) {
        let (key, bytes) = (key("reply", message), reply.encode_to_vec());
        let _: Option<()> = self
            .redis
            .call("shared reply not stored", |mut c| async move {
                c.set_ex(key, bytes, REPLY_TTL.as_secs()).await
            })
            .await;
    }

    /// Whether Redis is in use (for `/readyz`).
    pub fn redis(&self) -> &SharedRedis {
        &self.redis
    }
}
