//! What the cache costs: a hit (memory tier), a miss that goes to a provider
//! answering instantly, and a coalesced miss — 100 concurrent asks for one
//! uncached book sharing a single provider call.
//!
//! `cargo bench -p doumi-catalog --bench cache`

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use doumi_catalog::{
    BookProvider, Books, CachePolicy, Deadline, ProviderChain, ProviderError, Upstream,
    UpstreamPolicy, isbn::Isbn13,
};
use doumi_proto::catalog::v1::Book;

/// Knows every ISBN; answers after one yield, so concurrent askers overlap.
struct Instant {
    calls: AtomicU64,
}

#[tonic::async_trait]
impl BookProvider for Instant {
    fn name(&self) -> &'static str {
        "bench"
    }
    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        Ok(Book {
            title: "浪潮之巅".to_owned(),
            isbn13: isbn.to_string(),
            authors: vec!["吴军".to_owned()],
            publisher: "电子工业出版社".to_owned(),
            summary: "x".repeat(600),
            ..Book::default()
        })
    }
}

/// A fresh valid ISBN-13 for every `n`: 978 + nine digits + check digit.
fn isbn(n: u64) -> Isbn13 {
    let body = format!("978{:09}", n % 1_000_000_000);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    let check = (10 - sum % 10) % 10;
    match Isbn13::parse(&format!("{body}{check}")) {
        Ok(isbn) => isbn,
        Err(error) => panic!("bench ISBN {body}{check}: {error}"),
    }
}

fn books(provider: Arc<Instant>) -> Books {
    let chain = ProviderChain::new(vec![Upstream::new(
        provider,
        UpstreamPolicy::default(),
        None,
    )]);
    let policy = CachePolicy {
        memory_capacity: 1_000_000,
        ..CachePolicy::default()
    };
    Books::new(chain, None, policy)
}

fn cache(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => panic!("tokio runtime: {error}"),
    };
    let provider = Arc::new(Instant {
        calls: AtomicU64::new(0),
    });
    let books = books(provider.clone());
    let hot = isbn(712_113_951);
    rt.block_on(async {
        if books.by_isbn(&hot, Deadline::NONE).await.is_err() {
            panic!("warming the cache failed");
        }
    });

    let mut group = c.benchmark_group("catalog_cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(books.by_isbn(&hot, Deadline::NONE).await.is_ok()) });
    });

    let next = AtomicU64::new(1);
    group.bench_function("miss", |b| {
        b.to_async(&rt).iter(|| async {
            let isbn = isbn(next.fetch_add(1, Ordering::Relaxed));
            black_box(books.by_isbn(&isbn, Deadline::NONE).await.is_ok())
        });
    });

    const ASKERS: u64 = 100;
    group.throughput(Throughput::Elements(ASKERS));
    group.bench_function("coalesced_miss_100_askers", |b| {
        b.to_async(&rt).iter(|| async {
            let isbn = isbn(next.fetch_add(1, Ordering::Relaxed));
            let asks = (0..ASKERS).map(|_| books.by_isbn(&isbn, Deadline::NONE));
            black_box(futures::future::join_all(asks).await.len())
        });
    });
    group.finish();

    // The point of coalescing: one provider call per uncached book, however
    // many ask at once.
    let before = provider.calls.load(Ordering::Relaxed);
    let isbn = isbn(next.fetch_add(1, Ordering::Relaxed));
    rt.block_on(futures::future::join_all(
        (0..ASKERS).map(|_| books.by_isbn(&isbn, Deadline::NONE)),
    ));
    assert_eq!(provider.calls.load(Ordering::Relaxed) - before, 1);
}

criterion_group!(benches, cache);
criterion_main!(benches);
