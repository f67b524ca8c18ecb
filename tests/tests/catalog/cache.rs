//! The cache that keeps answering: one upstream request for many concurrent
//! asks, stale answers while the upstream is down, Redis failing and coming
//! back, and a schema version on every stored value.

use std::time::Duration;

use doumi_proto::catalog::v1::Book;
use doumi_tests::RedisServer;
use prost::Message;
use redis::AsyncCommands;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::app::{CatalogApp, Upstreams, WAVE, eventually, provider};

const WAVE_PATH: &str = "/v2/book/isbn/9787121139512";

fn key(isbn: &str) -> String {
    format!("doumi:catalog:v1:isbn:{isbn}")
}

async fn stored(redis: &RedisServer, isbn: &str) -> Option<Vec<u8>> {
    let mut connection = redis.connection().await.ok()?;
    connection.get(key(isbn)).await.ok()?
}

async fn hundred_concurrent_asks(app: &CatalogApp) {
    let asks: Vec<_> = (0..100)
        .map(|_| {
            let client = app.client();
            tokio::spawn(async move {
                let mut client = client;
                client
                    .get_book_by_isbn(doumi_proto::catalog::v1::GetBookByIsbnRequest {
                        isbn: WAVE.to_owned(),
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    for ask in asks {
        let book = ask.await.expect("task").expect("answer").into_inner().book;
        assert_eq!(book.map(|b| b.title).as_deref(), Some("浪潮之巅"));
    }
}

#[tokio::test]
async fn a_hundred_concurrent_asks_for_an_uncached_book_make_one_upstream_request() {
    let up = Upstreams::start().await;
    // Slow enough that the asks pile up behind the first one.
    up.douban.delay(Duration::from_millis(300));
    let app = CatalogApp::start(up.config(&["douban"])).await;
    hundred_concurrent_asks(&app).await;
    assert_eq!(up.douban.calls(WAVE_PATH), 1);
}

#[tokio::test]
async fn coalescing_holds_with_redis_in_the_path() {
    let up = Upstreams::start().await;
    up.douban.delay(Duration::from_millis(300));
    let redis = RedisServer::start().await.expect("redis-server");
    let mut config = up.config(&["douban"]);
    config.redis.target = Some(redis.target());
    let app = CatalogApp::start(config).await;
    hundred_concurrent_asks(&app).await;
    assert_eq!(up.douban.calls(WAVE_PATH), 1);
    eventually("the book is written to Redis", || async {
        stored(&redis, WAVE).await.is_some()
    })
    .await;
}

#[tokio::test]
async fn stale_books_are_served_while_the_upstream_is_down() {
    let up = Upstreams::start().await;
    let redis = RedisServer::start().await.expect("redis-server");
    let mut config = up.config(&["douban"]);
    config.redis.target = Some(redis.target());
    // Every entry is past its soft TTL at once; the hard TTL is a week.
    config.cache.soft_ttl = Duration::ZERO;
    let app = CatalogApp::start(config.clone()).await;
    app.isbn(WAVE).await.expect("first lookup");
    eventually("the book is written to Redis", || async {
        stored(&redis, WAVE).await.is_some()
    })
    .await;

    up.douban.fail_with(Some(500));
    let stale = app.isbn(WAVE).await.expect("stale book served");
    assert_eq!(stale.title, "浪潮之巅");
    eventually("a background refresh was tried", || async {
        up.douban.calls(WAVE_PATH) >= 2
    })
    .await;
    assert!(
        app.isbn(WAVE).await.is_ok(),
        "a failed refresh keeps the stale entry"
    );

    // Another replica, with nothing in memory, serves it stale from Redis.
    let replica = CatalogApp::start(config).await;
    let from_redis = replica.isbn(WAVE).await.expect("stale book from redis");
    assert_eq!(
        (from_redis.title.as_str(), provider(&from_redis)),
        ("浪潮之巅", "douban")
    );
}

#[tokio::test]
async fn answers_continue_while_redis_is_down_and_writes_resume_when_it_returns() {
    let up = Upstreams::start().await;
    let mut redis = RedisServer::start().await.expect("redis-server");
    let mut config = up.config(&["douban"]);
    config.redis.target = Some(redis.target());
    let app = CatalogApp::start(config).await;

    app.isbn(WAVE).await.expect("with redis");
    eventually("the book is written to Redis", || async {
        stored(&redis, WAVE).await.is_some()
    })
    .await;

    redis.stop();
    assert_eq!(app.isbn(WAVE).await.expect("from memory").title, "浪潮之巅");
    let isbns = sample_isbns();
    for isbn in &isbns[..5] {
        app.isbn(isbn)
            .await
            .expect("from the upstream, without redis");
    }

    redis.restart().await.expect("redis-server back");
    // Each try asks for a book not yet asked, so it must be fetched and written.
    let mut next = isbns[5..].iter();
    let mut written = false;
    for _ in 0..60 {
        let Some(isbn) = next.next() else { break };
        app.isbn(isbn).await.expect("answers throughout");
        let landed = async {
            for _ in 0..10 {
                if stored(&redis, isbn).await.is_some() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        };
        if landed.await {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        written,
        "entries are written to Redis again after it restarts"
    );
}

#[tokio::test]
async fn a_hung_redis_is_waited_for_briefly_then_skipped_until_it_recovers() {
    let up = Upstreams::start().await;
    let redis = RedisServer::start().await.expect("redis-server");
    let mut config = up.config(&["douban"]);
    config.redis.target = Some(redis.target());
    let app = CatalogApp::start(config).await;
    app.isbn(WAVE).await.expect("with redis");

    redis.pause().expect("SIGSTOP");
    let isbns = sample_isbns();
    for isbn in &isbns[..6] {
        let book = app.isbn(isbn).await.expect("answers without a hung redis");
        assert_eq!(provider(&book), "douban");
    }
    eventually("health shows Redis skipped", || async {
        redis_health(&app).await == ServingStatus::NotServing
    })
    .await;

    redis.resume().expect("SIGCONT");
    // New books keep coming; one of them is the probe that finds Redis back.
    let mut next = isbns[6..].iter();
    eventually("health shows Redis back", || {
        let isbn = next.next().cloned();
        let app = &app;
        async move {
            if let Some(isbn) = isbn {
                app.isbn(&isbn).await.expect("answers throughout");
            }
            redis_health(app).await == ServingStatus::Serving
        }
    })
    .await;
}

async fn redis_health(app: &CatalogApp) -> ServingStatus {
    let request = HealthCheckRequest {
        service: "doumi.catalog.cache.redis".to_owned(),
    };
    match HealthClient::new(app.channel()).check(request).await {
        Ok(response) => response.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

#[tokio::test]
async fn stored_values_carry_a_schema_version_and_old_ones_are_not_misread() {
    let up = Upstreams::start().await;
    let redis = RedisServer::start().await.expect("redis-server");
    // What the previous release stored: a bare Book, here with a wrong title.
    let old = Book {
        title: "old release".to_owned(),
        ..Book::default()
    };
    let mut connection = redis.connection().await.expect("redis");
    let () = connection
        .set(key(WAVE), old.encode_to_vec())
        .await
        .expect("plant");

    let mut config = up.config(&["douban"]);
    config.redis.target = Some(redis.target());
    let app = CatalogApp::start(config).await;
    assert_eq!(app.isbn(WAVE).await.expect("book").title, "浪潮之巅");
    assert_eq!(up.douban.calls(WAVE_PATH), 1, "the old entry was a miss");
    eventually("the entry is rewritten in the current schema", || async {
        stored(&redis, WAVE)
            .await
            .is_some_and(|v| v.starts_with(b"dmb\x03"))
    })
    .await;
    let ttl: i64 = connection.ttl(key(WAVE)).await.expect("ttl");
    assert!(ttl > 0, "stored with the hard TTL (ttl = {ttl})");
}

/// ISBNs the fake Douban knows (the bundled sample), other than 浪潮之巅.
fn sample_isbns() -> Vec<String> {
    let books: Vec<serde_json::Value> = serde_json::from_str(include_str!(
        "../../../services/catalog/data/sample-books.json"
    ))
    .expect("sample books");
    books
        .iter()
        .filter_map(|b| b["isbn13"].as_str())
        .filter(|isbn| *isbn != WAVE)
        .map(str::to_owned)
        .collect()
}
