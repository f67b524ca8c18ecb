//! The book cache, keyed by ISBN-13: in-process by default, Redis when
//! configured so every replica shares what one of them fetched.
//!
//! The cache is an optimisation, never a dependency: a Redis error is logged
//! and treated as a miss, so a broken Redis costs latency, not answers.

use std::time::Duration;

use doumi_proto::catalog::v1::Book;
use prost::Message;
use redis::{AsyncCommands, aio::ConnectionManager, aio::ConnectionManagerConfig};

use crate::isbn::Isbn13;

/// Bumped whenever the stored encoding changes incompatibly, so a new release
/// never misreads an old entry (it simply misses and refetches).
const SCHEMA: &str = "v1";

/// Redis key of a book, e.g. `doumi:catalog:v1:isbn:9787121139512`.
pub fn redis_key(isbn: &Isbn13) -> String {
    format!("doumi:catalog:{SCHEMA}:isbn:{isbn}")
}

/// Where cached books live.
#[derive(Clone)]
pub enum BookCache {
    Memory(moka::future::Cache<Isbn13, Book>),
    Redis {
        connection: ConnectionManager,
        ttl: Duration,
    },
}

impl BookCache {
    /// An in-process cache holding up to `capacity` books for `ttl`.
    pub fn memory(capacity: u64, ttl: Duration) -> Self {
        Self::Memory(
            moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        )
    }

    /// A Redis cache; connects lazily and reconnects on its own, so the
    /// catalog starts (and answers) even while Redis is still coming up.
    pub fn redis(client: redis::Client, ttl: Duration) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            // A slow cache must never make a request slower than no cache.
            .set_response_timeout(Some(Duration::from_millis(250)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self::Redis { connection, ttl })
    }

    pub async fn get(&self, isbn: &Isbn13) -> Option<Book> {
        match self {
            Self::Memory(cache) => cache.get(isbn).await,
            Self::Redis { connection, .. } => {
                let mut connection = connection.clone();
                let bytes: Option<Vec<u8>> = match connection.get(redis_key(isbn)).await {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        tracing::warn!(%isbn, %error, "cache read failed, treating as a miss");
                        return None;
                    }
                };
                let bytes = bytes?;
                Book::decode(bytes.as_slice())
                    .inspect_err(
                        |error| tracing::warn!(%isbn, %error, "undecodable cache entry ignored"),
                    )
                    .ok()
            }
        }
    }

    pub async fn put(&self, isbn: &Isbn13, book: &Book) {
        match self {
            Self::Memory(cache) => cache.insert(isbn.clone(), book.clone()).await,
            Self::Redis { connection, ttl } => {
                let mut connection = connection.clone();
                let written: redis::RedisResult<()> = connection
                    .set_ex(redis_key(isbn), book.encode_to_vec(), ttl.as_secs().max(1))
                    .await;
                if let Err(error) = written {
                    tracing::warn!(%isbn, %error, "cache write failed");
                }
            }
        }
    }
}
