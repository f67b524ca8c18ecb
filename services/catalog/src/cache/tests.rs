//! The cache's behaviour against a scripted provider and a hand-moved clock.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::providers::{Upstream, UpstreamPolicy, fake::FakeProvider};

const KNOWN: &str = "9787121139512";

struct Fixture {
    books: Books,
    upstream: Arc<FakeProvider>,
    /// Seconds since an arbitrary start.
    clock: Arc<AtomicU64>,
}

const POLICY: CachePolicy = CachePolicy {
    soft_ttl: Duration::from_secs(60),
    hard_ttl: Duration::from_secs(600),
    negative_ttl: Duration::from_secs(30),
    memory_capacity: 100,
};

fn fixture(open_gate: bool) -> Fixture {
    // Knows one book; holds every answer until released unless `open_gate`.
    let known = FakeProvider::named("fake").knowing(vec![Book {
        title: "浪潮之巅".to_owned(),
        isbn13: KNOWN.to_owned(),
        ..Book::default()
    }]);
    let upstream = Arc::new(if open_gate { known } else { known.held() });
    let policy = UpstreamPolicy {
        retries: 0,
        ..UpstreamPolicy::default()
    };
    let chain = ProviderChain::new(vec![Upstream::new(upstream.clone(), policy, None)]);
    let clock = Arc::new(AtomicU64::new(1_800_000_000));
    let now = clock.clone();
    let books = Books::with_clock(
        chain,
        None,
        POLICY,
        Arc::new(move || std::time::UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst))),
    );
    Fixture {
        books,
        upstream,
        clock,
    }
}

impl Fixture {
    fn calls(&self) -> u32 {
        self.upstream.calls()
    }
    fn advance(&self, by: Duration) {
        self.clock.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
    async fn ask(&self, isbn: &str) -> Result<Book, ProviderError> {
        let isbn = Isbn13::parse(isbn).unwrap();
        self.books
            .by_isbn(&isbn, Deadline::NONE)
            .await
            .map(Arc::unwrap_or_clone)
    }
    /// Waits until background work has made `n` upstream calls.
    async fn until_calls(&self, n: u32) {
        for _ in 0..1000 {
            if self.calls() >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{} upstream calls, expected {n}", self.calls());
    }
}

#[tokio::test]
async fn a_hundred_concurrent_asks_make_one_upstream_request() {
    let f = fixture(false);
    let asks: Vec<_> = (0..100)
        .map(|_| {
            let books = f.books.clone();
            tokio::spawn(async move {
                let isbn = Isbn13::parse(KNOWN).unwrap();
                books.by_isbn(&isbn, Deadline::NONE).await
            })
        })
        .collect();
    f.until_calls(1).await;
    // Let every ask reach the cache before the upstream answers.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    f.upstream.release();
    for ask in asks {
        assert_eq!(ask.await.unwrap().unwrap().title, "浪潮之巅");
    }
    assert_eq!(f.calls(), 1);
}

#[tokio::test]
async fn fresh_entries_are_served_without_asking() {
    let f = fixture(true);
    f.ask(KNOWN).await.unwrap();
    f.advance(Duration::from_secs(59));
    f.ask(KNOWN).await.unwrap();
    assert_eq!(f.calls(), 1);
}

#[tokio::test]
async fn stale_entries_are_served_at_once_while_the_upstream_is_down() {
    let f = fixture(true);
    f.ask(KNOWN).await.unwrap();
    f.upstream.set_down(true);
    f.advance(Duration::from_secs(61));
    for _ in 0..3 {
        let book = f.ask(KNOWN).await.expect("stale book served");
        assert_eq!(book.title, "浪潮之巅");
    }
    // Background refreshes were tried (and failed) without failing anyone.
    f.until_calls(2).await;

    // Once the upstream is back, a refresh makes the entry fresh again.
    f.upstream.set_down(false);
    let before = f.calls();
    f.ask(KNOWN).await.unwrap();
    f.until_calls(before + 1).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let settled = f.calls();
    f.ask(KNOWN).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(f.calls(), settled, "fresh again: no more refreshes");
}

#[tokio::test]
async fn past_the_hard_ttl_nothing_stale_is_served() {
    let f = fixture(true);
    f.ask(KNOWN).await.unwrap();
    f.upstream.set_down(true);
    f.advance(Duration::from_secs(600));
    assert!(matches!(
        f.ask(KNOWN).await,
        Err(ProviderError::Unavailable(_))
    ));
}

#[tokio::test]
async fn not_found_is_cached_briefly() {
    let f = fixture(true);
    let unknown = "9787540438845";
    assert!(matches!(f.ask(unknown).await, Err(ProviderError::NotFound)));
    assert!(matches!(f.ask(unknown).await, Err(ProviderError::NotFound)));
    assert_eq!(f.calls(), 1, "the second not-found came from the cache");
    f.advance(Duration::from_secs(30));
    assert!(matches!(f.ask(unknown).await, Err(ProviderError::NotFound)));
    assert_eq!(
        f.calls(),
        2,
        "negative entries expire, and are never served stale"
    );
}

#[tokio::test]
async fn failures_are_not_cached() {
    let f = fixture(true);
    f.upstream.set_down(true);
    assert!(f.ask(KNOWN).await.is_err());
    f.upstream.set_down(false);
    assert!(f.ask(KNOWN).await.is_ok());
    assert_eq!(f.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_makes_no_upstream_request() {
    let f = fixture(true);
    let deadline = Deadline::after(Duration::from_millis(5));
    tokio::time::advance(Duration::from_millis(5)).await;
    let isbn = Isbn13::parse(KNOWN).unwrap();
    assert!(matches!(
        f.books.by_isbn(&isbn, deadline).await,
        Err(ProviderError::DeadlineExceeded)
    ));
    assert_eq!(f.calls(), 0);
}
