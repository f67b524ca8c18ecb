//! The deployment's one `access_token`.
//!
//! Every call to WeChat's API carries it. WeChat caps how many a day an
//! account may fetch, and a forced refresh invalidates the previous token
//! after a short overlap — so replicas fetching on their own would both burn
//! the quota and knock each other's tokens out. Hence: one fetch in flight per
//! process whatever the number of callers (they wait on one lock), the token
//! kept until shortly before it expires, shared by every replica through
//! Redis when there is one (a lock there makes N replicas fetch once), and a
//! token WeChat rejects refreshed once — by whoever sees it first.

use std::{sync::Arc, time::Duration};

use redis::{AsyncCommands, aio::ConnectionManager};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, time::Instant};

use super::{
    client::{ApiClient, Credentials, expose},
    error::ApiError,
    series::TOKEN_REQUESTS,
};

/// A token is replaced this long before WeChat says it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long one replica may hold the shared fetch lock: longer than a fetch
/// can take (three attempts of 5 s and their pauses).
const LOCK_TTL: Duration = Duration::from_secs(20);
/// After a failed fetch, callers are refused at once for this long instead
/// of each trying (and waiting) again in turn.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// At most one forced refresh per this long, per process.
const FORCE_GAP: Duration = Duration::from_secs(30);
/// How often a replica waiting on another's fetch looks for its token.
const SHARED_POLL: Duration = Duration::from_millis(100);

/// An access_token. It grants the account's API: it never appears in logs.
#[derive(Clone)]
pub struct AccessToken(Arc<SecretString>);

impl AccessToken {
    fn new(value: String) -> Self {
        Self(Arc::new(SecretString::from(value)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

/// A token and when to stop using it.
#[derive(Clone)]
struct Held {
    token: AccessToken,
    until: Instant,
}

impl Held {
    fn usable(&self, rejected: Option<&AccessToken>) -> bool {
        Instant::now() < self.until && rejected != Some(&self.token)
    }
}

/// What the process knows of its token.
#[derive(Default)]
struct Holding {
    token: Option<Held>,
    /// Until when a failed fetch answers for itself.
    failed_until: Option<Instant>,
    /// When this process last forced a refresh.
    forced_at: Option<Instant>,
}

/// How long to keep a token WeChat says lives `expires_in`.
fn keep_for(expires_in: Duration) -> Duration {
    if expires_in > REFRESH_MARGIN * 2 {
        expires_in - REFRESH_MARGIN
    } else {
        expires_in / 2
    }
}

/// Hands out the account's access_token; cheap to clone.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    api: ApiClient,
    credentials: Credentials,
    /// Held while fetching, so concurrent callers wait for one fetch.
    held: Mutex<Holding>,
    shared: Option<SharedTokens>,
}

#[derive(Serialize)]
struct StableTokenRequest<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl TokenManager {
    /// `redis`: share the token with the other replicas, through the
    /// service's connection (its timeouts are the service's Redis settings);
    /// `None` = this process alone.
    pub fn new(api: ApiClient, credentials: Credentials, redis: Option<ConnectionManager>) -> Self {
        let shared = redis.map(|connection| SharedTokens::new(connection, &credentials.app_id));
        Self {
            inner: Arc::new(Inner {
                api,
                credentials,
                held: Mutex::new(Holding::default()),
                shared,
            }),
        }
    }

    /// A token to call WeChat with.
    pub async fn get(&self) -> Result<AccessToken, ApiError> {
        self.obtain(None).await
    }

    /// A replacement for `rejected`, which WeChat refused (40001, 40014,
    /// 42001). Whoever asks first refreshes; callers holding the same
    /// rejected token get that one new token.
    pub async fn refresh(&self, rejected: &AccessToken) -> Result<AccessToken, ApiError> {
        self.obtain(Some(rejected)).await
    }

    async fn obtain(&self, rejected: Option<&AccessToken>) -> Result<AccessToken, ApiError> {
        let mut holding = self.inner.held.lock().await;
        if let Some(current) = holding.token.as_ref().filter(|h| h.usable(rejected)) {
            return Ok(current.token.clone());
        }
        if holding
            .failed_until
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(ApiError::TokenUnavailable);
        }
        // A forced refresh invalidates the token every other system sharing
        // the AppID holds, and WeChat limits them: at most one per
        // FORCE_GAP; a token rejected again sooner is asked for normally
        // (WeChat then hands out its current one).
        let force =
            rejected.is_some() && holding.forced_at.is_none_or(|at| at.elapsed() >= FORCE_GAP);
        let fresh = match &self.inner.shared {
            Some(shared) => match shared.obtain(self, rejected, force).await {
                Ok(fresh) => Ok(fresh),
                Err(SharedError::Api(error)) => Err(error),
                Err(SharedError::Redis(error)) => {
                    tracing::warn!(%error, "shared access_token unavailable, fetching in this process");
                    self.fetch(force).await
                }
            },
            None => self.fetch(force).await,
        };
        if force {
            holding.forced_at = Some(Instant::now());
        }
        match fresh {
            Ok(fresh) => {
                holding.token = Some(fresh.clone());
                holding.failed_until = None;
                Ok(fresh.token)
            }
            Err(error) => {
                holding.failed_until = Some(Instant::now() + FAILURE_MEMORY);
                Err(error)
            }
        }
    }

    /// Asks WeChat for a token (`/cgi-bin/stable_token`); `force` replaces a
    /// token WeChat no longer accepts.
    async fn fetch(&self, force: bool) -> Result<Held, ApiError> {
        let kind = if force { "forced" } else { "fetch" };
        metrics::counter!(TOKEN_REQUESTS, "kind" => kind).increment(1);
        let credentials = &self.inner.credentials;
        let body = StableTokenRequest {
            grant_type: "client_credential",
            appid: &credentials.app_id,
            secret: expose(&credentials.app_secret),
            force_refresh: force,
        };
        let api = &self.inner.api;
        let path = "/cgi-bin/stable_token";
        // A forced refresh replaces the token others hold: made once at most.
        let answer: TokenAnswer = if force {
            api.post("stable_token", path, &[], &body).await?
        } else {
            api.post_idempotent("stable_token", path, &[], &body)
                .await?
        };
        tracing::info!(force, expires_in = answer.expires_in, "new access_token");
        Ok(Held {
            token: AccessToken::new(answer.access_token),
            until: Instant::now() + keep_for(Duration::from_secs(answer.expires_in)),
        })
    }
}

/// The token in Redis, shared by every replica of the account.
struct SharedTokens {
    connection: ConnectionManager,
    token_key: String,
    lock_key: String,
}

impl SharedTokens {
    fn new(connection: ConnectionManager, app_id: &str) -> Self {
        Self {
            connection,
            token_key: format!("doumi:wechat:v1:access-token:{app_id}"),
            lock_key: format!("doumi:wechat:v1:access-token-lock:{app_id}"),
        }
    }

    /// The stored token unless it is `rejected`.
    async fn stored(&self, rejected: Option<&AccessToken>) -> redis::RedisResult<Option<Held>> {
        let mut connection = self.connection.clone();
        let (value, ttl_ms): (Option<String>, i64) = redis::pipe()
            .get(&self.token_key)
            .pttl(&self.token_key)
            .query_async(&mut connection)
            .await?;
        Ok(value.and_then(|value| {
            let held = Held {
                token: AccessToken::new(value),
                until: Instant::now() + Duration::from_millis(ttl_ms.max(0) as u64),
            };
            held.usable(rejected).then_some(held)
        }))
    }

    /// The shared token: the stored one, or one fetched by the replica that
    /// holds the lock while the others wait for it to appear — taking the
    /// lock themselves when its holder gave up without a token.
    async fn obtain(
        &self,
        tokens: &TokenManager,
        rejected: Option<&AccessToken>,
        force: bool,
    ) -> Result<Held, SharedError> {
        let give_up = Instant::now() + LOCK_TTL;
        loop {
            if let Some(held) = self.stored(rejected).await? {
                return Ok(held);
            }
            if let Some(owner) = self.lock().await? {
                // Another replica may have stored one between the read and the lock.
                let held = match self.stored(rejected).await {
                    Ok(Some(held)) => Ok(held),
                    _ => match tokens.fetch(force).await {
                        Ok(held) => {
                            self.store(&held).await;
                            Ok(held)
                        }
                        Err(error) => Err(error),
                    },
                };
                self.unlock(&owner).await;
                return Ok(held?);
            }
            if Instant::now() >= give_up {
                break;
            }
            tokio::time::sleep(SHARED_POLL).await;
        }
        // The lock never came free and no token appeared: fetch here.
        let held = tokens.fetch(force).await?;
        self.store(&held).await;
        Ok(held)
    }

    /// Takes the fetch lock; `Some(owner)` when this replica holds it.
    async fn lock(&self) -> redis::RedisResult<Option<String>> {
        let owner = format!("{:016x}", rand::random::<u64>());
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(LOCK_TTL.as_millis() as u64));
        let locked: Option<String> = self
            .connection
            .clone()
            .set_options(&self.lock_key, &owner, options)
            .await?;
        Ok(locked.map(|_| owner))
    }

    /// Shares `held` with the other replicas, until it is to be replaced.
    /// Best effort: a replica that misses it fetches the same stable token.
    async fn store(&self, held: &Held) {
        let ttl = held.until.saturating_duration_since(Instant::now());
        let stored: redis::RedisResult<()> = self
            .connection
            .clone()
            .pset_ex(
                &self.token_key,
                held.token.expose(),
                ttl.as_millis().max(1) as u64,
            )
            .await;
        if let Err(error) = stored {
            tracing::warn!(%error, "access_token not shared through redis");
        }
    }

    /// Releases the fetch lock if it is still this replica's (it may have
    /// expired and been taken by another).
    async fn unlock(&self, owner: &str) {
        let released: redis::RedisResult<i64> = redis::Script::new(UNLOCK)
            .key(&self.lock_key)
            .arg(owner)
            .invoke_async(&mut self.connection.clone())
            .await;
        if let Err(error) = released {
            tracing::debug!(%error, "access_token lock left to expire");
        }
    }
}

/// Deletes the lock only when it holds the caller's value.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Redis failing (fall back to this process) or WeChat refusing (final).
#[derive(Debug)]
enum SharedError {
    Redis(redis::RedisError),
    Api(ApiError),
}

impl From<redis::RedisError> for SharedError {
    fn from(error: redis::RedisError) -> Self {
        Self::Redis(error)
    }
}

impl From<ApiError> for SharedError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}
