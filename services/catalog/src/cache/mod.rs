//! The catalog's core: answer from the cache when it can, ask the providers
//! when it must, and keep answering through faults.
//!
//! A lookup goes memory → Redis → provider chain. Past its soft TTL an entry
//! is served at once and refreshed in the background; past its hard TTL it is
//! gone. "Not found" is cached too, briefly. Concurrent lookups of one
//! uncached book share a single fetch (moka's `try_get_with` coalesces them,
//! and hands the fetch to a waiter if the first caller goes away).
//!
//! Keyword searches go through the same provider chain, with their pages
//! kept briefly in a cache of their own (`search.rs`).

mod entry;
mod redis_tier;
mod rules;
mod search;

pub use doumi_runtime::redis::RedisPolicy;
pub(crate) use redis_tier::RedisCache;
use rules::{Clock, MAX_JOINS};

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use doumi_proto::catalog::v1::Book;
use moka::Expiry;
use tracing::Instrument;

use doumi_runtime::{deadline::Deadline, metrics::Counters};

use crate::{
    cache::entry::{Answer, CacheEntry, Freshness},
    cache::search::{SEARCH_CAPACITY_BOOKS, SEARCH_TTL, SearchCache},
    isbn::Isbn13,
    key::{BookKey, DoubanId},
    metrics as m,
    providers::ProviderChain,
    providers::{ProviderError, SearchPage, SearchQuery},
};
use doumi_runtime::breaker::BreakerState;

/// How long answers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// A book is fresh this long after it was fetched.
    pub soft_ttl: Duration,
    /// A book is served (stale, while refreshing) at most this long.
    pub hard_ttl: Duration,
    /// "No such book" is remembered this long.
    pub negative_ttl: Duration,
    /// Books the in-process tier holds at most.
    pub memory_capacity: u64,
}

impl CachePolicy {
    /// What the catalog runs with unless configured otherwise (the CLI's
    /// defaults are these).
    pub const DEFAULT: Self = Self {
        soft_ttl: Duration::from_secs(24 * 3600),
        hard_ttl: Duration::from_secs(7 * 24 * 3600),
        negative_ttl: Duration::from_secs(10 * 60),
        // A few thousand books are a few MiB.
        memory_capacity: 10_000,
    };
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Books by ISBN, Douban id and keywords; cheap to clone.
#[derive(Clone)]
pub struct Books {
    inner: Arc<Inner>,
}

struct Inner {
    chain: ProviderChain,
    memory: moka::future::Cache<BookKey, CacheEntry>,
    redis: Option<RedisCache>,
    policy: CachePolicy,
    clock: Clock,
    /// Keys with a background refresh in flight: one refresh per key.
    refreshing: Mutex<HashSet<BookKey>>,
    searches: SearchCache,
    /// Fresh answers by the tier that gave them.
    hits: Counters<1>,
}

/// Memory entries live until their hard TTL (the freshness checks use the
/// injected clock; this only bounds how long memory is held).
struct UntilHardTtl;

impl Expiry<BookKey, CacheEntry> for UntilHardTtl {
    fn expire_after_create(
        &self,
        _key: &BookKey,
        entry: &CacheEntry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.lifetime())
    }

    fn expire_after_update(
        &self,
        _key: &BookKey,
        entry: &CacheEntry,
        _updated_at: std::time::Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.lifetime())
    }
}

/// What a health check wants to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependencies {
    pub providers: Vec<(&'static str, BreakerState)>,
    /// `None` without Redis.
    pub redis_up: Option<bool>,
}

impl Books {
    pub fn new(chain: ProviderChain, redis: Option<RedisCache>, policy: CachePolicy) -> Self {
        Self::with_clock(chain, redis, policy, Arc::new(SystemTime::now))
    }

    pub fn with_clock(
        chain: ProviderChain,
        redis: Option<RedisCache>,
        policy: CachePolicy,
        clock: Clock,
    ) -> Self {
        let memory = moka::future::Cache::builder()
            .max_capacity(policy.memory_capacity)
            .expire_after(UntilHardTtl)
            .build();
        let searches = SearchCache::new(SEARCH_TTL, SEARCH_CAPACITY_BOOKS, clock.clone());
        Self {
            inner: Arc::new(Inner {
                chain,
                memory,
                redis,
                policy,
                clock,
                refreshing: Mutex::new(HashSet::new()),
                searches,
                hits: Counters::new(m::CACHE_HITS, ["tier"], Vec::new()),
            }),
        }
    }

    pub async fn by_isbn(
        &self,
        isbn: &Isbn13,
        deadline: Deadline,
    ) -> Result<Arc<Book>, ProviderError> {
        self.lookup(BookKey::Isbn(isbn.clone()), deadline).await
    }

    pub async fn by_douban_id(
        &self,
        id: &DoubanId,
        deadline: Deadline,
    ) -> Result<Arc<Book>, ProviderError> {
        self.lookup(BookKey::Douban(id.clone()), deadline).await
    }

    /// One page of a keyword search: from the search cache within
    /// [`SEARCH_TTL`], else from the provider chain. Pages are shared, not
    /// copied: the caller copies what it sends.
    pub async fn search(
        &self,
        query: &str,
        start: u32,
        count: u32,
        deadline: Deadline,
    ) -> Result<Arc<SearchPage>, ProviderError> {
        let key = SearchQuery::new(query, start, count);
        let chain = &self.inner.chain;
        self.inner
            .searches
            .get_or_fetch(&key, deadline, || chain.search(&key, deadline))
            .await
    }

    pub fn dependencies(&self) -> Dependencies {
        Dependencies {
            providers: self
                .inner
                .chain
                .upstreams()
                .iter()
                .map(|u| (u.name(), u.circuit()))
                .collect(),
            redis_up: self.inner.redis.as_ref().map(RedisCache::is_up),
        }
    }

    fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }

    /// The span's `tier` says who answered: `memory`, `redis` or `providers`.
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(%key, tier = tracing::field::Empty))]
    async fn lookup(&self, key: BookKey, deadline: Deadline) -> Result<Arc<Book>, ProviderError> {
        let memory = &self.inner.memory;
        if let Some(entry) = memory.get(&key).await {
            tracing::Span::current().record("tier", "memory");
            match entry.freshness(self.now()) {
                Freshness::Fresh => {
                    self.inner.hits.increment(["memory"]);
                    return answer(entry);
                }
                Freshness::Stale => {
                    metrics::counter!(m::CACHE_STALE_SERVED).increment(1);
                    self.refresh_in_background(key);
                    return answer(entry);
                }
                // Boxed, like the miss below: rare, and larger than a hit.
                Freshness::Expired => Box::pin(memory.invalidate(&key)).await,
            }
        }
        // Boxed: the miss's state (moka's coalescing, Redis, the provider's
        // HTTP call) is kilobytes, and inline every lookup, hits included,
        // would carry it up to the future the server boxes for each call.
        Box::pin(self.fill(key, deadline)).await
    }

    /// A miss in memory, filled once however many lookups wait for it.
    async fn fill(&self, key: BookKey, deadline: Deadline) -> Result<Arc<Book>, ProviderError> {
        let memory = &self.inner.memory;
        let mut joins = 0;
        loop {
            let fetched_here = AtomicBool::new(false);
            let stale_from_redis = AtomicBool::new(false);
            let loaded = memory
                .try_get_with(key.clone(), async {
                    fetched_here.store(true, Ordering::Relaxed);
                    self.load(&key, deadline, &stale_from_redis).await
                })
                .await;
            if !fetched_here.load(Ordering::Relaxed) {
                metrics::counter!(m::CACHE_COALESCED_WAITS).increment(1);
            }
            match loaded {
                Ok(entry) => {
                    if stale_from_redis.load(Ordering::Relaxed) {
                        metrics::counter!(m::CACHE_STALE_SERVED).increment(1);
                        self.refresh_in_background(key);
                    }
                    return answer(entry);
                }
                // Someone else's fetch ran out of *their* time, not ours.
                Err(error)
                    if matches!(*error, ProviderError::DeadlineExceeded)
                        && !fetched_here.load(Ordering::Relaxed)
                        && !deadline.has_passed()
                        && joins < MAX_JOINS =>
                {
                    joins += 1;
                }
                Err(error) => return Err((*error).clone()),
            }
        }
    }

    /// A miss in memory: Redis, then the providers.
    async fn load(
        &self,
        key: &BookKey,
        deadline: Deadline,
        stale_from_redis: &AtomicBool,
    ) -> Result<CacheEntry, ProviderError> {
        if let Some(redis) = &self.inner.redis {
            let now = self.now();
            if let Some(entry) = redis.get(key, now).await {
                tracing::Span::current().record("tier", "redis");
                match entry.freshness(now) {
                    Freshness::Fresh => {
                        self.inner.hits.increment(["redis"]);
                        return Ok(entry);
                    }
                    Freshness::Stale => {
                        stale_from_redis.store(true, Ordering::Relaxed);
                        return Ok(entry);
                    }
                    Freshness::Expired => {}
                }
            }
        }
        metrics::counter!(m::CACHE_MISSES).increment(1);
        tracing::Span::current().record("tier", "providers");
        let entry = self.fetch(key, deadline).await?;
        self.store_in_redis(key.clone(), entry.clone());
        Ok(entry)
    }

    /// Asks the provider chain; "not found" becomes a (negative) entry.
    async fn fetch(&self, key: &BookKey, deadline: Deadline) -> Result<CacheEntry, ProviderError> {
        let chain = &self.inner.chain;
        let found = match key {
            BookKey::Isbn(isbn) => chain.by_isbn(isbn, deadline).await,
            BookKey::Douban(id) => chain.by_douban_id(id, deadline).await,
        };
        let policy = &self.inner.policy;
        let now = self.now();
        match found {
            Ok(book) => {
                tracing::info!(%key, provider = provider_of(&book), "fetched");
                Ok(CacheEntry::found(
                    book,
                    now,
                    policy.soft_ttl,
                    policy.hard_ttl,
                ))
            }
            Err(ProviderError::NotFound) => Ok(CacheEntry::not_found(now, policy.negative_ttl)),
            Err(error) => Err(error),
        }
    }

    /// Writes behind the answer: the caller never waits for Redis.
    fn store_in_redis(&self, key: BookKey, entry: CacheEntry) {
        if self.inner.redis.is_none() {
            return;
        }
        let books = self.clone();
        let store = async move {
            if let Some(redis) = &books.inner.redis {
                redis.put(&key, &entry, books.now()).await;
            }
        };
        tokio::spawn(store.in_current_span());
    }

    /// Refetches a stale entry unless a refresh of it is already running. A
    /// failed refresh leaves the stale entry in place until its hard TTL.
    fn refresh_in_background(&self, key: BookKey) {
        if !self.refreshing().insert(key.clone()) {
            return;
        }
        let books = self.clone();
        let refresh = async move {
            match books.fetch(&key, Deadline::NONE).await {
                Ok(entry) => {
                    books.inner.memory.insert(key.clone(), entry.clone()).await;
                    if let Some(redis) = &books.inner.redis {
                        redis.put(&key, &entry, books.now()).await;
                    }
                    metrics::counter!(m::CACHE_REFRESHES, "result" => "ok").increment(1);
                }
                Err(error) => {
                    tracing::warn!(%key, %error, "refresh failed; still serving the stale entry");
                    metrics::counter!(m::CACHE_REFRESHES, "result" => "failed").increment(1);
                }
            }
            books.refreshing().remove(&key);
        };
        // In the trace of the lookup that found the entry stale.
        tokio::spawn(refresh.instrument(tracing::debug_span!("cache.refresh")));
    }

    fn refreshing(&self) -> std::sync::MutexGuard<'_, HashSet<BookKey>> {
        // A set of keys is valid whatever a panicking holder left in it.
        self.inner
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The cached book itself, shared: the caller copies what it sends.
fn answer(entry: CacheEntry) -> Result<Arc<Book>, ProviderError> {
    match entry.answer {
        Answer::Found(book) => Ok(book),
        Answer::NotFound => Err(ProviderError::NotFound),
    }
}

fn provider_of(book: &Book) -> &str {
    book.provenance
        .as_ref()
        .map_or("unknown", |p| p.provider.as_str())
}

#[cfg(test)]
mod tests;
