//! One cached answer — a book, or "no such book" — with the two times that
//! govern it: fresh until the soft TTL, servable (stale) until the hard TTL.
//! Also its Redis encoding, which carries a schema version so a new release
//! never misreads what an old one stored.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use doumi_proto::catalog::v1::Book;
use prost::Message;

/// First bytes of every value doumi writes to Redis.
const MAGIC: &[u8; 3] = b"dmb";
/// Bumped whenever [`Envelope`] or `Book` changes incompatibly. An entry of
/// another version is a miss: refetched and overwritten, never misread.
/// (Version 1 stored a bare `Book`, without this header; version 2's ratings
/// did not say whose they were, and are refetched rather than shown as
/// anyone's.)
pub const SCHEMA_VERSION: u8 = 3;

/// What the providers said. The book is shared: every cache hit clones the
/// entry, and that should not copy a summary and a table of contents.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Found(Arc<Book>),
    NotFound,
}

/// How usable an entry is at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past the soft TTL: serve it, and refresh it in the background.
    Stale,
    /// Past the hard TTL: as good as absent.
    Expired,
}

/// A cached answer with its lifetimes.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub answer: Answer,
    pub fresh_until: SystemTime,
    pub expires_at: SystemTime,
    /// When this copy was made (fetched, or read from Redis); not stored.
    pub loaded_at: SystemTime,
}

/// The stored form: the book (absent = not found) and the two times.
#[derive(Clone, PartialEq, Message)]
struct Envelope {
    #[prost(message, optional, tag = "1")]
    book: Option<Book>,
    #[prost(int64, tag = "2")]
    fresh_until_ms: i64,
    #[prost(int64, tag = "3")]
    expires_at_ms: i64,
}

/// Why stored bytes were not used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a doumi cache entry of schema version {SCHEMA_VERSION}")]
    OtherSchema,
    #[error("undecodable cache entry")]
    Corrupt(#[from] prost::DecodeError),
}

impl CacheEntry {
    /// A book fetched `now`: fresh for `soft`, servable for `hard`.
    pub fn found(book: Book, now: SystemTime, soft: Duration, hard: Duration) -> Self {
        Self {
            answer: Answer::Found(Arc::new(book)),
            fresh_until: now + soft.min(hard),
            expires_at: now + hard,
            loaded_at: now,
        }
    }

    /// A not-found answer, remembered for `ttl` and never served stale.
    pub fn not_found(now: SystemTime, ttl: Duration) -> Self {
        Self {
            answer: Answer::NotFound,
            fresh_until: now + ttl,
            expires_at: now + ttl,
            loaded_at: now,
        }
    }

    pub fn freshness(&self, now: SystemTime) -> Freshness {
        if now < self.fresh_until {
            Freshness::Fresh
        } else if now < self.expires_at {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    /// How long this copy may live at all, counted from `loaded_at`.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.loaded_at)
            .unwrap_or(Duration::ZERO)
    }

    /// Time left until the hard TTL, for the Redis key's own expiry.
    pub fn time_to_live(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    pub fn encode(&self) -> Vec<u8> {
        let envelope = Envelope {
            book: match &self.answer {
                Answer::Found(book) => Some(Book::clone(book)),
                Answer::NotFound => None,
            },
            fresh_until_ms: unix_millis(self.fresh_until),
            expires_at_ms: unix_millis(self.expires_at),
        };
        let mut bytes = Vec::with_capacity(MAGIC.len() + 1 + envelope.encoded_len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(SCHEMA_VERSION);
        bytes.extend_from_slice(&envelope.encode_to_vec());
        bytes
    }

    /// Reads what [`Self::encode`] wrote; `now` becomes `loaded_at`.
    pub fn decode(bytes: &[u8], now: SystemTime) -> Result<Self, DecodeError> {
        let payload = bytes
            .strip_prefix(MAGIC.as_slice())
            .and_then(|rest| rest.strip_prefix(&[SCHEMA_VERSION]))
            .ok_or(DecodeError::OtherSchema)?;
        let envelope = Envelope::decode(payload)?;
        Ok(Self {
            answer: envelope
                .book
                .map_or(Answer::NotFound, |book| Answer::Found(Arc::new(book))),
            fresh_until: from_unix_millis(envelope.fresh_until_ms),
            expires_at: from_unix_millis(envelope.expires_at_ms),
            loaded_at: now,
        })
    }
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_unix_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn book() -> Book {
        Book {
            title: "浪潮之巅".to_owned(),
            isbn13: "9787121139512".to_owned(),
            ..Book::default()
        }
    }

    #[test]
    fn fresh_then_stale_then_expired() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let entry = CacheEntry::found(book(), t0, HOUR, 24 * HOUR);
        assert_eq!(entry.freshness(t0), Freshness::Fresh);
        assert_eq!(entry.freshness(t0 + HOUR), Freshness::Stale);
        assert_eq!(entry.freshness(t0 + 24 * HOUR), Freshness::Expired);
        let missing = CacheEntry::not_found(t0, HOUR);
        assert_eq!(
            missing.freshness(t0 + HOUR),
            Freshness::Expired,
            "never stale"
        );
    }

    #[test]
    fn round_trips_with_its_schema_version() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for entry in [
            CacheEntry::found(book(), t0, HOUR, 24 * HOUR),
            CacheEntry::not_found(t0, HOUR),
        ] {
            let bytes = entry.encode();
            assert_eq!(&bytes[..4], b"dmb\x03");
            assert_eq!(CacheEntry::decode(&bytes, t0).unwrap(), entry);
        }
    }

    #[test]
    fn entries_of_other_versions_are_not_misread() {
        let t0 = UNIX_EPOCH;
        // What version 1 stored: a bare Book.
        let old = book().encode_to_vec();
        assert!(matches!(
            CacheEntry::decode(&old, t0),
            Err(DecodeError::OtherSchema)
        ));
        let mut next = CacheEntry::not_found(t0, HOUR).encode();
        next[3] = SCHEMA_VERSION + 1;
        assert!(matches!(
            CacheEntry::decode(&next, t0),
            Err(DecodeError::OtherSchema)
        ));
        assert!(matches!(
            CacheEntry::decode(b"dmb\x03\xff\xff", t0),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
