//! What every provider answers and how: the questions ([`Ask`], a
//! [`SearchQuery`]), the answers ([`SearchPage`]), the errors
//! ([`ProviderError`]) and the trait ([`BookProvider`]).

use std::fmt;

use doumi_proto::catalog::v1::Book;

use crate::{isbn::Isbn13, key::DoubanId};

/// The providers doumi knows, by the names operators write in
/// `DOUMI_PROVIDERS` and that logs, metrics and a book's provenance carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Douban,
    OpenLibrary,
    GoogleBooks,
    /// The bundled sample catalog: offline, no upstream.
    Sample,
}

impl ProviderKind {
    pub const ALL: [Self; 4] = [
        Self::Douban,
        Self::OpenLibrary,
        Self::GoogleBooks,
        Self::Sample,
    ];

    /// The chain when Douban is configured and `DOUMI_PROVIDERS` is not:
    /// Douban first, the others as fallbacks.
    pub const FULL_CHAIN: [Self; 3] = [Self::Douban, Self::OpenLibrary, Self::GoogleBooks];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Douban => "douban",
            Self::OpenLibrary => "openlibrary",
            Self::GoogleBooks => "googlebooks",
            Self::Sample => "sample",
        }
    }

    /// The kind an operator named, in any letter case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One page of keyword-search results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub books: Vec<Book>,
    /// Total matches the provider knows of, beyond this page.
    pub total: u32,
}

/// One page of one keyword search: the query as normalised by
/// [`SearchQuery::new`], the offset and the page size. What a provider is
/// asked, and what the search cache keys a page by (different page sizes are
/// different pages).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchQuery {
    query: String,
    start: u32,
    count: u32,
}

impl SearchQuery {
    /// Keys `query` by its words, lower-cased, with any run of whitespace
    /// (including the ideographic space a Chinese keyboard types) as one
    /// space: "  Mistborn　Trilogy" and "mistborn trilogy" are one search.
    pub fn new(query: &str, start: u32, count: u32) -> Self {
        let query = query
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        Self {
            query,
            start,
            count,
        }
    }

    /// The normalised query: what the providers are asked, so that a cached
    /// page is exactly the answer to its key.
    pub fn query(&self) -> &str {
        &self.query
    }

    pub fn start(&self) -> u32 {
        self.start
    }

    pub fn count(&self) -> u32 {
        self.count
    }
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

impl From<doumi_runtime::deadline::DeadlinePassed> for ProviderError {
    fn from(_: doumi_runtime::deadline::DeadlinePassed) -> Self {
        Self::DeadlineExceeded
    }
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
    /// A short stable name for logs, metrics and provenance: a
    /// [`ProviderKind`]'s name for doumi's own providers.
    fn name(&self) -> &'static str;

    /// Whether this provider can answer `ask` at all; the chain skips it otherwise.
    fn can(&self, ask: Ask) -> bool {
        ask == Ask::Isbn
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError>;

    async fn by_douban_id(&self, _id: &DoubanId) -> Result<Book, ProviderError> {
        Err(ProviderError::Unsupported)
    }

    /// Books whose title or author match the query, from its offset, at most
    /// its page size.
    async fn search(&self, _search: &SearchQuery) -> Result<SearchPage, ProviderError> {
        Err(ProviderError::Unsupported)
    }
}
