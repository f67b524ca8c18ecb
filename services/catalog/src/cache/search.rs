//! Search pages, kept briefly in process. A reader who pages forward and
//! back, the same question sent again after WeChat's retry, or many readers
//! searching for this week's book then cost one provider request per page,
//! not one per ask; and concurrent asks for one uncached page share a single
//! request (moka's `try_get_with`, as for books).
//!
//! Only in process, not in Redis: a page is cheap to fetch again, is worth
//! keeping for minutes rather than days, and its key is whatever a reader
//! typed. With several replicas a page may be fetched once per replica; that
//! is the whole cost.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use doumi_runtime::deadline::Deadline;

use crate::{
    cache::rules::{Clock, MAX_JOINS},
    metrics as m,
    providers::{ProviderError, SearchPage, SearchQuery},
};

/// How long a search page is served from the cache. Long enough for a reader
/// to page through results and come back (and for WeChat's retries); short
/// enough that new books and changed rankings show up soon, since results,
/// unlike a book's record, change as catalogs grow.
pub const SEARCH_TTL: Duration = Duration::from_secs(5 * 60);

/// Books the cached pages hold at most, all pages together (each page weighs
/// its books, plus one). A page of ten books is a few tens of KiB, so this
/// bounds the cache to a few tens of MiB however varied the searches are.
pub const SEARCH_CAPACITY_BOOKS: u64 = 5_000;

#[derive(Clone)]
struct CachedPage {
    page: Arc<SearchPage>,
    fetched_at: SystemTime,
}

/// Search pages by [`SearchQuery`], for [`SEARCH_TTL`]; cheap to share behind
/// the catalog's `Books`.
pub struct SearchCache {
    pages: moka::future::Cache<SearchQuery, CachedPage>,
    ttl: Duration,
    clock: Clock,
}

impl SearchCache {
    /// Pages live `ttl` by `clock` (moka's own expiry, on the monotonic
    /// clock, only bounds how long memory is held).
    pub fn new(ttl: Duration, capacity_books: u64, clock: Clock) -> Self {
        let pages = moka::future::Cache::builder()
            .max_capacity(capacity_books)
            .weigher(|_key: &SearchQuery, cached: &CachedPage| {
                u32::try_from(cached.page.books.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1)
            })
            .time_to_live(ttl)
            .build();
        Self { pages, ttl, clock }
    }

    /// The cached page for `key`, or the one `fetch` gets (then cached).
    /// Failures are not cached: the next ask tries again.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: &SearchQuery,
        deadline: Deadline,
        fetch: F,
    ) -> Result<Arc<SearchPage>, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<SearchPage, ProviderError>>,
    {
        if let Some(cached) = self.pages.get(key).await {
            if self.is_fresh(&cached) {
                metrics::counter!(m::SEARCH_CACHE_HITS).increment(1);
                return Ok(cached.page);
            }
            self.pages.invalidate(key).await;
        }

        let mut joins = 0;
        loop {
            let fetched_here = AtomicBool::new(false);
            let loaded = self
                .pages
                .try_get_with(key.clone(), async {
                    fetched_here.store(true, Ordering::Relaxed);
                    metrics::counter!(m::SEARCH_CACHE_MISSES).increment(1);
                    let page = fetch().await?;
                    Ok::<_, ProviderError>(CachedPage {
                        page: Arc::new(page),
                        fetched_at: (self.clock)(),
                    })
                })
                .await;
            let here = fetched_here.load(Ordering::Relaxed);
            match loaded {
                Ok(cached) => {
                    if !here {
                        // Another caller's fetch, in flight or just finished.
                        metrics::counter!(m::SEARCH_CACHE_HITS).increment(1);
                    }
                    return Ok(cached.page);
                }
                // Someone else's fetch ran out of *their* time, not ours.
                Err(error)
                    if matches!(*error, ProviderError::DeadlineExceeded)
                        && !here
                        && !deadline.has_passed()
                        && joins < MAX_JOINS =>
                {
                    joins += 1;
                }
                Err(error) => return Err((*error).clone()),
            }
        }
    }

    fn is_fresh(&self, cached: &CachedPage) -> bool {
        (self.clock)()
            .duration_since(cached.fetched_at)
            // A clock that went backwards: still within the TTL.
            .map_or(true, |age| age < self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64};

    use doumi_proto::catalog::v1::Book;

    use super::*;

    /// A fetch that counts calls and waits at a gate (so callers pile up).
    struct Fetcher {
        calls: AtomicU32,
        gate: tokio::sync::Semaphore,
    }

    impl Fetcher {
        fn new(open: bool) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicU32::new(0),
                gate: tokio::sync::Semaphore::new(if open {
                    tokio::sync::Semaphore::MAX_PERMITS
                } else {
                    0
                }),
            })
        }

        async fn fetch(&self, key: &SearchQuery) -> Result<SearchPage, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _pass = self.gate.acquire().await;
            Ok(SearchPage {
                total: 1,
                books: vec![Book {
                    title: key.query().to_owned(),
                    ..Book::default()
                }],
            })
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    /// A cache on a hand-moved clock (seconds since an arbitrary start).
    fn cache() -> (Arc<SearchCache>, Arc<AtomicU64>) {
        let clock = Arc::new(AtomicU64::new(1_800_000_000));
        let now = clock.clone();
        let cache = SearchCache::new(
            SEARCH_TTL,
            100,
            Arc::new(move || {
                std::time::UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst))
            }),
        );
        (Arc::new(cache), clock)
    }

    async fn ask(
        cache: &SearchCache,
        fetcher: &Fetcher,
        key: &SearchQuery,
    ) -> Result<Arc<SearchPage>, ProviderError> {
        cache
            .get_or_fetch(key, Deadline::NONE, || fetcher.fetch(key))
            .await
    }

    #[test]
    fn queries_are_keyed_by_their_words() {
        let key = SearchQuery::new("  Mistborn\u{3000}\tTRILOGY ", 10, 5);
        assert_eq!(key, SearchQuery::new("mistborn trilogy", 10, 5));
        assert_eq!(key.query(), "mistborn trilogy");
        assert_ne!(key, SearchQuery::new("mistborn trilogy", 15, 5));
        assert_ne!(key, SearchQuery::new("mistborn trilogy", 10, 10));
        assert_eq!(
            SearchQuery::new("三体 刘慈欣", 0, 10).query(),
            "三体 刘慈欣"
        );
    }

    #[tokio::test]
    async fn a_page_is_fetched_once_within_the_ttl_and_again_after_it() {
        let (cache, clock) = cache();
        let fetcher = Fetcher::new(true);
        let key = SearchQuery::new("mistborn", 0, 10);
        for _ in 0..3 {
            let page = ask(&cache, &fetcher, &key).await.unwrap();
            assert_eq!(page.books[0].title, "mistborn");
        }
        assert_eq!(fetcher.calls(), 1);

        // Another page is another key.
        ask(&cache, &fetcher, &SearchQuery::new("mistborn", 10, 10))
            .await
            .unwrap();
        assert_eq!(fetcher.calls(), 2);

        clock.fetch_add(SEARCH_TTL.as_secs() - 1, Ordering::SeqCst);
        ask(&cache, &fetcher, &key).await.unwrap();
        assert_eq!(fetcher.calls(), 2, "still within the TTL");
        clock.fetch_add(1, Ordering::SeqCst);
        ask(&cache, &fetcher, &key).await.unwrap();
        assert_eq!(fetcher.calls(), 3, "expired: fetched again");
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let (cache, _) = cache();
        let key = SearchQuery::new("mistborn", 0, 10);
        let failed = cache
            .get_or_fetch(&key, Deadline::NONE, || async {
                Err(ProviderError::Unavailable("HTTP 503".to_owned()))
            })
            .await;
        assert!(matches!(failed, Err(ProviderError::Unavailable(_))));
        let fetcher = Fetcher::new(true);
        ask(&cache, &fetcher, &key).await.unwrap();
        assert_eq!(fetcher.calls(), 1, "asked again after the failure");
    }

    #[tokio::test]
    async fn concurrent_identical_searches_share_one_fetch() {
        let (cache, _) = cache();
        let fetcher = Fetcher::new(false);
        let key = SearchQuery::new("mistborn", 0, 10);
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let (cache, fetcher, key) = (cache.clone(), fetcher.clone(), key.clone());
                tokio::spawn(async move { ask(&cache, &fetcher, &key).await })
            })
            .collect();
        // Let every caller reach the cache before the fetch may finish.
        while fetcher.calls() == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        fetcher
            .gate
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS);
        for waiter in waiting {
            let page = waiter.await.unwrap().unwrap();
            assert_eq!(page.books.len(), 1);
        }
        assert_eq!(fetcher.calls(), 1);
    }
}
