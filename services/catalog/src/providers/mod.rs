//! Where books come from: Douban (or a v2-compatible server), Open Library,
//! Google Books and the bundled sample catalog all answer the same questions,
//! each as far as it can.

use doumi_proto::catalog::v1::Book;

use crate::{isbn::Isbn13, key::DoubanId};

/// One page of keyword-search results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub books: Vec<Book>,
    /// Total matches the provider knows of, beyond this page.
    pub total: u32,
}

/// The questions a provider may be able to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Isbn,
    DoubanId,
    Search,
}

impl Ask {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Isbn => "isbn",
            Self::DoubanId => "douban_id",
            Self::Search => "search",
        }
    }
}

/// Why no book came back. Only [`ProviderError::NotFound`] is an answer about
/// the book; every other variant means "ask again later or elsewhere".
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("no such book")]
    NotFound,
    #[error("the provider rate-limits us: {0}")]
    RateLimited(String),
    #[error("the provider refused our credentials: {0}")]
    Rejected(String),
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider did not answer within its timeout: as transient as an
    /// outage, counted apart (a slow provider wants a different fix).
    #[error("the provider did not answer in time: {0}")]
    TimedOut(String),
    /// The provider's name and how long its breaker still refuses calls, so a
    /// caller can be told when a retry has a chance (gRPC's RetryInfo).
    #[error("{0} is failing; its circuit is open")]
    CircuitOpen(&'static str, std::time::Duration),
    #[error("the caller's deadline passed")]
    DeadlineExceeded,
    #[error("no configured provider can answer this")]
    Unsupported,
}

impl ProviderError {
    /// Worth another attempt at the same provider: the failure is likely to
    /// pass. Rate limits and refused keys only get worse when retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::TimedOut(_))
    }

    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::RateLimited(_) => "rate_limited",
            Self::Rejected(_) => "rejected",
            Self::Unavailable(_) => "unavailable",
            Self::TimedOut(_) => "timeout",
            Self::CircuitOpen(..) => "circuit_open",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Unsupported => "unsupported",
        }
    }
}

/// A source of books.
#[tonic::async_trait]
pub trait BookProvider: Send + Sync {
    /// A short stable name for logs, metrics and provenance ("douban", "sample").
    fn name(&self) -> &'static str;

    /// Whether this provider can answer `ask` at all; the chain skips it otherwise.
    fn can(&self, ask: Ask) -> bool {
        ask == Ask::Isbn
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError>;

    async fn by_douban_id(&self, _id: &DoubanId) -> Result<Book, ProviderError> {
        Err(ProviderError::Unsupported)
    }

    /// Books whose title or author match `query`, skipping `start`, at most `count`.
    async fn search(
        &self,
        _query: &str,
        _start: u32,
        _count: u32,
    ) -> Result<SearchPage, ProviderError> {
        Err(ProviderError::Unsupported)
    }
}
